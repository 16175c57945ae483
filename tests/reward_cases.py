"""Shared cases of the reward tests: a tier table with small budgets, a grading context without worker processes, and
right / wrong completions with token ids of a chosen thinking length."""

from __future__ import annotations

from data.budgets import resolve_tiers
from rewards import GradingConfig, RewardContext, build_rewards

END = 9  # the </think> token id in these tests
# budgets 10 / 20 / 40 tokens, penalties 1.0 / 0.5 / 0.1
TIERS = resolve_tiers({"short": {"budget": 10}, "medium": {"budget": 20}, "long": {"budget": 40}})
CTX = RewardContext(tiers=TIERS, think_end_id=END, grading=GradingConfig(workers=0), tier_metrics=False)


def reward(name: str, **params):
    (func,), _ = build_rewards([{"name": name, **params}], CTX)
    return func


def right(n: int = 1) -> list:
    return [[{"role": "assistant", "content": "<think>ok</think> The answer is \\boxed{5}."}]] * n


def wrong(n: int = 1) -> list:
    return [[{"role": "assistant", "content": "<think>ok</think> The answer is \\boxed{4}."}]] * n


def ids(thinking: int, after: int = 0) -> list[int]:
    """Token ids: ``thinking`` tokens ending with </think> (counted in the thinking), then ``after`` more."""
    return [1] * (thinking - 1) + [END] + [2] * after


def call(func, completions, completion_ids, prompts=None, **columns):
    n = len(completions)
    columns.setdefault("solution", ["5"] * n)
    prompts = prompts or [[{"role": "user", "content": "Q"}]] * n
    return func(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
