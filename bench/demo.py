"""Run the embedded demo (init -> sft -> grpo medium -> eval), measure it, and check its figures.

``make demo`` calls this with no arguments: the four README commands (``accelerate launch train.py --stage ...``)
into ``outputs/tiny/``, then the evaluation table, each stage's wall
time and peak resident memory. ``--seeds 0 1 2`` runs the same pipeline once per seed, each into
``outputs/demo_seeds/seed<s>/`` with ``--init_seed s`` (model initialisation) and ``--seed s`` (SFT and GRPO data
order, sampling), and reports the mean and range of every figure over the seeds. ``--check`` exits 1 when a run
misses the demo's targets (CI runs it on one seed): SFT held-out greedy accuracy >= 0.95, GRPO medium at least 35%
fewer thinking tokens than SFT, at most 3 points of accuracy lost. No timing is asserted. ``--sft_args`` adds flags to
the SFT stage (an ablation of the recipe, into its own ``--work_dir``).

Every results file records the date, the machine (cores, CPU model), the thread count and the versions of the key
libraries next to the figures (``bench/results/demo.json`` by default; ``--output`` to change).

It also holds what the other benches share: ``environment``, ``machine_line``, ``write_results``, ``run_stage``, and
for the probes of trained models ``model_specs`` (their ``--models``) and ``wall_line``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# One process on a CPU: ``accelerate launch --num_processes 1`` runs ``python train.py`` (its simple launcher) after
# importing itself (~4.5 s a stage on 2 cores), so the demo starts train.py directly. The stage is the same.
TRAIN = [sys.executable, "train.py"]
LIBRARIES = ("torch", "transformers", "tokenizers", "trl", "accelerate", "datasets", "peft", "math-verify")
# The demo's targets (the README's claims); --check fails a run that misses one.
MIN_SFT_ACCURACY = 0.95
MIN_SHORTER = 0.35
MAX_ACCURACY_LOSS = 0.03
MAX_NO_THINK_ACCURACY = 0.30  # reported, not checked: thinking must be needed

logger = logging.getLogger("demo")


def stages(seed: int | None, out: Path, sft_args: Sequence[str] = ()) -> list[list[str]]:
    """The four demo commands; with a seed, each writes into its own folder under ``out``. ``sft_args``: extra
    ``train.py`` flags of the SFT stage (an ablation of the recipe, e.g. ``--num_train 14400``: 900 steps)."""
    if seed is None:
        return [["--stage", "init"], ["--stage", "sft", *sft_args], ["--stage", "grpo", "--budget", "medium"],
                ["--stage", "eval"]]
    base, sft, grpo, ev = (str(out / name) for name in ("base", "sft", "grpo", "eval"))
    return [
        ["--stage", "init", "--init_seed", str(seed), "--output_dir", base],
        ["--stage", "sft", "--seed", str(seed), "--model_name_or_path", base, "--output_dir", sft, *sft_args],
        ["--stage", "grpo", "--budget", "medium", "--seed", str(seed), "--model_name_or_path", sft,
         "--output_dir", grpo],
        ["--stage", "eval", "--models", f"[sft={sft}, grpo-medium={grpo}]", "--output_dir", ev],
    ]


def run_stage(args: list[str]) -> tuple[float, float]:
    """Run one ``train.py`` stage in its own process; its wall seconds and peak resident MB (its own process tree)."""
    logger.info("=== train.py %s", " ".join(args))
    t0 = time.perf_counter()
    # torch takes every core unless OMP_NUM_THREADS says otherwise (accelerate launch would set it to 1): the
    # Makefile sets it to the core count, and so does this script when run by hand, so both time the same demo
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)}
    proc = subprocess.Popen([*TRAIN, *args], cwd=REPO, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {' '.join(args[:2])} failed with exit code {proc.returncode}")
    return round(time.perf_counter() - t0, 1), round(usage.ru_maxrss / 1024)


def figures(rows: list[dict]) -> dict[str, float]:
    """The demo's headline figures from the eval rows (tier medium, greedy, no length control)."""

    def row(model: str, mode: str) -> dict:  # the uncontrolled run (data rows have no control)
        return next(r for r in rows if r["model"] == model and r["mode"] == mode and r.get("control") in ("none", "-"))

    sft, grpo = row("sft", "think"), row("grpo-medium", "think")
    return {
        "sft_accuracy": sft["accuracy"],
        "sft_think_tokens": sft["think_tokens_mean"],
        "no_think_accuracy": row("sft", "no-think")["accuracy"],
        "grpo_accuracy": grpo["accuracy"],
        "grpo_think_tokens": grpo["think_tokens_mean"],
        "grpo_shorter": round(1 - grpo["think_tokens_mean"] / sft["think_tokens_mean"], 4),
        "grpo_accuracy_loss": round(sft["accuracy"] - grpo["accuracy"], 4),
        "oracle_think_tokens": row("oracle", "data")["think_tokens_mean"],
        "full_trace_think_tokens": row("full traces", "data")["think_tokens_mean"],
    }


