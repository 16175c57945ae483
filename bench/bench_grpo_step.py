"""GRPO step time: lcrl's ``--stage grpo`` against a bare TRL ``GRPOTrainer`` built by hand, side by side.

Run from the repository root:  .venv/bin/python bench/bench_grpo_step.py [--model outputs/tiny/sft]

Both sides train the same model on the same data with the same reward functions, weights and ``GRPOConfig``
settings (the embedded recipe ``configs/tiny/grpo.yaml``, with a few steps, ``logging_steps: 1`` and no
checkpoints):

- ``ours``: the stage's own run path, ``rl.stages.grpo.run`` on the recipe parsed by ``rl.recipes.parse_args``
  (recipe parsing, registry rewards with the per-tier metrics wrapper, W&B set-up, the config callback, the task
  dataset, the final save). The only changes: a timing callback is attached, and the progress bar removed, when
  the stage calls ``train_and_save``.
- ``bare``: ``GRPOConfig(**recipe keys)`` built directly from the YAML, the model loaded with
  ``AutoModelForCausalLM``, the same dataset rows, and the recipe's reward functions from the registry without
  the metrics wrapper, handed to ``trl.GRPOTrainer``.

The two alternate in one process (ours first in even repetitions, bare first in odd ones); both drop
transformers' progress bar (the bench prints its own table). A step is the wall time between consecutive
``on_step_end`` callbacks (the first from its ``on_step_begin``): generation, rewards, loss, optimizer, logging
and callbacks; the process CPU time of the same interval is recorded too (steadier on a shared machine). The
first ``--warmup`` steps of every run are dropped; the correctness grader's cache is cleared before every run.
With the same seed both sides generate the same completions, so the steps are also compared pairwise (step k of
ours against step k of bare in the same repetition), and the logged rewards, losses and lengths must match.
The time inside the reward functions is measured on both sides as well: the one piece of per-step work the
stage adds is the per-tier metrics wrapper around the first reward. Torch runs on one thread. Writes ``bench/results/grpo_step.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["WANDB_MODE"] = "disabled"  # both sides log nowhere; W&B set-up code still runs on ours
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, ProgressCallback, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

import rl.stages.grpo as grpo_stage  # noqa: E402
from data.budgets import resolve_tiers  # noqa: E402
from rewards import RewardContext, build_rewards  # noqa: E402
from rewards.correctness import get_grader  # noqa: E402
from rewards.recipes import resolve_rewards  # noqa: E402
from rl.config import LcrlArguments  # noqa: E402
from rl.recipes import load_recipe, parse_args  # noqa: E402
from rl.stages import stage_types  # noqa: E402
from rl.stages.common import task_dataset  # noqa: E402

RECIPE = ROOT / "configs" / "tiny" / "grpo.yaml"
RESULTS = ROOT / "bench" / "results" / "grpo_step.json"
# differ by design between the two sides (paths, names, where to report)
IGNORED_CONFIG_KEYS = {"output_dir", "logging_dir", "run_name", "report_to"}


class StepTimer(TrainerCallback):
    """Wall-clock and process CPU seconds of every optimizer step, between consecutive ``on_step_end`` calls.

    The CPU time (this process, all its threads; not the grading workers) is less sensitive than the wall time to
    other work on a shared machine.
    """

    def __init__(self) -> None:
        self.marks: list[float] = []
        self.cpu_marks: list[float] = []

    def _mark(self) -> None:
        self.marks.append(time.perf_counter())
        self.cpu_marks.append(time.process_time())

    def on_step_begin(self, args, state, control, **kwargs):
        if not self.marks:
            self._mark()

    def on_step_end(self, args, state, control, **kwargs):
        self._mark()

    @property
    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]

    @property
    def cpu_steps(self) -> list[float]:
        return [b - a for a, b in zip(self.cpu_marks, self.cpu_marks[1:])]


class TimedRewards:
    """Time spent in the trainer's reward functions, per call (one call per function and step here).

    Installed on both sides after the trainer is built: it separates the one piece of per-step work ours adds
    (the per-tier metrics wrapper around the first reward) from the noise of the whole step.
    """

    def __init__(self, trainer) -> None:
        self.seconds: list[float] = []
        trainer.reward_funcs[:] = [self._wrap(f) for f in trainer.reward_funcs]

    def _wrap(self, func):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - start)

        timed.__name__ = getattr(func, "__name__", "reward")
        return timed

    def per_step(self, funcs: int) -> list[float]:
        return [sum(self.seconds[i : i + funcs]) for i in range(0, len(self.seconds), funcs)]


def overrides(steps: int) -> dict[str, Any]:
    """Recipe settings both sides change: a short run that logs every step and writes no checkpoint."""
    return {"max_steps": steps, "logging_steps": 1, "save_strategy": "no"}


def _trajectory(trainer) -> list[dict[str, float]]:
    keep = ("loss", "reward", "completions/mean_length")
    return [{k: h[k] for k in keep if k in h} for h in trainer.state.log_history if "reward" in h]


def _result(timer: StepTimer, start: float, trainer, rewards: TimedRewards) -> dict[str, Any]:
    """Step times, set-up time (start to the first step), logged trajectory, TRL's step_time, the config."""
    return {"steps": timer.steps, "cpu_steps": timer.cpu_steps, "setup_s": timer.marks[0] - start,
            "reward_s": rewards.per_step(len(trainer.reward_funcs)),
            "trajectory": _trajectory(trainer), "config": trainer.args.to_dict(),
            "trl_step_time": [h["step_time"] for h in trainer.state.log_history if "step_time" in h]}


