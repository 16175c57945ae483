"""TRL's ``GRPOTrainer`` with the on-policy data refresh of ``rl.refresh`` (its loop untouched).

What the subclass adds, each a thin override of TRL's own hooks:

- the train dataset is ``refresh_pool`` slots (a ``pool_slot`` column); ``_generate_and_score_completions``
  resolves each slot to the problem it holds now, so a refresh takes effect at the next generation batch whatever
  the dataloader has prefetched;
- ``_calculate_rewards`` records each rollout's correctness and length (``rewards.correctness``: the grader's cache
  makes it free when a reward already graded the batch);
- a callback refreshes the pool every ``refresh_every`` steps (rollouts gathered from every rank, so every rank
  makes the same decision) and logs ``pool/*`` through TRL's metrics; the main process writes the SFT targets;
- ``_save_checkpoint`` writes the pool state (``refresh_pool.json``) into the checkpoint folder before TRL saves
  the rest, and ``_load_optimizer_and_scheduler`` (TRL's own place for extra state) restores it on resume;
- the sampler's permutation depends only on (seed, epoch), so a resumed run samples the slots an uninterrupted one
  would (TRL's ``RepeatSampler`` carries its generator across epochs, which a restart loses).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate.utils import gather_object
from datasets import Dataset
from torch.utils.data import Sampler
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from data.completion_format import CompletionFormat
from data.format import completion_text
from data.prune_io import JsonlLog, read_jsonl, write_atomic, write_jsonl
from rewards.correctness import correctness_scores
from rewards.length import token_lengths
from rewards.registry import GradingConfig
from rl.refresh import (POOL_FILE, TARGETS_LOG, TARGETS_SFT, RefreshArguments, RefreshPool, RefreshReport, Rollout,
                        latest_targets, target_row)

logger = logging.getLogger(__name__)

SLOT, PROBLEM = "pool_slot", "pool_problem"
EPOCH_STRIDE = 1_000_003


class EpochSeededSampler(Sampler):
    """TRL's sampler, reseeded at each epoch with ``seed + EPOCH_STRIDE * epoch`` (epoch 0: TRL's own order)."""

    def __init__(self, base) -> None:
        self.base, self.epoch = base, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if getattr(self.base, "shuffle", False) and getattr(self.base, "seed", None) is not None:
            self.base.generator.manual_seed(self.base.seed + EPOCH_STRIDE * self.epoch)
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


class _RefreshCallback(TrainerCallback):
    def __init__(self, trainer: RefreshGRPOTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.trainer.refresh_args.refresh_every == 0:
            self.trainer.refresh_pool()

    def on_train_end(self, args, state, control, **kwargs):
        self.trainer.write_sft_targets()
        if self.trainer._targets_log is not None:
            self.trainer._targets_log.close()


class RefreshGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` over a refreshed pool of prompts (module docstring).

    Args:
        problems: the whole train split (pool, then reserve), as TRL rows (``id``, ``prompt``, ``solution``, ...).
        questions: the bare question of each problem (for the SFT target rows).
        refresh_args: the refresh options.
        grading: how correctness is graded (the run's ``grading``).
        completion_format: how the policy's completions read (``data.completion_format``): thinking lengths, the
            correctness of each rollout (truncated and unclosed score 0) and the text of SFT targets (markers kept
            even when they are special tokens). ``None``: thinking is the whole completion.
        **kwargs: ``GRPOTrainer``'s arguments, without ``train_dataset`` (the pool's slots are the dataset).
    """

    def __init__(self, *, problems: Dataset, questions: Sequence[str], refresh_args: RefreshArguments,
                 grading: GradingConfig | None = None, completion_format: CompletionFormat | None = None,
                 **kwargs) -> None:
        if len(questions) != len(problems):
            raise ValueError(f"{len(questions)} questions for {len(problems)} problems")
        self.refresh_args, self.grading, self.completion_format = refresh_args, grading, completion_format
        self.problems = problems.to_list()
        self.questions = list(questions)
        self.pool = RefreshPool(refresh_args.refresh_pool, len(self.problems), refresh_args.refresh_recycle)
        self._targets_log: JsonlLog | None = None
        slots = Dataset.from_list([{**self.problems[i], SLOT: i} for i in range(refresh_args.refresh_pool)])
        super().__init__(train_dataset=slots, **kwargs)
        self.add_callback(_RefreshCallback(self))

    # --- TRL hooks ---
    def _get_train_sampler(self, dataset=None) -> Sampler:
        return EpochSeededSampler(super()._get_train_sampler(dataset))

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if self.model.training:
            inputs = [self._resolve(x) for x in inputs]
        return super()._generate_and_score_completions(inputs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training and inputs and PROBLEM in inputs[0]:
            self._record(inputs, completions, completion_ids_list)
        return rewards

    def _save_checkpoint(self, model, trial) -> None:
        window = gather_object([r.as_list() for r in self.pool.window])  # a collective: every rank calls it
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            state = self.pool.state_dict([Rollout.from_list(v) for v in window])
            write_atomic(folder / POOL_FILE, json.dumps({"global_step": self.state.global_step, **state}))
        super()._save_checkpoint(model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self._load_pool(Path(checkpoint))

    # --- the pool ---
    def _resolve(self, row: dict[str, Any]) -> dict[str, Any]:
        problem = self.pool.problem_of(row[SLOT])
        return {**row, **self.problems[problem], PROBLEM: problem}

    def _record(self, inputs, completions, completion_ids_list) -> None:
        fmt = self.completion_format
        texts = [completion_text(c) for c in completions] if fmt is None else fmt.texts(completions,
                                                                                          completion_ids_list)
        correct = correctness_scores(texts, [x["solution"] for x in inputs], self.grading,
                                     completion_ids=completion_ids_list, fmt=fmt)
        tokens = token_lengths(completion_ids_list, "completion", None)
        thinking = token_lengths(completion_ids_list, "thinking", fmt)
        keep_text = self.refresh_args.refresh_targets
        self.pool.record(
            Rollout(x[SLOT], x[PROBLEM], c, n, t, text if keep_text and c >= 1.0 else None)
            for x, c, n, t, text in zip(inputs, correct, tokens, thinking, texts)
        )

    def refresh_pool(self) -> RefreshReport:
        """Refresh now (every rank must call it: the window is gathered), log ``pool/*``, write the targets."""
        window = [Rollout.from_list(v) for v in gather_object([r.as_list() for r in self.pool.take_window()])]
        step = self.state.global_step
        report = self.pool.refresh(window, step, want_targets=self.refresh_args.refresh_targets)
        for name, value in report.metrics.items():
            self._metrics["train"][name].append(value)
        logger.info("refresh at step %d: %d prompts seen, %.0f%% zero-variance; %d replaced (%d retired, %d "
                    "recycled), reserve %d", step, len(report.pass_rates),
                    100 * report.metrics["pool/zero_variance_share"], len(report.added), len(report.retired),
                    len(report.recycled), len(self.pool.reserve))
        if report.kept_stale:
            logger.warning("the reserve is empty: %d stale prompts stay in the pool", len(report.kept_stale))
        if report.targets and self.args.should_save:
            log = self._targets()
            for target in report.targets:
                log.append(target_row(self.problems[target.problem], self.questions[target.problem], target, step))
            self.write_sft_targets()
        return report

    def _targets(self) -> JsonlLog:
        if self._targets_log is None:
            Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
            self._targets_log = JsonlLog(Path(self.args.output_dir) / TARGETS_LOG)
        return self._targets_log

    def write_sft_targets(self) -> None:
        """``refresh_sft.jsonl``: one row per problem, its shortest correct rollout (main process, with targets)."""
        path = Path(self.args.output_dir) / TARGETS_LOG
        if self.refresh_args.refresh_targets and self.args.should_save and path.exists():
            rows = latest_targets(read_jsonl(path))
            write_jsonl(Path(self.args.output_dir) / TARGETS_SFT, rows)

    def _load_pool(self, checkpoint: Path) -> None:
        path = checkpoint / POOL_FILE
        if not path.is_file():
            logger.warning("%s has no %s (saved without refresh): the pool starts afresh", checkpoint, POOL_FILE)
            return
        state = json.loads(path.read_text())
        self.pool.load_state_dict(state, keep_window=self.accelerator.process_index == 0)
        logger.info("refresh pool restored from %s (%d refreshes, reserve %d)", path, self.pool.refreshes,
                    len(self.pool.reserve))
        log_path = Path(self.args.output_dir) / TARGETS_LOG
        if self.args.should_save and log_path.exists():  # drop targets written after the checkpoint: redone now
            rows = read_jsonl(log_path)
            kept = [r for r in rows if r["step"] <= state["global_step"]]
            if len(kept) != len(rows):
                write_jsonl(log_path, kept)
                logger.info("dropped %d SFT targets written after the checkpoint", len(rows) - len(kept))
            self.write_sft_targets()