def misses(fig: dict[str, float]) -> list[str]:
    """The targets a run missed, each named with its figure."""
    out = []
    if fig["sft_accuracy"] < MIN_SFT_ACCURACY:
        out.append(f"SFT accuracy {fig['sft_accuracy']:.3f} < {MIN_SFT_ACCURACY}")
    if fig["grpo_shorter"] < MIN_SHORTER:
        out.append(f"GRPO medium only {fig['grpo_shorter']:.1%} shorter than SFT (target >= {MIN_SHORTER:.0%})")
    if fig["grpo_accuracy_loss"] > MAX_ACCURACY_LOSS:
        out.append(f"GRPO medium loses {fig['grpo_accuracy_loss']:.3f} accuracy (target <= {MAX_ACCURACY_LOSS})")
    return out


def run_demo(seed: int | None, out: Path, sft_args: Sequence[str] = ()) -> dict:
    """One pipeline run: per-stage wall time and peak memory, the figures, and the eval rows."""
    walls, peaks = {}, {}
    # The stages resume from the checkpoints of an earlier run in the same folders: figures of such a run are
    # valid, but its wall time is not that of a demo (measured: 2.3 min instead of ~11); it is flagged.
    root = out if seed is not None else REPO / "outputs/tiny"  # where stages() writes
    resumed = (root / "sft").exists()
    if resumed:
        logger.warning("%s holds an earlier run: stages resume from its checkpoints and the wall time is not a full "
                       "demo's (delete the folder to time one)", root)
    start = time.perf_counter()
    for args in stages(seed, out, sft_args):
        name = args[1]
        walls[name], peaks[name] = run_stage(args)
    eval_dir = root / "eval"
    rows = json.loads((eval_dir / "results.json").read_text())["rows"]
    result = {"seed": 0 if seed is None else seed, "resumed": resumed, "sft_args": list(sft_args),
              "wall_seconds": walls, "total_wall_seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": peaks,
              "figures": figures(rows), "rows": rows, "eval_table": str(eval_dir / "results.md")}
    result["misses"] = misses(result["figures"])
    return result


def environment() -> dict:
    """Date, machine and library versions, recorded beside every figure."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {"date": dt.date.today().isoformat(), "cores": os.cpu_count(), "cpu": cpu,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version(),
            "versions": versions}


def machine_line(env: dict) -> str:
    """The line every results table opens with: date, machine and library versions (``environment``)."""
    return (f"{env['date']}; {env['cores']} cores, {env['cpu']}; "
            + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))


def write_results(output: Path, result: dict, text: str) -> None:
    """Write a benchmark's ``result`` to ``output`` (JSON) and its markdown ``text`` beside it (``.md``)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    output.with_suffix(".md").write_text(text)


def wall_line(seconds: float) -> str:
    """The line a probe's table closes with: its wall time, models loaded included."""
    return f"Wall time: {seconds:.0f} s, models loaded included."


def model_specs(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, str]:
    """``--models name=path ...`` as ``{name: path}``; a malformed or repeated name, or a path that is neither a
    folder nor a GGUF file, is a parser error naming it."""
    from rl.model_files import resolve_model

    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--models takes name=path, got {spec!r}")
        if name in models:
            parser.error(f"--models names {name!r} twice")
        try:
            source = resolve_model(path)
        except ValueError as exc:
            parser.error(str(exc))
        if not source.gguf_file and not Path(path).is_dir():
            parser.error(f"model {name!r}: no folder {path!r} (a model folder, a .gguf file or package:<pkg>/<file>)")
        models[name] = path
    return models


