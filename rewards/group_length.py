"""Group-relative length rewards of 2025-26: ``shorter_better``, ``smartthinker``, ``alp``, ``laser``.

Like ``rewards.group`` (Kimi, Arora-Zanette), each compares a completion with the other completions *of the same
prompt* (its GRPO group, found by ``rewards.group.group_indices``: same ``id`` column and same prompt), never with
the whole batch. L is the token length of what ``length_of`` names (the thinking or the whole completion), c the
correctness in {0, 1} (``rewards.correctness``), G the group size. Each reward contains the correctness term, so a
recipe uses it alone. Formulas follow the authors' public code where there is one (``../shared/methods.md``
section 5); constants that are not public are parameters.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from statistics import fmean, pvariance

from rewards.correctness import correctness_scores
from rewards.group import group_indices
from rewards.length import check_length_of, lengths_of
from rewards.registry import RewardContext, register

VAR_TOL = 1e-6  # SmartThinker's test for two equal variances


class _GroupReward:
    """Shared set-up: lengths, correctness and groups of one reward call."""

    name = "group_length"

    def __init__(self, ctx: RewardContext, length_of: str) -> None:
        self.ctx = ctx
        self.length_of = check_length_of(length_of, ctx, self.name)
        self.__name__ = self.name

    def _inputs(self, prompts, completions, completion_ids, solution, kwargs):
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        correct = correctness_scores(completions, solution, self.ctx.grading)
        return lengths, correct, group_indices(prompts, kwargs.get("id"))


def _non_negative(value: float, name: str, reward: str) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"{reward}: {name} must be >= 0, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------ ShorterBetter


def shortest_correct(lengths: Sequence[int], correct: Sequence[float]) -> float:
    """ShorterBetter's sample optimal length of one group: the shortest correct length, else the mean length."""
    right = [n for n, c in zip(lengths, correct) if c]
    return float(min(right)) if right else fmean(lengths)


@register("shorter_better")
class ShorterBetter(_GroupReward):
    """ShorterBetter (Yi et al. 2025, arXiv 2504.21370; JingyangYi/ShorterBetter), per prompt group.

    SOL (sample optimal length) = the shortest correct length in the group, or the group's mean length when
    none is correct:
        r = alpha * c - beta * abs(L - SOL)
    Wrong answers are pulled towards SOL as well (the authors' code penalises every completion). Authors'
    constants: alpha = 2, beta = 0.001 (lengths of thousands of tokens); for ~100-token traces scale beta up.
    """

    name = "shorter_better"

    def __init__(self, ctx: RewardContext, alpha: float = 2.0, beta: float = 0.001,
                 length_of: str = "completion") -> None:
        super().__init__(ctx, length_of)
        self.alpha = _non_negative(alpha, "alpha", self.name)
        self.beta = _non_negative(beta, "beta", self.name)

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths, correct, groups = self._inputs(prompts, completions, completion_ids, solution, kwargs)
        rewards = [0.0] * len(lengths)
        for group in groups:
            sol = shortest_correct([lengths[i] for i in group], [correct[i] for i in group])
            for i in group:
                rewards[i] = self.alpha * correct[i] - self.beta * abs(lengths[i] - sol)
        return rewards


# ------------------------------------------------------------------------------------------- SmartThinker


def smartthinker_optimal_length(lengths: Sequence[int], correct: Sequence[float]) -> float:
    """SmartThinker's per-group optimal length l_opt (see ``SmartThinker``)."""
    right = [n for n, c in zip(lengths, correct) if c]
    if not right:
        return float(max(lengths))
    if len(right) == len(lengths):
        return float(min(lengths))
    mu_all, var_all = fmean(lengths), pvariance(lengths)
    mu_c, var_c = fmean(right), pvariance(right)
    if abs(var_c - var_all) < VAR_TOL:
        return float(max(lengths) if mu_c < mu_all else min(lengths))
    if var_c > var_all:
        return float(min(lengths))
    l_opt = (var_c * mu_all - var_all * mu_c) / (var_c - var_all)
    return min(float(max(lengths)), max(float(min(lengths)), l_opt))


def smartthinker_rewards(lengths: Sequence[int], correct: Sequence[float], eps: float = 1e-6) -> list[float]:
    """SmartThinker rewards of one group (see ``SmartThinker``): c - lam * s."""
    l_opt = smartthinker_optimal_length(lengths, correct)
    scores = [abs(n - l_opt) if c and n > l_opt else 0.0 for n, c in zip(lengths, correct)]
    right = [s for s, c in zip(scores, correct) if c]
    if not right or len(right) == len(scores):
        lam = 0.0
    else:
        error_ratio = 1.0 - len(right) / len(scores)
        lam = error_ratio / (max(right) - fmean(scores) + eps)
    return [c - lam * s for c, s in zip(correct, scores)]


