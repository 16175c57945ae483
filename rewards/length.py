"""Length-regularised rewards. Lengths are token counts from ``completion_ids``."""

from __future__ import annotations

from collections.abc import Sequence

from data.format import completion_text, count_until
from rewards.correctness import grade
from rewards.registry import RewardContext, RewardFunc, register

LENGTH_OF = ("thinking", "completion")
SHAPES = ("excess", "normalized")


def token_lengths(completion_ids: Sequence[Sequence[int]], length_of: str, think_end_id: int | None) -> list[int]:
    """Thinking length (tokens up to and including ``</think>``) or whole-completion length per completion."""
    if length_of not in LENGTH_OF:
        raise ValueError(f"unknown length_of {length_of!r}; allowed: {', '.join(LENGTH_OF)}")
    if length_of == "completion":
        return [len(ids) for ids in completion_ids]
    return [count_until(ids, think_end_id) for ids in completion_ids]


@register("tldr")
def make_tldr(ctx: RewardContext, shape: str = "excess", length_of: str = "thinking") -> RewardFunc:
    """TLDR (Zhang et al. 2025): correctness minus the tier's length penalty.

    With B_t the tier's budget and w_t its penalty strength (``data.budgets``), c in {0, 1}:
        excess:      r = c - w_t * max(0, L - B_t) / B_t
        normalized:  r = c - w_t * L / B_t
    The tier comes from the ``tier`` column, so one batch can mix tiers.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown tldr shape {shape!r}; allowed: {', '.join(SHAPES)}")
    token_lengths([], length_of, None)  # validates length_of at start-up

    def tldr(prompts, completions, completion_ids, solution, tier, **kwargs):
        lengths = token_lengths(completion_ids, length_of, ctx.think_end_id)
        rewards = []
        for c, gold, t, n in zip(completions, solution, tier, lengths, strict=True):
            spec = ctx.tiers[t]
            over = max(0, n - spec.budget) if shape == "excess" else n
            rewards.append(grade(completion_text(c), gold) - spec.penalty * over / spec.budget)
        return rewards

    return tldr
