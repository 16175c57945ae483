"""Gold answers of the standard math benchmarks, normalised to one LaTeX answer string each.

The result is what the ``solution`` column holds and what ``rewards.correctness`` grades against: a bare LaTeX
answer (``27``, ``\\frac{2}{3}``, ``(1,2), (3,4)``), without ``$`` delimiters or a ``\\boxed{}`` wrapper.
``gold_answer(benchmark, record)`` picks the right field and normaliser for a record of each benchmark (field
names as in ``shared/benchmarks/SOURCES.md`` and the Hugging Face Hub copies); evaluation reuses these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from data.format import last_boxed

_DOLLARS = re.compile(r"^\$+|\$+$")


def number_gold(value: float | int | str) -> str:
    """A number as an answer string: ``27.0 -> "27"``, ``0.5 -> "0.5"``, ``"1,450,000" -> "1450000"``.

    AMC and AIME store answers as JSON floats or integer strings; compare numerically, never as text.
    """
    if isinstance(value, str):
        text = value.strip().replace(",", "").lstrip("$").strip()
        try:
            value = float(text)
        except ValueError:
            return text
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"gold answer is not a finite number: {value!r}")
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


def amc_gold(answer: float | int | str) -> str:
    """AMC23 ``answer`` (a JSON float such as ``27.0``) -> ``"27"``."""
    return number_gold(answer)


def aime_gold(answer: int | str) -> str:
    """AIME ``answer`` (an integer or an integer string) -> ``"204"``."""
    return number_gold(answer)


def gsm8k_gold(answer: str) -> str:
    """GSM8K ``answer`` (worked solution ending ``#### 18``) -> ``"18"`` (thousands separators dropped)."""
    if "####" not in answer:
        raise ValueError(f"GSM8K answer has no '####' final answer: {answer[-80:]!r}")
    return number_gold(answer.rsplit("####", 1)[1].strip())


def latex_gold(answer: str) -> str:
    """A LaTeX answer with its ``$...$`` delimiters and a trailing full stop removed (MATH500 ``answer``)."""
    text = answer.strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return _DOLLARS.sub("", text).strip()


def olympiad_gold(final_answer: Sequence[str] | str) -> str:
    """OlympiadBench ``final_answer`` (a list of strings such as ``["$69$,$84$"]``) -> ``"69, 84"``.

    Each ``$...$`` segment is one answer; several answers (in one string or in several list items) are joined
    with ``", "``, which math-verify reads as a set.
    """
    items = [final_answer] if isinstance(final_answer, str) else list(final_answer)
    parts: list[str] = []
    for item in items:
        segments = re.findall(r"\$([^$]+)\$", item)
        parts.extend(segments if segments else [item])
    parts = [latex_gold(p).strip().strip(",").strip() for p in parts]
    return ", ".join(p for p in parts if p)


def boxed_solution(solution: str) -> str | None:
    """The answer a worked solution boxes (MATH ``solution`` text), or ``None`` if it has none."""
    return last_boxed(solution)


GOLD_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "math500": ("answer", latex_gold),
    "aime24": ("answer", aime_gold),
    "amc23": ("answer", amc_gold),
    "gsm8k": ("answer", gsm8k_gold),
    "olympiadbench": ("final_answer", olympiad_gold),
}


def gold_answer(benchmark: str, record: Mapping[str, Any]) -> str:
    """The normalised gold answer of one benchmark record; ``benchmark`` is one of ``GOLD_FIELDS``."""
    if benchmark not in GOLD_FIELDS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(GOLD_FIELDS)}")
    field, normalise = GOLD_FIELDS[benchmark]
    if field not in record:
        raise ValueError(f"{benchmark} record has no {field!r} field; fields: {', '.join(record)}")
    return normalise(record[field])


def as_boxed(answer: str) -> str:
    """``answer`` written the way a model should finish: ``\\boxed{answer}``."""
    return "\\boxed{" + answer + "}"


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def perturbed(answer: str) -> str:
    """A different answer for tests and benchmarks: a number plus one, anything else with ``+1`` appended."""
    if _NUMBER.fullmatch(answer):
        return str(int(answer) + 1) if "." not in answer else repr(float(answer) + 1)
    return answer + "+1"