def summary(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Mean, min and max over seeds of every figure and of the wall times."""
    keys = {k: [r["figures"][k] for r in runs] for k in runs[0]["figures"]}
    keys["total_wall_minutes"] = [r["total_wall_seconds"] / 60 for r in runs]
    keys["peak_rss_mb"] = [max(r["peak_rss_mb"].values()) for r in runs]
    return {k: {"mean": round(statistics.fmean(v), 4), "min": round(min(v), 4), "max": round(max(v), 4)}
            for k, v in keys.items()}


def markdown(result: dict) -> str:
    """The README's demo table: mean and range over seeds, with the machine and versions."""
    s, env = result["summary"], result["environment"]
    cell = (lambda k, f="{:.3f}": f.format(s[k]["mean"]) + (f" ({f.format(s[k]['min'])}-{f.format(s[k]['max'])})"
                                                             if len(result["runs"]) > 1 else ""))
    lines = [
        f"Seeds {', '.join(str(r['seed']) for r in result['runs'])}; {machine_line(env)}",
        "",
        "| model | accuracy | thinking tokens |",
        "|---|---|---|",
        f"| SFT on full traces | {cell('sft_accuracy')} | {cell('sft_think_tokens', '{:.1f}')} |",
        f"| SFT, thinking skipped | {cell('no_think_accuracy')} | 0 |",
        f"| GRPO medium (`tldr`) | {cell('grpo_accuracy')} | {cell('grpo_think_tokens', '{:.1f}')} |",
        f"| oracle traces (essential steps only) | - | {cell('oracle_think_tokens', '{:.1f}')} |",
        f"| full traces (the SFT data) | - | {cell('full_trace_think_tokens', '{:.1f}')} |",
        "",
        f"GRPO medium is {cell('grpo_shorter', '{:.1%}')} shorter than SFT; wall time "
        f"{cell('total_wall_minutes', '{:.1f}')} min; peak memory of a stage {cell('peak_rss_mb', '{:.0f}')} MB.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", help="one run per seed under outputs/demo_seeds/ "
                        "(default: the README's commands, outputs/tiny/)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a run misses the demo's targets")
    parser.add_argument("--output", type=Path, default=None,
                        help="results JSON (default bench/results/demo.json, with --seeds demo_seeds.json)")
    parser.add_argument("--sft_args", type=shlex.split, default=[],
                        help="extra train.py flags of the SFT stage, one string (an ablation: '--num_train 14400')")
    parser.add_argument("--work_dir", type=Path, default=REPO / "outputs/demo_seeds",
                        help="where --seeds runs write, a folder per seed (default outputs/demo_seeds)")
    parser.add_argument("--collect", type=Path, nargs="*",
                        help="summarise the per-seed results files of separate runs (no stage is run)")
    args = parser.parse_args(argv)
    if args.sft_args and not args.seeds:
        parser.error("--sft_args needs --seeds: an ablation runs into --work_dir, never into outputs/tiny/")
    if args.sft_args and args.output is None:
        parser.error("--sft_args needs --output: an ablation's results never replace bench/results/demo_seeds.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = args.output or REPO / "bench/results" / ("demo_seeds.json" if args.seeds or args.collect else "demo.json")
    runs = [run for f in args.collect or [] for run in json.loads(f.read_text())["runs"]]
    for seed in [] if args.collect else args.seeds or [None]:
        runs.append(run_demo(seed, args.work_dir / f"seed{seed}", args.sft_args))
        fig = runs[-1]["figures"]
        logger.info("seed %s: SFT %.3f at %.1f thinking tokens, no-think %.3f, GRPO medium %.3f at %.1f (%.1f%% "
                    "shorter), %.1f min", runs[-1]["seed"], fig["sft_accuracy"], fig["sft_think_tokens"],
                    fig["no_think_accuracy"], fig["grpo_accuracy"], fig["grpo_think_tokens"],
                    100 * fig["grpo_shorter"], runs[-1]["total_wall_seconds"] / 60)
    env = json.loads(args.collect[0].read_text())["environment"] if args.collect else environment()
    result = {"environment": env, "summary": summary(runs), "runs": runs}
    text = markdown(result)
    write_results(output, result, text)
    print("\n" + Path(runs[-1]["eval_table"]).read_text() if not (args.seeds or args.collect) else "")
    print(text)
    logger.info("written to %s and %s", output, output.with_suffix(".md"))
    missed = [f"seed {r['seed']}: {m}" for r in runs for m in r["misses"]]
    for m in missed:
        logger.error("target missed: %s", m)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