def run_ours(model: str, out: Path, steps: int) -> dict[str, Any]:
    """One run of ``rl.stages.grpo.run`` on the parsed recipe, timed per step."""
    start = time.perf_counter()
    flags = [f"--{k}={v}" for k, v in {"model_name_or_path": model, "output_dir": out, **overrides(steps)}.items()]
    run = parse_args(["--stage", "grpo", "--config", str(RECIPE), *flags], stage_types())
    timer, seen = StepTimer(), {}
    original = grpo_stage.train_and_save

    def timed(trainer, parsed, resume):
        trainer.add_callback(timer)
        trainer.remove_callback(ProgressCallback)  # on both sides: the step table is the output
        seen["trainer"], seen["rewards"] = trainer, TimedRewards(trainer)
        return original(trainer, parsed, resume)

    with mock.patch.object(grpo_stage, "train_and_save", timed):
        grpo_stage.run(run)
    return _result(timer, start, seen["trainer"], seen["rewards"])


def run_bare(model: str, out: Path, steps: int) -> dict[str, Any]:
    """TRL's ``GRPOTrainer`` built by hand from the same recipe values, timed per step."""
    start = time.perf_counter()
    values = load_recipe(RECIPE)
    grpo_keys = {f.name for f in fields(GRPOConfig)}
    settings = {k: v for k, v in values.items() if k in grpo_keys}
    settings.update(overrides(steps), output_dir=str(out), report_to="none")
    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    tiers = resolve_tiers(values.get("tiers"))
    lcrl = LcrlArguments(**{k: values[k] for k in ("budget", "num_train", "task_seed", "tiers") if k in values})
    dataset = task_dataset(lcrl, "train", target=None)
    ctx = RewardContext(tiers=tiers, think_end_id=tokenizer.convert_tokens_to_ids("</think>"), tier_metrics=False)
    funcs, weights = build_rewards(resolve_rewards(values["rewards"]).rewards, ctx)  # a list, or a recipe name
    args = GRPOConfig(**settings, reward_weights=weights)
    timer = StepTimer()
    trainer = GRPOTrainer(model=policy, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[timer])
    trainer.remove_callback(ProgressCallback)
    rewards = TimedRewards(trainer)
    trainer.train()
    return _result(timer, start, trainer, rewards)


def config_differences(ours: dict[str, Any], bare: dict[str, Any]) -> dict[str, list]:
    """``GRPOConfig`` values that differ between the two sides, apart from paths and names."""
    def same(a: Any, b: Any) -> bool:
        numbers = (int, float)
        if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
            return float(a) == float(b)  # the command line gives logging_steps: 1 as 1.0 (a float field)
        return str(a) == str(b)

    keys = sorted((set(ours) | set(bare)) - IGNORED_CONFIG_KEYS)
    return {k: [ours.get(k), bare.get(k)] for k in keys if not same(ours.get(k), bare.get(k))}


