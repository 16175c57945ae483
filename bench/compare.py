"""Compare reward recipes on the embedded task: GRPO from one SFT model per recipe, one evaluation, one report.

Run from the repository root (``make compare`` runs it with ``STEPS``, ``BUDGET`` and ``RECIPES``):

    .venv/bin/python bench/compare.py --recipes tldr kimi l1_max shorter_better smartthinker alp laser dler \
        --steps 60 --budget medium

Every recipe trains through the real command line, with the same SFT model, seed, steps, budget and GRPO recipe
(``configs/tiny/grpo.yaml``), only the rewards differing:

    accelerate launch train.py --stage grpo --rewards <recipe> --output_dir outputs/compare/<recipe> \\
        --experiment compare-<tag> --max_steps <steps> --budget <budget> --model_name_or_path <sft> ...

A recipe is a name (``tldr``: ``--rewards tldr``, a reward recipe under ``configs/rewards/``; a recipe's
``trainer:`` values, such as DLER's ``scale_rewards: batch``, apply to its run only) or
``label=<YAML list>`` (``'short=[{name: tldr, weight: 1.0}]'``: the list is passed as ``--rewards``). All recipes
are validated with ``--dry_run`` before any training. Then one ``--stage eval`` (``configs/tiny/eval.yaml``)
evaluates the SFT model and every recipe's model on the held-out test split, at the chosen budget (every tier for
``mixed``), and ``rl.compare`` writes the table (``compare.md``, ``compare.json``: accuracy, mean thinking and
total tokens, within-budget share, truncation, accuracy per 1k thinking tokens, OptimalThinkingBench's
overthinking-adjusted accuracy with ``--otb_t_max``, the AES against the SFT model, training wall time, the Pareto
front), the Pareto plot (``pareto.png``, front ringed) and the correct-vs-wrong length histograms
(``length_hist.png``) to ``--out``; the table is copied to ``bench/results/compare.md``. All W&B runs share the
group ``compare-<tag>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rl.compare import comparison_rows, markdown_comparison, write_comparison  # noqa: E402

ACCELERATE = [str(Path(sys.executable).with_name("accelerate")), "launch", "--num_processes", "1"]
GRPO_RECIPE = "configs/tiny/grpo.yaml"
EVAL_RECIPE = "configs/tiny/eval.yaml"
TIERS = ("short", "medium", "long")
DEFAULT_RECIPES = ["tldr", "kimi", "l1_max", "shorter_better", "smartthinker", "alp", "laser", "dler"]


def parse_recipe(text: str) -> tuple[str, str]:
    """``name`` or ``label=<rewards YAML>`` -> (label, value of ``--rewards``)."""
    label, sep, spec = text.partition("=")
    label = label.strip()
    if not label or not label.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"recipe label {label!r} must be letters, digits, '_' or '-' (it names a folder)")
    return (label, spec.strip()) if sep else (label, label)


def grpo_args(args: argparse.Namespace, label: str, rewards: str, experiment: str) -> list[str]:
    """The ``train.py`` arguments of one recipe's GRPO run: everything but the rewards is shared."""
    return [
        "--stage", "grpo", "--config", args.grpo_config, "--rewards", rewards,
        "--model_name_or_path", args.sft, "--output_dir", str(args.out / label), "--budget", args.budget,
        "--max_steps", str(args.steps), "--seed", str(args.seed), "--experiment", experiment,
        "--run_name", f"grpo-{args.budget}-{label}",
    ]


def eval_args(args: argparse.Namespace, labels: list[str], experiment: str) -> list[str]:
    """The ``train.py`` arguments of the one evaluation of the SFT model and every recipe's model."""
    tiers = list(TIERS) if args.budget == "mixed" else [args.budget]
    models = [f"sft={args.sft}", *(f"{label}={args.out / label}" for label in labels)]
    return [
        "--stage", "eval", "--config", args.eval_config, "--models", *models, "--output_dir", str(args.out / "eval"),
        "--budget", args.budget, "--eval_tiers", *tiers, "--num_test", str(args.num_test), "--no_thinking", "false",
        "--plot", "false", "--experiment", experiment, "--aes_base", "sft", "--otb_t_max", str(args.otb_t_max),
    ]


