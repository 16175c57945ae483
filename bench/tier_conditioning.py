"""How much a model's tier sentence decides which trace it writes: log-likelihood of each tier's target under each
tier's sentence.

Tiered SFT (``sft_completion: tiered``) puts one pruned row under every tier sentence, each with the trace of its
length: short the skip-thinking prefix, medium the validated prefix, long the whole trace
(``data.tasks.TIERED_COMPLETIONS``). A model that has learned what the sentences mean gives each target its highest
likelihood under its own tier's sentence; a model that ignores them gives every target the same likelihood whatever
the sentence. For each model and each target this prints the mean summed log-probability of the target's tokens
under each sentence, and the *margin*: under its own sentence minus under the best other one (nats a trace; > 0 is
the sentence read the right way).

    python bench/tier_conditioning.py --models sft-tiers=outputs/smollm2/real/sft_tiers \\
        grpo-mixed=outputs/smollm2/real/grpo_mixed --rows outputs/smollm2/real/prune/pruned.jsonl \\
        --tiers synthetic_smollm2 --output bench/results/tier_conditioning.json

The prompt is the one SFT trains on (``data.tasks.make_prompt`` through the tokenizer's chat template); the target
is the completion text after the generation prompt.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo import environment  # noqa: E402

logger = logging.getLogger("tier_conditioning")
TIERS = ("short", "medium", "long")


def target_logprob(model, tokenizer, prompt: list[dict[str, str]], completion: str) -> float:
    """Summed log-probability of ``completion``'s tokens after the chat-templated ``prompt``."""
    import torch

    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(head, add_special_tokens=False).input_ids
    target_ids = tokenizer(completion, add_special_tokens=False).input_ids
    ids = torch.tensor([prompt_ids + target_ids])
    with torch.no_grad():
        logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)
    picked = logprobs.gather(1, ids[0, 1:, None])[:, 0]
    return picked[len(prompt_ids) - 1:].sum().item()


def conditioning(spec: str, rows: list[dict], tiers: dict) -> dict[str, dict[str, float]]:
    """target tier -> sentence tier -> mean summed log-probability over ``rows``."""
    from tqdm import tqdm

    from data.tasks import TIERED_COMPLETIONS, make_prompt
    from rl.model_files import load_pretrained

    model, tokenizer = load_pretrained(spec)
    model.eval()
    table = {t: dict.fromkeys(TIERS, 0.0) for t in TIERS}
    for row in tqdm(rows, desc=f"scoring {spec}"):
        for sentence in TIERS:
            prompt = make_prompt(row["question"], sentence, tiers)
            for target in TIERS:
                text = row[TIERED_COMPLETIONS[target]]
                table[target][sentence] += target_logprob(model, tokenizer, prompt, text) / len(rows)
    return table


def margins(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per target: its log-probability under its own sentence minus under the best other sentence."""
    return {t: table[t][t] - max(v for s, v in table[t].items() if s != t) for t in table}


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"{env['date']}; {env['cores']} cores, {env['cpu']}; "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
             f"{result['n_rows']} rows of {result['rows']}; mean summed log-probability of each tier's target (nats "
             "a trace) under each tier's sentence; margin: own sentence minus the best other", "",
             "| model | target | under short | under medium | under long | margin |", "|---|---|---|---|---|---|"]
    for name, table in result["models"].items():
        margin = margins(table)
        for target in TIERS:
            cells = " | ".join(f"{table[target][s]:.2f}" for s in TIERS)
            lines.append(f"| {name} | {target} | {cells} | {margin[target]:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="name=path (a folder or any model_name_or_path)")
    parser.add_argument("--rows", type=Path, required=True, help="pruned rows (--stage prune's pruned.jsonl)")
    parser.add_argument("--tiers", default="default", help="tier preset of the recipes (data/budgets.py)")
    parser.add_argument("--n", type=int, default=12, help="rows scored (the first n)")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/tier_conditioning.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from data.budgets import resolve_tiers
    from data.sources import read_rows

    bad = [m for m in args.models if "=" not in m]
    if bad:
        parser.error(f"--models takes name=path, got {bad}")
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    try:
        tiers = resolve_tiers(args.tiers)
    except ValueError as exc:
        parser.error(str(exc))
    rows = list(read_rows(str(args.rows)))[: args.n]
    from data.tasks import TIERED_COMPLETIONS

    missing = sorted({f for r in rows for f in TIERED_COMPLETIONS.values() if f not in r})
    if missing:
        parser.error(f"{args.rows} lacks {missing}: run --stage prune with skip_chunks: true")
    result = {"environment": environment(), "rows": str(args.rows), "n_rows": len(rows), "tiers": args.tiers,
              "models": {}}
    for spec in args.models:
        name, path = spec.split("=", 1)
        result["models"][name] = conditioning(path, rows, tiers)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
