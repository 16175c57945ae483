"""``--stage sft``: supervised warm-start on long (or pruned) traces with TRL's ``SFTTrainer``.

The loss is on the completion only (``completion_only_loss``); LoRA is used when the recipe sets
``use_peft: true`` (TRL ``ModelConfig`` -> ``peft_config``). Re-running the command resumes from the last
checkpoint in ``output_dir``.

Data: the task's traces (``sft_target``: full or oracle), or a pruned JSONL from ``--stage prune``
(``sft_data``). ``sft_mode`` picks the examples (Chen et al. 2025, arXiv 2505.18642):

- ``full``: one prompt/completion example per trace, the loss on the whole completion (with ``sft_data``:
  ``sft_completion`` picks the pruned prefix, the prefix without its skippable chunks, or the original trace;
  with a tiered one, ``sft_replay`` adds full task traces of new train problems under the long tier's sentence,
  a rehearsal of stage 1's data against forgetting);
- ``chunkwise``: one example per chunk (``chunking``), the loss on that chunk, earlier chunks masked context;
- ``skip``: as ``chunkwise`` over the chunks ``--stage prune`` did not mark skippable (``skip_chunks: true``), so
  the model learns to jump over them.

The chunked modes hand TRL tokenised examples with their own ``labels`` (-100 on the context), which
``SFTTrainer`` uses as they are.
"""

from __future__ import annotations

import logging

from datasets import concatenate_datasets
from trl import SFTTrainer, get_peft_config

from data.budgets import budget_tiers, resolve_tiers
from data.tasks import chunked_dataset, rows_dataset, trace_rows
from data.tier_targets import equal_targets, replay_rows, tier_rows
from rl.config import SFT_COMPLETIONS, ConfigError, LcrlArguments
from rl.distributed import log_world
from rl.recipes import ParsedRun
from rl.stages.common import pruned_rows, start_training, task_dataset, task_traces, train_and_save
from rl.tracking import lcrl_config_callback

logger = logging.getLogger(__name__)
FULL = SFT_COMPLETIONS["full"]  # the pruned row's original trace: the target sft_replay's traces join


def _replay_tier(lcrl: LcrlArguments) -> str | None:
    """The tier whose sentence ``sft_replay``'s full traces are learned under (the one whose tiered target is the
    full trace), or None without replay; a ``ConfigError`` naming the allowed set-up for a replay that cannot apply."""
    if not lcrl.sft_replay:
        return None
    field = SFT_COMPLETIONS.get(lcrl.sft_completion)
    tiers = [t for t, f in field.items() if f == FULL] if isinstance(field, dict) else []
    if lcrl.sft_replay < 0 or lcrl.task != "synthetic" or not lcrl.sft_data or lcrl.sft_mode != "full" or not tiers:
        tiered = ", ".join(k for k, v in SFT_COMPLETIONS.items() if isinstance(v, dict))
        raise ConfigError(f"sft_replay {lcrl.sft_replay} needs a positive count, task synthetic, sft_data, sft_mode "
                          f"full and sft_completion one of: {tiered} (got task {lcrl.task!r}, sft_data "
                          f"{lcrl.sft_data!r}, sft_mode {lcrl.sft_mode!r}, sft_completion {lcrl.sft_completion!r}); "
                          "set it to 0 or set those")
    if tiers[0] not in budget_tiers(lcrl.budget):
        raise ConfigError(f"sft_replay's traces are learned under the {tiers[0]} sentence, which budget "
                          f"{lcrl.budget!r} does not train (its tiers: {', '.join(budget_tiers(lcrl.budget))}); use a "
                          f"budget with {tiers[0]} (e.g. mixed) or set sft_replay to 0")
    return tiers[0]


def run(run: ParsedRun) -> None:
    lcrl = run.lcrl
    sft_args, model_args = run.stage_args
    log_world("sft")
    tiers = resolve_tiers(lcrl.tiers)
    if lcrl.drop_retracted is not None and (not lcrl.drop_retracted or not lcrl.sft_data or lcrl.sft_mode != "full"):
        raise ConfigError(f"drop_retracted {lcrl.drop_retracted!r} applies to SFT targets read from sft_data with "
                          f"sft_mode full (got sft_data {lcrl.sft_data!r}, sft_mode {lcrl.sft_mode!r}) and needs a "
                          "non-empty phrase; drop it or set both")
    replay_tier = _replay_tier(lcrl)
    rows = pruned_rows(lcrl) if lcrl.sft_data else None
    if lcrl.sft_mode == "full":
        if rows is not None:
            field = SFT_COMPLETIONS[lcrl.sft_completion]
            try:
                rows = tier_rows(rows, field, lcrl.drop_retracted)
                train = rows_dataset(rows, lcrl.budget, tiers, seed=lcrl.task_seed, field=field)
                n_tiered = len(train)
                if replay_tier:
                    replay = tier_rows(replay_rows(task_traces(lcrl, "train", lcrl.sft_replay), FULL), FULL,
                                       lcrl.drop_retracted)
                    train = concatenate_datasets([train, rows_dataset(replay, replay_tier, tiers, field=FULL)])
                    pruned_ids = {r["id"] for r in rows}
                    logger.info("sft_replay: %d full traces of new train problems under the %s sentence (%d repeat a "
                                "pruned row's problem; rehearsal of stage 1)", len(replay), replay_tier,
                                sum(r["id"] in pruned_ids for r in replay))
                if isinstance(field, dict):
                    same = equal_targets(rows, field)
                    log = logger.warning if any(n == len(rows) for n in same.values()) else logger.info
                    log("tiered targets of %d rows; rows whose neighbouring tiers' targets are the same: %s",
                        len(rows), same)
            except ValueError as exc:
                hint = " (skip_completion needs --stage prune with skip_chunks: true)" if "skip_completion" in str(
                    exc) else ""
                raise ConfigError(f"sft_data {lcrl.sft_data!r} with sft_completion {lcrl.sft_completion}: {exc}"
                                  f"{hint}") from exc
        else:
            train = task_dataset(lcrl, "train", target=lcrl.sft_target)
        what = f"{lcrl.sft_completion} pruned-data" if rows else lcrl.sft_target
        if replay_tier:
            logger.info("SFT on %d examples: %d %s, %d replayed (budget %s)", len(train), n_tiered, what,
                        len(train) - n_tiered, lcrl.budget)
        else:
            logger.info("SFT on %d %s examples (budget %s)", len(train), what, lcrl.budget)
    elif lcrl.sft_mode == "skip" and rows is None:
        raise ConfigError("sft_mode skip needs sft_data: a pruned JSONL from --stage prune with skip_chunks: true")
    started = start_training(run)
    if started is None:  # a dry run
        return
    model, tokenizer, resume = started
    if lcrl.sft_mode != "full":
        if rows is None:
            traces = task_traces(lcrl, "train", lcrl.num_train)
            rows = trace_rows(traces, tokenizer, lcrl.segment_config(), lcrl.chunk_config())
        train = chunked_dataset(rows, tokenizer, lcrl.sft_mode, lcrl.budget, tiers, seed=lcrl.task_seed)
        logger.info("SFT (%s) on %d chunk examples from %d traces", lcrl.sft_mode, len(train), len(rows))
    trainer = SFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[lcrl_config_callback(run)],
    )
    train_and_save(trainer, run, resume)
