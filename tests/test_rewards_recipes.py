"""Reward recipes (configs/rewards/): resolved by name, path or inline list; each one scores a GRPO batch of the
synthetic task the way its method says (correct beats wrong, the tier budget beats a full-length trace)."""

from __future__ import annotations

import pytest

from data.budgets import resolve_tiers
from data.tasks import make_prompt
from rewards import GradingConfig, RewardContext, build_rewards
from rewards.recipes import INLINE, REWARD_RECIPE_DIR, load_reward_recipe, resolve_rewards, reward_recipes_available
from rl.config import ConfigError, LcrlArguments

END = 99  # stands for </think>
TIERS = resolve_tiers("synthetic")  # short <= 36, medium 36-48, long 64-128 thinking tokens
CTX = RewardContext(tiers=TIERS, think_end_id=END, grading=GradingConfig(workers=0), tier_metrics=False)
FULL, ORACLE = 100, 38  # thinking tokens of a full synthetic trace and of its essential steps
TIER_AWARE = ("tldr", "l1_exact", "l1_max", "thinkprune")  # read each prompt's tier budget
LENGTH_FREE = ("correctness",)
CUT_AT_CAP = ("dler",)  # a cut completion scores 0: the limit is on the whole completion (the generation cap)


def score(recipe: str, items: list[tuple[bool, int]], tier: str) -> list[float]:
    """Weighted total reward of completions of one prompt (one GRPO group): (correct?, thinking tokens) each."""
    funcs, weights = build_rewards(load_reward_recipe(recipe).rewards, CTX)
    n = len(items)
    columns = {
        "prompts": [make_prompt("Start with 3. Add 2. What is the final value?", tier, TIERS)] * n,
        "completions": [[{"role": "assistant", "content": f"<think>...</think>\n\\boxed{{{5 if ok else 6}}}"}]
                        for ok, _ in items],
        "completion_ids": [[7] * (length - 1) + [END, 8, 9] for _, length in items],
        "solution": ["5"] * n, "tier": [tier] * n, "id": ["q0"] * n,
    }
    per_reward = [f(**columns) for f in funcs]
    return [sum(w * r[i] for w, r in zip(weights, per_reward)) for i in range(n)]


def test_names_paths_and_inline_lists_resolve():
    kimi = resolve_rewards("kimi")
    assert kimi.name == "kimi" and [s["name"] for s in kimi.rewards] == ["correctness", "kimi"]
    assert kimi.weights() == {"correctness": 1.0, "kimi": 1.0}
    by_path = resolve_rewards(str(REWARD_RECIPE_DIR / "l1_max.yaml"))
    assert by_path.name == "l1_max" and by_path.rewards == load_reward_recipe("l1_max").rewards
    assert resolve_rewards("configs/rewards/tldr.yaml").rewards == load_reward_recipe("tldr").rewards
    inline = resolve_rewards([{"name": "tldr", "weight": 2}])
    assert inline.name == INLINE and inline.path is None and inline.weights() == {"tldr": 2.0}
    assert resolve_rewards(None) is None


@pytest.mark.parametrize(
    "value, message",
    [
        ("kimmi", r"unknown reward recipe 'kimmi'; available: alp, correctness, cosine, dler, efficiency, kimi, l1_exact"),
        ("nowhere/rewards.yaml", r"reward recipe file 'nowhere/rewards.yaml' not found; named recipes: "),
        ([], r"'rewards' must be a non-empty list"),
        ([{"weight": 1.0}], r"rewards\[0\] must be a mapping with a 'name'"),
    ],
)
def test_bad_values_name_the_allowed_ones(value, message):
    with pytest.raises(ValueError, match=message):
        resolve_rewards(value)


def test_a_reward_recipe_file_holds_only_rewards(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("rewards:\n  - {name: kimi}\ntiers: {short: {budget: 9}}\n")
    with pytest.raises(ValueError, match=r"unknown or missing keys \['tiers'\]; allowed: rewards"):
        load_reward_recipe(str(path))
    path.write_text("rewards: [{name: kimi}, {name: correctness, weight: 0.5}]\n")
    recipe = load_reward_recipe(str(path))
    assert recipe.name == "mine" and recipe.weights() == {"kimi": 1.0, "correctness": 0.5}


def test_a_reward_recipe_may_set_trainer_values(tmp_path):
    dler = load_reward_recipe("dler")
    assert dler.trainer == {"max_completion_length": 96, "scale_rewards": "batch", "epsilon_high": 0.28}
    assert dler.rewards == [{"name": "thinkprune", "weight": 1.0, "limit": 95, "length_of": "completion"}]
    assert load_reward_recipe("kimi").trainer == {}
    path = tmp_path / "bad.yaml"
    path.write_text("rewards: [{name: kimi}]\ntrainer: [scale_rewards]\n")
    with pytest.raises(ValueError, match="'trainer' must be a mapping"):
        load_reward_recipe(str(path))


def test_lcrl_arguments_take_a_recipe_name_and_keep_it():
    args = LcrlArguments(rewards="efficiency")
    assert args.reward_recipe == "efficiency" and args.rewards == load_reward_recipe("efficiency").rewards
    assert LcrlArguments(rewards="[{name: tldr}]").reward_recipe == INLINE  # a list given on the command line
    assert LcrlArguments().reward_recipe is None and LcrlArguments().rewards is None
    with pytest.raises(ConfigError, match="unknown reward recipe 'fast'; available: .*tldr"):
        LcrlArguments(rewards="fast")


@pytest.mark.parametrize("recipe", reward_recipes_available())
def test_every_recipe_builds_with_the_registry(recipe):
    funcs, weights = build_rewards(load_reward_recipe(recipe).rewards, CTX)
    assert len(funcs) == len(weights) >= 1 and all(w > 0 for w in weights)
    measured = "completion" if recipe in CUT_AT_CAP else "thinking"
    assert all(s.get("length_of", "thinking") == measured for s in load_reward_recipe(recipe).rewards)


@pytest.mark.parametrize("recipe", reward_recipes_available())
def test_every_recipe_prefers_correct_and_short(recipe):
    # medium: the oracle length is inside its band (short's budget sits below the mean oracle length on purpose)
    right_short, right_full, wrong_short = score(recipe, [(True, ORACLE), (True, FULL), (False, ORACLE)], "medium")
    assert right_short > wrong_short
    assert right_full > wrong_short or recipe in (*TIER_AWARE, *CUT_AT_CAP)  # over the budget may cost it all
    if recipe in LENGTH_FREE:
        assert right_short == right_full
    else:
        assert right_short > right_full, "a length reward must prefer the oracle-length answer to the full one"


@pytest.mark.parametrize("recipe", TIER_AWARE)
def test_tier_aware_recipes_take_the_budget_from_the_tier(recipe):
    """A full-length correct answer is fine under long (budget 128) and penalised under short (budget 36)."""
    (long_,) = score(recipe, [(True, FULL)], "long")
    (short,) = score(recipe, [(True, FULL)], "short")
    assert long_ > short
    if recipe in ("l1_exact", "l1_max"):  # target = the tier's budget: at the budget l1_exact is exactly c
        (at_budget,) = score(recipe, [(True, TIERS["medium"].budget)], "medium")
        assert at_budget == pytest.approx(1.0 if recipe == "l1_exact" else 0.5)
