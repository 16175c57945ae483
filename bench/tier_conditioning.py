"""How much a model's tier sentence decides which trace it writes: log-likelihood of each tier's target under each
tier's sentence.

Tiered SFT (``sft_completion: tiered`` or ``tiered_early``) puts one pruned row under every tier sentence, each with
the trace of its length: short the skip-thinking prefix, medium the validated prefix (``tiered_early``: the
skip-thinking prefix with its opening kept), long the whole trace (``data.tier_targets.TIERED_COMPLETIONS``,
``TIERED_EARLY_COMPLETIONS``; ``--completions`` names the one the model trained on). A model that has learned what
the sentences mean gives each target its highest likelihood under its own tier's sentence; a model that ignores them
gives every target the same likelihood whatever the sentence. For each model and each target this reports the mean
summed log-probability of the target under each sentence, and the *margin*: under its own sentence minus under the
best other one (nats a trace; > 0 is the sentence read the right way), as a mean over rows and as the share of rows
where it is positive. A model trained under one sentence only (make real's stage 1) gives the noise floor: how far
wording alone moves a target.

It also reads the choice where ``tiered`` puts it for medium and long: after the validated prefix (the rows where
pruning cut something), the probability that the model closes its thinking there, under each sentence. A model that
reads the sentence closes under medium and goes on under long.

    python bench/tier_conditioning.py --models sft-tiers=outputs/smollm2/real/sft_tiers \\
        grpo-mixed=outputs/smollm2/real/grpo_mixed --recipe configs/smollm2/real/sft_tiers.yaml \\
        --output bench/results/tier_conditioning.json

``--recipe`` reads the rows (``sft_data``, relative to the repository), the targets (``sft_completion``, train.py's
default when the recipe has none) and ``drop_retracted`` from the tier SFT recipe, so the scores follow the recipe as
it changes; ``--rows``, ``--completions`` and a non-empty ``--drop_retracted`` override it (a recipe's phrase cannot be
switched off here). Without a recipe ``--rows`` is required, ``tiered_early`` and no phrase are the defaults.

The prompt is the one SFT trains on (``data.tasks.make_prompt``); prompt and target are rendered together through
the tokenizer's chat template and every token after the generation prompt is scored, the end of turn included, as
TRL's ``SFTTrainer`` puts them in the loss. Make real's tier SFT trains on every pruned row: the rows scored are
training rows, so this measures what was learned, not how it generalises.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo import environment, machine_line, model_specs, wall_line, write_results  # noqa: E402
from data.budgets import TIER_NAMES as TIERS  # noqa: E402

if TYPE_CHECKING:
    from rl.config import LcrlArguments

FIELDS = ("question",)  # besides each tier's completion field


def target_logprob(model: Any, tokenizer: Any, prompt: list[dict[str, str]], completion: str) -> float:
    """Summed log-probability of the assistant turn ``completion`` (through its end of turn) after ``prompt``."""
    import torch

    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": completion}], tokenize=False)
    if not whole.startswith(head):
        raise ValueError("the chat template does not render the conversation as prompt + completion")
    prompt_ids = tokenizer(head, add_special_tokens=False).input_ids
    ids = tokenizer(whole, add_special_tokens=False).input_ids
    if ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the prompt's tokens are not a prefix of the conversation's")
    ids = torch.tensor([ids])
    with torch.no_grad():
        logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)
    picked = logprobs.gather(1, ids[0, 1:, None])[:, 0]
    return picked[len(prompt_ids) - 1:].sum().item()


def close_probability(model: Any, tokenizer: Any, prompt: list[dict[str, str]], completion: str) -> float | None:
    """The probability of the first token of ``</think>`` where ``completion`` (a validated prefix) closes its
    thinking, given the prompt and the thinking before it; ``None`` where the tokenizer merges the thinking's last
    characters with the marker (no token boundary there)."""
    import torch

    from data.format import THINK_CLOSE

    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    before = tokenizer(head + completion[: completion.index(THINK_CLOSE)], add_special_tokens=False).input_ids
    ids = tokenizer(head + completion, add_special_tokens=False).input_ids
    if ids[: len(before)] != before:
        return None
    with torch.no_grad():
        probs = model(torch.tensor([before])).logits[0, -1].float().softmax(-1)
    return probs[ids[len(before)]].item()


def was_cut(row: dict) -> bool:
    """Whether pruning kept fewer steps than the trace has (the validated prefix stops before the full trace does)."""
    from data.format import THINK_CLOSE

    if "kept_steps" in row and "n_steps" in row:
        return row["kept_steps"] < row["n_steps"]
    return row["completion"].split(THINK_CLOSE)[0] != row["full_completion"].split(THINK_CLOSE)[0]


def parting(tokenizer: Any, rows: list[dict], fields: dict[str, str]) -> dict[str, list[int | None]]:
    """For each pair of neighbouring tiers, per row: the index of the first token where their targets differ (counted
    from the start of the completion), ``None`` where the targets are equal."""
    out: dict[str, list[int | None]] = {}
    for a, b in zip(TIERS, TIERS[1:]):
        got: list[int | None] = []
        for row in rows:
            x, y = (tokenizer(row[fields[t]], add_special_tokens=False).input_ids for t in (a, b))
            first = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            got.append(None if x == y else first)
        out[f"{a}/{b}"] = got
    return out


def conditioning(spec: str, rows: list[dict], fields: dict[str, str]) -> tuple[dict, dict, dict]:
    """target tier -> sentence tier -> summed log-probability of the target (``fields[target]``), one per row;
    sentence tier -> ``close_probability`` after the validated prefix, one per row that pruning cut (``None`` at a
    merge); and where neighbouring targets part (``parting``, in this model's tokens)."""
    from tqdm import tqdm

    from data.tasks import make_prompt
    from rl.model_files import load_pretrained

    model, tokenizer = load_pretrained(spec)
    model.eval()
    table: dict[str, dict[str, list[float]]] = {t: {s: [] for s in TIERS} for t in TIERS}
    close: dict[str, list[float | None]] = {s: [] for s in TIERS}
    for row in tqdm(rows, desc=f"scoring {spec}"):
        for sentence in TIERS:
            prompt = make_prompt(row["question"], sentence)
            for target in TIERS:
                table[target][sentence].append(target_logprob(model, tokenizer, prompt, row[fields[target]]))
            if was_cut(row):
                close[sentence].append(close_probability(model, tokenizer, prompt, row["completion"]))
    return table, close, parting(tokenizer, rows, fields)


def margins(table: dict[str, dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per target and row: its log-probability under its own sentence minus under the best other sentence."""
    return {t: [per[t][i] - max(per[s][i] for s in per if s != t) for i in range(len(per[t]))]
            for t, per in table.items()}


def summary(table: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Per target: the mean under each sentence, the mean margin and the share of rows with a positive margin."""
    got = margins(table)
    return {t: {**{s: statistics.fmean(v) for s, v in table[t].items()}, "margin": statistics.fmean(got[t]),
                "positive": sum(m > 0 for m in got[t]) / len(got[t])} for t in table}


def markdown(result: dict) -> str:
    """The table: one line per model and target."""
    lines = [machine_line(result["environment"]),
             f"{result['n_rows']} rows of {result['rows']} (training rows of tier SFT), targets "
             f"{result.get('completions', 'tiered')}"
             + (f" without the paragraphs holding {result['drop_retracted']!r}" if result.get("drop_retracted") else "")
             + "; mean summed log-probability "
             "of each tier's target (nats a trace) under each tier's sentence; margin: own sentence minus the best "
             "other, mean over rows and share of rows where it is positive", "",
             "| model | target | under short | under medium | under long | margin | rows > 0 |",
             "|---|---|---|---|---|---|---|"]
    for name, per_target in result["summary"].items():
        for target, s in per_target.items():
            cells = " | ".join(f"{s[t]:.2f}" for t in TIERS)
            lines.append(f"| {name} | {target} | {cells} | {s['margin']:+.2f} | {s['positive']:.2f} |")
    if result.get("parting"):
        lines += ["", "Where neighbouring tiers' targets part, in tokens from the start of the completion:", "",
                  "| tiers | mean | min | max | rows with equal targets |", "|---|---|---|---|---|"]
        for pair, got in result["parting"].items():
            at = [i for i in got if i is not None]
            cells = f"{statistics.fmean(at):.1f} | {min(at)} | {max(at)}" if at else "- | - | -"
            lines.append(f"| {pair} | {cells} | {len(got) - len(at)} |")
    if result.get("close"):
        lines += ["", "Probability of closing the thinking where the validated prefix stops (the medium/long choice "
                  "of tiered targets; with tiered_early medium stops earlier, after its last step without the "
                  "re-checks); mean over the rows pruning cut, rows where the tokenizer merges across the marker "
                  "left out:", "",
                  "| model | rows | under short | under medium | under long |", "|---|---|---|---|---|"]
        for name, per in result["close"].items():
            kept = [i for i in range(len(per[TIERS[0]])) if all(per[t][i] is not None for t in TIERS)]
            if kept:
                cells = " | ".join(f"{statistics.fmean(per[t][i] for i in kept):.3f}" for t in TIERS)
                lines.append(f"| {name} | {len(kept)} | {cells} |")
    if "wall_seconds" in result:
        lines += ["", wall_line(result["wall_seconds"])]
    return "\n".join(lines) + "\n"


def read_recipe(parser: argparse.ArgumentParser, path: Path | None) -> LcrlArguments | None:
    """The tier SFT recipe as train.py reads it (``--stage sft --config path``: its defaults, its refusal of unknown
    keys), as ``LcrlArguments``, or ``None`` without one; a recipe train.py refuses is a usage error with its message.
    Read as a dry run (``--dry_run``), so that a GPU recipe (bf16) reads on a CPU too; a recipe's ``env:`` is set in
    this process, as train.py sets it."""
    if path is None:
        return None
    from rl.config import ConfigError
    from rl.recipes import parse_args
    from rl.stages import stage_types

    try:
        return parse_args(["--stage", "sft", "--config", str(path), "--dry_run", "true"], stage_types()).lcrl
    except ConfigError as exc:
        parser.error(f"--recipe: {exc}")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, str], list[dict]]:
    """Arguments, models (name -> path) and rows, every one checked before a model is loaded."""
    from data.sources import read_rows
    from data.tier_targets import OPENING_FIELDS, TIERED, tier_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="name=path (a folder or any model_name_or_path)")
    parser.add_argument("--recipe", type=Path, default=None,
                        help="the tier SFT recipe (make real: configs/smollm2/real/sft_tiers.yaml): its sft_data, "
                        "sft_completion and drop_retracted are the defaults of --rows, --completions and "
                        "--drop_retracted")
    parser.add_argument("--rows", type=Path, default=None, help="pruned rows (--stage prune's pruned.jsonl)")
    parser.add_argument("--n", type=int, default=12, help="rows scored (the first n)")
    parser.add_argument("--completions", choices=list(TIERED), default=None,
                        help="the targets tier SFT learned (its sft_completion; default tiered_early)")
    parser.add_argument("--drop_retracted", default=None,
                        help="as tier SFT's recipe: leave the paragraphs with this phrase out of every target")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/tier_conditioning.json")
    args = parser.parse_args(argv)
    models = model_specs(parser, args.models)
    recipe = read_recipe(parser, args.recipe)
    if args.rows is None and recipe is not None and recipe.sft_data:
        args.rows = Path(recipe.sft_data) if Path(recipe.sft_data).is_absolute() else REPO / recipe.sft_data
    if args.completions is None:  # a recipe without one trains on train.py's default, which is not tiered
        args.completions = recipe.sft_completion if recipe is not None else "tiered_early"
    if args.drop_retracted is None and recipe is not None:
        args.drop_retracted = recipe.drop_retracted
    if args.rows is None:
        parser.error("--rows is required without a --recipe that names sft_data")
    if args.completions not in TIERED:
        parser.error(f"{args.recipe}: sft_completion {args.completions!r} is not tiered; allowed: "
                     f"{', '.join(TIERED)}")
    if recipe is not None and args.n > recipe.num_train:
        parser.error(f"--n {args.n} is more than the {recipe.num_train} rows the recipe trains on (num_train): "
                     "the rows past them were not learned")
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    if args.rows.suffix != ".jsonl" or not args.rows.is_file():
        parser.error(f"--rows {args.rows}: no such .jsonl file (--stage prune writes pruned.jsonl)")
    rows = list(read_rows(str(args.rows)))[: args.n]
    if not rows:
        parser.error(f"--rows {args.rows} holds no rows")
    fields = TIERED[args.completions]
    needed = {*FIELDS, "completion", "full_completion", "skip_completion"}
    if args.completions == "tiered_early":
        needed |= set(OPENING_FIELDS)
    missing = sorted({f for r in rows for f in needed if f not in r})
    if missing:
        hint = " (or score tiered targets: --completions tiered)" if args.completions == "tiered_early" else ""
        parser.error(f"{args.rows} lacks {missing}: written by an older --stage prune, run it again{hint}")
    args.fields = fields
    try:
        return args, models, tier_rows(rows, fields, args.drop_retracted)
    except ValueError as exc:  # an empty --drop_retracted
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    args, models, rows = parse(argv)
    scored = {name: conditioning(path, rows, args.fields) for name, path in models.items()}
    shown = args.rows.relative_to(REPO) if args.rows.is_relative_to(REPO) else args.rows  # as the recipe names it
    result = {"environment": environment(), "rows": str(shown), "n_rows": len(rows),
              "completions": args.completions, "drop_retracted": args.drop_retracted,
              "models": {name: t for name, (t, _, _) in scored.items()},
              "close": {name: c for name, (_, c, _) in scored.items()},
              "parting": next(iter(scored.values()))[2]}
    result["summary"] = {name: summary(table) for name, table in result["models"].items()}
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    text = markdown(result)
    write_results(args.output, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
