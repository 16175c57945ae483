"""The ``dataset`` task: prompts, gold answers and long-CoT traces from a Hub dataset or a local file.

A recipe names the source and a field mapping::

    task: dataset
    dataset:
      path: open-r1/OpenR1-Math-220k   # a Hub dataset id, or a local .jsonl/.json/.parquet/.csv file or folder
      name: default                    # Hub config (optional)
      split: train                     # split read for training (test_split: the held-out one, optional)
      fields: openr1                   # where each record keeps its parts (below)
      shuffle: false                   # shuffle (seed: task_seed) before taking the first num_train records
      question_suffix: ...             # after each question; default: evaluation's boxed-answer instruction

``fields`` is

- a trace preset of ``data.traces`` (``r1_response``, ``thinking_answer``, ``openr1``, ``s1k``): prompts, gold
  answers and traces (SFT);
- a benchmark of ``data.benchmarks`` (``math500``, ``aime24``, ``amc23``, ``olympiadbench``, ``gsm8k``): prompts
  and gold answers only, the gold normalised exactly as evaluation normalises it (``data.gold``);
- ``auto``: the trace preset whose fields all resolve in the first record;
- a mapping of ``question``, ``gold`` and optionally ``id``, ``context`` (a field prepended to the question),
  ``gold_separator``, ``gold_boxed``, ``gold_format`` (``latex`` or a benchmark name: its gold normaliser) and the
  trace fields ``response`` or ``thinking`` + ``answer`` (``data.traces.FieldMap``).

GRPO and evaluation-style use reads question + gold (``prompt_rows``); SFT also needs the trace (``sft_rows``).
Questions end with ``question_suffix`` (default ``data.benchmarks.BOXED_INSTRUCTION``, the sentence evaluation
appends to real benchmarks, so training and evaluation prompts match; ``""`` for none); the task's prompt then adds
the tier instruction (``data.tasks.make_prompt``). A gold with several accepted forms (``gold_separator``) uses its
first form as the ``solution``. Records without a usable question, gold answer (or, for SFT, trace; with the
``openr1`` preset, a generation flagged correct by ``correctness_math_verify``) are skipped and counted by reason
(``data.traces.SKIP_REASONS``); a source that yields no usable record is an error. ``prompt_rows`` also skips
(``unparsable_gold``) a gold that ``gold_ok`` rejects: the caller passes the grader's own test
(``rewards.verify.gold_parses``, ``rl.stages.common``), as such a prompt scores 0 whatever the policy writes and
its groups have no reward variance. Reading stops once ``n`` records are kept, so a large Hub dataset is
converted to Python only as far as needed.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.benchmarks import BOXED_INSTRUCTION
from data.dataset_fields import PromptFields, question_of, resolve_fields, solution_of, with_suffix
from data.sources import LOCAL_SUFFIXES, read_rows
from data.traces import SCHEMAS, FieldMap, Skipped, get_field, ingest, record_id, render_completion

logger = logging.getLogger(__name__)

BATCH = 256  # records converted from a ``datasets.Dataset`` at a time


@dataclass(frozen=True)
class DatasetSpec:
    """A recipe's ``dataset:`` mapping (see the module docstring)."""

    path: str
    split: str = "train"
    name: str | None = None
    test_split: str | None = None
    fields: str | Mapping[str, Any] = "auto"
    shuffle: bool = False
    question_suffix: str = BOXED_INSTRUCTION

    @classmethod
    def from_value(cls, value: str | Mapping[str, Any] | None) -> DatasetSpec:
        """From the recipe value: a mapping of the fields above, or a bare path / Hub id. Raises ``ValueError``."""
        if isinstance(value, str) and value.strip():
            value = {"path": value.strip()}
        if not isinstance(value, Mapping):
            raise ValueError(f"dataset must be a mapping {{path, split, name, test_split, fields, shuffle, "
                             f"question_suffix}} or a path / Hub id, got {value!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(value) - set(known))
        if bad:
            raise ValueError(f"unknown dataset key(s) {bad}; allowed: {', '.join(known)}")
        if not isinstance(value.get("path"), str) or not value["path"].strip():
            raise ValueError(f"dataset.path must name a Hub dataset id or a local file, got {value.get('path')!r}")
        values = dict(value)
        if "question_suffix" in values and values["question_suffix"] is None:
            values["question_suffix"] = ""  # null in YAML: no suffix
        spec = cls(**values)
        if spec.fields != "auto":
            resolve_fields(spec.fields)  # presets and mapping keys are checked without reading the source
        return spec

    @property
    def is_local(self) -> bool:
        """A local file or folder (or a path that looks like a file and is missing: an error, not a Hub id)."""
        return Path(self.path).exists() or Path(self.path).suffix in LOCAL_SUFFIXES

    def split_for(self, which: str) -> str:
        """The source split of lcrl's ``train`` or ``test`` split."""
        if which == "train":
            return self.split
        if which == "test":
            if self.test_split is None:
                raise ValueError(f"dataset {self.path!r} has no test_split; set dataset.test_split")
            return self.test_split
        raise ValueError(f"unknown split {which!r}; allowed: train, test")


def open_rows(spec: DatasetSpec, split: str) -> Sequence[Mapping[str, Any]]:
    """The records of ``split``: a list (JSON files) or a ``datasets.Dataset`` (parquet, csv, folders, the Hub)."""
    if not spec.is_local:  # (a missing local file is read_rows's FileNotFoundError)
        logger.info("loading %s (%s, split %s) from the Hub", spec.path, spec.name, split)
    return read_rows(spec.path, split, spec.name)


def _batches(rows: Sequence[Mapping[str, Any]], shuffle: bool, seed: int) -> Iterator[tuple[int, list[dict]]]:
    """``(offset, records)`` in reading order (shuffled with ``seed`` if asked), ``BATCH`` records at a time."""
    if hasattr(rows, "select"):  # datasets.Dataset: shuffle lazily, convert one batch at a time
        ds = rows.shuffle(seed=seed) if shuffle else rows
        for start in range(0, len(ds), BATCH):
            yield start, ds.select(range(start, min(start + BATCH, len(ds)))).to_list()
        return
    order = list(rows)
    if shuffle:
        random.Random(seed).shuffle(order)
    for start in range(0, len(order), BATCH):
        yield start, [dict(r) for r in order[start : start + BATCH]]


@dataclass
class TaskRows:
    """Usable rows (``id``, ``question``, ``solution`` and, for SFT, ``completion``) and the records skipped."""

    rows: list[dict[str, str]]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))


