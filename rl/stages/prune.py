"""``--stage prune``: binary cutting of long-CoT traces, validated on-policy by the small model itself.

Source: Wang et al. 2025 (arXiv 2505.18440); the search is ``data.prune.binary_cut``, the skip-thinking labels
(``skip_chunks: true``) follow Chen et al. 2025 (arXiv 2505.18642) with our rule (``data.prune``, ``data.chunking``).

Validity of a prefix of ``k`` steps: the target model (``model_name_or_path``) gets the question (the task
prompt, or the bare question with ``plain_prompt``), ``<think>\\n`` (left out when the chat template already opened
the thinking: ``data.completion_format``) + the first ``k`` steps + ``\\n</think>\\n\\n`` + ``answer_cue`` and
writes the answer greedily (``max_new_tokens``); the correctness reward grades
``</think>\\n\\n`` + cue + answer against every gold alternative (valid if any matches). Traces are searched
``shard_size`` at a time; all requests of one search level of a shard go to the generation engine
(``rl.generation.make_engine``: transformers, or vLLM with a GPU) as one ``generate`` call.

Outputs in ``output_dir`` (``data.prune_io``): ``pruned.jsonl`` (the pruned SFT set, one line per kept trace,
loadable with ``datasets``), ``dropped.jsonl`` (every record not kept, with its reason), ``pairs.jsonl``
(preference pairs: pruned chosen, full rejected, for an optional DPO step), ``report.json`` / ``report.md``.

Resumable: each trace's line is written (flush + fsync) as soon as its search ends; a re-run of the same command
skips ids already in ``pruned.jsonl`` or ``dropped.jsonl`` and drops a line torn by a kill, so a run killed at any
point and restarted ends with every record exactly once. A re-run with different pruning settings into the same
``output_dir`` is refused (``prune_settings.json``). Several processes split each round of ``shard_size`` traces per
process and the main process alone writes the round's lines, in record order, once all are done (a kill loses the
round, never duplicates a line); it alone writes the report and logs the W&B run. It holds the folder's writer lock
(``rl.stages.common.claim_output``) while the run lasts: a relaunch while an earlier run still writes (the workers a
``SIGKILL`` of torchrun leaves running) is refused with that run's pid instead of doing records twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.budgets import assign_tiers, resolve_tiers
from data.chunking import chunk_steps, skip_candidates, token_counts
from data.completion_format import CompletionFormat
from data.prune import CutResult, Request, binary_cut, skip_search
from data.prune_io import (
    DROPPED,
    PRUNED,
    JsonlLog,
    add_token_counts,
    check_settings,
    pruned_row,
    write_outputs,
)
from data.segment import join_steps, segment
from data.tasks import make_prompt, synthetic_records
from data.traces import Skipped, TraceRecord, load_traces
from rl.config import ConfigError, LcrlArguments
from rl.distributed import RowBuffer, broadcast, gather_sum, is_main, log_world, shard
from rl.prune_config import PruneArguments
from rl.recipes import ParsedRun, dump_run
from rl.stages.common import claim_output, task_traces
from rl.tracking import start_wandb_run

logger = logging.getLogger(__name__)

# Options that change what a pruned line holds: a resumed run must use the same ones.
SETTINGS = ("model_name_or_path", "traces", "trace_split", "trace_fields", "answer_cue", "conclusion", "min_steps",
            "skip_chunks", "skip_first", "plain_prompt", "max_new_tokens", "segment", "chunking", "budget", "tiers",
            "task_seed", "synthetic")


def load_records(lcrl: LcrlArguments, args: PruneArguments) -> tuple[list[TraceRecord], list[Skipped]]:
    """The traces to prune (a file/Hub dataset, or the synthetic train split) and the records skipped on ingestion."""
    if args.traces:
        try:
            result = load_traces(args.traces, args.trace_fields, args.trace_split)
        except (OSError, ValueError, ConnectionError) as exc:
            raise ConfigError(f"traces {args.traces!r} cannot be read (a .json/.jsonl/.parquet file or a Hub dataset "
                              f"id): {exc}") from exc
        records, skipped = result.records, result.skipped
    else:
        records = synthetic_records(task_traces(lcrl, "train", lcrl.num_train))
        skipped = []
    if args.max_traces is not None:
        records = records[: args.max_traces]
    return records, skipped


def prompt_messages(lcrl: LcrlArguments, args: PruneArguments, records: Sequence[TraceRecord]) -> list[list[dict]]:
    """The chat prompt of each record: the task prompt with its tier (as SFT sees it) or the bare question."""
    if args.plain_prompt:
        return [[{"role": "user", "content": r.question}] for r in records]
    tiers = resolve_tiers(lcrl.tiers)
    names = assign_tiers(len(records), lcrl.budget, seed=lcrl.task_seed)
    return [make_prompt(r.question, t, tiers) for r, t in zip(records, names)]


@dataclass
class EngineValidator:
    """The on-policy batch validator: one ``engine.generate`` call per ``__call__`` (one search level)."""

    engine: Any
    params: Any
    cue: str
    grader: Any
    prompts: list[str] = field(default_factory=list)
    steps: list[list[str]] = field(default_factory=list)
    golds: list[list[str]] = field(default_factory=list)
    answers: dict[Request, str] = field(default_factory=dict)
    calls: int = 0
    batches: int = 0
    fmt: CompletionFormat | None = None  # default: the engine's (markers, whether the template opens <think>)

    def completion_format(self) -> CompletionFormat:
        if self.fmt is None:
            fmt = getattr(self.engine, "completion_format", None)
            self.fmt = fmt if isinstance(fmt, CompletionFormat) else CompletionFormat.from_tokenizer(
                self.engine.tokenizer)
        return self.fmt

    def bind(self, prompts: list[str], steps: list[list[str]], golds: list[list[str]]) -> None:
        self.prompts, self.steps, self.golds, self.answers = prompts, steps, golds, {}

    def text(self, request: Request) -> str:
        i, kept = request
        thinking = join_steps(self.steps[i], kept).strip()
        prompt = self.prompts[i]
        return f"{prompt}{self.completion_format().thinking_prefill(prompt, thinking)}{self.cue}"

    def __call__(self, requests: Sequence[Request]) -> list[bool]:
        gens = self.engine.generate([self.text(r) for r in requests], self.params, desc=f"validate {len(requests)}")
        answers = [self.cue + g.text for g in gens]
        close = self.completion_format().close_text
        flat = [(f"{close}\n\n{a}", g) for a, (i, _) in zip(answers, requests) for g in self.golds[i]]
        scores = iter(self.grader.grade([t for t, _ in flat], [g for _, g in flat]))
        verdicts = []
        for answer, request in zip(answers, requests):
            ok = any([next(scores) > 0 for _ in self.golds[request[0]]])
            if ok:
                self.answers[request] = answer.strip()
            verdicts.append(ok)
        self.calls += len(requests)
        self.batches += 1
        return verdicts


def prune_shard(
    lcrl: LcrlArguments, args: PruneArguments, records: list[TraceRecord], messages: list[list[dict]],
    validator: EngineValidator, pruned: JsonlLog, dropped: JsonlLog,
) -> None:
    """Binary cut (and skip search) of one shard; each trace's line is written as soon as it is final."""
    tokenizer = validator.engine.tokenizer
    seg_cfg, chunk_cfg = lcrl.segment_config(), lcrl.chunk_config()
    steps = [segment(r.thinking, seg_cfg) for r in records]
    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
    validator.bind(prompts, steps, [r.gold for r in records])
    finished: list[CutResult] = []

    def conclusion_of(i: int, kept: tuple[int, ...]) -> tuple[str, str]:
        if args.conclusion == "model":
            return validator.answers[(i, kept)], "model"
        return records[i].conclusion, "original"

    def write(cuts: list[CutResult], chunks: list[list[list[int]]], skips: list[tuple[list[int], int]]) -> None:
        rows = []
        for cut, ch, (skipped, calls) in zip(cuts, chunks, skips):
            rec = records[cut.index]
            text, source = conclusion_of(cut.index, tuple(range(cut.kept)))
            rows.append(pruned_row(rec, messages[cut.index], steps[cut.index], cut, ch, skipped, calls, text, source))
        add_token_counts(rows, tokenizer, [records[c.index].thinking for c in cuts])
        for row in rows:
            pruned.append(row)

    def chunks_of(cut: CutResult) -> list[list[int]]:
        kept = steps[cut.index][: cut.kept]
        return chunk_steps(kept, token_counts(tokenizer, kept), chunk_cfg)

    def on_done(cut: CutResult) -> None:
        rec = records[cut.index]
        if cut.dropped is not None:
            dropped.append({"key": rec.id, "id": rec.id, "stage": "validate", "reason": cut.dropped,
                            "n_steps": cut.n, "validation_calls": cut.calls})
        elif args.skip_chunks:
            finished.append(cut)
        else:
            write([cut], [chunks_of(cut)], [([], 0)])

    binary_cut([len(s) for s in steps], validator, args.min_steps, on_done=on_done)
    if args.skip_chunks and finished:
        chunks = [chunks_of(c) for c in finished]
        candidates = [skip_candidates(records[c.index].question, steps[c.index][: c.kept], ch, args.skip_first)
                      for c, ch in zip(finished, chunks)]
        index = [c.index for c in finished]

        def validate(requests: Sequence[Request]) -> list[bool]:  # skip_search counts traces within ``finished``
            return validator([(index[i], kept) for i, kept in requests])

        results = skip_search(chunks, candidates, validate)
        write(finished, chunks, [(r.skipped, r.calls) for r in results])


