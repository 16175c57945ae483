"""``correctness``: 1 if the final answer after ``</think>`` equals the gold answer, else 0 (math-verify).

Grading has two steps:

1. Extraction, in the calling process (plain Python, linear time). A completion earns no answer (scores 0, and
   the reason is counted in ``Grader.rejected``) when
   - it was cut at the token limit (``truncated``: no end-of-sequence id at its end, TRL's convention, which DAPO
     masks too); ``GradingConfig.zero_truncated`` (default on) turns this off;
   - its thinking was opened (in the completion, or by the chat template: ``opened``, see
     ``data.completion_format``) and never closed (``unclosed``): truncated or abandoned reasoning is no answer,
     even when it happens to contain the right number;
   - it closes the thinking more than once (``several_closes``). Exactly one ``</think>`` is required for credit
     so that the answer part is well defined and no reasoning can hide behind a stray early close: the length
     rewards count the thinking up to the first close and charge answer tokens beyond an allowance
     (``rewards.length``), and with one close only that pricing decides.
   The answer part is the text after the one ``</think>`` (the whole text when the completion never opens a
   thinking: a model without reasoning). Its boxed answers are graded as TRL's ``accuracy_reward`` and
   math-verify grade a completion: one ``\\boxed{...}`` alone; several (``\\boxed{-2} \\text{ and }
   \\boxed{1}``), or a box followed by more text, as the text from the first box on (``max_answer_chars``
   past the last box), which math-verify reads as TRL's parse of the whole completion does (the set of the
   boxes, or a final ``The final answer is $x$`` after boxed intermediate values). Without
   a box, the fallback (``GradingConfig.tail_fallback``, off by default: it gives false positives such as gold 1
   against ``The answer is $1/3.$``) is the answer part's last ``max_answer_chars`` characters, never the
   thinking. A boxed answer longer than ``max_answer_chars`` scores 0.
2. Verification of the short extracted answer against the gold answer with math-verify (``rewards.verify``),
   which handles numbers, LaTeX, fractions, sets, intervals and tuples. Normalisation: ``trl`` parses boxed
   answers exactly as TRL's ``accuracy_reward`` (GRPO's default); ``full`` (``EVAL_GRADING``, what evaluation
   uses) adds math-verify's default normalisation, as standard harnesses do (``\\frac94``, ``\\tfrac12``,
   ``\\sqrt 2``). When both answers are plain integers the verdict is integer equality, which is what
   math-verify would conclude, without its LaTeX parser (the expensive part).

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
from collections import Counter, OrderedDict
from collections.abc import Sequence

from data.completion_format import CompletionFormat
from data.format import THINK_CLOSE, THINK_OPEN, boxed_spans, completion_text
from rewards.pool import GraderPool
from rewards.registry import GradingConfig, RewardContext, register
from rewards.verify import BOXED, TAIL, quick_score, score_candidate

logger = logging.getLogger(__name__)

Candidate = tuple[str, str]  # (kind, text): kind is "boxed" or "tail" (rewards.verify)


EVAL_GRADING = GradingConfig(normalization="full")  # evaluation: the normalisation standard harnesses use
REASONS = ("truncated", "unclosed", "several_closes", "no_answer")
_TRIVIAL_TAIL = " \t\n.$\\])"  # what may follow a lone final box without changing how math-verify reads it


def answer_part(text: str, opened: bool = False, open_text: str = THINK_OPEN,
                close_text: str = THINK_CLOSE) -> tuple[str | None, str]:
    """``(answer part, "")``, or ``(None, reason)`` when the completion has no answer (module docstring, step 1).

    ``opened``: the chat template opened the thinking, so a completion without ``close_text`` is unclosed.
    """
    closes = text.count(close_text)
    if closes > 1:
        return None, "several_closes"
    if closes == 0:
        return (None, "unclosed") if opened or open_text in text else (text, "")
    return text.split(close_text, 1)[1], ""


def extract_answer(
    text: str, max_answer_chars: int = 1000, *, opened: bool = False, tail_fallback: bool = False,
    open_text: str = THINK_OPEN, close_text: str = THINK_CLOSE,
) -> Candidate | None:
    """The answer to verify: ``("boxed", box or span of boxes)``, ``("tail", last characters)`` (only with
    ``tail_fallback``), or ``None`` (scores 0)."""
    answer, _ = answer_part(text, opened, open_text, close_text)
    if answer is None:
        return None
    spans = boxed_spans(answer)
    if spans:
        if any(b - a > max_answer_chars + 8 for a, b in spans):
            return None
        (first, _), (_, last) = spans[0], spans[-1]
        if len(spans) == 1 and not answer[last:].strip(_TRIVIAL_TAIL):
            return BOXED, answer[first:last]  # the common case: one box, nothing after it
        return BOXED, answer[first : last + max_answer_chars]  # what math-verify may read after the boxes too
    if not tail_fallback:
        return None
    tail = answer[-max_answer_chars:]
    return (TAIL, tail) if tail.strip() else None


def grade(text: str, gold: str, config: GradingConfig | None = None) -> float:
    """1.0 if the answer part of ``text`` (after its one ``</think>``; its boxed answers) equals ``gold``.

    In-process: math-verify's own time limits apply (main thread only); use ``Grader`` for a hard limit.
    A completion whose thinking is never closed has no answer and scores 0. Never raises.
    """
    config = config or GradingConfig()
    try:
        candidate = extract_answer(str(text), config.max_answer_chars, tail_fallback=config.tail_fallback)
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
        self.rejected: Counter[str] = Counter()  # completions scored 0 before verification, by reason (REASONS)

    def candidates(
        self, texts: Sequence[str], truncated: Sequence[bool] | None = None, opened: bool = False,
        fmt: CompletionFormat | None = None,
    ) -> tuple[list[Candidate | None], list[str]]:
        """The candidate answer of each text and, for those without one, the reason (``REASONS``; "" otherwise)."""
        cfg = self.config
        markers = {} if fmt is None else {"open_text": fmt.open_text, "close_text": fmt.close_text}
        out, reasons = [], []
        for i, text in enumerate(texts):
            text = str(text)
            if cfg.zero_truncated and truncated is not None and truncated[i]:
                out.append(None)
                reasons.append("truncated")
                continue
            _, reason = answer_part(text, opened, **markers)
            cand = None if reason else extract_answer(text, cfg.max_answer_chars, opened=opened,
                                                      tail_fallback=cfg.tail_fallback, **markers)
            out.append(cand)
            reasons.append(reason or ("no_answer" if cand is None else ""))
        return out, reasons

    def grade(
        self, texts: Sequence[str], golds: Sequence[str | None], truncated: Sequence[bool] | None = None,
        opened: bool = False, fmt: CompletionFormat | None = None,
    ) -> list[float]:
        """One score in {0.0, 1.0} per text; never raises on any text.

        ``truncated``: per text, whether it was cut at the length limit (scores 0 under ``zero_truncated``).
        ``opened``: the chat template opened the thinking. ``fmt``: the markers' text (default ``<think>``).
        """
        if len(texts) != len(golds):
            raise ValueError(f"{len(texts)} completions but {len(golds)} gold answers")
        cands, reasons = self.candidates(texts, truncated, opened, fmt)
        self.rejected.update(r for r in reasons if r)
        keys: list[tuple[str, str, str] | None] = []
        for cand, gold in zip(cands, golds):
            keys.append(None if cand is None or gold is None else (*cand, str(gold)))
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
        candidates = [(c, str(g)) for c, g in zip(self.candidates(texts)[0], golds)]
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
    completions: Sequence, solution: Sequence[str | None] | None, config: GradingConfig | None = None,
    completion_ids: Sequence[Sequence[int]] | None = None, fmt: CompletionFormat | None = None,
) -> list[float]:
    """Correctness in {0, 1} of each completion (any TRL shape) against the ``solution`` column.

    With ``completion_ids`` and ``fmt`` (``RewardContext.completion_format``): a completion without an EOS id at
    its end is truncated (0 under ``zero_truncated``), a template that opens the thinking makes a completion
    without ``</think>`` unclosed (0), and special-token markers are read from the ids (TRL's text lost them).
    """
    if solution is None:
        raise ValueError("correctness needs the dataset's 'solution' column (the gold answer of each prompt)")
    if fmt is None:
        texts, truncated, opened = [completion_text(c) for c in completions], None, False
    else:
        texts, opened = fmt.texts(completions, completion_ids), fmt.opened_by_template
        truncated = None if completion_ids is None else [fmt.is_truncated(ids) for ids in completion_ids]
    return get_grader(config).grade(texts, list(solution), truncated, opened, fmt)


def context_correctness(ctx: RewardContext, completions: Sequence, solution: Sequence[str | None] | None,
                        completion_ids: Sequence[Sequence[int]] | None = None) -> list[float]:
    """``correctness_scores`` under a reward context (its grading and its completion format)."""
    return correctness_scores(completions, solution, ctx.grading, completion_ids, ctx.reading())


def correctness_reward(prompts: Sequence, completions: Sequence, solution: Sequence[str], **kwargs) -> list[float]:
    """r = 1 if math-verify finds the answer after ``</think>`` equal to ``solution``, else 0 (default grading)."""
    if len(completions) != len(solution):
        raise ValueError(f"{len(completions)} completions but {len(solution)} solutions")
    return correctness_scores(completions, solution)


@register("correctness")
class Correctness:
    """Binary correctness: r = c, with c = 1 if the final answer equals the gold answer, else 0.

    Source: the verifiable reward of DeepSeek-R1 (Guo et al. 2025, arXiv 2501.12948) as TRL's ``accuracy_reward``
    implements it with math-verify; here restricted to the answer after the one ``</think>`` of a completion that
    ended by end-of-sequence, with a hard per-item time limit and parallel grading (see the module docstring).
    Gold: the ``solution`` column. ``rewards.metrics`` logs ``correctness/truncated`` (the share cut at the
    length limit, scored 0 under ``zero_truncated``) whatever the recipe.
    """

    def __init__(self, ctx: RewardContext) -> None:
        self.ctx = ctx
        self.__name__ = "correctness"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        return context_correctness(self.ctx, completions, solution, completion_ids)