Extract = Callable[[list[dict], int, set[str]], tuple[list[dict[str, str]], list[Skipped]]]


def _collect(
    spec: DatasetSpec, split: str, n: int | None, seed: int, what: str, make: Callable[[Mapping[str, Any]], Extract]
) -> TaskRows:
    """Read ``spec``'s ``split`` batch by batch until ``n`` rows are kept; ``make(sample)`` builds the extractor."""
    if n is not None and n <= 0:
        raise ValueError(f"the number of records must be positive, got {n}")
    source = spec.split_for(split)
    records = open_rows(spec, source)
    if len(records) == 0:
        raise ValueError(f"dataset {spec.path!r} (split {source}) holds no records")
    out = TaskRows([])
    seen: set[str] = set()
    extract: Extract | None = None
    for offset, batch in _batches(records, spec.shuffle, seed):
        extract = extract or make(batch[0])
        rows, skipped = extract(batch, offset, seen)
        out.rows.extend(rows)
        out.skipped.extend(skipped)
        if n is not None and len(out.rows) >= n:
            out.rows = out.rows[:n]
            break
    logger.info("dataset %s (split %s): %d %s kept, %d records skipped %s", spec.path, source, len(out.rows), what,
                len(out.skipped), out.counts)
    if not out.rows:
        raise ValueError(f"dataset {spec.path!r} (split {source}) has no usable {what} with fields {spec.fields!r}: "
                         f"{len(out.skipped)} records skipped {out.counts}")
    return out


def _prompt_extractor(fields: PromptFields, suffix: str, gold_ok: Callable[[str], bool] | None) -> Extract:
    def extract(batch: list[dict], offset: int, seen: set[str]) -> tuple[list[dict[str, str]], list[Skipped]]:
        rows, skipped = [], []
        for i, row in enumerate(batch, start=offset):
            rid = record_id(row, fields, i)  # type: ignore[arg-type]  # reads id and question
            question, solution = question_of(row, fields), solution_of(get_field(row, fields.gold), fields)
            reason = ("missing_question" if not question else "missing_gold" if not solution
                      else "duplicate_id" if rid in seen
                      else "unparsable_gold" if gold_ok is not None and not gold_ok(solution) else None)
            if reason:
                skipped.append(Skipped(i, rid, reason))
                continue
            seen.add(rid)
            rows.append({"id": rid, "question": with_suffix(question, suffix), "solution": solution})
        return rows, skipped
    return extract


def _trace_extractor(fields: PromptFields, fmap: FieldMap, suffix: str) -> Extract:
    def extract(batch: list[dict], offset: int, seen: set[str]) -> tuple[list[dict[str, str]], list[Skipped]]:
        result = ingest(batch, fmap)
        skipped = [dataclasses.replace(s, index=s.index + offset) for s in result.skipped]
        rows = []
        for rec in result.records:
            index = rec.meta["index"] + offset
            solution = solution_of(get_field(batch[rec.meta["index"]], fields.gold), fields)
            reason = "missing_gold" if not solution else "duplicate_id" if rec.id in seen else None
            if reason:
                skipped.append(Skipped(index, rec.id, reason))
                continue
            seen.add(rec.id)
            question = question_of(batch[rec.meta["index"]], fields) or rec.question
            rows.append({"id": rec.id, "question": with_suffix(question, suffix), "solution": solution,
                         "completion": render_completion(rec.thinking, rec.conclusion)})
        return rows, sorted(skipped, key=lambda s: s.index)
    return extract


def prompt_rows(
    spec: DatasetSpec, split: str = "train", n: int | None = None, seed: int = 0,
    gold_ok: Callable[[str], bool] | None = None,
) -> TaskRows:
    """The first ``n`` usable ``{id, question, solution}`` rows of ``spec`` (GRPO, evaluation-style use); with
    ``gold_ok``, rows whose ``solution`` it rejects are skipped as ``unparsable_gold``."""
    def make(sample: Mapping[str, Any]) -> Extract:
        return _prompt_extractor(resolve_fields(spec.fields, sample)[0], spec.question_suffix, gold_ok)

    return _collect(spec, split, n, seed, "prompts", make)


def sft_rows(spec: DatasetSpec, split: str = "train", n: int | None = None, seed: int = 0) -> TaskRows:
    """The first ``n`` usable ``{id, question, solution, completion}`` rows; ``completion`` is the R1 trace."""
    def make(sample: Mapping[str, Any]) -> Extract:
        prompt, fmap = resolve_fields(spec.fields, sample)
        if fmap is None:
            raise ValueError(f"dataset fields {spec.fields!r} name no trace (response, or thinking + answer): SFT "
                             f"needs traces; use a trace preset ({', '.join(SCHEMAS)}) or map them")
        return _trace_extractor(prompt, fmap, spec.question_suffix)

    return _collect(spec, split, n, seed, "traces", make)
