"""The reward registry: recipes in YAML, start-up validation naming the allowed values, the public API."""

from __future__ import annotations

import inspect
import pickle

import pytest
import yaml

import rewards
from rewards import REGISTRY, GradingConfig, RewardContext, build_rewards, register
from rewards.metrics import TierMetrics

CTX = RewardContext(grading=GradingConfig(workers=0))
ALL = ["adaptthink", "alp", "correctness", "cosine", "efficiency", "format", "kimi", "l1_exact", "l1_max", "laser", "overlong",
       "shorter_better", "smartthinker", "thinkprune", "tldr"]


def test_every_reward_is_registered_and_documented():
    assert sorted(REGISTRY) == ALL
    for name, factory in REGISTRY.items():
        doc = inspect.getdoc(factory) or ""
        assert "r = " in doc or "r =" in doc, f"{name}: the docstring must give the formula"
        assert any(s in doc for s in ("arXiv", "et al.", "Team")), f"{name}: the docstring must name its source"


def test_recipe_from_yaml():
    recipe = yaml.safe_load(
        """
        rewards:
          - {name: correctness, weight: 1.0}
          - {name: tldr, weight: 0.5, shape: normalized, length_of: completion}
          - {name: cosine, weight: 0.2, max_len: 512}
          - {name: overlong, max_completion_len: 1024, soft_punish_cache: 128}
        """
    )
    funcs, weights = build_rewards(recipe["rewards"], CTX)
    assert weights == [1.0, 0.5, 0.2, 1.0]
    assert [f.__name__ for f in funcs] == ["correctness", "tldr", "cosine", "overlong"]
    assert isinstance(funcs[0], TierMetrics) and not any(isinstance(f, TierMetrics) for f in funcs[1:])
    assert funcs[1].shape == "normalized" and funcs[1].length_of == "completion"


def test_every_reward_builds_with_defaults_and_pickles():
    specs = [{"name": n} for n in ALL if n not in ("cosine", "overlong")]
    specs += [{"name": "cosine", "max_len": 64}, {"name": "overlong", "max_completion_len": 64}]
    funcs, _ = build_rewards(specs, CTX)
    assert len(funcs) == len(ALL)
    assert len(pickle.loads(pickle.dumps(funcs))) == len(ALL)  # TRL's async rollout workers pickle reward funcs


@pytest.mark.parametrize(
    "specs, message",
    [
        ([], "empty; pick from: adaptthink, alp, correctness, cosine"),
        ([{"name": "brevity"}], "unknown reward 'brevity'; known rewards: adaptthink, alp, correctness, cosine"),
        ([{"weight": 1.0}], "must be a mapping with a 'name'"),
        (["tldr"], "must be a mapping with a 'name'"),
        ([{"name": "tldr", "budget": 5}], r"unknown parameter\(s\) \['budget'\] for reward 'tldr'; allowed: weight"),
        ([{"name": "tldr", "weight": "heavy"}], "weight must be a number"),
        ([{"name": "cosine"}], r"reward 'cosine' needs parameter\(s\) \['max_len'\]"),
        ([{"name": "overlong"}], r"needs parameter\(s\) \['max_completion_len'\]"),
        ([{"name": "tldr", "shape": "square"}], "unknown tldr shape 'square'; allowed: excess, normalized"),
        ([{"name": "tldr", "length_of": "words"}], "unknown length_of 'words'.*allowed: thinking, completion"),
        ([{"name": "kimi", "length_of": "answer"}], "allowed: thinking, completion"),
        ([{"name": "l1_exact", "target": "guess"}], "unknown l1_exact target 'guess'; allowed: prompt, column, tier"),
        ([{"name": "l1_max", "alpha": 0}], "alpha must be > 0"),
        ([{"name": "efficiency", "alpha": 2}], r"alpha must be in \[0, 1\]"),
        ([{"name": "thinkprune", "limit": 0}], "limit must be > 0"),
        ([{"name": "cosine", "max_len": 0}], "max_len must be a positive"),
        ([{"name": "overlong", "max_completion_len": 10, "soft_punish_cache": 20}], "soft_punish_cache <= max_comp"),
        ([{"name": "format", "think_in_prompt": "yes"}], "think_in_prompt must be true or false"),
    ],
)
def test_bad_recipes_fail_at_start_up_naming_the_allowed_values(specs, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(specs, CTX)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"timeout": 0}, "timeout must be > 0"),
        ({"workers": -1}, "workers must be >= 0"),
        ({"parallel_threshold": 0}, "parallel_threshold must be >= 1"),
        ({"max_answer_chars": 0}, "max_answer_chars must be >= 1"),
        ({"normalization": "loose"}, "allowed: trl, full"),
    ],
)
def test_grading_config_validation(fields, message):
    with pytest.raises(ValueError, match=message):
        GradingConfig(**fields)


def test_metrics_can_be_switched_off():
    funcs, _ = build_rewards([{"name": "format"}], RewardContext(tier_metrics=False))
    assert not isinstance(funcs[0], TierMetrics)
    with pytest.raises(ValueError, match="metrics_length_of"):
        build_rewards([{"name": "format"}], RewardContext(metrics_length_of="answer"))


def test_register_rejects_duplicates_and_new_rewards_plug_in():
    with pytest.raises(ValueError, match="registered twice"):
        register("tldr")(lambda ctx: None)

    @register("_test_constant")
    def make_constant(ctx, value: float = 0.5):
        """r = value (a test reward; source: none, et al.)."""
        return lambda prompts, completions, **kw: [value] * len(completions)

    try:
        (func,), _ = build_rewards([{"name": "_test_constant", "value": 2.0}], RewardContext(tier_metrics=False))
        assert func(prompts=["q"], completions=["a"]) == [2.0] and func.__name__ == "_test_constant"
    finally:
        del REGISTRY["_test_constant"]


def test_public_api_kept():
    from rewards.correctness import correctness_reward, grade
    from rewards.length import token_lengths

    assert rewards.build_rewards is build_rewards and rewards.RewardContext is RewardContext
    assert RewardContext(think_end_id=7).think_end_id == 7
    assert grade("<think>x</think> \\boxed{\\frac{1}{2}}", "\\frac12") == 1.0
    completions = ["\\boxed{3}", [{"role": "assistant", "content": "\\boxed{4}"}]]
    assert correctness_reward(None, completions, ["3", "3"]) == [1.0, 0.0]
    assert token_lengths([[1, 2, 3]], "completion", None) == [3]
