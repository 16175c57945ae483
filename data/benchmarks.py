"""Evaluation benchmarks: MATH500, AIME24, AMC23, OlympiadBench, GSM8K, and the embedded synthetic test split.

Every benchmark loads as a list of ``Problem`` (id, question, gold answer). The gold answer is normalised by
``data.gold.gold_answer`` (AMC floats compared as numbers, the GSM8K number after ``####``, OlympiadBench
answer lists joined into one set), so that ``rewards.correctness`` grades ``\\boxed{gold}`` correct.

Sources: by default the Hugging Face Hub copy (``datasets.load_dataset(hub_id, config, split=split)``); with
``file=`` a local copy (``.jsonl``/``.json`` records, or any format ``datasets`` reads: ``.parquet``, ``.csv``), for
example the files in ``../shared/benchmarks/`` (see its ``SOURCES.md``). Several Hub copies exist for AIME, AMC and
OlympiadBench with different field names, so the Hub id, config, split and the question and answer fields can all
be overridden per benchmark (``source=`` here, ``benchmark_sources:`` in an eval recipe).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.tasks import synthetic_traces
from data.gold import GOLD_FIELDS, gold_answer

logger = logging.getLogger(__name__)

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class BenchmarkSource:
    """Where a benchmark lives and which fields hold the problem and the gold answer.

    Attributes:
        hub_id, config, split: the ``datasets.load_dataset`` arguments of the Hub copy.
        question: the field with the problem text; ``context`` an optional field prepended to it.
        answer: the field with the gold answer (normalised by ``data.gold`` for this benchmark).
        file: the name of the offline copy in ``shared/benchmarks`` (documentation and tests).
    """

    hub_id: str
    config: str | None
    split: str
    question: str
    answer: str
    file: str
    context: str | None = None


SOURCES: dict[str, BenchmarkSource] = {
    "math500": BenchmarkSource("HuggingFaceH4/MATH-500", None, "test", "problem", "answer", "math500.jsonl"),
    "aime24": BenchmarkSource("HuggingFaceH4/aime_2024", None, "train", "problem", "answer", "aime24.jsonl"),
    "amc23": BenchmarkSource("math-ai/amc23", None, "test", "question", "answer", "amc23.jsonl"),
    "olympiadbench": BenchmarkSource(
        "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", "question", "final_answer", "olympiadbench.jsonl",
        context="context",
    ),
    "gsm8k": BenchmarkSource("openai/gsm8k", "main", "test", "question", "answer", "gsm8k_test.jsonl"),
}
SYNTHETIC = "synthetic"
BENCHMARK_NAMES: tuple[str, ...] = (SYNTHETIC, *SOURCES)
_SOURCE_KEYS = tuple(f.name for f in dataclasses.fields(BenchmarkSource))


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    solution: str  # normalised gold answer (what the ``solution`` column holds)


def check_benchmark(name: str) -> str:
    if name not in BENCHMARK_NAMES:
        raise ValueError(f"unknown benchmark {name!r}; allowed: {', '.join(BENCHMARK_NAMES)}")
    return name


def resolve_source(name: str, overrides: Mapping[str, Any] | None = None) -> BenchmarkSource:
    """The source of ``name`` with ``overrides`` (e.g. ``{"hub_id": ..., "question": "problem"}``) applied."""
    check_benchmark(name)
    if name == SYNTHETIC:
        raise ValueError("the synthetic benchmark is generated, it has no source")
    bad = sorted(set(overrides or {}) - set(_SOURCE_KEYS))
    if bad:
        raise ValueError(f"unknown field(s) {bad} in the source of {name}; allowed: {', '.join(_SOURCE_KEYS)}")
    return dataclasses.replace(SOURCES[name], **dict(overrides or {}))


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a local file: JSON lines, a JSON list, or anything ``datasets`` reads (parquet, csv)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {str(path)!r} not found")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return list(data if isinstance(data, list) else data.get("rows", data.get("data", [])))
    from datasets import load_dataset

    kind = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv"}.get(path.suffix)
    if kind is None:
        raise ValueError(f"cannot read {str(path)!r}: use .jsonl, .json, .parquet or .csv")
    return list(load_dataset(kind, data_files=str(path), split="train"))


def hub_records(source: BenchmarkSource) -> list[dict[str, Any]]:
    from datasets import load_dataset

    logger.info("loading %s (%s, split %s) from the Hub", source.hub_id, source.config, source.split)
    return list(load_dataset(source.hub_id, source.config, split=source.split))


def to_problem(name: str, record: Mapping[str, Any], source: BenchmarkSource, index: int) -> Problem:
    """One record as a ``Problem``: question (with its context, if any) and the normalised gold answer."""
    for key in (source.question, source.answer):
        if key not in record:
            raise ValueError(f"{name} record {index} has no {key!r} field; fields: {', '.join(record)}")
    question = str(record[source.question]).strip()
    if source.context and record.get(source.context):
        question = f"{str(record[source.context]).strip()}\n\n{question}"
    gold_field = GOLD_FIELDS[name][0]
    gold = gold_answer(name, {**record, gold_field: record[source.answer]})
    ident = record.get("id", record.get("unique_id", record.get("idx", index)))
    return Problem(id=f"{name}-{ident}", question=question, solution=gold)


def load_benchmark(
    name: str,
    file: str | Path | None = None,
    source: Mapping[str, Any] | None = None,
    max_examples: int | None = None,
    synthetic: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """The problems of benchmark ``name`` (the first ``max_examples``, if set).

    ``file``: a local copy instead of the Hub. ``source``: overrides of ``SOURCES[name]``. ``synthetic``: for the
    embedded task, ``{"n": ..., "seed": ..., "knobs": {...}}`` (the held-out test split, as the other stages use).
    """
    check_benchmark(name)
    if max_examples is not None and max_examples <= 0:
        raise ValueError(f"max_examples must be positive, got {max_examples}")
    if name == SYNTHETIC:
        opts = dict(synthetic or {})
        n = opts.get("n", 300) if max_examples is None else min(max_examples, opts.get("n", max_examples))
        traces = synthetic_traces("test", n, opts.get("seed", 0), opts.get("knobs"))
        return [Problem(str(t.problem.id), t.problem.question, str(t.problem.answer)) for t in traces]
    src = resolve_source(name, source)
    records = read_records(file) if file else hub_records(src)
    if max_examples is not None:
        records = records[:max_examples]
    return [to_problem(name, r, src, i) for i, r in enumerate(records)]


def benchmark_question(problem: Problem, benchmark: str, suffix: str | None = None) -> str:
    """The question as the model sees it: real benchmarks get the boxed-answer instruction (``suffix``)."""
    if benchmark == SYNTHETIC:
        return problem.question if not suffix else f"{problem.question}\n{suffix}"
    return f"{problem.question}\n{BOXED_INSTRUCTION if suffix is None else suffix}".rstrip()
