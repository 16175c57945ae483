"""Where a dataset's records keep the question and the gold answer: field presets and mappings, and the readers of a
record's question and normalised gold (``data.dataset_task`` reads sources with them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data.benchmarks import SOURCES as BENCHMARK_SOURCES
from data.gold import GOLD_FIELDS, latex_gold
from data.traces import SCHEMAS, FieldMap, field_map, get_field, gold_alternatives

GOLD_FORMATS: tuple[str, ...] = ("latex", *GOLD_FIELDS)
_TRACE_KEYS = tuple(f.name for f in dataclasses.fields(FieldMap))
_PROMPT_KEYS = ("question", "gold", "id", "context", "gold_separator", "gold_boxed", "gold_format")
_MAPPING_KEYS = tuple(sorted({*_TRACE_KEYS, *_PROMPT_KEYS}))


def field_presets() -> list[str]:
    """Every preset name ``fields`` accepts."""
    return ["auto", *SCHEMAS, *BENCHMARK_SOURCES]


@dataclass(frozen=True)
class PromptFields:
    """Where a record keeps the question and the gold answer, and how the gold is normalised.

    ``gold_format``: ``latex`` (``$...$`` and a final full stop removed, ``data.gold.latex_gold``) or a
    benchmark name (that benchmark's normaliser, e.g. the number after ``####`` for ``gsm8k``).
    """

    question: str
    gold: str
    id: str | None = None
    context: str | None = None
    gold_separator: str | None = None
    gold_boxed: bool = False
    gold_format: str = "latex"

    def __post_init__(self) -> None:
        if self.gold_format not in GOLD_FORMATS:
            raise ValueError(f"unknown gold_format {self.gold_format!r}; allowed: {', '.join(GOLD_FORMATS)}")


def resolve_fields(
    spec: str | Mapping[str, Any], sample: Mapping[str, Any] | None = None
) -> tuple[PromptFields, FieldMap | None]:
    """The prompt fields and, when the source has traces, the trace ``FieldMap`` of a ``fields`` value.

    ``auto`` needs ``sample`` (the first record). Raises ``ValueError`` naming the allowed presets or keys.
    """
    if isinstance(spec, Mapping):
        bad = sorted(set(spec) - set(_MAPPING_KEYS))
        if bad:
            raise ValueError(f"unknown dataset field key(s) {bad}; allowed: {', '.join(_MAPPING_KEYS)}")
        for key in ("question", "gold"):
            if not spec.get(key):
                raise ValueError(f"a dataset field mapping needs {key!r} (the source field holding it)")
        prompt = PromptFields(**{k: v for k, v in spec.items() if k in _PROMPT_KEYS})
        has_trace = any(spec.get(k) for k in ("response", "thinking", "answer"))
        trace = FieldMap(**{k: v for k, v in spec.items() if k in _TRACE_KEYS}) if has_trace else None
        return prompt, trace
    if not isinstance(spec, str):
        raise ValueError(f"dataset fields must be a preset name or a mapping, got {spec!r}")
    if spec in BENCHMARK_SOURCES:
        src = BENCHMARK_SOURCES[spec]
        return PromptFields(question=src.question, gold=src.answer, context=src.context, gold_format=spec), None
    if spec not in ("auto", *SCHEMAS):
        raise ValueError(f"unknown dataset fields preset {spec!r}; allowed: {', '.join(field_presets())}, or a mapping")
    fmap = field_map(spec, sample)
    prompt = PromptFields(question=fmap.question, gold=fmap.gold, id=fmap.id,
                          gold_separator=fmap.gold_separator, gold_boxed=fmap.gold_boxed)
    return prompt, fmap


def solution_of(value: Any, fields: PromptFields) -> str:
    """The normalised gold answer (the ``solution`` column) of a gold field value; ``""`` when there is none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if fields.gold_format != "latex":
        normalise = GOLD_FIELDS[fields.gold_format][1]
        try:
            return normalise(value).strip()
        except (ValueError, TypeError, AttributeError):
            return ""
    golds = gold_alternatives(value, fields)  # type: ignore[arg-type]  # reads gold_separator and gold_boxed
    return latex_gold(golds[0]) if golds else ""


def question_of(row: Mapping[str, Any], fields: PromptFields) -> str:
    """The question text, with the ``context`` field (if mapped and present) before it."""
    question = str(get_field(row, fields.question) or "").strip()
    context = str(get_field(row, fields.context) or "").strip() if fields.context else ""
    return f"{context}\n\n{question}" if question and context else question


def with_suffix(question: str, suffix: str) -> str:
    """The question as the prompt holds it: ``question`` then ``suffix`` on its own line (none if empty)."""
    return f"{question}\n{suffix}" if suffix else question