def launch(train_args: list[str]) -> float:
    """Run ``accelerate launch train.py ...``; returns its wall time, exits on failure."""
    print(f"\n=== accelerate launch train.py {' '.join(train_args)}", flush=True)
    start = time.perf_counter()
    code = subprocess.run([*ACCELERATE, "train.py", *train_args], cwd=ROOT).returncode
    if code != 0:
        sys.exit(f"train.py {' '.join(train_args[:2])} failed with exit code {code}")
    return round(time.perf_counter() - start, 1)


def validate(all_args: list[list[str]]) -> None:
    """``--dry_run`` every command in this process: bad recipes fail before any training starts."""
    import train

    for train_args in all_args:
        if train.main([*train_args, "--dry_run", "true"]) != 0:
            sys.exit(f"recipe check failed: train.py {' '.join(train_args)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES,
                        help="reward recipes: a name (configs/rewards/<name>.yaml) or label=<rewards YAML list>")
    parser.add_argument("--steps", type=int, default=60, help="GRPO steps per recipe")
    parser.add_argument("--budget", default="medium", choices=[*TIERS, "mixed"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft", default="outputs/tiny/sft", help="the SFT model every recipe starts from")
    parser.add_argument("--num_test", type=int, default=300, help="held-out test problems")
    parser.add_argument("--otb_t_max", type=int, default=200,
                        help="OptimalThinkingBench t_max of the overthinking-adjusted accuracy (thinking ~40-100 here)")
    parser.add_argument("--tag", default=time.strftime("%Y%m%d"), help="W&B group: compare-<tag>")
    parser.add_argument("--out", type=Path, default=Path("outputs/compare"))
    parser.add_argument("--grpo_config", default=GRPO_RECIPE)
    parser.add_argument("--eval_config", default=EVAL_RECIPE)
    parser.add_argument("--keep", action="store_true",
                        help="reuse a recipe's finished model in --out instead of retraining it")
    parser.add_argument("--table", default="bench/results/compare.md", help="where the table is copied ('' to skip)")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths (--sft, --out, recipes) are the repository's, as for train.py
    if not Path(args.sft, "config.json").is_file():
        parser.error(f"no SFT model at {args.sft}: train one first (accelerate launch train.py --stage sft)")
    try:
        recipes = dict(parse_recipe(r) for r in args.recipes)
    except ValueError as exc:
        parser.error(str(exc))
    if len(recipes) != len(args.recipes) or "sft" in recipes:
        parser.error("recipe labels must be distinct and not 'sft'")
    experiment = f"compare-{args.tag}"
    runs = {label: grpo_args(args, label, rewards, experiment) for label, rewards in recipes.items()}
    validate([*runs.values(), eval_args(args, list(recipes), experiment)])

    info, previous = {}, _previous_walls(args.out)
    for label, train_args in runs.items():
        out = args.out / label
        if args.keep and (out / "model.safetensors").is_file():
            print(f"\n=== {label}: reusing the finished model in {out}", flush=True)
            wall = previous.get(label)
        else:
            if out.exists():
                shutil.rmtree(out)  # a fresh run: the stage would otherwise resume from its checkpoints
            wall = launch(train_args)
        info[label] = {"rewards": recipes[label], "wall_seconds": wall, "steps": args.steps,
                       "command": "accelerate launch train.py " + " ".join(train_args)}
    eval_wall = launch(eval_args(args, list(recipes), experiment))

    eval_rows = json.loads((args.out / "eval" / "results.json").read_text())["rows"]
    rows = comparison_rows(eval_rows, info)
    meta = {"experiment": experiment, "budget": args.budget, "steps": args.steps, "seed": args.seed,
            "sft": args.sft, "num_test": args.num_test, "grpo_config": args.grpo_config,
            "eval_config": args.eval_config, "eval_wall_seconds": eval_wall, "otb_t_max": args.otb_t_max,
            "recipes": info}
    paths = write_comparison(rows, args.out, meta, eval_rows=eval_rows)
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["md"], args.table)
    print("\n" + markdown_comparison(rows))
    copied = f"; table copied to {args.table}" if args.table else ""
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}{copied}")
    return 0


def _previous_walls(out: Path) -> dict[str, float]:
    """Training wall times recorded by an earlier comparison in ``out`` (for ``--keep``)."""
    try:
        recipes = json.loads((out / "compare.json").read_text())["recipes"]
        return {label: r.get("wall_seconds") for label, r in recipes.items()}
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


if __name__ == "__main__":
    sys.exit(main())
