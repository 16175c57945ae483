"""``correctness``: 1 if the final answer after ``</think>`` equals the gold answer, else 0 (math-verify).

Grading has two steps:

1. Extraction, in the calling process (plain Python, linear time): the answer part is the text after the first
   ``</think>`` (a completion whose thinking was opened but never closed has no answer and scores 0). The
   answer is its last balanced ``\\boxed{...}``; without one, the fallback is the answer's last
   ``max_answer_chars`` characters, where math-verify looks for any LaTeX or plain expression. A boxed answer
   longer than ``max_answer_chars`` scores 0.
2. Verification of the short extracted answer against the gold answer with math-verify (``rewards.verify``),
   which handles numbers, LaTeX, fractions, sets, intervals and tuples. The boxed answer is parsed exactly as
   TRL's ``accuracy_reward`` parses completions, so the two agree on well-formed completions. When both
   answers are plain integers (most math answers) the verdict is integer equality, which is what math-verify
   would conclude, without its LaTeX parser (the expensive part).

Time limit and parallelism (``GradingConfig``, shared by every reward that needs correctness): verification runs
in worker processes (``rewards.pool``) with a hard per-item deadline; an item that overruns is scored 0 and its
worker is killed and replaced, so no completion can hang training. Batches with fewer than
``parallel_threshold`` distinct answers go to one worker, in order; larger ones are spread over ``workers``
processes. Each item is graded independently by the same function, so results do not depend on the number of
processes. Identical (answer, gold) pairs are graded once: within a batch, and across the rewards of one step
through a small cache (``correctness`` and ``tldr`` in one recipe grade each completion once).

``grade(text, gold)`` grades one completion in-process (math-verify's own signal-based limits only).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from data.format import THINK_OPEN, completion_text, last_boxed, split_thinking
from rewards.pool import GraderPool
from rewards.registry import GradingConfig, RewardContext, register
from rewards.verify import BOXED, TAIL, quick_score, score_candidate

logger = logging.getLogger(__name__)

Candidate = tuple[str, str]  # (kind, text): kind is "boxed" or "tail" (rewards.verify)


def extract_answer(text: str, max_answer_chars: int = 1000) -> Candidate | None:
    """The answer to verify: ``("boxed", "\\boxed{...}")``, ``("tail", last characters)``, or ``None`` (scores 0)."""
    thinking, answer = split_thinking(text)
    if thinking is None and THINK_OPEN in text:
        return None  # thinking opened and never closed: no answer
    boxed = last_boxed(answer)
    if boxed is not None:
        if len(boxed) > max_answer_chars:
            return None
        return BOXED, "\\boxed{" + boxed + "}"
    tail = answer[-max_answer_chars:]
    return (TAIL, tail) if tail.strip() else None


def grade(text: str, gold: str, config: GradingConfig | None = None) -> float:
    """1.0 if the answer part of ``text`` (after ``</think>``; boxed first, then any expression) equals ``gold``.

    In-process: math-verify's own time limits apply (main thread only); use ``Grader`` for a hard limit.
    A completion whose thinking is never closed has no answer and scores 0. Never raises.
    """
    config = config or GradingConfig()
    try:
        candidate = extract_answer(str(text), config.max_answer_chars)
        if candidate is None or gold is None:
            return 0.0
        return score_candidate(*candidate, str(gold), config.soft_timeout, config.normalization)
    except Exception as exc:  # extraction is plain string work, but a reward must never raise
        logger.debug("grading failed: %s", exc)
        return 0.0


class Grader:
    """Grades batches of completions under a ``GradingConfig``: extraction here, verification in workers."""

    def __init__(self, config: GradingConfig | None = None, cache_size: int = 16384) -> None:
        self.config = config or GradingConfig()
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._pool = GraderPool(self.config.workers, self.config.memory_limit_mb) if self.config.workers else None
        self._lock = threading.Lock()

    def grade(self, texts: Sequence[str], golds: Sequence[str | None]) -> list[float]:
        """One score in {0.0, 1.0} per text; never raises on any text."""
        if len(texts) != len(golds):
            raise ValueError(f"{len(texts)} completions but {len(golds)} gold answers")
        keys: list[tuple[str, str, str] | None] = []
        for text, gold in zip(texts, golds):
            cand = extract_answer(str(text), self.config.max_answer_chars) if gold is not None else None
            keys.append(None if cand is None else (*cand, str(gold)))
        with self._lock:
            scores: dict[tuple[str, str, str], float] = {}
            todo = []
            for key in dict.fromkeys(k for k in keys if k is not None):
                known = self._cache.get(key)
                if known is None:
                    known = quick_score(*key)  # plain integers: no need for math-verify or a worker
                if known is None:
                    todo.append(key)
                else:
                    scores[key] = known
            scores.update(zip(todo, self._verify(todo)))
            for key, score in scores.items():
                self._remember(key, score)
            return [0.0 if k is None else scores[k] for k in keys]

    def _verify(self, jobs: list[tuple[str, str, str]]) -> list[float]:
        cfg = self.config
        if not jobs:
            return []
        if self._pool is None:
            return [score_candidate(*job, cfg.soft_timeout, cfg.normalization) for job in jobs]
        workers = 1 if len(jobs) < cfg.parallel_threshold else cfg.workers
        # jobs of one gold answer (a GRPO group) go to the workers together, so each worker parses a gold once
        order = sorted(range(len(jobs)), key=lambda i: jobs[i][2])
        scores = self._pool.score([jobs[i] for i in order], cfg.timeout, cfg.soft_timeout, workers, cfg.normalization)
        out = [0.0] * len(jobs)
        for i, score in zip(order, scores):
            out[i] = score
        return out

    def _remember(self, key: tuple[str, str, str], score: float) -> None:
        self._cache[key] = score
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def warm_up(self, texts: Sequence[str], golds: Sequence[str]) -> None:
        """Grade ``texts`` in every worker (or in-process), without caching: warm parsers, e.g. before timing."""
        cfg = self.config
        candidates = [(extract_answer(str(t), cfg.max_answer_chars), str(g)) for t, g in zip(texts, golds)]
        jobs = [(*c, g) for c, g in candidates if c is not None and quick_score(*c, g) is None]
        with self._lock:
            if self._pool is None:
                for job in jobs:
                    score_candidate(*job, cfg.soft_timeout, cfg.normalization)
            else:
                self._pool.warm_up(jobs, cfg.timeout, cfg.soft_timeout, cfg.normalization)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Stop the worker processes (they restart on the next batch)."""
        if self._pool is not None:
            self._pool.close()

    @property
    def pool(self) -> GraderPool | None:
        return self._pool


