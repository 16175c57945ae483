"""How much a model's tier sentence decides which trace it writes: log-likelihood of each tier's target under each
tier's sentence.

Tiered SFT (``sft_completion: tiered``) puts one pruned row under every tier sentence, each with the trace of its
length: short the skip-thinking prefix, medium the validated prefix, long the whole trace
(``data.tasks.TIERED_COMPLETIONS``). A model that has learned what the sentences mean gives each target its highest
likelihood under its own tier's sentence; a model that ignores them gives every target the same likelihood whatever
the sentence. For each model and each target this reports the mean summed log-probability of the target under each
sentence, and the *margin*: under its own sentence minus under the best other one (nats a trace; > 0 is the sentence
read the right way), as a mean over rows and as the share of rows where it is positive. A model trained under one
sentence only (make real's stage 1) gives the noise floor: how far wording alone moves a target.

    python bench/tier_conditioning.py --models sft-tiers=outputs/smollm2/real/sft_tiers \\
        grpo-mixed=outputs/smollm2/real/grpo_mixed --rows outputs/smollm2/real/prune/pruned.jsonl \\
        --output bench/results/tier_conditioning.json

The prompt is the one SFT trains on (``data.tasks.make_prompt``); prompt and target are rendered together through
the tokenizer's chat template and every token after the generation prompt is scored, the end of turn included, as
TRL's ``SFTTrainer`` puts them in the loss. Make real's tier SFT trains on every pruned row: the rows scored are
training rows, so this measures what was learned, not how it generalises.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo import environment, machine_line  # noqa: E402
from data.budgets import TIER_NAMES as TIERS  # noqa: E402

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


def conditioning(spec: str, rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    """target tier -> sentence tier -> summed log-probability of the target, one per row."""
    from tqdm import tqdm

    from data.tasks import TIERED_COMPLETIONS, make_prompt
    from rl.model_files import load_pretrained

    model, tokenizer = load_pretrained(spec)
    model.eval()
    table: dict[str, dict[str, list[float]]] = {t: {s: [] for s in TIERS} for t in TIERS}
    for row in tqdm(rows, desc=f"scoring {spec}"):
        for sentence in TIERS:
            prompt = make_prompt(row["question"], sentence)
            for target in TIERS:
                text = row[TIERED_COMPLETIONS[target]]
                table[target][sentence].append(target_logprob(model, tokenizer, prompt, text))
    return table


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
             f"{result['n_rows']} rows of {result['rows']} (training rows of tier SFT); mean summed log-probability "
             "of each tier's target (nats a trace) under each tier's sentence; margin: own sentence minus the best "
             "other, mean over rows and share of rows where it is positive", "",
             "| model | target | under short | under medium | under long | margin | rows > 0 |",
             "|---|---|---|---|---|---|---|"]
    for name, per_target in result["summary"].items():
        for target, s in per_target.items():
            cells = " | ".join(f"{s[t]:.2f}" for t in TIERS)
            lines.append(f"| {name} | {target} | {cells} | {s['margin']:+.2f} | {s['positive']:.2f} |")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, str], list[dict]]:
    """Arguments, models (name -> path) and rows, every one checked before a model is loaded."""
    from data.sources import read_rows
    from data.tasks import TIERED_COMPLETIONS
    from rl.model_files import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="name=path (a folder or any model_name_or_path)")
    parser.add_argument("--rows", type=Path, required=True, help="pruned rows (--stage prune's pruned.jsonl)")
    parser.add_argument("--n", type=int, default=12, help="rows scored (the first n)")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/tier_conditioning.json")
    args = parser.parse_args(argv)
    models: dict[str, str] = {}
    for spec in args.models:
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
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    if args.rows.suffix != ".jsonl" or not args.rows.is_file():
        parser.error(f"--rows {args.rows}: no such .jsonl file (--stage prune writes pruned.jsonl)")
    rows = list(read_rows(str(args.rows)))[: args.n]
    if not rows:
        parser.error(f"--rows {args.rows} holds no rows")
    missing = sorted({f for r in rows for f in (*FIELDS, *TIERED_COMPLETIONS.values()) if f not in r})
    if missing:
        parser.error(f"{args.rows} lacks {missing}: run --stage prune with skip_chunks: true")
    return args, models, rows


def main(argv: list[str] | None = None) -> int:
    args, models, rows = parse(argv)
    result = {"environment": environment(), "rows": str(args.rows), "n_rows": len(rows),
              "models": {name: conditioning(path, rows) for name, path in models.items()}}
    result["summary"] = {name: summary(table) for name, table in result["models"].items()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
