"""The accuracy-against-tokens (Pareto) plot of evaluation rows, as a PNG (matplotlib, Agg backend: no display).

One panel per benchmark; x = mean thinking tokens (or mean total tokens), y = accuracy. Each model has a colour;
within it, the points of one sweep are joined in order of tokens: the stop-token temperature sweep (circles,
labelled ``tau``), the budget-forcing sweep (squares, labelled with the cap), the uncontrolled run (a star) and the
no-thinking run (a cross). Data rows (oracle and full traces of the synthetic task) are black diamonds. The dashed
grey line is the Pareto frontier over every model point of the panel: the points no other point beats on both
fewer tokens and higher accuracy; its points are ringed.

Beside it: ``length_histograms`` (thinking lengths of correct vs wrong completions, one panel per uncontrolled
model row) and ``budget_curve_plot`` (a budget-forcing sweep's accuracy at each cap, and the mean thinking tokens
of its correct and wrong completions), both from ``rl.efficiency``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rl.efficiency import budget_curves, even_edges

logger = logging.getLogger(__name__)

MARKERS = {"base": "*", "tau": "o", "cap": "s", "tier-cap": "P", "no-think": "X", "data": "D"}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (fewer tokens ``x`` and higher accuracy ``y`` are better), by ``x``.

    A point is dominated when another has ``x' <= x`` and ``y' >= y`` with one of them strict.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _label(row: dict[str, Any]) -> str:
    sweep = row.get("sweep")
    if sweep == "tau":
        return f"τ={row['stop_tau']:g}"
    if sweep in ("cap", "tier-cap"):
        return f"cap {row['think_cap']}"
    return ""


def pareto_plot(
    rows: Sequence[dict[str, Any]], path: str | Path, tokens: str = "think", title: str | None = None
) -> Path:
    """Write the plot of ``rows`` (``rl.stages.evaluation`` rows) to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = {"think": "think_tokens_mean", "total": "total_tokens_mean"}[tokens]
    benchmarks = list(dict.fromkeys(r.get("benchmark", "-") for r in rows if r.get("mode") != "data"))
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(max(9.0, 6.5 * len(benchmarks)), 5.5), squeeze=False)
    models = list(dict.fromkeys(r["model"] for r in rows if r.get("mode") != "data"))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    tiers_of = {m: list(dict.fromkeys(r["tier"] for r in rows if r["model"] == m)) for m in models}
    for ax, bench in zip(axes[0], benchmarks):
        here = [r for r in rows if r.get("benchmark", "-") == bench]
        model_points, labels = [], {}
        for r in here:
            x, y = r[key], r["accuracy"]
            if r.get("mode") == "data":
                ax.scatter([x], [y], marker="D", color="black", s=40, zorder=4)
                ax.annotate(r["model"], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
                continue
            model_points.append((x, y))
            sweep = "no-think" if r.get("mode") == "no-think" else r.get("sweep", "base")
            ax.scatter([x], [y], marker=MARKERS.get(sweep, "o"), color=colours[r["model"]],
                       s=140 if sweep == "base" else 45, zorder=3, edgecolors="black" if sweep == "base" else "none")
            if _label(r):
                labels.setdefault((r["model"], r["tier"], round(x, 1), round(y, 4)), []).append(_label(r))
        for (_, _, x, y), texts in labels.items():  # one label per point, listing every setting that landed there
            text = texts[0] + "".join("/" + t.split("=")[-1].replace("cap ", "") for t in texts[1:])
            below = not text.startswith("τ")  # tau labels above the points, cap labels below
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(3, -11 if below else 5), fontsize=7,
                        rotation=0 if below else 25)
        for m in models:  # sweep lines, one per (model, tier, sweep), through the uncontrolled run
            for t_i, tier in enumerate(tiers_of[m]):
                mine = [r for r in here if r["model"] == m and r["tier"] == tier and r.get("mode") == "think"]
                for sweep in ("tau", "cap"):
                    line = sorted((r for r in mine if r.get("sweep") in (sweep, "base")), key=lambda r: r[key])
                    if len(line) > 1:
                        ax.plot([r[key] for r in line], [r["accuracy"] for r in line], color=colours[m],
                                ls=["-", "--", ":"][t_i % 3], lw=1.2, alpha=0.8, zorder=2)
        front = [model_points[i] for i in pareto_front(model_points)]
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", ls="--", lw=1, zorder=1)
        if front:
            ax.scatter([p[0] for p in front], [p[1] for p in front], s=260, facecolors="none", edgecolors="grey",
                       linewidths=1.2, zorder=2)
        ax.set_title(bench)
        ax.set_xlabel("mean thinking tokens" if tokens == "think" else "mean total tokens")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.03, 1.05)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[m], marker="o", ls="-", label=m) for m in models]
    handles += [
        plt.Line2D([], [], color="grey", marker=mk, ls="none", label=lab)
        for lab, mk in (("no controls", "*"), ("stop-token τ sweep", "o"), ("budget-forcing cap sweep", "s"),
                        ("cap at tier budget", "P"), ("no thinking", "X"), ("data (oracle / full traces)", "D"))
        if any(_kind(r) == lab for r in rows)
    ]
    handles.append(plt.Line2D([], [], color="grey", marker="o", markerfacecolor="none", markersize=12, ls="--",
                              label="Pareto front"))
    tiers = list(dict.fromkeys(t for m in models for t in tiers_of[m]))
    if len(tiers) > 1:
        handles += [plt.Line2D([], [], color="grey", ls=["-", "--", ":"][i % 3], label=f"tier {t}")
                    for i, t in enumerate(tiers)]
    ncol = min(len(handles), 4 if len(benchmarks) == 1 else 6)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title or "accuracy against tokens")
    fig.tight_layout(rect=(0, 0.01 + 0.04 * -(-len(handles) // ncol), 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    logger.info("Pareto plot written to %s", path)
    return path


def _kind(row: dict[str, Any]) -> str:
    if row.get("mode") == "data":
        return "data (oracle / full traces)"
    if row.get("mode") == "no-think":
        return "no thinking"
    return {"tau": "stop-token τ sweep", "cap": "budget-forcing cap sweep", "tier-cap": "cap at tier budget"}.get(
        row.get("sweep", "base"), "no controls"
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, what: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    logger.info("%s written to %s", what, path)
    return path


def length_histograms(rows: Sequence[dict[str, Any]], path: str | Path, bins: int = 20) -> Path | None:
    """Thinking-length histograms of correct (green) and wrong (red) completions, one panel per uncontrolled
    thinking row (``mode: think``, ``control: none``) that kept its lengths; ``None`` when there is none."""
    here = [r for r in rows if r.get("mode") == "think" and r.get("control", "none") == "none"
            and "think_lengths_correct" in r]
    if not here:
        return None
    plt = _pyplot()
    edges = even_edges([t for r in here for t in r["think_lengths_correct"] + r["think_lengths_wrong"]], bins)
    cols = min(3, len(here))
    fig, axes = plt.subplots(-(-len(here) // cols), cols, figsize=(4.5 * cols, 3.2 * -(-len(here) // cols)),
                             squeeze=False)
    for ax, r in zip(axes.flat, here):
        ax.hist([r["think_lengths_correct"], r["think_lengths_wrong"]], bins=edges, color=["tab:green", "tab:red"],
                label=[f"correct ({len(r['think_lengths_correct'])})", f"wrong ({len(r['think_lengths_wrong'])})"],
                stacked=False, alpha=0.8)
        ax.set_title(f"{r['model']} | {r.get('benchmark', '-')} | {r.get('tier', '-')}", fontsize=9)
        ax.set_xlabel("thinking tokens")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(here):]:
        ax.axis("off")
    return _save(fig, path, "length histograms")


def budget_curve_plot(rows: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Per budget-forcing sweep: accuracy at each thinking cap (left) and the mean thinking tokens of correct
    and wrong completions at each cap (right); ``None`` when the rows hold no ``think_caps`` sweep."""
    curves = budget_curves(rows)
    if not curves:
        return None
    plt = _pyplot()
    fig, (acc_ax, len_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, c in enumerate(curves):
        colour, pts = plt.cm.tab10(i % 10), c["points"]
        label = f"{c['model']} | {c['benchmark']} | {c['tier']}"
        caps = [p["cap"] for p in pts]
        acc_ax.plot(caps, [p["accuracy"] for p in pts], marker="s", color=colour, label=label)
        for key, style in (("think_tokens_correct_mean", "-"), ("think_tokens_wrong_mean", ":")):
            xs = [p["cap"] for p in pts if p[key] is not None]
            len_ax.plot(xs, [p[key] for p in pts if p[key] is not None], ls=style, marker="o", color=colour)
    acc_ax.set(xlabel="thinking cap (tokens)", ylabel="accuracy", ylim=(-0.03, 1.05), title="accuracy at budget")
    len_ax.set(xlabel="thinking cap (tokens)", ylabel="mean thinking tokens",
               title="thinking of correct (solid) and wrong (dotted) completions")
    acc_ax.legend(fontsize=7)
    for ax in (acc_ax, len_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path, "accuracy-at-budget curve")


def efficiency_plots(rows: Sequence[dict[str, Any]], out: str | Path) -> dict[str, Path]:
    """``length_hist.png`` and, with a budget-forcing sweep, ``budget_curve.png`` in ``out`` (beside pareto.png)."""
    found = {"length_hist": length_histograms(rows, Path(out) / "length_hist.png"),
             "budget_curve": budget_curve_plot(rows, Path(out) / "budget_curve.png")}
    return {name: p for name, p in found.items() if p is not None}
