"""Long-CoT trace ingestion: rows of files or Hub datasets (``data.sources``), mapped by a field mapping onto
``TraceRecord``.

Two shapes are supported, picked per mapping:

- ``response``: one text holding the thinking and the answer, ``<think> thinking </think> answer`` or with only
  the closing tag (``thinking </think> answer``, as DeepSeek-R1's API returns it);
- ``thinking`` + ``answer``: separate fields, no tags.

A mapping names the source fields of ``id``, ``question``, ``gold`` and either ``response`` or ``thinking`` and
``answer``. A field name may be a dotted path with list indices (``generations.0``, ``messages.1.content``).
``gold_separator`` (a regular expression) splits a gold field holding several accepted forms
(``".2,  1/5"``) into alternatives; ``gold_boxed`` takes the last ``\\boxed{}`` of a worked-solution gold.
``verified`` names a list of per-generation correctness flags beside a ``response`` field holding the list of
generations (OpenR1-Math: ``generations`` and ``correctness_math_verify``): the trace is the first generation
flagged true that has a closed thinking and an answer, and a record with none flagged true is skipped
(``unverified``), so SFT never imitates a trace that reached a wrong answer.

Records are never dropped silently: each skipped record is returned with its reason
(``SKIP_REASONS``), and ``IngestResult.counts`` tallies them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from data.format import THINK_CLOSE, THINK_OPEN, last_boxed
from data.sources import read_rows

logger = logging.getLogger(__name__)

SKIP_REASONS: dict[str, str] = {
    "missing_question": "no question text",
    "missing_gold": "no gold answer",
    "no_thinking": "no thinking part (no </think> in the response, or an empty thinking field)",
    "unclosed_thinking": "the response opens <think> but never closes it",
    "no_conclusion": "nothing after the thinking (no answer text)",
    "duplicate_id": "an earlier record has the same id",
    "unverified": "no generation flagged correct by the verified field (e.g. correctness_math_verify)",
    "unparsable_gold": "the grader cannot parse the gold answer, so every completion would score 0",
}


@dataclass(frozen=True)
class FieldMap:
    """Where a source record keeps each part; ``response`` or (``thinking`` and ``answer``) must be set."""

    question: str
    gold: str
    response: str | None = None
    thinking: str | None = None
    answer: str | None = None
    id: str | None = None
    gold_separator: str | None = None
    gold_boxed: bool = False
    verified: str | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.thinking is None):
            raise ValueError("a trace field mapping needs either 'response' or both 'thinking' and 'answer'")
        if self.thinking is not None and self.answer is None:
            raise ValueError("a trace field mapping with 'thinking' also needs 'answer'")
        if self.verified is not None and self.response is None:
            raise ValueError("'verified' (per-generation correctness flags) needs 'response' naming the generations")

    @property
    def required(self) -> list[str]:
        return [f for f in (self.question, self.gold, self.response, self.thinking, self.answer, self.verified) if f]


# Presets: the two shapes of ../shared/traces (see its SOURCES.md) and common Hub trace sets.
SCHEMAS: dict[str, FieldMap] = {
    "r1_response": FieldMap(
        id="Question ID", question="Instruction", response="deepseek-reasoner (response)",
        gold="Correct Answer", gold_separator=r",\s+",
    ),
    "thinking_answer": FieldMap(question="problem", thinking="message_thinking", answer="message_content",
                                gold="gtruth_answer"),
    "openr1": FieldMap(question="problem", response="generations", gold="answer", id="uuid",
                       verified="correctness_math_verify"),
    "s1k": FieldMap(question="question", thinking="thinking_trajectories.0", answer="attempt", gold="solution",
                    gold_boxed=True),
}


@dataclass
class TraceRecord:
    """One usable trace: question, thinking (stripped), conclusion (stripped), gold alternatives."""

    id: str
    question: str
    thinking: str
    conclusion: str
    gold: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Skipped:
    index: int
    id: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "reason": self.reason, "detail": SKIP_REASONS[self.reason]}


@dataclass
class IngestResult:
    records: list[TraceRecord]
    skipped: list[Skipped]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))


def field_map(spec: str | Mapping[str, Any] | None, sample: Mapping[str, Any] | None = None) -> FieldMap:
    """A ``FieldMap`` from a preset name, a mapping of ``FieldMap`` fields, or ``None``/``"auto"`` (detected).

    Detection picks the first preset whose required fields all resolve in ``sample``.
    """
    if isinstance(spec, Mapping):
        known = {f.name for f in fields(FieldMap)}
        bad = sorted(set(spec) - known)
        if bad:
            raise ValueError(f"unknown trace field key(s) {bad}; allowed: {', '.join(sorted(known))}")
        return FieldMap(**spec)
    if spec in (None, "auto"):
        if sample is None:
            raise ValueError("trace_fields: auto needs a sample record")
        for name, fmap in SCHEMAS.items():
            if all(get_field(sample, f) is not None for f in fmap.required):
                logger.info("trace fields: detected preset %r", name)
                return fmap
        raise ValueError(
            f"no trace field preset fits a record with keys {sorted(sample)}; set trace_fields to a mapping "
            f"{{question, gold, response | thinking + answer, id}} or a preset: {', '.join(SCHEMAS)}"
        )
    if spec not in SCHEMAS:
        raise ValueError(f"unknown trace field preset {spec!r}; allowed: auto, {', '.join(SCHEMAS)}, or a mapping")
    return SCHEMAS[spec]


def get_field(record: Mapping[str, Any], path: str) -> Any:
    """``record[path]``, or a dotted path with list indices (``generations.0``); ``None`` when absent."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(value) <= i < len(value):
                return None
            value = value[i]
        else:
            return None
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def split_response(response: str) -> tuple[str | None, str, str | None]:
    """``(thinking, conclusion, problem)``: the text around the first ``</think>``; problem is a skip reason."""
    head, sep, tail = response.partition(THINK_CLOSE)
    if not sep:
        return None, "", "unclosed_thinking" if THINK_OPEN in response else "no_thinking"
    head = head.strip()
    if head.startswith(THINK_OPEN):
        head = head[len(THINK_OPEN):].strip()
    return head, tail.strip(), None


