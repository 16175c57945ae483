"""``--stage eval``: accuracy against tokens on the held-out split, per model and tier.

For every model and tier: pass@1 accuracy (greedy by default), mean and median thinking tokens, total tokens,
the share within the tier's budget and the truncation rate; optionally the same with the thinking skipped
(prefilled ``<think></think>``), which shows how much the model needs its reasoning. On the synthetic task the
table also holds the oracle row: the essential-steps-only traces, and the full traces the SFT data came from.
Results go to ``output_dir/results.json`` and ``results.md``, and to W&B.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics

from transformers import AutoTokenizer

from data.budgets import resolve_tiers
from data.format import THINK_CLOSE, THINK_OPEN, count_until
from data.tasks import synthetic_traces
from rewards.correctness import correctness_reward
from rl.config import ParsedRun, dump_run
from rl.generation import SamplingParams, TransformersEngine, chat_prompts
from rl.report import markdown_table, summarize, write_results
from rl.stages.common import task_dataset
from rl.tracking import start_wandb_run

logger = logging.getLogger(__name__)

NO_THINKING_PREFILL = f"{THINK_OPEN}\n{THINK_CLOSE}\n\n"


def _think_end_id(tokenizer) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    return tid if isinstance(tid, int) and tid != tokenizer.unk_token_id else None


def oracle_rows(run: ParsedRun, tokenizer) -> list[dict]:
    """Token statistics of the synthetic test traces themselves: oracle (essential steps) and full."""
    traces = synthetic_traces("test", run.lcrl.num_test, run.lcrl.task_seed, run.lcrl.synthetic)
    think_end_id = _think_end_id(tokenizer)
    rows = []
    for label, texts in (("oracle", [t.oracle_text for t in traces]), ("full traces", [t.text for t in traces])):
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        think = [count_until(i, think_end_id) for i in ids]
        rows.append(
            {
                "model": label,
                "tier": "-",
                "mode": "data",
                "n": len(ids),
                "accuracy": 1.0,
                "think_tokens_mean": sum(think) / len(think),
                "think_tokens_median": statistics.median(think),
                "total_tokens_mean": sum(map(len, ids)) / len(ids),
            }
        )
    return rows


def evaluate_model(run: ParsedRun, label: str, path: str) -> list[dict]:
    lcrl, (args,) = run.lcrl, run.stage_args
    tiers = resolve_tiers(lcrl.tiers)
    engine = TransformersEngine.from_pretrained(path, args.batch_size, trust_remote_code=args.trust_remote_code)
    think_end_id = _think_end_id(engine.tokenizer)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    rows = []
    modes = [("think", "")] + ([("no-think", NO_THINKING_PREFILL)] if args.no_thinking else [])
    for tier in args.eval_tiers or [lcrl.budget if lcrl.budget != "mixed" else "medium"]:
        data = task_dataset(dataclasses.replace(lcrl, budget=tier), "test", target=None)
        for mode, prefill in modes:
            prompts = chat_prompts(engine.tokenizer, data["prompt"], prefill=prefill)
            gens = engine.generate(prompts, params, desc=f"{label}/{tier}/{mode}")
            scores = correctness_reward(None, [g.text for g in gens], data["solution"])
            row = summarize(gens, scores, think_end_id, tiers[tier].budget, prefilled_thinking=bool(prefill))
            rows.append({"model": label, "path": path, "tier": tier, "mode": mode, **row})
            logger.info("%s | %s | %s: accuracy %.3f, thinking %.1f tokens", label, tier, mode,
                        row["accuracy"], row["think_tokens_mean"])
    return rows


def run(run: ParsedRun) -> None:
    (args,) = run.stage_args
    models = args.labelled_models()
    if run.lcrl.dry_run:
        logger.info("dry run: would evaluate %s", models)
        return
    wb = start_wandb_run(run)
    rows = []
    for label, path in models:
        rows += evaluate_model(run, label, path)
    rows += oracle_rows(run, AutoTokenizer.from_pretrained(models[0][1]))
    path = write_results(rows, args.output_dir, {"config": run.to_dict()})
    dump_run(run, args.output_dir)
    table = markdown_table(rows)
    print(table)  # the stage's report is its output
    logger.info("results written to %s", path)
    if wb is not None:
        import wandb

        keys = sorted({k for r in rows for k in r})
        wb.log({"eval/results": wandb.Table(columns=keys, data=[[r.get(k) for k in keys] for r in rows])})
        for r in rows:
            if r["mode"] != "data":
                wb.summary.update({f"{r['model']}/{r['tier']}/{r['mode']}/{k}": r[k] for k in ("accuracy", "think_tokens_mean")})
        wb.finish()
