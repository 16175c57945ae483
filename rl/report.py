"""Evaluation metrics and their presentation: per-row summaries, a console/markdown table, JSON."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data.format import count_until
from rl.generation import Generation

COLUMNS = [
    ("model", "model"),
    ("tier", "tier"),
    ("mode", "mode"),
    ("n", "n"),
    ("accuracy", "accuracy"),
    ("think_tokens_mean", "think tok (mean)"),
    ("think_tokens_median", "think tok (median)"),
    ("total_tokens_mean", "total tok (mean)"),
    ("within_budget", "within budget"),
    ("truncated", "truncated"),
]


def summarize(
    generations: Sequence[Generation],
    scores: Sequence[float],
    think_end_id: int | None,
    budget: int | None,
    prefilled_thinking: bool = False,
) -> dict[str, Any]:
    """Accuracy and token statistics of one model on one set of prompts.

    Thinking tokens count up to and including ``</think>`` (all tokens if it never closes); with the thinking
    prefilled (no-thinking mode) they are 0. ``within_budget`` is the share whose thinking fits ``budget``.
    """
    think = [0 if prefilled_thinking else count_until(g.token_ids, think_end_id) for g in generations]
    total = [g.num_tokens for g in generations]
    n = len(generations)
    return {
        "n": n,
        "accuracy": sum(scores) / n,
        "think_tokens_mean": statistics.fmean(think),
        "think_tokens_median": statistics.median(think),
        "answer_tokens_mean": statistics.fmean(t - k for t, k in zip(total, think)),
        "total_tokens_mean": statistics.fmean(total),
        "within_budget": (sum(k <= budget for k in think) / n) if budget else None,
        "truncated": sum(not g.finished for g in generations) / n,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r.get(key)) for key, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([header, rule, *body])


def write_results(rows: Sequence[dict[str, Any]], output_dir: str | Path, extra: dict[str, Any]) -> Path:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"rows": list(rows), **extra}, indent=2))
    (out / "results.md").write_text(markdown_table(rows) + "\n")
    return out / "results.json"
