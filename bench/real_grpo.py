"""``make real-grpo``: make real's GRPO stage over seeds and recipe variants, each model evaluated per tier.

One make real run is one seed: on 80 held-out problems a problem is 1.25 points, so a GRPO recipe change is judged
here, from the finished tier SFT model of ``make real`` (run it first), over several seeds. For each variant (the
recipe ``configs/smollm2/real/grpo_mixed.yaml`` plus command-line overrides, ``VARIANTS``) and seed: GRPO
(``train.py --stage grpo --seed S``), then ``eval.yaml`` on that model, greedy and sampled as make real evaluates.
Reported per variant: mean and range over seeds of each tier's accuracy and thinking tokens, of medium's saving and
accuracy loss against the long-trace SFT model (make real's ``eval_sft``), the closest neighbouring tiers, and the
seeds that meet every target of make real (``bench.real.misses``).

Resumable: a finished step of a seed is skipped; an interrupted GRPO run resumes from its checkpoint. A seed folder
made by other commands or recipe settings, or before a recipe of make real's first three stages changed (``made_by``),
stops the run, naming the folder to delete; ``--report`` leaves it out. Results: ``bench/results/real_grpo.json`` and
``.md``; models and evaluations under ``outputs/smollm2/real/grpo_study/<variant>/seed<S>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bench.real as real  # noqa: E402
from bench.demo import environment, machine_line, run_stage, write_results  # noqa: E402
from data.budgets import TIER_NAMES as TIERS  # noqa: E402

OUT = real.OUT
STUDY = OUT / "grpo_study"
# name -> (train.py overrides of the GRPO recipe, why). Each variant names the settings it studies, so its meaning
# survives a change of the recipe's; DEFAULT is what make real's recipe (grpo_mixed.yaml) sets.
VARIANTS: dict[str, tuple[list[str], str]] = {
    "lr3e5": (["--learning_rate", "3e-5"], "make real's recipe: learning rate 3e-5, rollouts at temperature 1.0"),
    "lr1e4": (["--learning_rate", "1e-4"], "learning rate 1e-4 (make real's sixth run)"),
    "lr1e4_t06": (["--learning_rate", "1e-4", "--temperature", "0.6"],
                  "learning rate 1e-4, rollouts at temperature 0.6 (the sampled evaluation's), not 1.0"),
    # medium's overrun priced as long's shortfall, per token (2.0 / 128 = 5.0 / 320): the medium/long choice then gets
    # opposite pushes of equal strength under the two sentences
    "lr1e4_t06_sym": (["--learning_rate", "1e-4", "--temperature", "0.6", "--tiers", "{short: {budget: 80}, medium: "
                       "{budget: 128, floor: 80, penalty: 2.0}, long: {budget: 320, floor: 128, penalty: 5.0}}"],
                      "as lr1e4_t06, medium's penalty 2.0 (0.5 in the preset): its overrun costs per token what "
                      "long's shortfall does"),
}
DEFAULT = "lr3e5"
MADE = "made.json"  # what made a seed folder (made_by)
WALLS = "wall_seconds.json"  # wall seconds per step of a seed, as they ran

logger = logging.getLogger("real_grpo")


def seed_folder(variant: str, seed: int) -> Path:
    return STUDY / variant / f"seed{seed}"


def commands(variant: str, seed: int) -> dict[str, tuple[list[str], str]]:
    """The steps of one seed: name -> (train.py arguments, the file that exists once the step is done)."""
    folder = Path(os.path.relpath(seed_folder(variant, seed), REPO))  # train.py runs in REPO
    grpo = ["--stage", "grpo", "--config", f"{real.RECIPES}/grpo_mixed.yaml", *VARIANTS[variant][0],
            "--seed", str(seed), "--output_dir", str(folder / "grpo")]
    steps = {"grpo": (grpo, "grpo/lcrl_config.json")}
    for decoding, name in real.DECODINGS.items():
        extra = real.SAMPLED if name == "eval_sampled" else []
        steps[name] = (["--stage", "eval", "--config", f"{real.RECIPES}/eval.yaml", "--models",
                        f"{real.FINAL}={folder / 'grpo'}", *extra, "--output_dir", str(folder / name)],
                       f"{name}/results.json")
    return steps


def made_by(variant: str, seed: int) -> dict:
    """What a seed folder depends on: its commands, the settings of the two recipes they name (but ``output_dir`` and
    ``models``, which every seed's commands set), and the recipes that made make real's tier SFT model and the stages
    before it (``recipes.json``)."""
    made = real.read_made()
    return {"inputs": {stage: made.get(stage) for stage in ("sft", "prune", "sft_tiers")},
            # without the keys the seed's commands override (--models, --output_dir)
            "recipes": {"grpo_mixed": real.recipe_digest("grpo_mixed", drop=("output_dir",)),
                        "eval_greedy": real.recipe_digest("eval_greedy", drop=("models", "output_dir"))},
            **{name: args for name, (args, _) in commands(variant, seed).items()}}


def stale(variant: str, seed: int) -> bool:
    """Whether a seed folder was made by other commands or recipes, or from another tier SFT model, than now."""
    made_file = seed_folder(variant, seed) / MADE
    return made_file.is_file() and json.loads(made_file.read_text()) != made_by(variant, seed)


def run_seed(variant: str, seed: int) -> dict:
    """Run what is missing of one seed; its wall seconds per step, kept in the folder across resumed invocations."""
    folder = seed_folder(variant, seed)
    if stale(variant, seed):
        raise SystemExit(f"{folder} was made by other commands or recipes than variant {variant!r} gives now, or "
                         f"from another tier SFT model; delete it to run it again")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MADE).write_text(json.dumps(made_by(variant, seed), indent=2))
    walls = seed_walls(variant, seed)
    for name, (args, done) in commands(variant, seed).items():
        if (folder / done).is_file():
            logger.info("%s seed %d %s: done, skipped", variant, seed, name)
            continue
        walls[name], peak = run_stage(args)
        (folder / WALLS).write_text(json.dumps(walls, indent=2))
        logger.info("%s seed %d %s: %.0f s, peak %d MB", variant, seed, name, walls[name], peak)
    return walls


def seed_walls(variant: str, seed: int) -> dict[str, float]:
    walls_file = seed_folder(variant, seed) / WALLS
    return json.loads(walls_file.read_text()) if walls_file.is_file() else {}


def seed_figures(variant: str, seed: int) -> dict:
    """make real's figures for one seed's GRPO model (the baseline: make real's long-trace SFT model)."""
    fig = real.figures(seed_folder(variant, seed), baseline=OUT)
    return {"seed": seed, "figures": fig, "misses": real.misses(fig), "closest": real.closest_tiers(fig)}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def summary(seeds: list[dict]) -> dict:
    """Mean and range over seeds, per decoding and tier, of accuracy and thinking tokens; medium's saving and loss
    (greedy); the closest gap per decoding; the seeds meeting every target."""
    out: dict = {"seeds": [s["seed"] for s in seeds], "meet_all": [s["seed"] for s in seeds if not s["misses"]]}
    for decoding in real.DECODINGS:
        got = [s for s in seeds if set(real.by_tier(s["figures"], real.FINAL, decoding)) == set(TIERS)]
        if not got:
            continue
        rows = [real.by_tier(s["figures"], real.FINAL, decoding) for s in got]
        out[decoding] = {t: {k: spread([r[t][k] for r in rows]) for k in ("accuracy", "think_tokens")} for t in TIERS}
        out[decoding]["closest_gap"] = spread([s["closest"][decoding][1] for s in got])
        out[decoding]["seeds"] = [s["seed"] for s in got]
    greedy = [(s["figures"]["sft"], real.by_tier(s["figures"], real.FINAL, "greedy")["medium"]) for s in seeds
              if s["seed"] in out.get("greedy", {}).get("seeds", [])]  # the seeds of the greedy row
    if greedy:
        out["medium_shorter"] = spread([1 - m["think_tokens"] / sft["think_tokens"] for sft, m in greedy])
        out["medium_accuracy_loss"] = spread([sft["accuracy"] - m["accuracy"] for sft, m in greedy])
    return out


def fmt(s: dict, digits: int = 1) -> str:
    """``mean (min to max)``; one value when they agree (a single seed)."""
    if s["min"] == s["max"]:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f} to {s['max']:.{digits}f})"


