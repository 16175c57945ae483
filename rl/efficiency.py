"""Efficiency metrics of the reasoning-length literature (``../shared/methods.md`` section 6), as pure functions.

- accuracy per 1k thinking tokens: ``1000 * accuracy / mean thinking tokens``;
- AES, the Accuracy-Efficiency Score of O1-Pruner (Luo et al. 2025, arXiv 2501.12570) against a base row:
  dL = (L_base - L) / L_base, dA = (A - A_base) / A_base;
  AES = w dL + b abs(dA) if dA >= 0, else w dL - g abs(dA). Papers weigh differently (O1-Pruner: w 1, b 5,
  g 10): the weights are always reported with the score;
- the overthinking-adjusted accuracy of OptimalThinkingBench (Aggarwal et al. 2025, arXiv 2508.13141;
  facebookresearch/RAM projects/otb): mean over items of c * max(0, t_max - T) / t_max, T the item's thinking
  tokens (t_max 1000 in their code);
- thinking-length histograms of correct and wrong completions, and the accuracy-at-budget curve of a
  budget-forcing sweep split by correct and wrong (the "budget spectrum").

Nothing here imports the rest of lcrl: ``rl.report`` (rows), ``rl.plots`` (figures) and ``rl.compare`` call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any


@dataclass(frozen=True)
class AesWeights:
    """AES weights: ``w`` on the length saving, ``b`` on an accuracy gain, ``g`` on an accuracy loss."""

    w: float = 1.0
    b: float = 5.0
    g: float = 10.0

    def label(self) -> str:
        """The weights as printed next to every AES (``w 1, b 5, g 10``)."""
        return f"w {self.w:g}, b {self.b:g}, g {self.g:g}"


def accuracy_per_1k(accuracy: float, think_tokens: float) -> float | None:
    """Accuracy per 1000 thinking tokens; ``None`` when nothing was thought (the ratio is undefined)."""
    return 1000.0 * accuracy / think_tokens if think_tokens > 0 else None


def aes(accuracy: float, tokens: float, base_accuracy: float, base_tokens: float,
        weights: AesWeights = AesWeights()) -> float | None:
    """O1-Pruner's AES of (accuracy, tokens) against the base's; ``None`` when the base has 0 accuracy or tokens."""
    if base_accuracy <= 0 or base_tokens <= 0:
        return None
    d_len = (base_tokens - tokens) / base_tokens
    d_acc = (accuracy - base_accuracy) / base_accuracy
    if d_acc >= 0:
        return weights.w * d_len + weights.b * abs(d_acc)
    return weights.w * d_len - weights.g * abs(d_acc)


def overthinking_adjusted_accuracy(correct: Sequence[float], think_tokens: Sequence[int], t_max: int) -> float:
    """OptimalThinkingBench's per-item score, averaged: mean of c * max(0, t_max - T) / t_max."""
    if t_max <= 0:
        raise ValueError(f"t_max must be > 0 tokens, got {t_max}")
    if len(correct) != len(think_tokens) or not correct:
        raise ValueError(f"need as many (> 0) verdicts as lengths, got {len(correct)} and {len(think_tokens)}")
    return fmean(c * max(0, t_max - t) / t_max for c, t in zip(correct, think_tokens))


def split_lengths(correct: Sequence[float], think_tokens: Sequence[int]) -> tuple[list[int], list[int]]:
    """The thinking lengths of the correct and of the wrong completions."""
    right = [t for c, t in zip(correct, think_tokens, strict=True) if c]
    wrong = [t for c, t in zip(correct, think_tokens, strict=True) if not c]
    return right, wrong


def histogram(values: Sequence[int], edges: Sequence[float]) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]) (the last bin closed); values outside the edges are not counted."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(counts)):
            last = i == len(counts) - 1
            if edges[i] <= v < edges[i + 1] or (last and v == edges[i + 1]):
                counts[i] += 1
                break
    return counts


def even_edges(values: Sequence[int], bins: int) -> list[float]:
    """``bins`` equal-width bins from 0 to the largest value (at least 1)."""
    top = max([*values, 1])
    return [top * i / bins for i in range(bins + 1)]


def add_aes(rows: list[dict[str, Any]], base: str, weights: AesWeights = AesWeights()) -> None:
    """Set ``aes`` (and ``aes_base``, ``aes_weights``) on every model row against the ``base`` model's row.

    The base row of a row is the base model's uncontrolled thinking row (``mode: think``, ``control: none``) of
    the same benchmark and tier; length = mean thinking tokens. Rows without one get ``aes = None``.
    """
    bases = {(r.get("benchmark"), r.get("tier")): r for r in rows
             if r.get("model") == base and r.get("mode") == "think" and r.get("control", "none") == "none"}
    for r in rows:
        if r.get("mode") == "data":
            continue
        ref = bases.get((r.get("benchmark"), r.get("tier")))
        r["aes"] = None if ref is None else aes(r["accuracy"], r["think_tokens_mean"], ref["accuracy"],
                                                ref["think_tokens_mean"], weights)
        r["aes_base"], r["aes_weights"] = base, weights.label()


def budget_curves(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The accuracy-at-budget curve of each budget-forcing sweep, split by correct and wrong completions.

    One curve per (model, benchmark, tier) with at least one ``sweep: cap`` row; its points, by cap, carry the
    accuracy and the mean thinking tokens of all, correct and wrong completions (``None`` where there are none).
    """
    curves: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("sweep") == "cap" and r.get("mode") == "think":
            curves.setdefault((r["model"], r.get("benchmark"), r.get("tier")), []).append(r)
    out = []
    for (model, bench, tier), points in curves.items():
        out.append({"model": model, "benchmark": bench, "tier": tier, "points": [
            {"cap": p["think_cap"], "accuracy": p["accuracy"], "think_tokens_mean": p["think_tokens_mean"],
             "think_tokens_correct_mean": p.get("think_tokens_correct_mean"),
             "think_tokens_wrong_mean": p.get("think_tokens_wrong_mean")}
            for p in sorted(points, key=lambda p: p["think_cap"])]})
    return out
