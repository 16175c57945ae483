"""Binary cutting of long-CoT traces with a batch validator, and greedy chunk skipping: the search logic only.

Source: Wang et al. 2025, "Efficient Long CoT Reasoning in Small Language Models" (arXiv 2505.18440), binary
cutting with on-policy validation. The validator is a callback, so this module knows nothing about models:
``validate(requests) -> verdicts`` takes ``(trace index, kept step indices)`` pairs and says, for each, whether
the small model still answers correctly from the question plus those steps (``rl.stages.prune`` builds it on
the generation engine; tests script it).

Binary cut, per trace with ``n`` steps (the paper's rule, as in ``shared/methods.md``):

1. Validate the full trace (``k = n``); if it fails, drop the trace (reason ``full_trace_invalid``).
2. ``lo = min(min_steps, n)``, ``hi = n``; ``hi`` is always a verified-valid prefix length. While ``lo < hi``:
   ``mid = (lo + hi) // 2``; valid -> ``hi = mid``, invalid -> ``lo = mid + 1``. Return ``hi``.

Each loop halves ``hi - lo + 1``, so a trace costs at most ``ceil(log2 n) + 1`` validations (``validation_bound``).
Validity need not be monotone in ``k``: the rule then returns a valid prefix that may be longer than the
shortest valid one, never an invalid one. The search is *level-synchronous*: all traces' requests of one
level go to the validator in a single call (one generation batch).

Skip search (our rule for skip-thinking data, after Chen et al. 2025, arXiv 2505.18642): given a trace's chunks
(lists of step indices) and its candidate chunks (chunks other than the last that pass a text rule, see
``data.chunking.skip_candidates``), candidates are tried left to right; candidate ``c`` is skippable when the
thinking without ``c`` and without every chunk already found skippable is still valid. Level ``j`` validates the
``j``-th candidate of every trace in one call; a trace costs exactly one validation per candidate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

Request = tuple[int, tuple[int, ...]]  # (trace index, indices of the steps kept, in order)
BatchValidator = Callable[[Sequence[Request]], Sequence[bool]]

FULL_TRACE_INVALID = "full_trace_invalid"
NO_STEPS = "no_steps"


def validation_bound(n: int) -> int:
    """Most validations binary cutting spends on ``n`` steps: ``ceil(log2 n) + 1`` (1 for ``n <= 1``)."""
    return math.ceil(math.log2(n)) + 1 if n > 1 else 1


@dataclass
class CutResult:
    """Outcome for one trace: ``kept`` steps (a prefix), or ``dropped`` with its reason."""

    index: int
    n: int
    kept: int | None = None
    calls: int = 0
    dropped: str | None = None
    history: list[tuple[int, bool]] = field(default_factory=list)  # (k, valid) in the order validated


@dataclass
class _Search:
    result: CutResult
    lo: int
    hi: int
    started: bool = False

    @property
    def next_k(self) -> int:
        return self.hi if not self.started else (self.lo + self.hi) // 2


def _prefix(i: int, k: int) -> Request:
    return (i, tuple(range(k)))


def binary_cut(
    step_counts: Sequence[int],
    validate: BatchValidator,
    min_steps: int = 1,
    on_done: Callable[[CutResult], None] | None = None,
    desc: str = "binary cut",
) -> list[CutResult]:
    """Shortest verified-valid prefix per trace (see the module docstring); one ``validate`` call per level.

    ``on_done`` is called for each trace as soon as its search ends (for writing results as they finish).
    """
    if min_steps < 0:
        raise ValueError(f"min_steps must be >= 0, got {min_steps}")
    results = [CutResult(i, n) for i, n in enumerate(step_counts)]
    active: list[_Search] = []
    for r in results:
        if r.n <= 0:
            r.dropped = NO_STEPS
            if on_done:
                on_done(r)
        else:
            active.append(_Search(r, lo=min(min_steps, r.n), hi=r.n))
    level = 0
    with tqdm(total=len(active), desc=desc, leave=False, disable=len(active) < 2) as bar:
        while active:
            requests = [_prefix(s.result.index, s.next_k) for s in active]
            verdicts = list(validate(requests))
            if len(verdicts) != len(requests):
                raise ValueError(f"the validator returned {len(verdicts)} verdicts for {len(requests)} requests")
            still: list[_Search] = []
            for s, (_, kept), ok in zip(active, requests, verdicts):
                k, r = len(kept), s.result
                r.calls += 1
                r.history.append((k, bool(ok)))
                if not s.started:
                    s.started = True
                    if not ok:
                        r.dropped = FULL_TRACE_INVALID
                elif ok:
                    s.hi = k
                else:
                    s.lo = k + 1
                if r.dropped is None and s.lo < s.hi:
                    still.append(s)
                    continue
                if r.dropped is None:
                    r.kept = s.hi
                bar.update(1)
                if on_done:
                    on_done(r)
            logger.debug("binary cut level %d: %d requests, %d searches left", level, len(requests), len(still))
            active, level = still, level + 1
    return results


@dataclass
class SkipResult:
    index: int
    skipped: list[int] = field(default_factory=list)  # chunk indices found skippable
    calls: int = 0


def skip_search(
    chunks: Sequence[Sequence[Sequence[int]]],
    candidates: Sequence[Sequence[int]],
    validate: BatchValidator,
    desc: str = "skip search",
) -> list[SkipResult]:
    """Greedy left-to-right skippable chunks per trace (module docstring); one ``validate`` call per level.

    ``chunks[i]`` lists trace ``i``'s chunks as step-index lists; ``candidates[i]`` the chunk indices to try.
    """
    if len(chunks) != len(candidates):
        raise ValueError(f"{len(chunks)} chunk lists but {len(candidates)} candidate lists")
    results = [SkipResult(i) for i in range(len(chunks))]
    depth = max((len(c) for c in candidates), default=0)
    for level in tqdm(range(depth), desc=desc, leave=False, disable=depth < 2):
        todo = [i for i, c in enumerate(candidates) if level < len(c)]
        requests: list[Request] = []
        for i in todo:
            drop = {*results[i].skipped, candidates[i][level]}
            kept = tuple(s for j, chunk in enumerate(chunks[i]) if j not in drop for s in chunk)
            requests.append((i, kept))
        verdicts = list(validate(requests))
        if len(verdicts) != len(requests):
            raise ValueError(f"the validator returned {len(verdicts)} verdicts for {len(requests)} requests")
        for i, ok in zip(todo, verdicts):
            results[i].calls += 1
            if ok:
                results[i].skipped.append(candidates[i][level])
    return results