def markdown(result: dict) -> str:
    lines = [machine_line(result["environment"]), "",
             "Mean (min to max) over seeds of make real's GRPO stage from the same tier SFT model; each model "
             f"evaluated on make real's {result.get('num_test', '?')} held-out problems per tier.", "",
             "| variant | seeds | decoding | short | medium | long | accuracy s / m / l | closest gap |",
             "|---|---|---|---|---|---|---|---|"]
    for variant, res in result["variants"].items():
        summ = res["summary"]
        for decoding in real.DECODINGS:
            if decoding not in summ:
                continue
            d = summ[decoding]
            acc = " / ".join(f"{d[t]['accuracy']['mean']:.3f}" for t in TIERS)
            lines.append(f"| {variant} | {', '.join(map(str, d['seeds']))} | {decoding} | "
                         + " | ".join(fmt(d[t]["think_tokens"]) for t in TIERS)
                         + f" | {acc} | {fmt(d['closest_gap'])} |")
    lines.append("")
    for variant, res in result["variants"].items():
        summ = res["summary"]
        saving = (f"medium {fmt({k: 100 * v for k, v in summ['medium_shorter'].items()})}% shorter than SFT at "
                  f"{fmt({k: 100 * v for k, v in summ['medium_accuracy_loss'].items()})} points of accuracy loss "
                  f"(greedy)" if "medium_shorter" in summ else "no greedy evaluation")
        lines.append(f"- {variant} ({VARIANTS[variant][1]}): {saving}; every target met by seed(s): "
                     f"{', '.join(map(str, summ['meet_all'])) or 'none'}")
        for s in res["seeds"]:
            missed = "; ".join(s["misses"]) if s["misses"] else "every target met"
            lines.append(f"  - seed {s['seed']}: {missed}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=[DEFAULT], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/real_grpo.json")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: summarise the seeds evaluated so far (a decoding not evaluated is a miss)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for done in ("sft_tiers/lcrl_config.json", "eval_sft/results.json"):
        if not (OUT / done).is_file():
            parser.error(f"{OUT / done} is missing: run make real first (this study starts from its tier SFT model)")
    result: dict = {"environment": environment(), "num_test": real.num_test(), "variants": {}}
    for variant in args.variants:
        seeds = []
        for seed in args.seeds:
            if args.report and not (seed_folder(variant, seed) / "eval").is_dir():
                logger.warning("%s seed %d: not evaluated, left out", variant, seed)
                continue
            if args.report and stale(variant, seed):
                logger.warning("%s seed %d: made by other commands or recipes, or from another tier SFT model, "
                               "than now; left out", variant, seed)
                continue
            walls = seed_walls(variant, seed) if args.report else run_seed(variant, seed)
            seeds.append({**seed_figures(variant, seed), "wall_seconds": walls})
        if not seeds:
            continue
        result["variants"][variant] = {"overrides": VARIANTS[variant][0], "seeds": seeds, "summary": summary(seeds)}
    text = markdown(result)
    write_results(args.output, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