_GRADERS: dict[GradingConfig, Grader] = {}
_GRADERS_LOCK = threading.Lock()


def get_grader(config: GradingConfig | None = None) -> Grader:
    """The process-wide grader for ``config`` (one worker pool and one cache per configuration)."""
    config = config or GradingConfig()
    with _GRADERS_LOCK:
        if config not in _GRADERS:
            _GRADERS[config] = Grader(config)
        return _GRADERS[config]


def correctness_scores(
    completions: Sequence, solution: Sequence[str | None] | None, config: GradingConfig | None = None
) -> list[float]:
    """Correctness in {0, 1} of each completion (any TRL shape) against the ``solution`` column."""
    if solution is None:
        raise ValueError("correctness needs the dataset's 'solution' column (the gold answer of each prompt)")
    texts = [completion_text(c) for c in completions]
    return get_grader(config).grade(texts, list(solution))


def correctness_reward(prompts: Sequence, completions: Sequence, solution: Sequence[str], **kwargs) -> list[float]:
    """r = 1 if math-verify finds the answer after ``</think>`` equal to ``solution``, else 0 (default grading)."""
    if len(completions) != len(solution):
        raise ValueError(f"{len(completions)} completions but {len(solution)} solutions")
    return correctness_scores(completions, solution)


@register("correctness")
class Correctness:
    """Binary correctness: r = c, with c = 1 if the final answer equals the gold answer, else 0.

    Source: the verifiable reward of DeepSeek-R1 (Guo et al. 2025, arXiv 2501.12948) as TRL's ``accuracy_reward``
    implements it with math-verify; here restricted to the answer after ``</think>`` (boxed first, then a
    fallback), with a hard per-item time limit and parallel grading (see the module docstring). Gold: the
    ``solution`` column.
    """

    def __init__(self, ctx: RewardContext) -> None:
        self.ctx = ctx
        self.__name__ = "correctness"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        return correctness_scores(completions, solution, self.ctx.grading)
