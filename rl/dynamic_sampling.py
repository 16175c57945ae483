"""Dynamic sampling (DAPO's ``filter_groups``, Yu et al. 2025, arXiv 2503.14476; TRL issue #3708) on TRL's hooks.

A group whose rewards have no variance (every completion right, or every one wrong) has zero advantage everywhere:
it adds nothing to the policy gradient but still dilutes the batch. With ``dynamic_sampling: true`` such groups
are dropped before the loss and the batch is filled with the groups of fresh prompts, generated in extra rounds,
at most ``max_gen_rounds`` rounds per generation batch (the first included; 0: no cap, as verl users set for
small models).

How it sits on TRL (no copy of ``GRPOTrainer._generate_and_score_completions``, which TRL removed two trainers
for, #6309 and #7132): the subclass *calls* TRL's method once per round and edits its output.

- ``_calculate_rewards`` (TRL's reward hook) records the weighted total reward of every completion, gathered
  over processes, so every rank sees every group and all ranks take the same decisions (extra rounds are
  collective);
- each round's output keeps its own advantages (TRL normalises per round: with ``scale_rewards: batch`` the batch
  is the round's); the kept groups' rows are concatenated, re-padded (prompts on the left, completions on the
  right) and ``num_items_in_batch`` is recounted;
- fresh prompts come from an own seeded shuffle of the train set (``fresh_batches``), each repeated
  ``num_generations`` times as TRL's sampler does, sharded by rank;
- when the cap is reached with too few varied groups, zero-variance groups top the batch up (advantage 0: they
  add no gradient, only tokens to the normaliser), so every step has TRL's batch shape.

Logged per generation batch: ``dynamic_sampling/rounds``, ``dynamic_sampling/extra_rounds``,
``dynamic_sampling/zero_variance_generated`` (share of generated groups with no variance) and
``dynamic_sampling/zero_variance_in_loss`` (share of the groups reaching the loss). Only local batches that hold
whole groups are supported (``per_device_train_batch_size * steps_per_generation`` a multiple of
``num_generations``); multimodal outputs are not.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOTrainer

from rl.config import ConfigError

logger = logging.getLogger(__name__)

LEFT_PADDED = ("prompt_ids", "prompt_mask")  # TRL pads prompts on the left, everything else on the right


@dataclass
class DynamicSamplingArguments:
    """Options of DAPO dynamic sampling in ``--stage grpo`` (module docstring)."""

    dynamic_sampling: bool = field(
        default=False, metadata={"help": "Drop zero-variance groups before the loss and refill with fresh prompts "
                                          "(DAPO filter_groups)."}
    )
    max_gen_rounds: int = field(
        default=3, metadata={"help": "Generation rounds per generation batch, the first included (0: no cap)."}
    )

    def __post_init__(self) -> None:
        if self.max_gen_rounds < 0:
            raise ConfigError(f"max_gen_rounds must be >= 0 (0: no cap), got {self.max_gen_rounds}")


def zero_variance_groups(rewards: Sequence[float], group_size: int, tol: float = 1e-6) -> list[bool]:
    """Per consecutive group of ``group_size`` rewards: True when max - min <= ``tol`` (no learning signal)."""
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards are not whole groups of {group_size}")
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    return [max(g) - min(g) <= tol for g in groups]


def choose_groups(flags: Sequence[Sequence[bool]], needed: int) -> list[tuple[int, int]]:
    """``needed`` (round, group) pairs from the rounds' zero-variance flags: varied groups first, in order, then
    zero-variance ones to top up; raises ``ValueError`` when the rounds hold fewer than ``needed`` groups."""
    varied = [(r, g) for r, fl in enumerate(flags) for g, zero in enumerate(fl) if not zero]
    flat = [(r, g) for r, fl in enumerate(flags) for g, zero in enumerate(fl) if zero]
    chosen = (varied + flat)[:needed]
    if len(chosen) < needed:
        raise ValueError(f"{len(chosen)} groups generated, {needed} needed")
    return chosen


def _pad_cat(parts: list[torch.Tensor], left: bool, value: float) -> torch.Tensor:
    width = max(p.shape[1] for p in parts)
    padded = []
    for p in parts:
        pad = (width - p.shape[1], 0) if left else (0, width - p.shape[1])
        padded.append(torch.nn.functional.pad(p, pad, value=value))
    return torch.cat(padded)


def merge_groups(outputs: Sequence[dict[str, Any]], chosen: Sequence[tuple[int, int]], group_size: int,
                 pad_token_id: int = 0) -> dict[str, Any]:
    """The rows of the ``chosen`` (round, group) pairs of TRL's per-round outputs, in one output of TRL's shape.

    Row tensors (first dimension = rows) are gathered and re-padded to the widest round; ``num_items_in_batch`` is
    left to the caller (it needs a gather over processes). Other keys raise ``ValueError``.
    """
    rows = outputs[0]["advantages"].shape[0]
    merged: dict[str, Any] = {}
    for key in outputs[0]:
        if key == "num_items_in_batch":
            continue
        values = [o[key] for o in outputs]
        if not all(isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == rows for v in values):
            raise ValueError(f"dynamic sampling cannot merge the output key {key!r} (not one row per completion)")
        parts = [values[r][g * group_size : (g + 1) * group_size] for r, g in chosen]
        if parts[0].dim() == 1:
            merged[key] = torch.cat(parts)
        else:
            merged[key] = _pad_cat(parts, key in LEFT_PADDED, pad_token_id if key.endswith("_ids") else 0)
    return merged


def fresh_batches(num_rows: int, prompts: int, group_size: int, seed: int, rank: int = 0,
                  world: int = 1) -> Iterator[list[int]]:
    """Dataset indices of fresh generation batches: ``prompts`` prompts per rank, each ``group_size`` times in a
    row, from a seeded shuffle per pass (seed + pass); ranks take disjoint prompts of the same draw."""
    epoch = 0
    while True:
        order = list(range(num_rows))
        random.Random(seed + epoch).shuffle(order)
        step = prompts * world
        for start in range(0, num_rows - step + 1, step):
            mine = order[start + rank * prompts : start + (rank + 1) * prompts]
            yield [i for i in mine for _ in range(group_size)]
        epoch += 1


class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with DAPO dynamic sampling (module docstring); everything else is TRL's."""

    def __init__(self, *args, dynamic_args: DynamicSamplingArguments, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dynamic_args = dynamic_args
        self._round_rewards: torch.Tensor | None = None
        self._fresh: Iterator[list[int]] | None = None
        local = self.args.per_device_train_batch_size * self.args.steps_per_generation
        if local % self.num_generations:
            raise ConfigError(f"dynamic_sampling needs whole groups per process: per_device_train_batch_size x "
                              f"steps_per_generation ({local}) must be a multiple of num_generations "
                              f"({self.num_generations})")

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        self._round_rewards = (rewards_per_func * weights).nansum(dim=1)
        return rewards_per_func

    def _next_fresh_inputs(self, local: int) -> list[dict[str, Any]]:
        if self._fresh is None:
            self._fresh = fresh_batches(len(self.train_dataset), local // self.num_generations, self.num_generations,
                                        self.args.seed + 1, self.accelerator.process_index,
                                        self.accelerator.num_processes)
        return [self.train_dataset[i] for i in next(self._fresh)]

    def _generate_and_score_completions(self, inputs):
        if not (self.model.training and self.dynamic_args.dynamic_sampling):
            return super()._generate_and_score_completions(inputs)
        size, local = self.num_generations, len(inputs)
        needed, rank, world = local // size, self.accelerator.process_index, self.accelerator.num_processes
        cap = self.dynamic_args.max_gen_rounds
        outputs, flags = [], []  # per round: TRL's output; every rank's zero-variance flags
        batch = inputs
        while True:
            outputs.append(super()._generate_and_score_completions(batch))
            flags.append(zero_variance_groups(self._round_rewards.tolist(), size))
            varied = [sum(not f for fl in flags for f in fl[r * needed : (r + 1) * needed]) for r in range(world)]
            if min(varied) >= needed or (cap and len(outputs) >= cap):
                break
            if len(outputs) % 10 == 0:
                logger.warning("dynamic sampling: %d rounds and still %d of %d varied groups (max_gen_rounds: %s)",
                               len(outputs), min(varied), needed, cap or "no cap")
            batch = self._next_fresh_inputs(local)
        mine = [fl[rank * needed : (rank + 1) * needed] for fl in flags]
        chosen = choose_groups(mine, needed)
        merged = merge_groups(outputs, chosen, size, self._tokenizer.pad_token_id or 0)
        loss_mask = merged["completion_mask"] * merged.get("tool_mask", 1)
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        in_loss = sum(mine[r][g] for r, g in chosen) / needed
        in_loss = self.accelerator.gather(torch.tensor([in_loss], device=self.accelerator.device)).mean().item()
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/rounds"].append(float(len(outputs)))
        metrics["dynamic_sampling/extra_rounds"].append(float(len(outputs) - 1))
        metrics["dynamic_sampling/zero_variance_generated"].append(sum(map(sum, flags)) / sum(map(len, flags)))
        metrics["dynamic_sampling/zero_variance_in_loss"].append(in_loss)
        return merged