@register("smartthinker")
class SmartThinker(_GroupReward):
    """SmartThinker (arXiv 2603.08000, ICML 2026; SJTU-RTEAS/SmartThinker reward manager), per prompt group.

    Fit Gaussians to the lengths of all G generations (mu_all, s_all^2) and of the correct ones (mu_c, s_c^2),
    population variances; the optimal length is where the two densities cross:
        l_opt = (s_c^2 mu_all - s_all^2 mu_c) / (s_c^2 - s_all^2), clipped to [min L, max L];
    with the authors' special cases: every answer correct -> min L; none correct -> max L; s_c^2 > s_all^2 ->
    min L; s_c^2 = s_all^2 (within 1e-6) -> max L if mu_c < mu_all else min L. Length score
    s = abs(L - l_opt) for a correct answer longer than l_opt, else 0 (wrong answers are never penalised), and
        r = c - lam * s,   lam = (1 - acc) / (max over correct s - mean over the group's s + 1e-6),
    acc the group's accuracy; lam = 0 when the group is all correct or all wrong. This self-tuned lam keeps the
    longest correct answer's reward from falling below the group mean (its advantage stays >= 0).
    """

    name = "smartthinker"

    def __init__(self, ctx: RewardContext, length_of: str = "completion") -> None:
        super().__init__(ctx, length_of)

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths, correct, groups = self._inputs(prompts, completions, completion_ids, solution, kwargs)
        rewards = [0.0] * len(lengths)
        for group in groups:
            for i, r in zip(group, smartthinker_rewards([lengths[i] for i in group], [correct[i] for i in group])):
                rewards[i] = r
        return rewards


# -------------------------------------------------------------------------------------------------- ALP


@register("alp")
class AdaptiveLengthPenalty(_GroupReward):
    """ALP, adaptive length penalty (Xiang et al. 2025, arXiv 2506.05256), per prompt group.

    With p the prompt's solve rate estimated from its group (share of correct answers among the G):
        r = c - beta * L * max(p, min_rate)
    Easy prompts (p near 1) pay the full beta per token, hard ones less, prompts never solved nothing
    (``min_rate = 0``, the reading in ``methods.md``; the paper's max(p, 1/K) is ``min_rate = 1/G``). The
    authors' code was not found: beta and min_rate are parameters.
    """

    name = "alp"

    def __init__(self, ctx: RewardContext, beta: float = 0.005, min_rate: float = 0.0,
                 length_of: str = "completion") -> None:
        super().__init__(ctx, length_of)
        self.beta = _non_negative(beta, "beta", self.name)
        self.min_rate = _non_negative(min_rate, "min_rate", self.name)
        if self.min_rate > 1:
            raise ValueError(f"alp: min_rate must be in [0, 1], got {min_rate!r}")

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths, correct, groups = self._inputs(prompts, completions, completion_ids, solution, kwargs)
        rewards = [0.0] * len(lengths)
        for group in groups:
            scale = max(fmean(correct[i] for i in group), self.min_rate)
            for i in group:
                rewards[i] = correct[i] - self.beta * lengths[i] * scale
        return rewards


# ------------------------------------------------------------------------------------------------ LASER


BUCKETS = ("easy", "medium", "hard")


def difficulty_bucket(solve_rate: float) -> str:
    """LASER-D's difficulty of a prompt from its group's accuracy: easy >= 2/3 > medium >= 1/3 > hard."""
    if solve_rate >= 2 / 3:
        return "easy"
    return "medium" if solve_rate >= 1 / 3 else "hard"


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile of ``values`` with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@register("laser")
class Laser(_GroupReward):
    """LASER / LASER-D step length reward (Liu et al. 2025, arXiv 2505.15612; hkust-nlp/Laser), per group.

        r = c + bonus * 1[c = 1 and L <= T]
    LASER (``adaptive: false``): one fixed target T = ``target``. LASER-D (``adaptive: true``): T depends on the
    prompt's difficulty bucket, from its group's accuracy as in the authors' code (easy >= 2/3, medium >= 1/3,
    hard below), and adapts during training: T_bucket is the ``quantile`` of the correct lengths seen in that
    bucket over the last ``window`` correct answers of earlier batches (``target`` until ``min_samples`` are
    seen). The authors pick T per bucket from monitored length coverage on a validation set; a running quantile
    of training lengths is lcrl's simplification. Authors' bonus 0.5; the quantile is not public (parameter).
    """

    name = "laser"

    def __init__(self, ctx: RewardContext, target: int = 64, bonus: float = 0.5, adaptive: bool = True,
                 quantile: float = 0.5, window: int = 512, min_samples: int = 16,
                 length_of: str = "completion") -> None:
        super().__init__(ctx, length_of)
        if int(target) < 1:
            raise ValueError(f"laser: target must be >= 1 token, got {target!r}")
        if not 0 <= float(quantile) <= 1:
            raise ValueError(f"laser: quantile must be in [0, 1], got {quantile!r}")
        if int(window) < 1 or int(min_samples) < 1:
            raise ValueError(f"laser: window and min_samples must be >= 1, got {window!r}, {min_samples!r}")
        self.target, self.bonus = int(target), _non_negative(bonus, "bonus", self.name)
        self.adaptive, self.q, self.min_samples = bool(adaptive), float(quantile), int(min_samples)
        self.seen = {b: deque(maxlen=int(window)) for b in BUCKETS}

    def targets(self) -> dict[str, float]:
        """The current target length of each difficulty bucket."""
        if not self.adaptive:
            return {b: float(self.target) for b in BUCKETS}
        return {b: quantile(s, self.q) if len(s) >= self.min_samples else float(self.target)
                for b, s in self.seen.items()}

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths, correct, groups = self._inputs(prompts, completions, completion_ids, solution, kwargs)
        targets = self.targets()  # fixed for this batch; the batch's lengths count from the next one on
        rewards = [0.0] * len(lengths)
        for group in groups:
            bucket = difficulty_bucket(fmean(correct[i] for i in group))
            for i in group:
                rewards[i] = correct[i] + self.bonus * float(bool(correct[i]) and lengths[i] <= targets[bucket])
                if correct[i]:
                    self.seen[bucket].append(lengths[i])
        log_metric = kwargs.get("log_metric")
        if log_metric is not None and self.adaptive:
            for bucket, t in targets.items():
                log_metric(f"laser/target_{bucket}", float(t))
        return rewards
