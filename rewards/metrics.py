"""Per-tier metrics logged through TRL's ``log_metric`` so that W&B shows them for every run.

For each tier present in the batch (the ``tier`` column; ``all`` when the dataset has none):
    tiers/<tier>/mean_length     mean token length (thinking by default, T without the answer allowance of
                                 ``rewards.length``: ``RewardContext.metrics_length_of``)
    tiers/<tier>/within_budget   share of completions whose length is <= the tier's budget (``data.budgets``); for
                                 the no-thinking tier ``none``, the share that skipped the thinking
    tiers/<tier>/accuracy        share of correct answers (``rewards.correctness``; needs the ``solution`` column)
    correctness/truncated        share of completions cut at the length limit (no EOS at the end), which
                                 correctness scores 0 (``GradingConfig.zero_truncated``); needs the completion format
GRPOTrainer passes ``log_metric(name, value)`` to every reward function and averages each metric over the
logging step. ``build_rewards`` wraps the recipe's first reward in ``TierMetrics`` so the metrics are logged
once per batch whatever the recipe; the correctness verdicts come from the grader's cache when another reward
already graded the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from data.budgets import Tier
from rewards.correctness import context_correctness
from rewards.length import token_lengths
from rewards.registry import RewardContext, RewardFunc

logger = logging.getLogger(__name__)


def tier_metrics(
    lengths: Sequence[int],
    tier: Sequence[str] | None,
    tiers: Mapping[str, Tier],
    correct: Sequence[float] | None = None,
    skipped: Sequence[bool] | None = None,
) -> dict[str, float]:
    """The per-tier metrics of one batch (see the module docstring); pure, for tests and evaluation. ``skipped``:
    per completion, whether it skipped the thinking (``CompletionFormat.skips_thinking``), for the ``none`` tier."""
    names = list(tier) if tier is not None else ["all"] * len(lengths)
    out: dict[str, float] = {}
    for name in dict.fromkeys(names):
        idx = [i for i, t in enumerate(names) if t == name]
        out[f"tiers/{name}/mean_length"] = sum(lengths[i] for i in idx) / len(idx)
        if name in tiers and tiers[name].thinks:
            out[f"tiers/{name}/within_budget"] = sum(lengths[i] <= tiers[name].budget for i in idx) / len(idx)
        elif name in tiers and skipped is not None:
            out[f"tiers/{name}/within_budget"] = sum(skipped[i] for i in idx) / len(idx)
        if correct is not None:
            out[f"tiers/{name}/accuracy"] = sum(correct[i] for i in idx) / len(idx)
    return out


class TierMetrics:
    """A reward function that also logs the per-tier metrics; its rewards are the wrapped function's."""

    def __init__(self, func: RewardFunc, ctx: RewardContext) -> None:
        if ctx.metrics_length_of not in ("thinking", "completion"):
            raise ValueError(f"unknown metrics_length_of {ctx.metrics_length_of!r}; allowed: thinking, completion")
        self.func, self.ctx = func, ctx
        self.__name__ = getattr(func, "__name__", "reward")
        self.__wrapped__ = func

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        rewards = self.func(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if log_metric is not None and completion_ids is not None and len(completion_ids):
            lengths = token_lengths(completion_ids, self.ctx.metrics_length_of, self.ctx.reading())
            solution = kwargs.get("solution")
            correct = None if solution is None else context_correctness(self.ctx, completions, solution, completion_ids)
            fmt, tier = self.ctx.reading(), kwargs.get("tier")
            skipped = None
            if fmt is not None and tier is not None and any(t in self.ctx.tiers and not self.ctx.tiers[t].thinks
                                                            for t in tier):
                skipped = [fmt.skips_thinking(ids) for ids in completion_ids]
            for name, value in tier_metrics(lengths, tier, self.ctx.tiers, correct, skipped).items():
                log_metric(name, float(value))
            if fmt is not None and fmt.eos_ids:
                log_metric("correctness/truncated", sum(map(fmt.is_truncated, completion_ids)) / len(completion_ids))
        return rewards
