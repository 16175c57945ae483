"""``--stage eval``: accuracy against tokens per model, benchmark, tier and length control.

For every model, benchmark (``benchmarks:``; the embedded synthetic test split by default, and MATH500, AIME24,
AMC23, OlympiadBench, GSM8K from the Hub or local files) and tier, and for every inference-time control setting:

- ``stop_tau: [1.0, 0.5, ...]``: one run per stop-token temperature (``rl.controls``; 1 = off);
- ``think_caps: [32, 64, ...]``: one run per budget-forcing thinking cap (``think_cap`` caps every run;
  ``cap_at_tier_budget`` adds a run capped at the tier's own budget; ``min_think``/``max_waits`` add s1's "Wait"
  extensions to every run),

it reports accuracy (pass@1 greedy; avg@k with ``num_samples: k`` and ``temperature > 0``), mean and median
thinking tokens, answer tokens, total tokens, the share within the tier's budget and the truncation rate
(``rl.report.summarize``). Grading (``rewards.correctness.EVAL_GRADING``): math-verify's full normalisation, as
standard harnesses grade; a completion cut at the token limit or whose thinking never closed scores 0; a problem
whose gold answer does not parse is left out of the accuracy and counted (``unparsable_gold``). Optionally the
same with the thinking skipped (prefilled ``<think></think>``, without ``<think>`` when the template opened it),
which shows how much the model needs its reasoning, and on the synthetic task the oracle rows: the essential-steps-only
traces and the full traces the SFT data came from.

Decoding: greedy, or ``temperature`` with nucleus ``top_p`` on either backend (the R1 recipe: DeepSeek-R1's 0.6 and
0.95). One model at a time: each model's engine is closed (vLLM's engine core shut down, the CUDA cache emptied)
before the next one is built.

Several processes (``torchrun``, ``accelerate launch``) split the problems of every run (``rl.distributed``: process
``r`` of ``N`` takes problems ``r, r + N, ...`` on its own device) and gather the completions, so the rows are those
of a one-process run; the main process alone writes the outputs and logs the one W&B run.

Outputs in ``output_dir``: ``results.json`` (rows + config), ``results.md`` (the table, also printed),
``pareto.png`` (``rl.plots``; beside it ``length_hist.png``, and ``budget_curve.png`` for a ``think_caps`` sweep),
``samples.json`` (a few completions per run); the same metrics, the plot and a table
of samples go to W&B.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from data.benchmarks import SYNTHETIC, Problem, benchmark_question, load_benchmark
from data.budgets import MIXES, Tier, resolve_tiers
from data.completion_format import CompletionFormat
from data.format import THINK_CLOSE, THINK_OPEN
from data.tasks import make_prompt
from rewards.correctness import EVAL_GRADING, get_grader
from rewards.verify import gold_parses
from rl.config import ConfigError
from rl.eval_config import EvalArguments
from rl.controls import BudgetForcing
from rl.distributed import is_main, log_world, sharded_generate
from rl.efficiency import AesWeights, add_aes, budget_curves
from rl.engine import Engine, SamplingParams
from rl.generation import chat_prompts, make_engine
from rl.model_files import load_tokenizer
from rl.recipes import ParsedRun, dump_run
from rl.report import PER_ITEM_KEYS, markdown_table, summarize, write_results
from rl.stages.common import task_traces
from rl.tracking import log_comparison, start_wandb_run

logger = logging.getLogger(__name__)

NO_THINKING_PREFILL = f"{THINK_OPEN}\n{THINK_CLOSE}\n\n"  # without <think> when the template opened it


@dataclass(frozen=True)
class Control:
    """One inference-time control setting; ``think_cap == "tier"`` means the tier's budget."""

    stop_tau: float = 1.0
    think_cap: int | str | None = None
    sweep: str = "base"  # base | tau | cap | tier-cap: which sweep the run belongs to (for the plot)

    def cap(self, tier_budget: int) -> int | None:
        """The thinking cap of this run; the tier cap of the no-thinking tier (budget 0) is none."""
        return (tier_budget or None) if self.think_cap == "tier" else self.think_cap  # type: ignore[return-value]


def control_settings(args: EvalArguments) -> list[Control]:
    """The runs per (model, benchmark, tier): every ``stop_tau`` (with ``think_cap``), every ``think_caps`` entry
    (with tau 1), and the tier-budget cap; duplicates removed, order kept."""
    runs = [Control(t, args.think_cap, "base" if t == 1.0 else "tau") for t in args.stop_tau]
    runs += [Control(1.0, c, "cap") for c in args.think_caps or []]
    if args.cap_at_tier_budget:
        runs.append(Control(1.0, "tier", "tier-cap"))
    seen, out = set(), []
    for c in runs:
        if (c.stop_tau, c.think_cap) not in seen:
            seen.add((c.stop_tau, c.think_cap))
            out.append(c)
    return out


def control_label(tau: float, cap: int | None, args: EvalArguments) -> str:
    parts = ([f"tau={tau:g}"] if tau != 1.0 else []) + ([f"cap={cap}"] if cap is not None else [])
    if args.min_think and args.max_waits:
        parts.append(f"min={args.min_think}x{args.max_waits}")
    return ",".join(parts) or "none"


