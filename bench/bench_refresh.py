"""On-policy data refresh: the share of zero-variance GRPO groups with the refresh off and on.

Run from the repository root:  .venv/bin/python bench/bench_refresh.py [--model outputs/tiny/sft]

Two GRPO runs of the embedded task (``configs/tiny/grpo.yaml``: medium tier, 4 prompts x 8 generations per step),
same model, seed, steps and ``--num_train`` problems, each in its own process through ``train.py --stage grpo``
(about 2-3 minutes each on a 2-core CPU; ``--seeds 0 1 2`` runs one pair per seed and reports the means):

- ``off``: the plain stage (``refresh_every: 0``): the sampler walks the ``num_train`` problems;
- ``on``: the first ``--pool`` problems are the pool, refreshed every ``--refresh_every`` steps from the others
  (``rl.refresh``). The pool is small, so the sampler comes back to every slot once per epoch (pool / 4 steps) and
  what survives a refresh is trained on again.

The share of zero-variance groups is reported over all steps and after the first refresh (before it the on run
has not selected anything yet). The on run's ``pool/survivor_zero_variance_share`` (prompts kept with mixed
results, on their next visit) against ``pool/newcomer_zero_variance_share`` (fresh prompts) shows whether the
policy's pass rates differ between prompts at all: a refresh can only lower the share when they do.

A refresh can only help where prompts differ in difficulty for the policy. ``--synthetic "{min_ops: 2, max_ops: 6}"``
gives both runs such a task: the SFT model (trained on 2-4 operations) solves problems of 5-6 operations rarely,
the others about 70% of the time (eval at temperature 1, 100 problems per operation count: 2 ops 0.77, 4 ops
0.69, 5 ops 0.13, 6 ops 0.05). Results: ``bench/results/refresh_ops2-6.json``; on the SFT task: ``refresh.json``.

The reward is ``correctness`` alone, so a zero-variance group (TRL's ``frac_reward_zero_std``, logged every step)
is exactly a prompt whose generations were all right or all wrong. (With the recipe's ``tldr`` length penalty
almost no group has zero variance: lengths differ, so rewards differ.) Writes bench/results/refresh.json;
``--work_dir D --reuse`` reads runs already finished in D instead of training them again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "refresh.json"
ZERO = "frac_reward_zero_std"
WALL = "bench_seconds.json"  # beside a finished run: its wall seconds, read back with --reuse


def run_grpo(label: str, model: str, out: Path, args: argparse.Namespace, seed: int, extra: list[str]) -> dict:
    """One GRPO run in a fresh process (or, with ``--reuse``, a finished one in ``out``): its per-step log and wall
    seconds (``None`` for a reused run that predates the ``bench_seconds.json`` beside it)."""
    cmd = [sys.executable, "train.py", "--stage", "grpo", "--model_name_or_path", model, "--output_dir", str(out),
           "--max_steps", str(args.steps), "--save_steps", str(args.steps), "--logging_steps", "1",
           "--seed", str(seed), "--report_to", "none", "--rewards", args.rewards,
           "--grading", "{workers: 0}", *(["--synthetic", args.synthetic] if args.synthetic else []), *extra]
    state_file = out / f"checkpoint-{args.steps}" / "trainer_state.json"
    seconds = None
    if not (args.reuse and state_file.is_file()):
        print(f"[{label}] {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True,
                              text=True)
        seconds = round(time.perf_counter() - start, 1)
        if proc.returncode != 0:
            raise SystemExit(f"[{label}] failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        (out / WALL).write_text(json.dumps({"seconds": seconds}) + "\n")
    else:
        print(f"[{label}] reusing {out}", flush=True)
        if (out / WALL).is_file():  # the wall time of the run that wrote it
            seconds = json.loads((out / WALL).read_text())["seconds"]
    state = json.loads(state_file.read_text())
    steps = [h for h in state["log_history"] if ZERO in h]
    if [h["step"] for h in steps] != list(range(1, args.steps + 1)):
        raise SystemExit(f"[{label}] expected a log entry per step, got steps {[h['step'] for h in steps]}")
    return {"seconds": seconds, "steps": steps, "pool": [h for h in state["log_history"] if "pool/size" in h],
            "batch": state.get("train_batch_size")}


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summary(run: dict, first_refresh: int) -> dict:
    """One run's figures: zero-variance share and rollout accuracy over all steps and after the first refresh."""
    zero = [h[ZERO] for h in run["steps"]]
    accuracy = [h.get("rewards/correctness/mean", h.get("reward")) for h in run["steps"]]
    out = {
        "zero_variance_share_mean": _mean(zero),
        "zero_variance_share_after_first_refresh": _mean(zero[first_refresh:]),
        "rollout_accuracy_mean": _mean(accuracy),
        "rollout_accuracy_after_first_refresh": _mean(accuracy[first_refresh:]),
    }
    for group in ("survivor", "newcomer"):  # on run only: mean over the refreshes that saw such prompts
        key = f"pool/{group}_zero_variance_share"
        values = [h[key] for h in run["pool"] if key in h]
        if run["pool"]:
            out[f"{group}_zero_variance_share_mean"] = _mean(values)
    out["zero_variance_share_per_step"] = [round(z, 4) for z in zero]
    out["seconds"] = run["seconds"]
    return out


