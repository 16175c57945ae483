"""The reward of the no-thinking tier (``none``, ``data.budgets``): ``adaptthink``.

AdaptThink (Zhang et al. 2025, arXiv 2505.13417; THU-KEG/AdaptThink, ``methods.md`` section 5) trains a reasoning
model to choose, per problem, between thinking and answering at once. Its constrained objective: maximise the
probability of no thinking subject to the accuracy not falling below the reference model's,

    max E[1(y_1 = </think>)]   s.t.   E[R(x, y)] >= E[R_ref(x)],

relaxed with a Lagrange-like weight into the per-sample reward

    r = c - ref_acc(q) + delta * 1[no thinking]

with c in {0, 1} the correctness, ref_acc(q) the reference model's accuracy on q (K samples, precomputed;
the paper uses K 16) and delta 0.05: a no-thinking answer wins only while it is about as accurate as thinking
(a wrong no-thinking answer loses 1 - delta against a right thinking one).

In lcrl: "no thinking" is ``CompletionFormat.skips_thinking`` (the thinking closed with nothing in it).
``ref_acc`` is the dataset's ``ref_acc`` column when present, else the ``ref_acc`` parameter (default 0). Under
GRPO's group-relative advantages ref_acc(q) is one constant per group and cancels in the advantage (it also
leaves the group's standard deviation unchanged): it sets the level of the logged reward only. Rows of other tiers
score ``None`` (TRL leaves a ``None`` out of the weighted sum), so ``tldr`` + ``adaptthink`` in one recipe gives
every row exactly one length-aware reward (``tldr`` scores ``None`` on ``none`` rows).
"""

from __future__ import annotations

from collections.abc import Sequence

from data.budgets import NO_THINKING
from rewards.correctness import context_correctness
from rewards.registry import RewardContext, register


def adaptthink_rewards(correct: Sequence[float | None], skipped: Sequence[bool], ref_acc: Sequence[float],
                       delta: float) -> list[float | None]:
    """``r = c - ref_acc + delta * 1[skipped]`` per completion (module docstring); ``None`` where ``c`` is (an
    unparsable gold answer)."""
    return [None if c is None else c - a + delta * float(s) for c, s, a in zip(correct, skipped, ref_acc, strict=True)]


@register("adaptthink")
class AdaptThink:
    """AdaptThink (Zhang et al. 2025, arXiv 2505.13417): r = c - ref_acc(q) + delta * 1[no thinking] on ``none``-tier
    rows (module docstring).

    Parameters: ``delta`` (0.05, the paper's), ``ref_acc`` (used when the dataset has no ``ref_acc`` column),
    ``all_tiers`` (score every row, not only the ``none`` tier's; default false).
    """

    def __init__(self, ctx: RewardContext, delta: float = 0.05, ref_acc: float = 0.0, all_tiers: bool = False) -> None:
        if delta < 0:
            raise ValueError(f"adaptthink: delta must be >= 0, got {delta}")
        if not 0.0 <= ref_acc <= 1.0:
            raise ValueError(f"adaptthink: ref_acc must be in [0, 1], got {ref_acc}")
        self.ctx, self.delta, self.ref_acc, self.all_tiers = ctx, float(delta), float(ref_acc), all_tiers
        self.__name__ = "adaptthink"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, tier=None,
                 **kwargs) -> list[float | None]:
        if completion_ids is None:
            raise ValueError("adaptthink needs completion_ids (TRL's GRPOTrainer passes them)")
        rows = [i for i in range(len(completions)) if self.all_tiers or (tier is not None and tier[i] == NO_THINKING)]
        if tier is None and not self.all_tiers:
            raise ValueError(f"adaptthink needs the dataset's 'tier' column (it scores the {NO_THINKING!r} tier), or "
                             "all_tiers: true")
        out: list[float | None] = [None] * len(completions)
        if not rows:
            return out
        fmt = self.ctx.reading()
        if fmt is None:
            raise ValueError("adaptthink needs the completion format to tell a skipped thinking (RewardContext."
                             "completion_format or think_end_id)")
        correct = context_correctness(self.ctx, [completions[i] for i in rows],
                                      None if solution is None else [solution[i] for i in rows],
                                      [completion_ids[i] for i in rows])
        ref = kwargs.get("ref_acc")
        ref_acc = [self.ref_acc if ref is None else float(ref[i]) for i in rows]
        skipped = [fmt.skips_thinking(completion_ids[i]) for i in rows]
        for i, r in zip(rows, adaptthink_rewards(correct, skipped, ref_acc, self.delta)):
            out[i] = r
        return out