def sampling_params(
    args: EvalArguments, tau: float = 1.0, cap: int | None = None, controls: bool = True
) -> SamplingParams:
    """Decoding options of one run; ``controls=False`` (no-thinking mode) drops every length control."""
    if not controls:
        return SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    budget = BudgetForcing(
        think_cap=cap, min_think=args.min_think, max_waits=args.max_waits, answer_cue=args.answer_cue,
        wait_text=args.wait_text, answer_tokens=args.answer_tokens,
    )
    return SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, stop_tau=tau,
        stop_top_k=args.stop_top_k, budget=budget if budget.active else None,
    )


def load_problems(run: ParsedRun, name: str) -> list[Problem]:
    lcrl, (args,) = run.lcrl, run.stage_args
    synthetic = {"n": lcrl.num_test, "seed": lcrl.task_seed, "knobs": lcrl.synthetic}
    try:
        return load_benchmark(
            name, file=args.benchmark_files.get(name), source=args.benchmark_sources.get(name),
            max_examples=args.max_examples, synthetic=synthetic,
        )
    except (OSError, ValueError) as exc:  # a missing or malformed file, a task too small for num_test
        raise ConfigError(f"benchmark {name!r}: {exc}") from exc


def oracle_rows(run: ParsedRun, tokenizer) -> list[dict]:
    """Token statistics of the synthetic test traces themselves: oracle (essential steps) and full."""
    traces = task_traces(run.lcrl, "test", run.lcrl.num_test)
    fmt = CompletionFormat.from_tokenizer(tokenizer)
    rows = []
    for label, texts in (("oracle", [t.oracle_text for t in traces]), ("full traces", [t.text for t in traces])):
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        think = [fmt.thinking_tokens(i) for i in ids]
        rows.append(
            {
                "model": label,
                "benchmark": SYNTHETIC,
                "tier": "-",
                "mode": "data",
                "control": "-",
                "n": len(ids),
                "accuracy": 1.0,
                "think_tokens_mean": sum(think) / len(think),
                "think_tokens_median": statistics.median(think),
                "total_tokens_mean": sum(map(len, ids)) / len(ids),
            }
        )
    return rows