def same_trajectory(a: list[dict], b: list[dict], tol: float = 1e-5) -> bool:
    """Whether two runs logged the same rewards, losses and lengths at every step."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(abs(x[k] - y[k]) <= tol * max(1.0, abs(y[k])) for k in x) for x, y in zip(a, b)
    )


def build_base(tmp: Path) -> str:
    """The embedded tiny base model (``--stage init``), for machines without a trained SFT model."""
    out = tmp / "base"
    cmd = [sys.executable, str(ROOT / "train.py"), "--stage", "init", "--output_dir", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return str(out)


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "mean": round(statistics.fmean(values), 4),
            "min": round(min(values), 4), "max": round(max(values), 4), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="outputs/tiny/sft", help="policy to train (built by init if absent)")
    parser.add_argument("--steps", type=int, default=8, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of every run")
    parser.add_argument("--reps", type=int, default=4, help="runs per side, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"ours": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="bench_grpo_step_") as tmp:
        model = args.model if Path(args.model).is_dir() else build_base(Path(tmp))
        sides = {"ours": run_ours, "bare": run_bare}
        for rep in range(args.reps):
            for name in (("ours", "bare") if rep % 2 == 0 else ("bare", "ours")):
                get_grader(LcrlArguments().grading_config()).clear_cache()  # no verdicts carried between runs
                result = sides[name](model, Path(tmp) / f"{name}-{rep}", args.steps)
                runs[name].append(result)
                print(f"rep {rep} {name:4s}: " + " ".join(f"{s:.2f}" for s in result["steps"]) + " s/step", flush=True)
    timed = {n: [s for r in rs for s in r["steps"][args.warmup:]] for n, rs in runs.items()}
    cpu = {n: [s for r in rs for s in r["cpu_steps"][args.warmup:]] for n, rs in runs.items()}
    paired = [o / b for ro, rb in zip(runs["ours"], runs["bare"])
              for o, b in zip(ro["steps"][args.warmup:], rb["steps"][args.warmup:])]
    reward_ms = {n: [1000 * s for r in rs for s in r["reward_s"][args.warmup:]] for n, rs in runs.items()}
    trl_time = {n: [s for r in rs for s in r["trl_step_time"][args.warmup:]] for n, rs in runs.items()}
    ratio = statistics.median(timed["ours"]) / statistics.median(timed["bare"])
    cpu_ratio = statistics.median(cpu["ours"]) / statistics.median(cpu["bare"])
    report = {
        "command": " ".join([".venv/bin/python bench/bench_grpo_step.py", *sys.argv[1:]]),
        "model": args.model if Path(args.model).is_dir() else "tiny base (--stage init)",
        "recipe": str(RECIPE.relative_to(ROOT)),
        "overrides": overrides(args.steps),
        "steps_per_run": args.steps, "warmup_steps_dropped": args.warmup, "reps": args.reps,
        "torch_threads": args.threads,
        "seconds_per_step": {n: _stats(v) for n, v in timed.items()},
        "ratio_ours_over_bare": round(ratio, 4),
        "paired_step_ratio": _stats(paired),
        "cpu_seconds_per_step": {n: _stats(v) for n, v in cpu.items()},
        "cpu_ratio_ours_over_bare": round(cpu_ratio, 4),
        "reward_ms_per_step": {n: _stats(v) for n, v in reward_ms.items()},
        "trl_training_step_seconds": {n: _stats(v) for n, v in trl_time.items() if v},
        "setup_seconds": {n: _stats([r["setup_s"] for r in rs]) for n, rs in runs.items()},
        "same_trajectory": all(same_trajectory(o["trajectory"], b["trajectory"])
                               for o, b in zip(runs["ours"], runs["bare"])),
        "config_differences": config_differences(runs["ours"][0]["config"], runs["bare"][0]["config"]),
        "per_run_steps": {n: [[round(s, 3) for s in r["steps"]] for r in rs] for n, rs in runs.items()},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_before": round(load_before, 2),
                    "load_avg_1m_after": round(os.getloadavg()[0], 2), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'side':6s} | {'median s/step':>13s} | {'mean':>7s} | {'min':>7s} | {'max':>7s} | steps | setup s")
    for n in ("ours", "bare"):
        s, setup = report["seconds_per_step"][n], report["setup_seconds"][n]["median"]
        print(f"{n:6s} | {s['median']:13.3f} | {s['mean']:7.3f} | {s['min']:7.3f} | {s['max']:7.3f} | {s['n']:5d} | "
              f"{setup:7.2f}")
    print(f"\nratio ours/bare (medians): {ratio:.3f}x; paired per-step ratio median "
          f"{report['paired_step_ratio']['median']:.3f}x; process CPU time {cpu_ratio:.3f}x (target <= 1.05x)")
    extra = report["reward_ms_per_step"]["ours"]["median"] - report["reward_ms_per_step"]["bare"]["median"]
    print(f"reward functions per step: ours {report['reward_ms_per_step']['ours']['median']:.2f} ms, bare "
          f"{report['reward_ms_per_step']['bare']['median']:.2f} ms (the tier-metrics wrapper: {extra:+.2f} ms)")
    print(f"same rewards/losses/lengths at every step: {report['same_trajectory']}; "
          f"GRPOConfig differences: {report['config_differences'] or 'none'}")
    print(f"load average {report['machine']['load_avg_1m_before']} -> {report['machine']['load_avg_1m_after']}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
