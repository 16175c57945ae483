"""Does a later stage keep what stage 1 learned? Teacher-forced step results on held-out problems.

Make real's stage 1 teaches SmolLM2 the task's arithmetic through long traces; tier SFT then trains for 5 epochs on 48
pruned rows (with 96 replayed full traces since the ninth run: ``sft_replay``), and GRPO on top. A stage that damages
the arithmetic shows up in held-out accuracy only as a few problems of a small test set. This reads it directly: for
each held-out problem (the task's test split, as ``--stage eval`` draws it) the oracle trace (the essential steps only,
``Trace.oracle_text``) is fed to the model after the prompt, and at every token of every step's result (``so 1 - 4 = -3,
which is 7.``: ``-3, which is 7``) the model's most likely next token is compared with the trace's; a step is right when
all of them are. Reported: the share of steps right over every problem (make real's stage 1: 0.993), and the wrong
results the model would write.

The seventh run's tier SFT model got 0.902 against stage 1's 0.993 (``bench/results/retention_seventh_run.md``):
it had learned the wrong results of the task's deliberate mistakes (``8 + 2 = 9. Hmm, wait, that is not right.``),
each seen 15 times in tier SFT. ``drop_retracted`` in ``configs/smollm2/real/sft_tiers.yaml`` leaves them out.
The eighth run's tier SFT still wrote wrapping subtractions' plain results as -1 (0.980;
``bench/results/retention_eighth_run.md``); ``sft_replay`` rehearses stage 1's data against that.

    python bench/retention.py --models sft=outputs/smollm2/real/sft sft-tiers=outputs/smollm2/real/sft_tiers

The prompt is the one SFT trains on (``data.tasks.make_prompt`` under ``--sentence``), rendered through the model's
chat template; the task's knobs, its test split and the tiers are make real's (``configs/smollm2/real/eval.yaml``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.demo import environment, machine_line, model_specs, wall_line, write_results  # noqa: E402
from bench.real import eval_recipe  # noqa: E402
from data.budgets import TIER_NAMES  # noqa: E402

# A step of the synthetic task: "so <value> <op> <arg> = <result>[, which is <reduced>]."; the second group is what
# the model must write (a wrapping fact's reduction included).
STEP_RESULT = re.compile(r"so (-?\d+ [-+*] \d+) = (-?\d+(?:, which is \d+)?)\.")


def step_results(model: Any, tokenizer: Any, prompt: list[dict[str, str]], text: str) -> list[tuple[str, str, str]]:
    """Teacher-forced over ``text`` after ``prompt``: per step in ``text``, ``(fact, its result, the model's)``,
    where the model's result is its most likely token at each of the result's tokens (every token of ``-3, which is
    7``), decoded; the step is right when the two are equal."""
    import torch

    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    enc = tokenizer(head + text, add_special_tokens=False, return_offsets_mapping=True)
    with torch.no_grad():
        best = model(torch.tensor([enc.input_ids])).logits[0].argmax(-1).tolist()
    out = []
    for m in STEP_RESULT.finditer(text):
        start, end = len(head) + m.start(2), len(head) + m.end(2)
        span = [i for i, (a, b) in enumerate(enc.offset_mapping) if b > start and a < end]
        want = tokenizer.decode([enc.input_ids[i] for i in span])
        got = tokenizer.decode([best[i - 1] for i in span])
        out.append((m[1], want, got))
    return out


def retention(spec: str, traces: list, sentence: str, tiers_spec: str | dict) -> dict:
    """One model's share of step results right, and its wrong facts (``"8 + 2 = 9"``: count)."""
    from tqdm import tqdm

    from data.budgets import resolve_tiers
    from data.tasks import make_prompt
    from rl.model_files import load_pretrained

    model, tokenizer = load_pretrained(spec)
    model.eval()
    tiers = resolve_tiers(tiers_spec)
    right = total = 0
    wrong: Counter = Counter()
    problems_wrong = 0
    for trace in tqdm(traces, desc=f"retention {spec}"):
        got = step_results(model, tokenizer, make_prompt(trace.problem.question, sentence, tiers), trace.oracle_text)
        misses = [f"{fact} = {guess.strip()}" for fact, want, guess in got if guess != want]
        right += len(got) - len(misses)
        total += len(got)
        wrong.update(misses)
        problems_wrong += bool(misses)
    return {"right": right, "steps": total, "share": right / total if total else 0.0,
            "problems_with_a_wrong_step": problems_wrong, "wrong": dict(wrong.most_common())}


def markdown(result: dict) -> str:
    lines = [machine_line(result["environment"]), "",
             f"Teacher-forced step results on the oracle traces of {result['num_test']} held-out problems (task seed "
             f"{result['task_seed']}, {result['sentence']} sentence): the share where the model's most likely token "
             "is the result's token at every token of the result (a wrapping fact's reduction included).", "",
             "| model | steps right | share | problems with a wrong step | most frequent wrong results |",
             "|---|---|---|---|---|"]
    for name, r in result["models"].items():
        top = ", ".join(f"{k} ({v})" for k, v in list(r["wrong"].items())[:5]) or "-"
        lines.append(f"| {name} | {r['right']} / {r['steps']} | {r['share']:.3f} | "
                     f"{r['problems_with_a_wrong_step']} | {top} |")
    if "wall_seconds" in result:
        lines += ["", wall_line(result["wall_seconds"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="name=path (a folder or any model_name_or_path)")
    parser.add_argument("--num_test", type=int, default=120, help="held-out problems (the first n of the test split)")
    recipe = eval_recipe()  # make real's held-out problems, task and tiers
    parser.add_argument("--task_seed", type=int, default=recipe["task_seed"], help="of the test split (make real's)")
    parser.add_argument("--sentence", choices=list(TIER_NAMES), default="long", help="the tier sentence of the prompt")
    parser.add_argument("--synthetic", type=json.loads, default=recipe["synthetic"], help="the task's knobs, JSON")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/retention.json")
    args = parser.parse_args(argv)
    models = model_specs(parser, args.models)
    if args.num_test < 1:
        parser.error(f"--num_test must be at least 1, got {args.num_test}")
    from data.tasks import synthetic_traces

    traces = synthetic_traces("test", args.num_test, args.task_seed, args.synthetic)
    result = {"environment": environment(), "num_test": args.num_test, "task_seed": args.task_seed,
              "sentence": args.sentence, "synthetic": args.synthetic,
              "tiers": recipe["tiers"],
              "models": {name: retention(path, traces, args.sentence, recipe["tiers"])
                         for name, path in models.items()}}
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    text = markdown(result)
    write_results(args.output, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
