"""``correctness``: 1 if the final answer after ``</think>`` equals the gold answer, else 0 (math-verify)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from data.format import completion_text, split_thinking
from rewards.registry import RewardContext, RewardFunc, register

logger = logging.getLogger(__name__)

_ANSWER_CONFIG = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def _gold(gold: str) -> list:
    parsed = parse(gold)
    if not parsed:  # a bare LaTeX answer such as \frac{1}{2} parses once wrapped in $...$
        parsed = parse(f"${gold}$")
    return parsed


def grade(text: str, gold: str) -> float:
    """1.0 if the answer part of ``text`` (after ``</think>``; boxed first, then any expression) equals ``gold``.

    A completion whose thinking is never closed has no answer and scores 0. Never raises.
    """
    try:
        thinking, answer = split_thinking(text)
        if thinking is None and "<think>" in text:
            return 0.0
        gold_parsed = _gold(str(gold))
        if not gold_parsed:
            return 0.0
        pred = parse(answer, extraction_config=_ANSWER_CONFIG)
        return float(bool(pred) and verify(gold_parsed, pred))
    except Exception as exc:  # math-verify can fail on arbitrary model output; a failure scores 0
        logger.debug("grading failed: %s", exc)
        return 0.0


def correctness_reward(prompts: Sequence, completions: Sequence, solution: Sequence[str], **kwargs) -> list[float]:
    """r = 1 if math-verify finds the answer after ``</think>`` equal to ``solution``, else 0."""
    return [grade(completion_text(c), gold) for c, gold in zip(completions, solution, strict=True)]


@register("correctness")
def make_correctness(ctx: RewardContext) -> RewardFunc:
    """Binary correctness via math-verify (the TRL ``accuracy_reward`` check, restricted to the final answer)."""

    def correctness(prompts, completions, solution, **kwargs):
        return correctness_reward(prompts, completions, solution, **kwargs)

    return correctness
