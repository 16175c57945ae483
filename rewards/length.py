"""Length-regularised rewards on token lengths: ``tldr``, ``l1_exact``, ``l1_max``, ``thinkprune``.

Lengths are token counts from ``completion_ids``, read by ``RewardContext.completion_format``
(``data.completion_format``: a close marker of one or several tokens, robust to merges):

    length_of="thinking":    L = T + max(0, A - answer_allowance)
    length_of="completion":  L = len(completion_ids)   (EOS included, as TRL counts)

with T the thinking tokens (up to and including the first ``</think>``; all tokens if the thinking never closes)
and A the answer tokens after it (``RewardContext.answer_allowance``, default 64). The allowance makes the
thinking length price what the model spends: "10 tokens, ``</think>``, 3000 tokens of reasoning, answer" costs
about 3000, not 10, so no recipe rewards closing the thinking early and reasoning after it (the correctness
grader also requires exactly one ``</think>`` for credit). c is the correctness in {0, 1} (``rewards.correctness``).
Tiers (``short | medium | long``) come from ``data.budgets`` through ``RewardContext.tiers``; the tier of each
example is its ``tier`` column, so one batch can mix tiers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from data.budgets import ALL_TIERS, Tier
from data.completion_format import CompletionFormat
from rewards.correctness import context_correctness
from rewards.registry import RewardContext, register

logger = logging.getLogger(__name__)

LENGTH_OF = ("thinking", "completion")
SHAPES = ("excess", "normalized")
TARGETS = ("prompt", "column", "tier")
# LCPO's prompt instructions: "Think for n tokens." (exact) and "Think for maximum n tokens." (max)
TARGET_IN_PROMPT = re.compile(r"think\s+for\s+(?:maximum\s+|at\s+most\s+|up\s+to\s+)?(\d+)\s+tokens", re.IGNORECASE)


def token_lengths(
    completion_ids: Sequence[Sequence[int]], length_of: str, fmt: CompletionFormat | int | None,
    answer_allowance: int | None = None,
) -> list[int]:
    """Per completion: ``thinking`` = T (+ answer tokens beyond ``answer_allowance`` when given, module
    docstring) or ``completion`` = all tokens. ``fmt``: the completion format, a one-token close id, or ``None``
    (then the thinking is the whole completion)."""
    if length_of not in LENGTH_OF:
        raise ValueError(f"unknown length_of {length_of!r}; allowed: {', '.join(LENGTH_OF)}")
    if length_of == "completion":
        return [len(ids) for ids in completion_ids]
    if fmt is None:
        return [len(ids) for ids in completion_ids]
    if isinstance(fmt, int):
        fmt = CompletionFormat.from_ids([fmt])
    out = []
    for ids in completion_ids:
        think = fmt.thinking_tokens(ids)
        extra = 0 if answer_allowance is None else max(0, len(fmt.content(ids)) - think - answer_allowance)
        out.append(think + extra)
    return out


def check_length_of(length_of: str, ctx: RewardContext, reward: str) -> str:
    """Validate ``length_of`` at build time, naming the allowed values."""
    if length_of not in LENGTH_OF:
        raise ValueError(f"unknown length_of {length_of!r} for reward {reward!r}; allowed: {', '.join(LENGTH_OF)}")
    return length_of


_warned_no_think_end = False


def lengths_of(completion_ids: Sequence[Sequence[int]] | None, length_of: str, ctx: RewardContext) -> list[int]:
    """``token_lengths`` for a reward call (thinking priced with the context's answer allowance); warns once when
    thinking lengths cannot find ``</think>``."""
    global _warned_no_think_end
    if completion_ids is None:
        raise ValueError("length rewards need completion_ids (TRL's GRPOTrainer passes them)")
    fmt = ctx.reading()
    if length_of == "thinking" and fmt is None and not _warned_no_think_end:
        logger.warning("RewardContext has no completion format: thinking lengths count the whole completion")
        _warned_no_think_end = True
    return token_lengths(completion_ids, length_of, fmt, ctx.answer_allowance)


def tier_specs(tier: Sequence[str] | None, tiers: Mapping[str, Tier], reward: str) -> list[Tier]:
    """The ``Tier`` of each example from the ``tier`` column; a missing column or unknown name is an error."""
    if tier is None:
        raise ValueError(f"{reward} needs the dataset's 'tier' column (one of {', '.join(ALL_TIERS)} per example)")
    unknown = sorted({t for t in tier if t not in tiers})
    if unknown:
        raise ValueError(f"{reward}: unknown tier(s) {unknown} in the 'tier' column; allowed: {', '.join(tiers)}")
    return [tiers[t] for t in tier]


def _positive(value: float, name: str, reward: str) -> float:
    if not value > 0:
        raise ValueError(f"{reward}: {name} must be > 0, got {value!r}")
    return value


@register("tldr")
class Tldr:
    """TLDR (Zhang et al. 2025, arXiv 2505.07961): correctness minus the tier's length penalty.

    With B_t the budget, w_t the penalty strength and F_t the floor of the example's tier (``data.budgets``):
        excess:      r = c - w_t * (max(0, L - B_t) + max(0, F_t - L)) / B_t
        normalized:  r = c - w_t * (L + max(0, F_t - L)) / B_t
    The paper's budgets and weights are not public: they come from the tier table (recipe ``tiers:``). The floor
    (default 0: none) is lcrl's addition: under ``budget: mixed`` it gives the longer tiers a reason to stay longer
    (without it every tier collapses to the shortest). The penalty applies to wrong answers too. L is
    ``length_of``: by default the thinking the budgets measure, priced as T + answer tokens beyond the allowance
    (module docstring), so closing early and reasoning after ``</think>`` costs the same as thinking.
    Rows of the no-thinking tier ``none`` (budget 0) score ``None``: their reward is ``adaptthink``
    (``rewards.adaptive``), and TRL leaves a ``None`` out of the weighted sum.
    """

    def __init__(self, ctx: RewardContext, shape: str = "excess", length_of: str = "thinking") -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown tldr shape {shape!r}; allowed: {', '.join(SHAPES)}")
        self.ctx, self.shape = ctx, shape
        self.length_of = check_length_of(length_of, ctx, "tldr")
        self.__name__ = "tldr"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, tier=None,
                 **kwargs) -> list[float | None]:
        specs = tier_specs(tier, self.ctx.tiers, "tldr")
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        correct = context_correctness(self.ctx, completions, solution, completion_ids)
        rewards: list[float | None] = []
        for c, n, spec in zip(correct, lengths, specs, strict=True):
            if not spec.thinks:
                rewards.append(None)
                continue
            over = max(0, n - spec.budget) if self.shape == "excess" else n
            rewards.append(c - spec.penalty * (over + max(0, spec.floor - n)) / spec.budget)
        return rewards


def target_lengths(
    source: str, prompts: Sequence, columns: Mapping[str, Sequence | None], column: str, ctx: RewardContext
) -> list[int]:
    """Target length of each example: parsed from the prompt, read from a column, or the tier's budget."""
    if source == "tier":
        return [spec.budget for spec in tier_specs(columns.get("tier"), ctx.tiers, "l1 (target=tier)")]
    if source == "column":
        values = columns.get(column)
        if values is None:
            raise ValueError(f"l1: the dataset has no {column!r} column with target lengths")
        return [int(v) for v in values]
    targets = []
    for prompt in prompts:
        text = prompt if isinstance(prompt, str) else " ".join(str(m.get("content", "")) for m in prompt)
        found = TARGET_IN_PROMPT.findall(text)
        if not found:
            raise ValueError(f"l1: no 'Think for N tokens.' instruction in the prompt {text[-200:]!r}")
        targets.append(int(found[-1]))
    return targets


class _L1:
    """Shared parameters of the LCPO rewards (Aggarwal and Welleck 2025, L1, arXiv 2503.04697)."""

    name = "l1"

    def __init__(
        self,
        ctx: RewardContext,
        alpha: float = 0.0003,
        target: str = "prompt",
        target_column: str = "target_length",
        length_of: str = "completion",
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"unknown {self.name} target {target!r}; allowed: {', '.join(TARGETS)}")
        self.ctx, self.target, self.target_column = ctx, target, target_column
        self.alpha = _positive(float(alpha), "alpha", self.name)
        self.length_of = check_length_of(length_of, ctx, self.name)
        self.__name__ = self.name

    def _inputs(self, prompts, completions, completion_ids, solution, kwargs):
        targets = target_lengths(self.target, prompts, kwargs, self.target_column, self.ctx)
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        correct = context_correctness(self.ctx, completions, solution, completion_ids)
        return correct, lengths, targets


@register("l1_exact")
class L1Exact(_L1):
    """LCPO-Exact (L1, Aggarwal and Welleck 2025, arXiv 2503.04697): r = c - alpha * |n_target - L|.

    The target n comes from the prompt ("Think for n tokens.", ``target=prompt``), a column (``target=column``,
    ``target_column``) or the tier's budget (``target=tier``). Authors' constants: alpha = 0.0003,
    n ~ U[100, 4000]; L counts the generated tokens (``length_of=completion``, EOS included; ``thinking``:
    T + answer tokens beyond the allowance).
    """

    name = "l1_exact"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        correct, lengths, targets = self._inputs(prompts, completions, completion_ids, solution, kwargs)
        return [c - self.alpha * abs(n - L) for c, L, n in zip(correct, lengths, targets, strict=True)]


@register("l1_max")
class L1Max(_L1):
    """LCPO-Max (L1, Aggarwal and Welleck 2025, arXiv 2503.04697): r = c * clip(alpha * (n_target - L) + delta, 0, 1).

    Prompt instruction "Think for maximum n tokens."; target sources as in ``l1_exact``. Authors' constants:
    alpha = 0.0003, delta = 0.5. L as in ``l1_exact`` (default: every generated token).
    """

    name = "l1_max"

    def __init__(
        self,
        ctx: RewardContext,
        alpha: float = 0.0003,
        delta: float = 0.5,
        target: str = "prompt",
        target_column: str = "target_length",
        length_of: str = "completion",
    ) -> None:
        super().__init__(ctx, alpha, target, target_column, length_of)
        self.delta = float(delta)

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        correct, lengths, targets = self._inputs(prompts, completions, completion_ids, solution, kwargs)
        return [
            c * min(1.0, max(0.0, self.alpha * (n - L) + self.delta))
            for c, L, n in zip(correct, lengths, targets, strict=True)
        ]


@register("thinkprune")
class ThinkPrune:
    """ThinkPrune (Hou et al. 2025, arXiv 2504.01296): r = c if L <= limit else 0.

    A completion earns its correctness only if it finished within the length limit. ``limit``: a number of
    tokens, or ``None`` for the budget of the example's tier. The paper tightens the limit in rounds
    (4k -> 3k -> 2k tokens): run one recipe per round with a smaller ``limit``. L counts the whole completion
    by default (the paper's generation limit); ``length_of=thinking`` limits the thinking (T + answer tokens
    beyond the allowance, module docstring).
    """

    def __init__(self, ctx: RewardContext, limit: int | None = None, length_of: str = "completion") -> None:
        if limit is not None:
            limit = int(_positive(limit, "limit", "thinkprune"))
        self.ctx, self.limit = ctx, limit
        self.length_of = check_length_of(length_of, ctx, "thinkprune")
        self.__name__ = "thinkprune"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, tier=None, **kwargs) -> list[float]:
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        if self.limit is None:
            limits = [spec.budget for spec in tier_specs(tier, self.ctx.tiers, "thinkprune")]
        else:
            limits = [self.limit] * len(lengths)
        correct = context_correctness(self.ctx, completions, solution, completion_ids)
        return [c if L <= limit else 0.0 for c, L, limit in zip(correct, lengths, limits, strict=True)]
