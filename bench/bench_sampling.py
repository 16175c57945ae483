"""Dynamic sampling against the pool refresh and against neither: what reaches the loss, what it costs, what it gives.

Run from the repository root:  .venv/bin/python bench/bench_sampling.py [--seeds 0 1 2]   (``make sampling``)

Three GRPO runs per seed from the same SFT model, same seed, steps, ``--num_train`` problems and reward
(``correctness`` alone, so a zero-variance group is a prompt whose generations were all right or all wrong), each in
its own process through ``train.py --stage grpo`` (``bench_refresh.run_grpo``; recipe ``configs/tiny/grpo.yaml``,
4 prompts x 8 generations per step, one generation batch per optimizer step):

- ``off``: neither (``refresh_every: 0``);
- ``on``: the pool refresh (``--refresh_pool 16 --refresh_every 4``, as ``bench/bench_refresh.py``);
- ``dynamic``: DAPO dynamic sampling (``--dynamic_sampling true --max_gen_rounds 3``, ``rl.dynamic_sampling``).

Then one ``--stage eval`` of the trained models on the held-out test split of the same task (greedy, thinking on).
Per arm: (a) the zero-variance share of the groups that reach the loss, (b) the extra generation per step, (c) the
held-out accuracy and mean thinking tokens, (d) wall seconds.

(a) For off and on every generated group reaches the loss: TRL's ``frac_reward_zero_std``. For dynamic, TRL logs
``frac_reward_zero_std`` once per generation *round* (the subclass calls TRL's method per round) and averages the
rounds of a step, so there it is the share among the *generated* groups, the filtered-out ones included (equal to
``dynamic_sampling/zero_variance_generated``, rounds being of one size); the share of the merged batch that reaches
the loss is ``dynamic_sampling/zero_variance_in_loss``, which is what the table reports. (b) Completions generated
per optimizer step relative to the plain batch: 1 for off and on, 1 + ``dynamic_sampling/extra_rounds`` for dynamic
(each round is one plain batch). The rollout accuracy of dynamic is likewise over every generated completion.

Default task: ``--synthetic "{min_ops: 2, max_ops: 6}"``, where prompts differ in difficulty for the SFT model
(trained on 2-4 operations; see ``bench/bench_refresh.py``), so both methods have zero-variance groups to act on.
Writes ``bench/results/sampling.json`` and ``.md`` with the machine, thread count and library versions;
``--work_dir D --reuse`` reads the runs (and the evaluation) already finished in D. The run folders are named as
``bench_refresh.py`` names them (``off-s0``, ``on-s0``), so its work folder can be reused for the first two arms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_refresh import ZERO, _mean, _model_recipe, across_seeds, run_grpo  # noqa: E402
from demo import environment  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sampling.json"
ARMS = ("off", "on", "dynamic")
HARD = "{min_ops: 2, max_ops: 6}"
DS = "dynamic_sampling/"


def arm_args(arm: str, args: argparse.Namespace) -> list[str]:
    """The ``train.py`` options that make an arm (beyond the shared model, seed, steps, rewards and task)."""
    common = ["--num_train", str(args.num_train)]
    return common + {
        "off": ["--refresh_every", "0"],
        "on": ["--refresh_every", str(args.refresh_every), "--refresh_pool", str(args.pool)],
        "dynamic": ["--refresh_every", "0", "--dynamic_sampling", "true", "--max_gen_rounds", str(args.max_gen_rounds)],
    }[arm]


def arm_summary(run: dict, first_refresh: int) -> dict:
    """One run's training figures (module docstring): zero-variance share of the groups in the loss and of the
    generated ones, generation per step relative to the plain batch, rollout accuracy, wall seconds."""
    steps = run["steps"]
    dynamic = any(DS + "zero_variance_in_loss" in h for h in steps)
    in_loss = [h[DS + "zero_variance_in_loss"] if dynamic else h[ZERO] for h in steps]
    generated = [h[DS + "zero_variance_generated"] if dynamic else h[ZERO] for h in steps]
    extra = [h[DS + "extra_rounds"] if dynamic else 0.0 for h in steps]
    accuracy = [h.get("rewards/correctness/mean", h.get("reward")) for h in steps]
    seconds = run["seconds"]
    return {
        "zero_variance_in_loss": _mean(in_loss),
        "zero_variance_in_loss_after_first_refresh": _mean(in_loss[first_refresh:]),
        "zero_variance_generated": _mean(generated),
        "extra_rounds_per_step": _mean(extra),
        "generated_per_step": _mean([1.0 + e for e in extra]),  # x the plain batch
        "extra_completions_per_step": _mean([e * run["batch"] for e in extra]) if run.get("batch") else None,
        "rollout_accuracy": _mean(accuracy),
        "wall_seconds": float(seconds) if seconds is not None else None,
        "seconds_per_step": round(seconds / len(steps), 2) if seconds is not None else None,
        "zero_variance_in_loss_per_step": [round(z, 4) for z in in_loss],
        "extra_rounds_per_step_list": [int(e) for e in extra],
    }


def eval_figures(rows: list[dict], label: str) -> dict:
    """Held-out accuracy, mean thinking tokens and truncation rate of one model (thinking, no control)."""
    row = next(r for r in rows if r["model"] == label and r["mode"] == "think" and r["control"] == "none")
    return {"eval_accuracy": row["accuracy"], "eval_think_tokens": round(row["think_tokens_mean"], 2),
            "eval_truncated": row.get("truncated")}


def run_eval(models: dict[str, Path], out: Path, args: argparse.Namespace) -> list[dict]:
    """One ``--stage eval`` of every trained model (or, with ``--reuse``, the rows already in ``out`` when they
    hold every model at ``--num_test`` problems and are newer than every model)."""
    results = out / "results.json"
    if args.reuse and results.is_file():
        rows = json.loads(results.read_text())["rows"]
        sizes = {r["model"]: r["n"] for r in rows if r["mode"] == "think"}
        newer = all(results.stat().st_mtime > (path / "model.safetensors").stat().st_mtime
                    for path in models.values() if (path / "model.safetensors").is_file())
        if newer and all(sizes.get(label) == args.num_test for label in models):
            print(f"[eval] reusing {out}", flush=True)
            return rows
    spec = "[" + ", ".join(f"{label}={path}" for label, path in models.items()) + "]"
    cmd = [sys.executable, "train.py", "--stage", "eval", "--models", spec, "--num_test", str(args.num_test),
           "--no_thinking", "false", "--plot", "false", "--output_dir", str(out),
           *(["--synthetic", args.synthetic] if args.synthetic else [])]
    print(f"[eval] {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"[eval] failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    print(f"[eval] {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(results.read_text())["rows"]


COLUMNS = (  # (key, header, format)
    ("zero_variance_in_loss", "zero-var share in loss", "{:.3f}"),
    ("zero_variance_generated", "zero-var share generated", "{:.3f}"),
    ("generated_per_step", "generated / plain batch", "{:.2f}x"),
    ("extra_rounds_per_step", "extra rounds / step", "{:.2f}"),
    ("rollout_accuracy", "rollout accuracy", "{:.3f}"),
    ("eval_accuracy", "held-out accuracy", "{:.3f}"),
    ("eval_think_tokens", "thinking tokens", "{:.1f}"),
    ("wall_seconds", "wall s", "{:.0f}"),
)


def markdown(result: dict) -> str:
    """The table: one row per arm (mean over seeds), then one per arm and seed when there are several."""
    env = result["environment"]

    def line(name: str, figures: dict) -> str:
        cells = [fmt.format(figures[k]) if figures.get(k) is not None else "-" for k, _, fmt in COLUMNS]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines = [
        f"{result['steps']} GRPO steps, seeds {', '.join(map(str, result['seeds']))}, {result['num_train']} train "
        f"problems, task {result['synthetic']}, reward {result['rewards']}; held-out: {result['num_test']} test "
        f"problems, greedy. {env['date']}; {env['cores']} cores, {env['cpu']}; OMP_NUM_THREADS "
        f"{env['omp_num_threads']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        "| arm | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
        *(line(f"{arm} ({result['arms'][arm]['options']})", result["arms"][arm]) for arm in ARMS),
    ]
    if len(result["seeds"]) > 1:
        lines += [line(f"{arm} seed {s['seed']}", s) for arm in ARMS for s in result["arms"][arm]["per_seed"]]
    lines += ["", "zero-var share in loss: for off and on TRL's `frac_reward_zero_std`; for dynamic "
              "`dynamic_sampling/zero_variance_in_loss` (the merged batch). generated / plain batch: completions "
              "generated per optimizer step over the plain batch (1 + extra rounds)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="outputs/tiny/sft", help="SFT model to start from")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run of every arm per seed")
    parser.add_argument("--num_train", type=int, default=2000, help="train problems (on: pool + reserve)")
    parser.add_argument("--pool", type=int, default=16, help="pool slots of the on arm")
    parser.add_argument("--refresh_every", type=int, default=4)
    parser.add_argument("--max_gen_rounds", type=int, default=3, help="rounds per step of the dynamic arm")
    parser.add_argument("--rewards", default="[{name: correctness, weight: 1.0}]")
    parser.add_argument("--synthetic", default=HARD, help="synthetic task knobs of every run and the evaluation "
                        "('' : the SFT model's task)")
    parser.add_argument("--num_test", type=int, default=300, help="held-out problems of the evaluation")
    parser.add_argument("--work_dir", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs found in --work_dir")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        raise SystemExit(f"model {args.model!r} not found: train one with --stage sft (see README)")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_sampling_"))
    per_seed: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    models = {}
    for seed in args.seeds:
        for arm in ARMS:
            out = work / f"{arm}-s{seed}"
            run = run_grpo(f"{arm} seed {seed}", args.model, out, args, seed, arm_args(arm, args))
            per_seed[arm].append({"seed": seed, **arm_summary(run, args.refresh_every)})
            models[f"{arm}-s{seed}"] = out
    rows = run_eval(models, work / "eval", args)
    for arm in ARMS:
        for s in per_seed[arm]:
            s.update(eval_figures(rows, f"{arm}-s{s['seed']}"))
    result = {
        "command": "bench/bench_sampling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model, "model_recipe": _model_recipe(Path(args.model)),
        "recipe": "configs/tiny/grpo.yaml (medium tier, 4 prompts x 8 generations per step)",
        "rewards": args.rewards, "synthetic": args.synthetic or "the SFT model's task (2-4 operations)",
        "steps": args.steps, "seeds": args.seeds, "num_train": args.num_train, "num_test": args.num_test,
        "arms": {arm: {"options": " ".join(arm_args(arm, args)[2:]), **across_seeds(per_seed[arm])} for arm in ARMS},
        "metric": "zero_variance_in_loss: share of the groups reaching the loss whose rewards are all equal (off, "
                  f"on: TRL's {ZERO}; dynamic: {DS}zero_variance_in_loss); generated_per_step: completions "
                  "generated per optimizer step over the plain batch",
        "environment": environment(),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {output} and {output.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
