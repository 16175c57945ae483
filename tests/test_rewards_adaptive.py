"""The no-thinking tier ``none``: AdaptThink's reward against hand-computed values, tldr's ``None`` on its rows,
the per-tier metric and the eval report (compliance = the share that skipped the thinking), eval tiers."""

from __future__ import annotations

import pytest

from data.budgets import resolve_tiers
from rewards import GradingConfig, RewardContext, build_rewards
from rewards.adaptive import adaptthink_rewards
from rewards.metrics import tier_metrics
from rl.config import ConfigError
from rl.eval_config import EvalArguments
from rl.engine import Generation
from rl.report import summarize

END = 9  # the </think> token id in these tests
TIERS = resolve_tiers({"short": {"budget": 10}, "medium": {"budget": 20}, "long": {"budget": 40}})
CTX = RewardContext(tiers=TIERS, think_end_id=END, grading=GradingConfig(workers=0), tier_metrics=False)
RIGHT = [{"role": "assistant", "content": "<think>ok</think> The answer is \\boxed{5}."}]
WRONG = [{"role": "assistant", "content": "<think>ok</think> The answer is \\boxed{4}."}]
SKIP = [END, 2, 2]  # closes at once: no thinking
THINK = [1, 1, 1, 1, END, 2]  # four thinking tokens, then the close


def reward(name: str, **params):
    (func,), _ = build_rewards([{"name": name, **params}], CTX)
    return func


def call(func, completions, completion_ids, **columns):
    n = len(completions)
    return func(prompts=[[{"role": "user", "content": "Q"}]] * n, completions=completions,
                completion_ids=completion_ids, solution=["5"] * n, **columns)


def test_formula_by_hand():
    # r = c - ref_acc + delta * 1[skipped], delta 0.05
    assert adaptthink_rewards([1, 1, 0, 0], [True, False, True, False], [0.5] * 4, 0.05) == pytest.approx(
        [0.55, 0.5, -0.45, -0.5])
    assert adaptthink_rewards([None], [True], [0.0], 0.05) == [None]


def test_adaptthink_scores_none_rows_only():
    func = reward("adaptthink")
    completions = [RIGHT, RIGHT, WRONG, WRONG, RIGHT]
    ids = [SKIP, THINK, SKIP, THINK, SKIP]
    tiers = ["none", "none", "none", "none", "short"]
    # ref_acc 0 (no column): right+skip 1.05, right+think 1.0, wrong+skip 0.05, wrong+think 0; short row: None
    assert call(func, completions, ids, tier=tiers) == pytest.approx([1.05, 1.0, 0.05, 0.0, None])
    # the reference accuracy column (AdaptThink's precomputed ref_acc(q)) and another delta
    with_ref = call(reward("adaptthink", delta=0.1), completions[:2], ids[:2], tier=tiers[:2], ref_acc=[0.75, 0.75])
    assert with_ref == pytest.approx([1 - 0.75 + 0.1, 1 - 0.75])
    assert call(reward("adaptthink", all_tiers=True), [RIGHT], [SKIP], tier=["short"]) == pytest.approx([1.05])
    with pytest.raises(ValueError, match="needs the dataset's 'tier' column"):
        call(func, [RIGHT], [SKIP])
    with pytest.raises(ValueError, match="delta must be >= 0"):
        reward("adaptthink", delta=-1)


def test_tldr_leaves_none_rows_to_adaptthink():
    tldr = reward("tldr")
    out = call(tldr, [RIGHT, RIGHT], [THINK + [2] * 10, SKIP], tier=["short", "none"])
    assert out[0] == pytest.approx(1.0) and out[1] is None  # 5 thinking tokens <= 10: no penalty


def test_none_tier_metric_is_the_share_that_skipped():
    out = tier_metrics([1, 5, 1, 5], ["none", "none", "none", "short"], TIERS, skipped=[True, False, True, False])
    assert out["tiers/none/within_budget"] == pytest.approx(2 / 3) and out["tiers/short/within_budget"] == 1.0


def test_eval_report_for_the_none_tier():
    gens = [Generation("", SKIP, True, "eos"), Generation("", THINK, True, "eos")]
    row = summarize(gens, [1.0, 1.0], END, 0)
    assert row["within_budget"] == row["skipped_thinking"] == 0.5
    assert summarize(gens, [1.0, 1.0], END, 10)["within_budget"] == 1.0


def test_eval_tiers_include_none():
    assert EvalArguments(models=["m"], eval_tiers=["short", "none"]).eval_tiers == ["short", "none"]
    with pytest.raises(ConfigError, match="unknown tier 'nil' in eval_tiers; allowed: short, medium, long, none"):
        EvalArguments(models=["m"], eval_tiers=["nil"])
