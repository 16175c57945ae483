"""Pieces every training stage shares: task data, model loading, resume and W&B wiring."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.trainer_utils import get_last_checkpoint

from data.budgets import resolve_tiers
from data.tasks import synthetic_traces, traces_to_dataset
from rl.config import LcrlArguments
from rl.recipes import ParsedRun, dump_run
from rl.tracking import setup_wandb

logger = logging.getLogger(__name__)


def task_dataset(lcrl: LcrlArguments, split: str, target: str | None) -> Dataset:
    """The task's ``split`` as a conversational dataset (with SFT completions when ``target`` is set)."""
    n = lcrl.num_train if split == "train" else lcrl.num_test
    traces = synthetic_traces(split, n, lcrl.task_seed, lcrl.synthetic)
    return traces_to_dataset(traces, lcrl.budget, resolve_tiers(lcrl.tiers), seed=lcrl.task_seed, target=target)


def load_policy(model_args, trust_remote_code: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a path or Hub id (TRL ``ModelConfig``); remote code only if the recipe allows it."""
    path = model_args.model_name_or_path
    if not path:
        raise ValueError("model_name_or_path is not set in the recipe")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else None
    if dtype is None:
        dtype = "auto" if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        path,
        trust_remote_code=trust_remote_code,
        revision=model_args.model_revision,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def prepare_training(run: ParsedRun, training_args) -> str | None:
    """W&B naming, the recipe dump, and the checkpoint to resume from (the last one in output_dir, if any)."""
    ident = setup_wandb(run)
    if training_args.run_name in (None, training_args.output_dir):
        training_args.run_name = ident["name"]
    if os.environ.get("WANDB_MODE") == "disabled":
        training_args.report_to = []
    resume = training_args.resume_from_checkpoint
    if resume is None and Path(training_args.output_dir).is_dir():
        resume = get_last_checkpoint(training_args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    return resume


def train_and_save(trainer, run: ParsedRun, resume: str | None) -> None:
    """Train (resuming if asked), save the final model and the resolved recipe to the trainer's output_dir."""
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(trainer.args.output_dir)
    dump_run(run, trainer.args.output_dir)
    trainer.accelerator.end_training()
