"""The reward-recipe comparison report: one table (markdown + JSON) and one Pareto plot from evaluation rows.

``bench/compare.py`` trains one GRPO model per reward recipe (same SFT start, seed, steps and budget) and
evaluates them all, with the SFT model, in one ``--stage eval`` run. This module turns that run's rows
(``rl.stages.evaluation``; one per model, benchmark, tier, mode and control) into the comparison:

- one row per (recipe, tier): accuracy, mean thinking and total tokens, the share within the tier's thinking
  budget, the truncation rate, the efficiency metrics of ``rl.efficiency`` (accuracy per 1k thinking tokens,
  OptimalThinkingBench's overthinking-adjusted accuracy, the AES against the SFT model with its weights in the
  column title), the training wall time, and whether the row is on the accuracy-against-thinking-tokens Pareto
  front of its tier (no other model is both more accurate and shorter);
- the SFT model (``reference``) and the oracle traces of the synthetic task (``data``: essential steps only,
  accuracy 1 by construction) as references;
- ``compare.md``, ``compare.json`` and ``pareto.png`` (``rl.plots.pareto_plot``: one star per recipe, one
  panel per tier, the oracle as a black diamond, the front ringed), and ``length_hist.png`` (thinking lengths of
  correct vs wrong completions per recipe) from the evaluation rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rl.plots import length_histograms, pareto_front, pareto_plot
from rl.report import aes_title

logger = logging.getLogger(__name__)

ORACLE = "oracle"
COLUMNS = [
    ("recipe", "recipe"),
    ("tier", "tier"),
    ("n", "n"),
    ("accuracy", "accuracy"),
    ("think_tokens_mean", "think tok (mean)"),
    ("total_tokens_mean", "total tok (mean)"),
    ("within_budget", "within budget"),
    ("within_band", "within band"),
    ("truncated", "truncated"),
    ("accuracy_per_1k", "acc / 1k think tok"),
    ("otb_accuracy", "OTB acc"),
    ("aes", "AES"),
    ("wall_seconds", "train wall (s)"),
    ("pareto", "Pareto"),
]
METRICS = ("n", "accuracy", "think_tokens_mean", "total_tokens_mean", "within_budget", "within_band", "truncated",
           "accuracy_per_1k", "otb_accuracy", "aes", "aes_base", "aes_weights")
RATIOS = ("accuracy", "within_budget", "within_band", "truncated", "otb_accuracy", "aes")  # three decimals


def comparison_rows(
    eval_rows: Sequence[Mapping[str, Any]],
    recipes: Mapping[str, Mapping[str, Any]],
    references: Sequence[str] = ("sft",),
) -> list[dict[str, Any]]:
    """The comparison rows from evaluation rows.

    Args:
        eval_rows: rows of ``results.json`` (``rl.stages.evaluation``); only the uncontrolled thinking runs
            (``mode: think``, ``control: none``) and the oracle data row are used.
        recipes: per recipe label (the eval ``model`` label), what the table reports besides the metrics:
            ``rewards`` (the recipe's reward spec), ``wall_seconds`` (training wall time), ``steps``.
        references: eval model labels shown as references (the SFT model), before the recipes.

    Returns rows in the order references, recipes (each by tier, in evaluation order), oracle. Raises
    ``ValueError`` when a recipe or reference has no uncontrolled thinking row.
    """
    base = [r for r in eval_rows if r.get("mode") == "think" and r.get("control", "none") == "none"]
    rows: list[dict[str, Any]] = []
    for label in [*references, *recipes]:
        mine = [r for r in base if r["model"] == label]
        if not mine:
            known = sorted({r["model"] for r in base})
            raise ValueError(f"no uncontrolled thinking row for {label!r} in the evaluation; models there: {known}")
        info = recipes.get(label, {})
        for r in mine:
            rows.append({
                "recipe": label, "kind": "recipe" if label in recipes else "reference",
                "benchmark": r.get("benchmark", "-"), "tier": r.get("tier", "-"),
                **{k: r.get(k) for k in METRICS},
                "wall_seconds": info.get("wall_seconds"), "steps": info.get("steps"), "rewards": info.get("rewards"),
                "path": r.get("path"),
            })
    for r in eval_rows:
        if r.get("mode") == "data" and r.get("model") == ORACLE:
            rows.append({"recipe": ORACLE, "kind": "data", "benchmark": r.get("benchmark", "-"), "tier": "-",
                         **{k: r.get(k) for k in METRICS}, "wall_seconds": None, "steps": None, "rewards": None,
                         "path": None})
    mark_pareto(rows)
    return rows


def mark_pareto(rows: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on every model row (not data rows): on the front of its benchmark and tier."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        r["pareto"] = None
        if r["kind"] != "data":
            groups.setdefault((r["benchmark"], r["tier"]), []).append(i)
    for idx in groups.values():
        front = pareto_front([(rows[i]["think_tokens_mean"], rows[i]["accuracy"]) for i in idx])
        for j, i in enumerate(idx):
            rows[i]["pareto"] = j in front


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "pareto":
        return "yes" if value else ""
    if key == "wall_seconds":
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.3f}" if key in RATIOS else f"{value:.1f}"
    return str(value)


def markdown_comparison(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a markdown table, one line per row, in ``COLUMNS`` order."""
    titles = {"aes": aes_title(rows)}
    header = "| " + " | ".join(titles.get(key, title) for key, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(k, r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([header, rule, *body])


def comparison_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Accuracy against mean thinking tokens, one point per recipe, SFT and oracle as references.

    With several tiers (a ``mixed`` budget) each tier gets its own panel, the oracle drawn in every one.
    """
    tiers = list(dict.fromkeys(r["tier"] for r in rows if r["kind"] != "data"))

    def point(r: Mapping[str, Any], panel: str) -> dict[str, Any]:
        return {"model": r["recipe"], "benchmark": panel, "tier": r["tier"],
                "mode": "data" if r["kind"] == "data" else "think", "sweep": "base", "accuracy": r["accuracy"],
                "think_tokens_mean": r["think_tokens_mean"], "total_tokens_mean": r["total_tokens_mean"]}

    if len(tiers) > 1:
        plot_rows = [point(r, f"{r['benchmark']}, {tier} tier") for tier in tiers for r in rows
                     if r["tier"] == tier or r["kind"] == "data"]
    else:
        plot_rows = [point(r, r["benchmark"]) for r in rows]
    return pareto_plot(plot_rows, path, tokens="think", title=title or "reward recipes: accuracy against thinking")


def write_comparison(
    rows: Sequence[Mapping[str, Any]], output_dir: str | Path, meta: Mapping[str, Any], plot: bool = True,
    eval_rows: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Path]:
    """``compare.md`` (a header line and the table), ``compare.json`` (meta + rows), ``pareto.png`` and, from the
    evaluation rows of the compared models, ``length_hist.png``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "md": out / "compare.md"}
    paths["json"].write_text(json.dumps({**meta, "rows": list(rows)}, indent=2) + "\n")
    facts = ", ".join(f"{k} {meta[k]}" for k in ("budget", "steps", "seed", "experiment") if meta.get(k) is not None)
    lines = [f"Reward recipes, GRPO from {meta.get('sft', 'the SFT model')} ({facts})." if facts else "", "",
             markdown_comparison(rows), ""]
    paths["md"].write_text("\n".join(lines).lstrip("\n"))
    if plot:
        title = f"reward recipes ({meta['budget']}, {meta['steps']} steps)" if "budget" in meta else None
        paths["png"] = comparison_plot(rows, out / "pareto.png", title=title)
        labels = {r["recipe"] for r in rows if r["kind"] != "data"}
        hist = length_histograms([r for r in eval_rows if r.get("model") in labels], out / "length_hist.png")
        if hist is not None:
            paths["hist"] = hist
    logger.info("comparison written to %s", ", ".join(str(p) for p in paths.values()))
    return paths
