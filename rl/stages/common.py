"""Pieces every training stage shares: task data, model loading, resume and W&B wiring.

Task data: the embedded synthetic task, or ``task: dataset`` (prompts, gold answers and traces from a Hub dataset or
a local file, ``data.dataset_task``). Models: a folder, a Hub id or a GGUF file (``rl.model_files``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.trainer_utils import get_last_checkpoint

from data.budgets import resolve_tiers
from data.dataset_task import prompt_rows, sft_rows
from data.prune_io import check_settings, read_jsonl
from data.synthetic import Trace
from data.tasks import rows_dataset, synthetic_traces, traces_to_dataset
from data.writer_lock import OutputInUse, WriterLock
from rewards.verify import gold_parses
from rl.checks import check_loaded_precision, startup_checks
from rl.config import ConfigError, LcrlArguments
from rl.distributed import broadcast, is_main
from rl.model_files import load_pretrained
from rl.recipes import ParsedRun, dump_run
from rl.tracking import setup_wandb

logger = logging.getLogger(__name__)

# Options that decide what a training run learns. Resuming the last checkpoint of an output_dir written with other
# ones would silently continue (or, when finished, keep) a different run, so it is refused.
RUN_SETTINGS_FILE = "run_settings.json"
ADAPTER_DIR = "adapter"  # where a LoRA run keeps its adapter, beside the merged full model (``train_and_save``)
# Options added to the record later, with the value a record that lacks them was made with: at that value they are
# left out, so an older run still resumes
LATER_SETTINGS = {"sft_replay": 0}
RESUME_SETTINGS = ("stage", "model_name_or_path", "task", "synthetic", "dataset", "num_train", "task_seed", "budget",
                   "tiers", "sft_target", "sft_mode", "sft_data", "sft_completion", "drop_retracted",
                   "preference_tiers", "segment", "chunking", "rewards", "reward_recipe", "learning_rate",
                   "per_device_train_batch_size", "seed", "use_peft", *LATER_SETTINGS)
# ... and per stage, options that only it has under these names (SFT's and GRPO's loss_type, GRPO's beta differ)
STAGE_RESUME_SETTINGS = {"dpo": ("beta", "loss_type", "loss_weights", "max_length")}


def task_traces(lcrl: LcrlArguments, split: str, n: int) -> list[Trace]:
    """``n`` synthetic problems of ``split`` with their traces; a task too small for ``n`` is a ``ConfigError``."""
    try:
        return synthetic_traces(split, n, lcrl.task_seed, lcrl.synthetic)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def task_dataset(lcrl: LcrlArguments, split: str, target: str | None) -> Dataset:
    """The task's ``split`` as a conversational dataset (with SFT completions when ``target`` is set).

    Columns: ``id``, ``prompt`` (the question and the tier instruction), ``solution``, ``tier`` and, for SFT,
    ``completion``. With ``task: dataset`` the first ``num_train`` (``num_test``) usable records; in a dry run a Hub
    dataset is not loaded (no network), a local file is read and checked. Prompts (``target`` None: GRPO) whose
    gold the grader cannot parse (``rewards.verify.gold_parses``, the recipe's ``grading.normalization``) are
    skipped and counted: they would score 0 whatever the policy writes.
    """
    n = lcrl.num_train if split == "train" else lcrl.num_test
    tiers = resolve_tiers(lcrl.tiers)
    if lcrl.task != "dataset":
        traces = task_traces(lcrl, split, n)
        return traces_to_dataset(traces, lcrl.budget, tiers, seed=lcrl.task_seed, target=target)
    spec = lcrl.dataset_spec()
    if target is None:
        normalization = lcrl.grading_config().normalization
        field, read = None, functools.partial(prompt_rows, gold_ok=lambda gold: gold_parses(gold, normalization))
    else:
        field, read = "completion", sft_rows
    if lcrl.dry_run and not spec.is_local:
        logger.info("dry run: Hub dataset %s (split %s, fields %s) not loaded", spec.path, spec.split, spec.fields)
        return rows_dataset([], lcrl.budget, tiers, seed=lcrl.task_seed, field=field)
    try:
        rows = read(spec, split, n, seed=lcrl.task_seed).rows
    except (OSError, ValueError) as exc:
        raise ConfigError(f"dataset {spec.path!r}: {exc}") from exc
    return rows_dataset(rows, lcrl.budget, tiers, seed=lcrl.task_seed, field=field)


def pruned_rows(lcrl: LcrlArguments) -> list[dict]:
    """The first ``num_train`` rows of the pruned JSONL ``sft_data``."""
    if not Path(lcrl.sft_data).is_file():
        raise ConfigError(f"sft_data {lcrl.sft_data!r} not found (run --stage prune first, or fix the path)")
    try:
        rows = read_jsonl(lcrl.sft_data)[: lcrl.num_train]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"sft_data {lcrl.sft_data!r} cannot be read: {exc}") from exc
    if not rows:
        raise ConfigError(f"sft_data {lcrl.sft_data!r} holds no pruned traces (run --stage prune first)")
    return rows


def load_policy(model_args, trust_remote_code: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a folder, a Hub id or a GGUF file (TRL ``ModelConfig.model_name_or_path``, see
    ``rl.model_files.load_pretrained``); remote code only if the recipe allows it."""
    try:
        return load_pretrained(
            model_args.model_name_or_path, trust_remote_code=trust_remote_code, dtype=model_args.dtype,
            revision=model_args.model_revision, attn_implementation=model_args.attn_implementation,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def start_training(
    run: ParsedRun, check_loaded: Callable[[PreTrainedModel, PreTrainedTokenizerBase], None] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str | None] | None:
    """The start of every training stage, once its data is built: the start-up checks (``rl.checks``), then ``None``
    for a dry run; otherwise the output folder's writer lock (``claim_output``), the policy loaded and its precision
    checked, ``check_loaded(model, tokenizer)`` (a stage's own check of the loaded model, before anything is written)
    and ``prepare_training``: the model, its tokenizer and the checkpoint to resume from."""
    training_args, model_args = run.stage_args[0], run.stage_args[1]
    checks = startup_checks(run)
    if run.lcrl.dry_run:
        logger.info("dry run: %d start-up checks passed; nothing loaded or written", len(checks))
        return None
    claim_output(Path(training_args.output_dir))  # before loading: a refused relaunch should not load a model first
    model, tokenizer = load_policy(model_args, training_args.trust_remote_code)
    check_loaded_precision(model, training_args, model_args)
    if check_loaded is not None:
        check_loaded(model, tokenizer)
    return model, tokenizer, prepare_training(run, training_args)


def claim_output(out: Path) -> None:
    """The main process takes ``out``'s writer lock (``data.writer_lock``, created with the folder; released when the
    stage ends); every process raises ``OutputInUse`` if another live run writes there (say, the workers of a killed
    torchrun, which live on in sessions of their own), before anything is written."""
    error = None
    if is_main():
        try:
            WriterLock(out)
        except OutputInUse as exc:
            error = str(exc)
        except OSError as exc:  # not a folder, no permission, no flock: every process must hear of it, not hang
            error = f"output_dir {str(out)!r} cannot hold the run's writer lock: {exc}"
    error = broadcast(error)
    if error is not None:
        raise OutputInUse(error)


def prepare_training(run: ParsedRun, training_args) -> str | None:
    """W&B naming, and the checkpoint to resume from: the last one in output_dir, if any, provided the run that wrote
    it had the same ``RESUME_SETTINGS`` (``run_settings.json``; otherwise a ``ConfigError`` names the changes). The
    caller holds output_dir's writer lock (``start_training``)."""
    ident = setup_wandb(run)
    if training_args.run_name in (None, training_args.output_dir):
        training_args.run_name = ident["name"]
    if os.environ.get("WANDB_MODE") == "disabled":
        training_args.report_to = []
    resume = training_args.resume_from_checkpoint
    out = Path(training_args.output_dir)
    if resume is None and out.is_dir():
        resume = get_last_checkpoint(str(out))
    keys = (*RESUME_SETTINGS, *STAGE_RESUME_SETTINGS.get(run.stage, ()))
    settings = {k: v for k, v in run.to_dict().items()
                if k in keys and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    # Every process compares (so all of them stop on a mismatch); the main one alone writes the record. An explicit
    # resume_from_checkpoint is the user's own choice: it is not compared, and the record then holds its settings.
    explicit = training_args.resume_from_checkpoint is not None
    check_settings(out, settings, RUN_SETTINGS_FILE, "checkpoints of a run", fresh=explicit or not resume,
                   hint="use another output_dir, delete it, or pass --resume_from_checkpoint to resume anyway",
                   write=training_args.process_index == 0)
    if resume:
        logger.info("resuming from %s", resume)
    return resume


def train_and_save(trainer, run: ParsedRun, resume: str | None) -> None:
    """Train (resuming if asked), save the final model and the resolved recipe to the trainer's output_dir.

    With LoRA (``use_peft``) the adapter goes to ``<output_dir>/adapter`` and ``<output_dir>`` holds the full model
    (``save_merged``), so the next stage's ``--model_name_or_path``, evaluation (vLLM too) and ``trl vllm-serve``
    read ``<output_dir>`` as any model. The adapter is kept out of the root: transformers would load a folder with
    ``adapter_config.json`` as an adapter on its base model.
    """
    from peft import PeftModel

    trainer.train(resume_from_checkpoint=resume)
    out = trainer.args.output_dir
    if isinstance(trainer.model, PeftModel):
        adapter = os.path.join(out, ADAPTER_DIR)
        trainer.save_model(adapter)
        if trainer.args.should_save:
            save_merged(run.stage_args[1], adapter, out, trainer.processing_class,
                        getattr(trainer.args, "trust_remote_code", False))
        trainer.accelerator.wait_for_everyone()
    else:
        trainer.save_model(out)
    if trainer.args.should_save:  # one writer (save_model is already rank-aware)
        dump_run(run, out)
    # No accelerator.end_training() here: it would end the process group while the DDP model still holds it
    # (train.py ends it once the stage is gone: rl.distributed.close)


def save_merged(model_args, adapter: str, out: str, tokenizer: PreTrainedTokenizerBase,
                trust_remote_code: bool = False) -> None:
    """The base model (loaded afresh, as training loaded it) with the LoRA adapter in ``adapter`` merged
    (``merge_and_unload``), saved with ``tokenizer`` to ``out``: a full model. Loading the base again instead of
    merging the trained model works the same whether the trainer's weights are sharded (FSDP, ZeRO-3) or not."""
    from peft import PeftModel

    base, _ = load_policy(model_args, trust_remote_code)
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    logger.info("LoRA adapter in %s; the base with it merged (a full model) in %s", adapter, out)
