"""Group-relative length rewards: ``kimi`` and ``efficiency``.

Both compare a completion's length with the other completions *of the same prompt* (GRPO's group), never with
the whole batch (mixing prompts is a known bug of a popular reference implementation). Groups are found by
content, not by position: two completions are in one group when they have the same ``id`` column value (when
the dataset has one) and the same prompt. GRPOTrainer does put each prompt's ``num_generations`` completions
next to each other, but keying on content also keeps groups right for interleaved or partial batches.

Lengths are those of ``rewards.length`` (``length_of``): ``thinking`` = T + answer tokens beyond
``RewardContext.answer_allowance``, so reasoning moved after an early ``</think>`` is priced; ``completion`` =
every generated token. Correctness needs exactly one ``</think>`` and an end-of-sequence (``rewards.correctness``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from statistics import fmean, pstdev

from rewards.correctness import context_correctness
from rewards.length import check_length_of, lengths_of
from rewards.registry import RewardContext, register

EPS = 1e-7  # Arora and Zanette's guard against a zero standard deviation


def _prompt_key(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, sort_keys=True, default=str)


def group_indices(prompts: Sequence, ids: Sequence | None = None) -> list[list[int]]:
    """Indices of each group of completions (same ``id`` when given, and same prompt), in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, prompt in enumerate(prompts):
        key = (None if ids is None else str(ids[i]), _prompt_key(prompt))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


@register("kimi")
class Kimi:
    """Kimi k1.5 length reward (Kimi Team 2025, arXiv 2501.12599, section 2.3.3), per prompt group.

    With Lmin and Lmax the shortest and longest completion of the group (correct or not):
        lam = 0.5 - (L - Lmin) / (Lmax - Lmin)
        r = lam if the answer is correct, else min(0, lam);   r = 0 for the whole group when Lmax = Lmin.
    This is the length term only: add ``correctness`` with its own weight in the recipe, as the paper does.
    ``length_of`` defaults to the whole completion (the paper's response length).
    """

    group_relative = True  # needs a prompt's whole group in one call (rl.distributed.check_group_layout)

    def __init__(self, ctx: RewardContext, length_of: str = "completion") -> None:
        self.ctx = ctx
        self.length_of = check_length_of(length_of, ctx, "kimi")
        self.__name__ = "kimi"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        correct = context_correctness(self.ctx, completions, solution, completion_ids)
        rewards = [0.0] * len(lengths)
        for group in group_indices(prompts, kwargs.get("id")):
            lo, hi = min(lengths[i] for i in group), max(lengths[i] for i in group)
            if hi == lo:
                continue
            for i in group:
                lam = 0.5 - (lengths[i] - lo) / (hi - lo)
                rewards[i] = lam if correct[i] else min(0.0, lam)
        return rewards


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@register("efficiency")
class Efficiency:
    """Arora and Zanette 2025 ("Training Language Models to Reason Efficiently", arXiv 2502.04463), per group.

    With mu and sigma the mean and (population) standard deviation of the lengths of the group's *correct*
    completions, as in the authors' code:
        r = 1 - alpha * sigmoid((L - mu) / (sigma + 1e-7)) if the answer is correct, else 0.
    This replaces correctness (it is 1 - something for a correct answer). One correct completion, or correct
    completions all of one length, give sigma = 0: r = 1 - alpha * sigmoid(0) = 1 - alpha / 2 for them.
    Authors' constant: alpha = 0.1 (they sweep alpha in [0, 0.4]).
    """

    group_relative = True  # needs a prompt's whole group in one call (rl.distributed.check_group_layout)

    def __init__(self, ctx: RewardContext, alpha: float = 0.1, length_of: str = "completion") -> None:
        if not 0 <= float(alpha) <= 1:
            raise ValueError(f"efficiency: alpha must be in [0, 1], got {alpha!r}")
        self.ctx, self.alpha = ctx, float(alpha)
        self.length_of = check_length_of(length_of, ctx, "efficiency")
        self.__name__ = "efficiency"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        correct = context_correctness(self.ctx, completions, solution, completion_ids)
        rewards = [0.0] * len(lengths)
        for group in group_indices(prompts, kwargs.get("id")):
            right = [lengths[i] for i in group if correct[i]]
            if not right:
                continue
            mu, sigma = fmean(right), pstdev(right)
            for i in group:
                if correct[i]:
                    rewards[i] = 1.0 - self.alpha * _sigmoid((lengths[i] - mu) / (sigma + EPS))
        return rewards