def run_once(
    engine: Engine, args: EvalArguments, problems: list[Problem], prompts: list[str], params: SamplingParams,
    tier: Tier, prefilled: bool, desc: str,
) -> tuple[dict, list[dict]]:
    """Generate (``num_samples`` per problem), grade, summarise; returns the metrics and a few samples."""
    k = args.num_samples
    start = time.perf_counter()
    gens = sharded_generate(engine, prompts, params, repeats=k, desc=desc)  # split across processes, gathered
    seconds = time.perf_counter() - start
    golds = [p.solution for p in problems for _ in range(k)]
    fmt = engine.completion_format
    opened = not prefilled and bool(prompts) and fmt.prompt_opens(prompts[0])
    graded = get_grader(EVAL_GRADING).grade([g.text for g in gens], golds, [not g.finished for g in gens], opened, fmt)
    parses = {gold: gold_parses(gold, EVAL_GRADING.normalization) for gold in set(golds)}
    if prefilled:
        # the prefill closed the thinking: a completion that closes it again reasoned anyway (a model that ignores
        # the empty thinking and writes its steps before a second close marker), so it is no answer without thinking
        graded = [0.0 if fmt.is_closed(g.token_ids) else s for s, g in zip(graded, gens)]
    scores = [s if parses[gold] else None for s, gold in zip(graded, golds)]
    row = summarize(gens, scores, fmt, tier, prefilled_thinking=prefilled, num_samples=k, t_max=args.otb_t_max)
    if row["unparsable_gold"]:
        logger.warning("%s: %d problems have a gold answer math-verify cannot read: left out of the accuracy", desc,
                       row["unparsable_gold"])
    row["seconds"] = round(seconds, 3)
    row["tokens_per_s"] = round(sum(g.num_tokens for g in gens) / max(seconds, 1e-9), 1)
    samples = [
        {"problem": problems[i // k].id, "question": problems[i // k].question, "completion": g.text,
         "gold": golds[i], "correct": scores[i], "think_tokens": fmt.thinking_tokens(g.token_ids)}
        for i, g in enumerate(gens[: args.log_samples])
    ]
    return row, samples


def evaluate_model(run: ParsedRun, label: str, path: str) -> tuple[list[dict], list[dict]]:
    """All rows (and samples) of one model: benchmarks x tiers x control settings (+ no-thinking)."""
    (args,) = run.stage_args
    try:
        engine = make_engine(path, args.backend, args.batch_size, trust_remote_code=args.trust_remote_code)
    except ValueError as exc:
        raise ConfigError(f"{label}: {exc}") from exc
    try:
        return evaluate_with(run, label, path, engine)
    finally:
        engine.close()  # one model's weights (and vLLM's KV cache) on the GPU at a time


def evaluate_with(run: ParsedRun, label: str, path: str, engine: Engine) -> tuple[list[dict], list[dict]]:
    """``evaluate_model`` on an open engine."""
    lcrl, (args,) = run.lcrl, run.stage_args
    tiers = resolve_tiers(lcrl.tiers)
    controls = control_settings(args)
    fmt = engine.completion_format
    if fmt.close_id is None and any(c.stop_tau != 1.0 for c in controls):
        raise ConfigError(f"{label}: stop_tau needs {fmt.close_text!r} as one token of the tokenizer (it is "
                          f"{len(fmt.close_ids)}); thinking caps work with any marker")
    rows, samples = [], []
    for bench in args.benchmarks:
        problems = load_problems(run, bench)
        for tier in args.eval_tiers or [lcrl.budget if lcrl.budget not in MIXES else "medium"]:
            conversations = [make_prompt(benchmark_question(p, bench, args.question_suffix), tier, tiers)
                             for p in problems]
            budget = tiers[tier].budget
            runs = [("think", "", c) for c in controls]
            runs += [("no-think", NO_THINKING_PREFILL, Control())] if args.no_thinking else []
            for mode, prefill, control in runs:
                cap, tau = control.cap(budget), control.stop_tau
                name = control_label(tau, cap, args) if mode == "think" else "none"
                prompts = chat_prompts(engine.tokenizer, conversations)
                if prefill:  # no-thinking mode: an empty, closed thinking (no second <think>)
                    prompts = [p + fmt.thinking_prefill(p) for p in prompts]
                params = sampling_params(args, tau, cap, controls=mode == "think")
                row, some = run_once(engine, args, problems, prompts, params, tiers[tier], bool(prefill),
                                     desc=f"{label}/{bench}/{tier}/{mode}/{name}")
                key = {"model": label, "benchmark": bench, "tier": tier, "mode": mode, "control": name}
                rows.append({**key, "path": path, "stop_tau": tau, "think_cap": cap, "sweep": control.sweep, **row})
                samples += [{**key, **s} for s in some]
                logger.info("%s | %s | %s | %s | %s: accuracy %.3f, thinking %.1f tokens", label, bench, tier, mode,
                            name, row["accuracy"], row["think_tokens_mean"])
    return rows, samples


def run(run: ParsedRun) -> None:
    (args,) = run.stage_args
    models = args.labelled_models()
    log_world("eval")
    if run.lcrl.dry_run:
        logger.info("dry run: would evaluate %s on %s with controls %s", models, args.benchmarks,
                    [control_label(c.stop_tau, c.think_cap, args) for c in control_settings(args)])
        return
    wb = start_wandb_run(run) if is_main() else None  # one W&B run
    rows, samples = [], []
    for label, path in models:
        model_rows, model_samples = evaluate_model(run, label, path)
        rows += model_rows
        samples += model_samples
    if not is_main():  # every process holds the gathered rows; the main one alone writes them
        return
    if SYNTHETIC in args.benchmarks:
        rows += oracle_rows(run, load_tokenizer(models[0][1], args.trust_remote_code))
    out = Path(args.output_dir)
    add_aes(rows, args.aes_base or models[0][0], AesWeights(*args.aes_weights))
    path = write_results(rows, out, {"config": run.to_dict(), "budget_curves": budget_curves(rows)})
    (out / "samples.json").write_text(json.dumps(samples, indent=2))
    dump_run(run, out)
    plots: dict[str, Path] = {}
    if args.plot:
        from rl.plots import efficiency_plots, pareto_plot

        plots["pareto"] = pareto_plot(rows, out / "pareto.png", tokens=args.plot_tokens, title=(
            f"accuracy against {args.plot_tokens} tokens ({', '.join(m for m, _ in models)})"))
        plots.update(efficiency_plots(rows, out))
    print(markdown_table(rows))  # the stage's report is its output
    logger.info("results written to %s%s", path, f", plots {', '.join(map(str, plots.values()))}" if plots else "")
    if wb is not None:
        log_to_wandb(wb, rows, samples, plots)


def log_to_wandb(wb, rows: list[dict], samples: list[dict], plots: dict[str, Path]) -> None:
    """The results table, per-run summary metrics, the plots and a table of sample completions."""
    import wandb

    keys = sorted({k for r in rows for k in r if k not in PER_ITEM_KEYS})
    payload = {"eval/results": wandb.Table(columns=keys, data=[[r.get(k) for k in keys] for r in rows])}
    if samples:
        skeys = list(samples[0])
        payload["eval/samples"] = wandb.Table(columns=skeys, data=[[s.get(k) for k in skeys] for s in samples])
    payload.update({f"eval/{name}": wandb.Image(str(p)) for name, p in plots.items()})
    wb.log(payload)
    for r in rows:
        if r["mode"] != "data":
            prefix = f"{r['model']}/{r['benchmark']}/{r['tier']}/{r['mode']}/{r['control']}"
            wb.summary.update({f"{prefix}/{k}": r[k] for k in (
                "accuracy", "think_tokens_mean", "answer_tokens_mean", "total_tokens_mean", "within_budget",
                "truncated", "accuracy_per_1k", "otb_accuracy", "aes") if r.get(k) is not None})
    log_comparison(wb, rows)
    wb.finish()
