"""Rewards registered by name, and the context and grading settings their factories receive.

A recipe selects and weights rewards in YAML::

    rewards:
      - {name: correctness, weight: 1.0}
      - {name: tldr, weight: 1.0, shape: excess}

Each registered name maps to a *factory* ``factory(ctx, **params) -> reward_func``; the reward function has
TRL's signature ``reward_func(prompts, completions, completion_ids, **columns) -> list[float | None]``.
``rewards.build.build_rewards`` turns a recipe's list into reward functions from this registry; unknown names or
parameters fail at start-up with the list of known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from data.budgets import DEFAULT_TIERS, Tier
from data.completion_format import CompletionFormat

RewardFunc = Callable[..., list[float | None]]
RewardFactory = Callable[..., RewardFunc]


@dataclass(frozen=True)
class GradingConfig:
    """How correctness is graded (``rewards.correctness``); shared by every reward that needs correctness.

    Attributes:
        timeout: hard wall-clock limit per completion, in seconds; an item over it scores 0 (its worker is killed).
        workers: grading processes for large batches; 0 grades in-process (no hard limit: for debugging only).
        parallel_threshold: batches with fewer distinct answers than this are graded by one worker, in order.
        max_answer_chars: longest boxed answer (or fallback answer tail) considered; longer boxed answers score 0.
        memory_limit_mb: address-space limit of each worker process (0: none).
        normalization: ``trl`` parses boxed answers exactly as TRL's ``accuracy_reward`` (identical rewards);
            ``full`` adds math-verify's default normalisation, which also reads shorthand such as ``\\frac43``
            (evaluation uses it: ``rewards.correctness.EVAL_GRADING``).
        zero_truncated: a completion cut at the length limit (no end-of-sequence id at its end) scores 0.
        tail_fallback: without a ``\\boxed{}`` answer, look for any expression in the answer part's tail
            (never in the thinking); off by default, as it gives false positives on unboxed text.
    """

    timeout: float = 5.0
    workers: int = 2
    parallel_threshold: int = 32
    max_answer_chars: int = 1000
    memory_limit_mb: int = 4096
    normalization: str = "trl"
    zero_truncated: bool = True
    tail_fallback: bool = False

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"grading timeout must be > 0 seconds, got {self.timeout}")
        if self.workers < 0:
            raise ValueError(f"grading workers must be >= 0 (0: in-process), got {self.workers}")
        if self.parallel_threshold < 1:
            raise ValueError(f"parallel_threshold must be >= 1, got {self.parallel_threshold}")
        if self.max_answer_chars < 1:
            raise ValueError(f"max_answer_chars must be >= 1, got {self.max_answer_chars}")
        if self.memory_limit_mb < 0:
            raise ValueError(f"memory_limit_mb must be >= 0 (0: no limit), got {self.memory_limit_mb}")
        if self.normalization not in ("trl", "full"):
            raise ValueError(f"unknown grading normalization {self.normalization!r}; allowed: trl, full")

    @property
    def soft_timeout(self) -> int:
        """math-verify's own (signal-based, whole-second) limit per parse and per verify: under the hard one."""
        return max(1, int(self.timeout // 2))


@dataclass(frozen=True)
class RewardContext:
    """What factories may need beyond their own parameters.

    Attributes:
        tiers: the resolved tier table (``data.budgets.resolve_tiers``).
        completion_format: how completions read for the policy's tokenizer and template
            (``data.completion_format``): thinking markers of any shape, the template's open thinking, EOS ids.
        think_end_id: shorthand for a one-token close marker when no ``completion_format`` is given (tests,
            synthetic ids). With neither, a thinking length is the whole completion's.
        answer_allowance: answer tokens after ``</think>`` that the ``thinking`` length of the length rewards does
            not charge (``rewards.length``); beyond it, reasoning moved after the close counts as thinking.
        grading: how correctness is graded (time limit, worker processes), shared by all rewards.
        tier_metrics: log per-tier length, budget compliance and accuracy through TRL's ``log_metric``
            (``rewards.metrics``), once per batch, alongside the first reward of the recipe.
        metrics_length_of: what the tier metrics measure, ``thinking`` (the budgets are thinking budgets)
            or ``completion``.
    """

    tiers: Mapping[str, Tier] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    think_end_id: int | None = None
    grading: GradingConfig = field(default_factory=GradingConfig)
    completion_format: CompletionFormat | None = None
    answer_allowance: int = 64
    tier_metrics: bool = True
    metrics_length_of: str = "thinking"

    def reading(self) -> CompletionFormat | None:
        """The completion format: ``completion_format``, else one built from ``think_end_id``, else ``None``."""
        if self.completion_format is not None:
            return self.completion_format
        return None if self.think_end_id is None else CompletionFormat.from_ids([self.think_end_id])


REGISTRY: dict[str, RewardFactory] = {}


def register(name: str) -> Callable[[RewardFactory], RewardFactory]:
    """Register a reward factory under ``name``."""

    def wrap(factory: RewardFactory) -> RewardFactory:
        if name in REGISTRY:
            raise ValueError(f"reward {name!r} is registered twice")
        REGISTRY[name] = factory
        return factory

    return wrap