def run(run: ParsedRun) -> None:
    from rewards.correctness import get_grader
    from rl.engine import SamplingParams
    from rl.generation import make_engine

    lcrl, (args,) = run.lcrl, run.stage_args
    world = log_world("prune").num_processes
    if lcrl.dry_run and args.traces and not Path(args.traces).exists():
        logger.info("dry run: traces %r are a Hub dataset, read when the stage runs; nothing loaded or written",
                    args.traces)
        return
    records, skipped = load_records(lcrl, args)
    logger.info("prune: %d traces to validate with %s, %d skipped on ingestion", len(records),
                args.model_name_or_path, len(skipped))
    if lcrl.dry_run:
        return
    out = Path(args.output_dir)
    claim_output(out)  # one writer: released when the stage ends (rl.stages.run_stage)
    pruned = dropped = None  # the main process alone opens (repairs) and writes the logs
    if is_main():
        pruned, dropped = JsonlLog(out / PRUNED), JsonlLog(out / DROPPED)
    done = set(broadcast(sorted(pruned.keys | dropped.keys) if is_main() else None))
    # Compared only once a record is written: a run that failed before any (say, a mistyped model) is not a resume.
    check_settings(out, {k: v for k, v in run.to_dict().items() if k in SETTINGS}, fresh=not done, write=is_main())
    wb = start_wandb_run(run) if is_main() else None  # one W&B run
    for s in skipped if is_main() else []:
        key = f"ingest:{s.index}"
        if key not in done:
            dropped.append({"key": key, "stage": "ingest", **s.to_dict()})
    messages = prompt_messages(lcrl, args, records)
    todo = [i for i, r in enumerate(records) if r.id not in done]
    logger.info("prune: %d done before, %d to go", len(records) - len(todo), len(todo))
    started = time.perf_counter()
    validator = None
    if todo:
        try:
            engine = make_engine(args.model_name_or_path, args.backend, args.batch_size,
                                 trust_remote_code=args.trust_remote_code)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
        validator = EngineValidator(engine, params, args.answer_cue, get_grader())
        # A round: shard_size traces per process (process r takes r, r + N, ...); with several processes the lines
        # of a round are gathered and the main process writes them (rl.distributed.RowBuffer).
        order = {r.id: i for i, r in enumerate(records)}
        for start in range(0, len(todo), args.shard_size * world):
            part = todo[start : start + args.shard_size * world]
            mine = [part[i] for i in shard(len(part))]
            sinks = (pruned, dropped) if world == 1 else (RowBuffer(), RowBuffer())
            if mine:
                prune_shard(lcrl, args, [records[i] for i in mine], [messages[i] for i in mine], validator, *sinks)
            if world > 1:
                sinks[0].flush_to(pruned, order)
                sinks[1].flush_to(dropped, order)
    counts = gather_sum({"generation_batches": validator.batches if validator else 0,
                         "validations": validator.calls if validator else 0})
    if not is_main():
        return
    pruned.close()
    dropped.close()
    last_run = {"traces": len(todo), "seconds": time.perf_counter() - started, **counts}
    report = write_outputs(out, last_run)
    dump_run(run, out)
    print(report["table"])  # the stage's report is its output
    if wb is not None:
        flat = {f"prune/{k}": v for k, v in report.items() if isinstance(v, (int, float))}
        for group in ("tokens", "validation", "skip", "dropped"):
            flat.update({f"prune/{group}/{k}": v for k, v in report[group].items() if v is not None})
        wb.summary.update(flat)
        wb.finish()