def across_seeds(per_seed: list[dict]) -> dict:
    """Mean over seeds of every figure, and the per-seed figures."""
    keys = [k for k, v in per_seed[0].items() if isinstance(v, float) and k != "seconds"]
    return {**{k: _mean([s[k] for s in per_seed if s.get(k) is not None]) for k in keys}, "per_seed": per_seed}


def _model_recipe(model: Path) -> dict | None:
    """What the model was trained as (its ``lcrl_config.json``), so a copy of outputs/tiny/sft is recognisable."""
    path = model / "lcrl_config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    return {k: config.get(k) for k in ("stage", "output_dir", "num_train", "num_train_epochs", "max_steps", "budget")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="outputs/tiny/sft", help="SFT model to start from")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--pool", type=int, default=16, help="pool slots of the on run")
    parser.add_argument("--refresh_every", type=int, default=4)
    parser.add_argument("--num_train", type=int, default=2000, help="train problems (on: pool + reserve)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one off/on pair per seed")
    parser.add_argument("--rewards", default="[{name: correctness, weight: 1.0}]")
    parser.add_argument("--synthetic", default=None,
                        help="synthetic task knobs of both runs, e.g. '{min_ops: 2, max_ops: 6}' (default: the SFT task)")
    parser.add_argument("--work_dir", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs found in --work_dir")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        raise SystemExit(f"model {args.model!r} not found: train one with --stage sft (see README)")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_refresh_"))
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    pool_logs = {}
    for seed in args.seeds:
        off = run_grpo(f"off seed {seed}", args.model, work / f"off-s{seed}", args, seed,
                       ["--num_train", str(args.num_train), "--refresh_every", "0"])
        on = run_grpo(f"on seed {seed}", args.model, work / f"on-s{seed}", args, seed, [
            "--num_train", str(args.num_train), "--refresh_every", str(args.refresh_every),
            "--refresh_pool", str(args.pool)])
        runs["off"].append({"seed": seed, **summary(off, args.refresh_every)})
        runs["on"].append({"seed": seed, **summary(on, args.refresh_every)})
        pool_logs[str(seed)] = [{k: round(v, 4) for k, v in h.items() if k.startswith("pool/") or k == "step"}
                                for h in on["pool"]]
    result = {
        "command": "bench/bench_refresh.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model,
        "model_recipe": _model_recipe(Path(args.model)),
        "recipe": "configs/tiny/grpo.yaml (medium tier, 4 prompts x 8 generations per step)",
        "rewards": args.rewards,
        "synthetic": args.synthetic or "the SFT model's task (2-4 operations)",
        "steps": args.steps, "seeds": args.seeds, "num_train": args.num_train, "pool": args.pool,
        "refresh_every": args.refresh_every,
        "metric": f"TRL's {ZERO}: share of prompt groups whose rewards (correctness) are all equal, per step",
        "off": across_seeds(runs["off"]),
        "on": across_seeds(runs["on"]),
        "on_pool_log": pool_logs,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "torch_threads": os.environ.get("OMP_NUM_THREADS", "default")},
    }
    for key in ("zero_variance_share_mean", "zero_variance_share_after_first_refresh"):
        result[f"delta_{key}"] = round(result["on"][key] - result["off"][key], 4)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':10}{'zero-var share (all steps)':>28}{'after 1st refresh':>20}{'accuracy':>10}")
    for label in ("off", "on"):
        for s in [*result[label]["per_seed"], {"seed": "mean", **result[label]}]:
            print(f"{label + ' ' + str(s['seed']):10}{s['zero_variance_share_mean']:>28.3f}"
                  f"{s['zero_variance_share_after_first_refresh']:>20.3f}{s['rollout_accuracy_mean']:>10.3f}")
    print(f"on runs, zero-variance share of prompts kept with mixed results, on their next visit: "
          f"{result['on']['survivor_zero_variance_share_mean']}; of fresh prompts: "
          f"{result['on']['newcomer_zero_variance_share_mean']}")
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
