"""Budget control at rollout time, measured on the embedded task (issue 14): one command for both figures.

1. Rollout-time budget forcing (Elastic Reasoning, ``rl/budget_rollout.py``): GRPO with every tier mixed, plain
   ``tldr`` (``configs/tiny/grpo_mixed.yaml``) against the same recipe with ``budget_rollouts: true``
   (``configs/tiny/grpo_budget.yaml``), equal steps and seed; tier compliance = the share of completions whose
   thinking lies in the tier's band ``[floor, budget]`` (``Tier.in_band``), with accuracy and mean thinking tokens.
2. The no-thinking tier ``none`` (AdaptThink, ``configs/tiny/grpo_none.yaml``): the share of problems answered
   without thinking and the accuracy, by difficulty (the operation count of the synthetic problem), beside the
   same model's accuracy under the ``long`` tier.

Per seed, into ``outputs/budget_rollouts/seed<s>/``: the three GRPO runs from the tier-taught SFT model
(``--start``, default ``outputs/tiny/sft_tiers``; built first, with the demo's ``init`` and ``sft`` stages when they
are missing), then greedy generation (``--temperature`` to sample) of ``--num_test`` held-out problems per tier.
Results: ``bench/results/budget_rollouts.json`` and ``.md`` (mean and range over seeds), with the date, machine and
library versions. ``make budget-rollouts STEPS=100 SEEDS="0 1 2"``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo import environment, run_stage, write_results  # noqa: E402
from data.budgets import ALL_TIERS, TIER_NAMES, resolve_tiers  # noqa: E402
from data.synthetic import generate  # noqa: E402
from data.tasks import make_prompt  # noqa: E402
from rewards.correctness import EVAL_GRADING, get_grader  # noqa: E402
from rl.engine import SamplingParams  # noqa: E402
from rl.generation import TransformersEngine, chat_prompts  # noqa: E402

logger = logging.getLogger("budget_rollouts")
TIERS = resolve_tiers("synthetic")
RUNS = {"tldr": "grpo_mixed", "tldr+budget": "grpo_budget", "none": "grpo_none"}  # label -> configs/tiny/<recipe>
PREREQUISITES = [  # (model folder, the stage that builds it), in order
    ("outputs/tiny/base", ["--stage", "init"]),
    ("outputs/tiny/sft", ["--stage", "sft"]),
    ("outputs/tiny/sft_tiers", ["--stage", "sft", "--config", "configs/tiny/sft_tiers.yaml"]),
]


def ensure_start(start: Path) -> None:
    """Build the default start model (and what it needs) when it is missing; a custom one must exist."""
    if (start / "config.json").exists():
        return
    if start.resolve() != (REPO / "outputs/tiny/sft_tiers").resolve():
        raise SystemExit(f"--start {start} holds no model")
    for folder, args in PREREQUISITES:
        if not (REPO / folder / "config.json").exists():
            run_stage(args)


def measure(path: str, tiers: list[str], problems: list, temperature: float, samples: int) -> list[dict]:
    """Per tier, overall and per operation count: accuracy, mean thinking tokens, share in the tier's band, share
    that skipped the thinking."""
    engine = TransformersEngine.from_pretrained(path, batch_size=100)
    fmt = engine.completion_format
    grader = get_grader(EVAL_GRADING)
    rows = []
    for tier in tiers:
        prompts = chat_prompts(engine.tokenizer, [make_prompt(p.problem.question, tier, TIERS) for p in problems])
        params = SamplingParams(max_new_tokens=320, temperature=temperature, seed=0)
        gens = engine.generate([p for p in prompts for _ in range(samples)], params, desc=f"{path}/{tier}")
        golds = [str(p.problem.answer) for p in problems for _ in range(samples)]
        ops = [len(p.problem.ops) for p in problems for _ in range(samples)]
        correct = grader.grade([g.text for g in gens], golds, [not g.finished for g in gens], False, fmt)
        think = [fmt.thinking_tokens(g.token_ids) for g in gens]
        skipped = [fmt.skips_thinking(g.token_ids) for g in gens]
        for k in ["all", *sorted(set(ops))]:
            idx = [i for i, o in enumerate(ops) if k == "all" or o == k]
            rows.append({"tier": tier, "ops": k, "n": len(idx),
                         "accuracy": statistics.fmean(correct[i] for i in idx),
                         "think_tokens_mean": statistics.fmean(think[i] for i in idx),
                         "in_band": statistics.fmean(TIERS[tier].in_band(think[i], skipped[i]) for i in idx),
                         "skipped": statistics.fmean(skipped[i] for i in idx)})
        overall = next(r for r in rows if r["tier"] == tier and r["ops"] == "all")
        logger.info("%s | %s: accuracy %.3f, thinking %.1f, in band %.3f, skipped %.3f", path, tier,
                    overall["accuracy"], overall["think_tokens_mean"], overall["in_band"], overall["skipped"])
    return rows


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    out = REPO / "outputs/budget_rollouts" / f"seed{seed}"
    walls = {}
    for label, recipe in RUNS.items():
        walls[label], _ = run_stage(["--stage", "grpo", "--config", f"configs/tiny/{recipe}.yaml",
                                     "--model_name_or_path", str(args.start), "--output_dir", str(out / recipe),
                                     "--max_steps", str(args.steps), "--seed", str(seed), "--save_strategy", "no",
                                     "--report_to", "none"])
    problems = generate("test", args.num_test, seed=0)
    models = {"start": (str(args.start), list(TIER_NAMES)), "tldr": (str(out / "grpo_mixed"), list(TIER_NAMES)),
              "tldr+budget": (str(out / "grpo_budget"), list(TIER_NAMES)),
              "none": (str(out / "grpo_none"), list(ALL_TIERS))}
    rows = [{"model": label, **r} for label, (path, tiers) in models.items()
            for r in measure(path, tiers, problems, args.temperature, args.samples)]
    return {"seed": seed, "grpo_wall_seconds": walls, "rows": rows}


def summarize(runs: list[dict]) -> list[dict]:
    """Mean, min and max over seeds of every (model, tier, ops) cell."""
    cells: dict[tuple, list[dict]] = {}
    for run in runs:
        for r in run["rows"]:
            cells.setdefault((r["model"], r["tier"], r["ops"]), []).append(r)
    out = []
    for (model, tier, ops), rs in cells.items():
        row = {"model": model, "tier": tier, "ops": ops, "n": rs[0]["n"]}
        for key in ("accuracy", "think_tokens_mean", "in_band", "skipped"):
            vals = [r[key] for r in rs]
            row[key] = {"mean": round(statistics.fmean(vals), 4), "min": round(min(vals), 4),
                        "max": round(max(vals), 4)}
        out.append(row)
    return out


def _cell(v: dict, fmt: str = "{:.3f}") -> str:
    text = fmt.format(v["mean"])
    return text if v["min"] == v["max"] else f"{text} ({fmt.format(v['min'])}-{fmt.format(v['max'])})"


def markdown(result: dict) -> str:
    env, rows, a = result["environment"], result["summary"], result["args"]
    head = (f"Seeds {', '.join(map(str, a['seeds']))}; {a['steps']} GRPO steps per run; {a['num_test']} test "
            f"problems, temperature {a['temperature']}, {a['samples']} sample(s); {env['date']}; {env['cores']} cores, "
            f"{env['cpu']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    lines = [head, "", "## Tier compliance (share of thinking in the tier's band), rollout-time budget forcing",
             "", "| model | tier | in band | accuracy | thinking tokens |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['tier']} | {_cell(r['in_band'])} | {_cell(r['accuracy'])} | "
              f"{_cell(r['think_tokens_mean'], '{:.1f}')} |"
              for r in rows if r["ops"] == "all" and r["tier"] in TIER_NAMES]
    lines += ["", "## The none tier by difficulty (model trained with grpo_none.yaml)", "",
              "| operations | answered without thinking | accuracy (none) | accuracy (long) | thinking tokens (none) |",
              "|---|---|---|---|---|"]
    by = {(r["tier"], r["ops"]): r for r in rows if r["model"] == "none"}
    for ops in sorted({r["ops"] for r in rows if r["model"] == "none"}, key=str):
        n, lo = by[("none", ops)], by[("long", ops)]
        lines.append(f"| {ops} | {_cell(n['skipped'])} | {_cell(n['accuracy'])} | {_cell(lo['accuracy'])} | "
                     f"{_cell(n['think_tokens_mean'], '{:.1f}')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="GRPO steps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--start", type=Path, default=REPO / "outputs/tiny/sft_tiers",
                        help="the SFT model GRPO starts from")
    parser.add_argument("--num_test", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--samples", type=int, default=1, help="samples per problem (with --temperature > 0)")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/budget_rollouts.json")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.num_test <= 0 or args.samples < 1 or (args.samples > 1 and args.temperature <= 0):
        parser.error("--steps and --num_test must be positive; --samples > 1 needs --temperature > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_start(args.start)
    runs = [run_seed(seed, args) for seed in args.seeds]
    result = {"environment": environment(), "args": {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in vars(args).items()},
              "summary": summarize(runs), "runs": runs}
    text = markdown(result)
    write_results(args.output, result, text)
    print(text)
    logger.info("written to %s and %s", args.output, args.output.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
