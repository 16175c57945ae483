"""Evaluation metrics and their presentation: per-row summaries, a console/markdown table, JSON.

A row is one (model, benchmark, tier, mode, control) run. Metrics (``summarize``): accuracy = pass@1, or avg@k
with ``k`` samples per problem (the mean correctness over all samples; ``pass_at_k`` is the share of problems with
at least one correct sample), over the problems whose gold answer parses (``unparsable_gold`` counts the others,
excluded); mean and median thinking tokens (up to and including ``</think>``, of any token shape:
``data.completion_format``); mean answer tokens (after it); mean total tokens; ``within_budget`` = share of
completions whose thinking fits the tier's budget, ``within_band`` within its band ``[floor, budget]``; ``truncated`` = share cut at the token limit; with budget
forcing also ``forced`` (share closed at the cap) and ``waits_mean``. Efficiency (``rl.efficiency``): ``accuracy_per_1k`` (accuracy per 1000 thinking tokens),
``skipped_thinking`` (share of completions that close the thinking with nothing in it: AdaptThink's no-thinking
mode; for the no-thinking tier, budget 0, it is also ``within_budget``), ``otb_accuracy`` (OptimalThinkingBench's
overthinking-adjusted accuracy with ``t_max``), the mean thinking tokens
of correct and of wrong completions, their lengths (``think_lengths_correct``/``_wrong``, for the histograms),
and ``aes`` against a named base model (``add_aes``; the weights are printed in the table's header). The Pareto
plot of these rows and the histograms are ``rl/plots.py``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data.budgets import Tier
from data.completion_format import CompletionFormat
from rl.efficiency import accuracy_per_1k, overthinking_adjusted_accuracy, split_lengths
from rl.engine import Generation

COLUMNS = [
    ("model", "model"),
    ("benchmark", "benchmark"),
    ("tier", "tier"),
    ("mode", "mode"),
    ("control", "control"),
    ("n", "n"),
    ("accuracy", "accuracy"),
    ("think_tokens_mean", "think tok (mean)"),
    ("think_tokens_median", "think tok (median)"),
    ("answer_tokens_mean", "answer tok (mean)"),
    ("total_tokens_mean", "total tok (mean)"),
    ("within_budget", "within budget"),
    ("within_band", "within band"),
    ("truncated", "truncated"),
    ("accuracy_per_1k", "acc / 1k think tok"),
    ("otb_accuracy", "OTB acc"),
    ("aes", "AES"),
]
PER_ITEM_KEYS = ("think_lengths_correct", "think_lengths_wrong")  # lists: results.json only, not tables


def summarize(
    generations: Sequence[Generation],
    scores: Sequence[float | None],
    fmt: CompletionFormat | int | None,
    tier: Tier | int | None,
    prefilled_thinking: bool = False,
    num_samples: int = 1,
    t_max: int = 1000,
) -> dict[str, Any]:
    """Accuracy and token statistics of one model on one set of prompts.

    Thinking tokens count up to and including ``</think>`` (all tokens if it never closes); with the thinking
    prefilled (no-thinking mode) they are 0, or the tokens up to a second close marker the model wrote anyway.
    ``tier``: the prompts' tier, or a plain budget of thinking tokens (its band ``[0, budget]``; 0: no thinking), or
    ``None``. ``within_budget`` is the share whose thinking fits the budget, ``within_band`` the share within the
    tier's band (``Tier.in_band``); for the no-thinking tier both are the share that skipped the thinking.
    With ``num_samples = k > 1`` the generations are problem-major (k consecutive samples per problem); ``n`` is
    the number of problems, ``accuracy`` avg@k and ``pass_at_k`` the share of problems solved at least once.
    A score of ``None`` (the gold answer does not parse) leaves the accuracy and the efficiency metrics;
    ``unparsable_gold`` counts those problems. ``fmt``: the completion format (or a one-token close id; ``None``:
    thinking is the whole completion). ``t_max`` is OptimalThinkingBench's thinking-token horizon of ``otb_accuracy``.
    """
    if num_samples < 1 or len(generations) % num_samples:
        raise ValueError(f"{len(generations)} generations are not a whole number of {num_samples} samples each")
    if isinstance(fmt, int):
        fmt = CompletionFormat.from_ids([fmt])
    if isinstance(tier, int):
        tier = Tier(f"budget {tier}", "", budget=tier, penalty=0.0)
    thinks = tier is not None and tier.thinks
    think = [_thinking_tokens(g, fmt, prefilled_thinking) for g in generations]
    total = [g.num_tokens for g in generations]
    m = len(generations)
    graded = [s for s in scores if s is not None]
    row = {
        "n": m // num_samples,
        "accuracy": sum(graded) / len(graded) if graded else None,
        "unparsable_gold": (m - len(graded)) // num_samples,
        "think_tokens_mean": statistics.fmean(think),
        "think_tokens_median": statistics.median(think),
        "answer_tokens_mean": statistics.fmean(t - k for t, k in zip(total, think)),
        "total_tokens_mean": statistics.fmean(total),
        "within_budget": (sum(k <= tier.budget for k in think) / m) if thinks else None,
        "within_band": (sum(tier.in_band(k, skipped=False) for k in think) / m) if thinks else None,
        "skipped_thinking": None if fmt is None or prefilled_thinking else
        sum(fmt.skips_thinking(g.token_ids) for g in generations) / m,
        "truncated": sum(not g.finished for g in generations) / m,
    }
    if tier is not None and not tier.thinks:
        row["within_budget"] = row["within_band"] = row["skipped_thinking"]
    kept = [(s, t) for s, t in zip(scores, think) if s is not None]
    right, wrong = split_lengths([s for s, _ in kept], [t for _, t in kept])
    row["accuracy_per_1k"] = accuracy_per_1k(row["accuracy"], row["think_tokens_mean"]) if graded else None
    row["otb_accuracy"] = overthinking_adjusted_accuracy(*zip(*kept), t_max) if kept else None
    row["think_tokens_correct_mean"] = statistics.fmean(right) if right else None
    row["think_tokens_wrong_mean"] = statistics.fmean(wrong) if wrong else None
    row["think_lengths_correct"], row["think_lengths_wrong"] = right, wrong
    if num_samples > 1:
        groups = [scores[i : i + num_samples] for i in range(0, m, num_samples) if scores[i] is not None]
        row["num_samples"] = num_samples
        row["pass_at_k"] = sum(max(g) > 0 for g in groups) / len(groups) if groups else None
    if any(g.forced_stop or g.waits for g in generations):
        row["forced"] = sum(g.forced_stop for g in generations) / m
        row["waits_mean"] = statistics.fmean(g.waits for g in generations)
    return row


def _thinking_tokens(gen: Generation, fmt: CompletionFormat | None, prefilled: bool) -> int:
    """Thinking tokens of one completion; with the thinking prefilled, the tokens up to a second close marker
    (thinking the model did anyway), else 0; without a format, the whole completion."""
    if fmt is None:
        return 0 if prefilled else gen.num_tokens
    if prefilled:
        ends = fmt.close_ends(gen.token_ids)
        return ends[0] if ends else 0
    return fmt.thinking_tokens(gen.token_ids)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) <= 1.0 else f"{value:.1f}"
    return str(value)


def aes_title(rows: Sequence[dict[str, Any]]) -> str:
    """``AES`` with its base and weights, e.g. ``AES (vs sft; w 1, b 5, g 10)``, as the column title."""
    specs = {(r["aes_base"], r["aes_weights"]) for r in rows if r.get("aes_base") is not None}
    return "AES" if len(specs) != 1 else "AES (vs {}; {})".format(*specs.pop())


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown (and console) table of the rows, one line each, in ``COLUMNS`` order."""
    titles = {"aes": aes_title(rows)}
    header = "| " + " | ".join(titles.get(key, title) for key, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r.get(key)) for key, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([header, rule, *body])


def write_results(rows: Sequence[dict[str, Any]], output_dir: str | Path, extra: dict[str, Any]) -> Path:
    """``results.json`` (rows plus ``extra``) and ``results.md`` (the table) in ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"rows": list(rows), **extra}, indent=2))
    (out / "results.md").write_text(markdown_table(rows) + "\n")
    return out / "results.json"