def gold_alternatives(value: Any, fmap: FieldMap) -> list[str]:
    """The accepted gold answers: one, or several split by ``gold_separator``; boxed extraction if asked."""
    if isinstance(value, (list, tuple)):
        golds = [_text(v) for v in value]
    else:
        text = _text(value)
        if fmap.gold_boxed:
            text = _text(last_boxed(text))
        golds = re.split(fmap.gold_separator, text) if fmap.gold_separator and text else [text]
    return [g.strip() for g in golds if g and g.strip()]


def record_id(row: Mapping[str, Any], fmap: FieldMap, index: int) -> str:
    """The mapped id, else a content hash of the question (stable across runs and row order)."""
    if fmap.id is not None and _text(get_field(row, fmap.id)):
        return _text(get_field(row, fmap.id))
    question = _text(get_field(row, fmap.question))
    if not question:
        return f"row-{index}"
    return hashlib.sha1(question.encode()).hexdigest()[:12]


def verified_response(generations: Any, flags: Any) -> tuple[str | None, str, str | None]:
    """``split_response`` of the first generation flagged true that splits into thinking and an answer; the
    problem is ``unverified`` when no flag is true, else the first flagged generation's own problem."""
    gens = generations if isinstance(generations, Sequence) and not isinstance(generations, str) else [generations]
    marks = flags if isinstance(flags, Sequence) and not isinstance(flags, str) else [flags]
    first: tuple[str | None, str, str | None] | None = None
    for text, flag in zip(gens, marks, strict=False):
        if flag not in (True,):  # a bool (numpy's too); None and strings are not a verdict
            continue
        thinking, conclusion, problem = split_response(str(text or ""))
        if problem is None and thinking and conclusion:
            return thinking, conclusion, None
        first = first or (thinking, conclusion, problem or ("no_thinking" if not thinking else "no_conclusion"))
    return first or (None, "", "unverified")


def ingest(rows: Iterable[Mapping[str, Any]], fmap: FieldMap) -> IngestResult:
    """Map source rows onto ``TraceRecord``s; every unusable row comes back in ``skipped`` with its reason."""
    records: list[TraceRecord] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        rid = record_id(row, fmap, index)
        question = _text(get_field(row, fmap.question))
        if fmap.verified is not None:
            generations, flags = get_field(row, fmap.response), get_field(row, fmap.verified)  # type: ignore[arg-type]
            thinking, conclusion, problem = verified_response(generations, flags)
        elif fmap.response is not None:
            thinking, conclusion, problem = split_response(str(get_field(row, fmap.response) or ""))
        else:
            thinking = _text(get_field(row, fmap.thinking)) or None  # type: ignore[arg-type]
            conclusion = _text(get_field(row, fmap.answer))  # type: ignore[arg-type]
            problem = None if thinking else "no_thinking"
        gold = gold_alternatives(get_field(row, fmap.gold), fmap)
        if not question:
            problem = "missing_question"
        elif problem is None and not thinking:
            problem = "no_thinking"
        elif problem is None and not conclusion:
            problem = "no_conclusion"
        if problem is None and not gold:
            problem = "missing_gold"
        if problem is None and rid in seen:
            problem = "duplicate_id"
        if problem is not None:
            skipped.append(Skipped(index, rid, problem))
            continue
        seen.add(rid)
        records.append(TraceRecord(rid, question, thinking or "", conclusion, gold, {"index": index}))
    if skipped:
        counts = dict(Counter(s.reason for s in skipped))
        logger.info("ingestion: %d records kept, %d skipped %s", len(records), len(skipped), counts)
    return IngestResult(records, skipped)


def load_traces(source: str, fields_spec: str | Mapping[str, Any] | None = "auto", split: str = "train") -> IngestResult:
    """Read ``source`` (file or Hub dataset) and ingest it with the field mapping ``fields_spec``."""
    rows = read_rows(source, split)
    if not rows:
        raise ValueError(f"{source}: no records")
    return ingest(rows, field_map(fields_spec, rows[0]))


def render_completion(thinking: str, conclusion: str) -> str:
    """The R1 completion text ``<think>\\n thinking \\n</think>\\n\\n conclusion`` (the synthetic task's shape)."""
    return f"{THINK_OPEN}\n{thinking.strip()}\n{THINK_CLOSE}\n\n{conclusion.strip()}"
