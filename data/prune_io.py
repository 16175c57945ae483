"""Files of a pruning run: the crash-safe JSONL logs, the lines of ``pruned.jsonl`` (``pruned_row``, with thinking-token
counts), the preference pairs and the report.

``JsonlLog`` appends one JSON object per line and makes it durable (flush + fsync) before returning, so a kill
can only tear the line being written. Opening a log reads the finished keys back; a torn last line (bytes
after the final newline: a JSON line holds no raw newline, so only the tail can be torn) is dropped and the file
rewritten without it (atomically: temp file + rename), so the record it held is simply redone. A complete line
that is not valid JSON means the file was edited or corrupted otherwise, and is an error.

Report (``report.json`` and ``report.md``): records kept and dropped by reason; thinking tokens before and after
(means and totals over the kept traces; skip-thinking and oracle lengths when present); kept token and step
fractions; validation calls per trace against the bound ``ceil(log2 n) + 1`` (and against ``ceil(log2 n) + 2``).
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from data.chunking import token_counts
from data.prune import CutResult, validation_bound
from data.traces import TraceRecord, render_completion

PRUNED, DROPPED, PAIRS, REPORT_JSON, REPORT_MD, SETTINGS_FILE = (
    "pruned.jsonl", "dropped.jsonl", "pairs.jsonl", "report.json", "report.md", "prune_settings.json")


class JsonlLog:
    """An append-only JSONL file of rows identified by their ``key``; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = self._recover()
        self.keys = {r["key"] for r in self.rows}
        self._file = None

    def _recover(self) -> list[dict[str, Any]]:
        rows, torn = _parse(self.path)
        if torn:
            write_jsonl(self.path, rows)
        return rows

    def append(self, row: Mapping[str, Any]) -> None:
        if row["key"] in self.keys:
            raise ValueError(f"{self.path}: key {row['key']!r} is already written")
        if self._file is None:
            self._file = self.path.open("a")
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows.append(dict(row))
        self.keys.add(row["key"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _parse(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rows of the complete lines, and whether a torn tail follows them."""
    if not path.exists():
        return [], False
    *complete, tail = path.read_bytes().split(b"\n")  # JSON lines hold no raw newline: only the tail tears
    rows = []
    for i, line in enumerate(complete):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}: line {i + 1} is not valid JSON ({exc}); fix or delete the file") from exc
    return rows, bool(tail.strip())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file (a torn last line is left out, the file is not touched)."""
    return _parse(Path(path))[0]


class SettingsMismatch(ValueError):
    """A resumed run's settings differ from those recorded in its output folder (the stages report it as a
    configuration error)."""


def check_settings(out: Path, settings: Mapping[str, Any], name: str = SETTINGS_FILE, what: str = "a pruning run",
                   fresh: bool = False, hint: str = "use another output_dir or delete that one",
                   write: bool = True) -> None:
    """Record a run's settings in ``out/name``; refuse to resume into ``out`` with different ones (they would mix).

    ``fresh``: nothing is being resumed, so the record is simply (re)written. ``write: False`` only compares (the
    other processes of a multi-process run). The error names each changed key with its old and new value.
    """
    path = out / name
    settings = json.loads(json.dumps(dict(settings), default=str))
    if path.exists() and not fresh:
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            diff = "; ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise SettingsMismatch(f"{out} holds {what} with other settings ({diff}); {hint}")
    elif write:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(settings, indent=2))


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temp file + rename): a kill leaves the old file or the new one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """``rows`` as a JSONL file, written atomically (``write_atomic``)."""
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def preference_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DPO pairs (TRL conversational format): pruned completion chosen, full completion rejected; equal ones left out."""
    return [
        {"id": r["id"], "prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["completion"]}],
         "rejected": [{"role": "assistant", "content": r["full_completion"]}]}
        for r in rows if r["completion"] != r["full_completion"]
    ]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def build_report(pruned: list[dict[str, Any]], dropped: list[dict[str, Any]], last_run: Mapping[str, Any]) -> dict:
    """The report of a pruning run (module docstring), from the logs alone (so it is right after a resume)."""
    validated = pruned + [d for d in dropped if d.get("stage") == "validate"]
    calls = [r["validation_calls"] for r in validated]
    bounds = [validation_bound(r["n_steps"]) for r in validated]
    orig = [r["original_tokens"] for r in pruned]
    kept = [r["pruned_tokens"] for r in pruned]
    skip = [r["skip_tokens"] for r in pruned]
    oracle = [r["oracle_tokens"] for r in pruned if r.get("oracle_tokens") is not None]
    report = {
        "records": len(pruned) + len(dropped),
        "kept": len(pruned),
        "dropped": dict(Counter(d["reason"] for d in dropped)),
        "tokens": {
            "original_mean": _mean(orig), "pruned_mean": _mean(kept), "skip_mean": _mean(skip),
            "oracle_mean": _mean(oracle), "original_total": sum(orig), "pruned_total": sum(kept),
        },
        "kept_token_fraction": sum(kept) / sum(orig) if sum(orig) else None,
        "skip_token_fraction": sum(skip) / sum(orig) if sum(orig) else None,
        "kept_step_fraction": _mean([r["kept_steps"] / r["n_steps"] for r in pruned]),
        "validation": {
            "traces": len(validated),
            "calls_mean": _mean(calls), "calls_max": max(calls, default=None),
            "bound_mean": _mean(bounds), "bound_plus_one_mean": _mean([b + 1 for b in bounds]),
            "within_bound": _mean([float(c <= b) for c, b in zip(calls, bounds)]),
            "steps_mean": _mean([r["n_steps"] for r in validated]),
        },
        "skip": {"traces_with_skips": sum(bool(r["skippable"]) for r in pruned),
                 "chunks_skipped": sum(len(r["skippable"]) for r in pruned),
                 "chunks_total": sum(len(r["chunks"]) for r in pruned),
                 "calls_mean": _mean([r["skip_calls"] for r in pruned])},
        "pairs": sum(r["completion"] != r["full_completion"] for r in pruned),
        "last_run": dict(last_run),
    }
    return report


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def report_table(report: Mapping[str, Any]) -> str:
    """The report as a two-column markdown table."""
    t, v = report["tokens"], report["validation"]
    rows = [
        ("records", report["records"]), ("kept", report["kept"]),
        *((f"dropped: {k}", n) for k, n in sorted(report["dropped"].items())),
        ("thinking tokens before (mean)", t["original_mean"]), ("thinking tokens after (mean)", t["pruned_mean"]),
        ("kept token fraction", report["kept_token_fraction"]), ("kept step fraction", report["kept_step_fraction"]),
        ("skip-thinking tokens (mean)", t["skip_mean"]), ("oracle tokens (mean)", t["oracle_mean"]),
        ("steps per trace (mean)", v["steps_mean"]), ("validation calls per trace (mean)", v["calls_mean"]),
        ("validation calls per trace (max)", v["calls_max"]), ("ceil(log2 n)+1 (mean)", v["bound_mean"]),
        ("ceil(log2 n)+2 (mean)", v["bound_plus_one_mean"]), ("share within ceil(log2 n)+1", v["within_bound"]),
        ("skippable chunks / chunks", f"{report['skip']['chunks_skipped']} / {report['skip']['chunks_total']}"),
        ("preference pairs", report["pairs"]),
    ]
    lines = ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(x)} |" for k, x in rows]
    return "\n".join(lines)


def write_outputs(out: Path, last_run: Mapping[str, Any]) -> dict[str, Any]:
    """Pairs and report from the logs in ``out``; returns the report with its ``table``."""
    pruned, dropped = read_jsonl(out / PRUNED), read_jsonl(out / DROPPED)
    write_jsonl(out / PAIRS, preference_pairs(pruned))
    report = build_report(pruned, dropped, last_run)
    table = report_table(report)
    write_atomic(out / REPORT_JSON, json.dumps(report, indent=2))
    write_atomic(out / REPORT_MD, table + "\n")
    return {**report, "table": table}


# --- the lines of pruned.jsonl ---

def pruned_row(
    rec: TraceRecord, messages: list[dict], steps: list[str], cut: CutResult, chunks: list[list[int]],
    skipped: list[int], skip_calls: int, conclusion: str, conclusion_source: str,
) -> dict[str, Any]:
    """One line of ``pruned.jsonl`` (token counts are added by the caller)."""
    kept = steps[: cut.kept]
    chunk_texts = ["".join(kept[i] for i in c) for c in chunks]
    if chunk_texts:
        chunk_texts[-1] = chunk_texts[-1].rstrip()
    thinking = "".join(chunk_texts)
    skip_thinking = "".join(t for j, t in enumerate(chunk_texts) if j not in skipped)
    return {
        "key": rec.id,
        "id": rec.id,
        "question": rec.question,
        "prompt": messages,
        "solution": rec.gold[0],
        "gold": rec.gold,
        "completion": render_completion(thinking, conclusion),
        "full_completion": render_completion(rec.thinking, rec.conclusion),
        "skip_completion": render_completion(skip_thinking, conclusion),
        "thinking": thinking,
        "conclusion": conclusion,
        "chunks": chunk_texts,
        "skippable": skipped,
        "conclusion_source": conclusion_source,
        "n_steps": cut.n,
        "kept_steps": cut.kept,
        "validation_calls": cut.calls,
        "call_bound": validation_bound(cut.n),
        "skip_calls": skip_calls,
        "oracle_thinking": rec.meta.get("oracle_thinking"),
        "skip_thinking": skip_thinking,
    }


def add_token_counts(rows: list[dict], tokenizer, originals: list[str]) -> None:
    """Thinking-token counts (the model's tokenizer): original, pruned, skip-pruned and (synthetic) oracle."""
    oracle = [r.pop("oracle_thinking") for r in rows]
    skip = [r.pop("skip_thinking") for r in rows]
    for name, texts in (("original_tokens", originals), ("pruned_tokens", [r["thinking"] for r in rows]),
                        ("skip_tokens", skip)):
        for row, n in zip(rows, token_counts(tokenizer, texts)):
            row[name] = n
    for row, text, n in zip(rows, oracle, token_counts(tokenizer, [o or "" for o in oracle])):
        row["oracle_tokens"] = None if text is None else n
