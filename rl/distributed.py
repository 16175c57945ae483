"""Several processes: who does what, and how results come back to the one process that writes them.

The stages without a Trainer (``eval``, ``prune``) follow nanochat's sharded evaluation on accelerate's
``PartialState``: process ``r`` of ``N`` takes items ``r, r + N, r + 2N, ...`` (``shard``), each process runs on its
own device (``PartialState().device``: ``cuda:LOCAL_RANK``, or the CPU), the results are gathered
(``gather_object``, one collective) and put back in item order, and the main process alone writes files and logs to
W&B. Gathering to every process (an all-gather) keeps every process's decisions identical. With one process every
helper is a no-op, so the one-process path is the same code.

Generation is split so that a run on N processes gives the completions of a run on one: greedy decoding does not
depend on which prompts share a batch, and sampled decoding is done in fixed blocks of prompts, each seeded by its
block number (``sharded_generate``), whatever process takes it.

``check_group_layout``: GRPO start-up check that no prompt group is split across processes (group rewards).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object

from rl.config import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def state() -> PartialState:
    """accelerate's process state (starts the process group under ``torchrun``/``accelerate launch``).

    The first call decides (the trainers' arguments make it first for sft/grpo, with their ``use_cpu``). Without a
    GPU, ``cpu=True``: accelerate would otherwise see ``LOCAL_RANK`` and no device, and stay one process
    (``DistributedType.NO``) in every one of the N processes; with it, N processes form a gloo group (MULTI_CPU).
    """
    cpu = os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def log_world(stage: str) -> PartialState:
    """Log, at the start of a stage, how many processes run it and on which devices (main process only)."""
    st = state()
    logger.info("stage %s: world size %d (%s, backend %s, main process device %s)", stage, st.num_processes,
                st.distributed_type, st.backend or "none", st.device)
    return st


def is_main() -> bool:
    return state().is_main_process


def local_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` on GPUs, else the CPU (never GPU 0 for every process)."""
    return state().device


def shard(n: int) -> list[int]:
    """This process's items of ``n``: ``range(rank, n, world_size)`` (nanochat), deterministic, disjoint."""
    st = state()
    return list(range(st.process_index, n, st.num_processes))


def gather_in_order(indexed: Sequence[tuple[int, T]]) -> list[T]:
    """Every process's ``(index, value)`` pairs, on every process, as the list of values in index order."""
    pairs = gather_object(list(indexed)) if state().num_processes > 1 else list(indexed)
    return [v for _, v in sorted(pairs, key=lambda p: p[0])]


def gather_sum(values: dict[str, float]) -> dict[str, float]:
    """Per-key sums of every process's counters (on every process)."""
    if state().num_processes == 1:
        return dict(values)
    total: dict[str, float] = {}
    for part in gather_object([dict(values)]):
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def broadcast(value: Any) -> Any:
    """The main process's ``value`` on every process."""
    if state().num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def wait_for_everyone() -> None:
    state().wait_for_everyone()


def close() -> None:
    """End the process group once the stage is over: every process calls it after the stage returns.

    Order matters with gloo. A process group is freed by whoever drops its last reference, and its destructor waits
    for its worker threads. Dropped by the Python ``ProcessGroup`` object (``destroy_process_group``), the GIL is
    released during that wait; dropped by a DDP model's ``Reducer`` (after accelerate's ``end_training`` has already
    unregistered the group), it is held, while a worker thread still freeing a finished all-gather's tensors waits
    for it: a deadlock, seen as a two-process SFT run whose rank never exits (py-spy: ``~ProcessGroupGloo`` ->
    ``thread::join`` in the main thread, ``~AsyncAllgatherWork`` -> GIL in a worker). So the stage's objects go first
    (``gc.collect``: the trainer and its DDP model), with the group still registered, then the group.
    """
    import gc

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.destroy_process_group()


def sharded_generate(engine, prompts: Sequence[str], params, repeats: int = 1, desc: str = "generate") -> list:
    """Completions of every prompt, ``repeats`` times each (prompt-major), split across processes, gathered to
    every process in order: the same list on N processes as on one.

    Greedy (``temperature == 0``): process ``r`` takes prompts ``r, r + N, ...`` in one ``generate`` call. Sampling:
    prompts in blocks of ``batch_size // repeats`` (the engine's batch), block ``b`` decoded with seed
    ``params.seed + b`` on whichever process takes it (block ``b`` goes to process ``b mod N``).
    """
    if params.temperature == 0:
        mine = shard(len(prompts))
        gens = engine.generate([prompts[i] for i in mine for _ in range(repeats)], params, desc=desc) if mine else []
        indexed = [(i * repeats + j, gens[m * repeats + j]) for m, i in enumerate(mine) for j in range(repeats)]
        return gather_in_order(indexed)
    size = max(1, getattr(engine, "batch_size", 64) // repeats)
    blocks = [list(range(s, min(s + size, len(prompts)))) for s in range(0, len(prompts), size)]
    indexed = []
    for b in shard(len(blocks)):
        block = blocks[b]
        gens = engine.generate([prompts[i] for i in block for _ in range(repeats)],
                               replace(params, seed=params.seed + b), desc=f"{desc}/{b}")
        indexed += [(i * repeats + j, gens[m * repeats + j]) for m, i in enumerate(block) for j in range(repeats)]
    return gather_in_order(indexed)


def vllm_placement(gpu_memory_utilization: float) -> dict[str, Any]:
    """``vllm.LLM`` arguments so that N processes do not all load onto GPU 0 with 85% of it each: with several
    processes, vLLM's torchrun launcher (``external_launcher``, as TRL's colocate mode) puts each on
    ``cuda:LOCAL_RANK``, and processes that share one GPU split its memory share."""
    st = state()
    if st.num_processes == 1:
        return {"gpu_memory_utilization": gpu_memory_utilization}
    local = int(os.environ.get("LOCAL_WORLD_SIZE", st.num_processes))
    per_gpu = math.ceil(local / max(1, torch.cuda.device_count()))
    return {"distributed_executor_backend": "external_launcher",
            "gpu_memory_utilization": gpu_memory_utilization / per_gpu}


def check_group_layout(per_device_batch: int, steps_per_generation: int, num_generations: int, world_size: int,
                       group_rewards: Sequence[str]) -> None:
    """Refuse a GRPO layout that splits a prompt's group across processes while a group reward is on.

    TRL's ``RepeatSampler`` puts each prompt's ``num_generations`` completions next to each other, and every process
    gets ``per_device_train_batch_size x steps_per_generation`` consecutive ones; the rewards are computed on each
    process's own completions, so ``kimi`` and ``efficiency`` would see a fragment of a group unless that number is a
    multiple of ``num_generations``. (TRL's own advantages are computed after a gather and are not affected.)
    """
    per_rank = per_device_batch * steps_per_generation
    if not group_rewards or world_size == 1 or per_rank % num_generations == 0:
        return
    raise ConfigError(
        f"group rewards {', '.join(group_rewards)} compare the {num_generations} completions of one prompt, but with "
        f"{world_size} processes each gets per_device_train_batch_size x steps_per_generation = {per_device_batch} x "
        f"{steps_per_generation} = {per_rank} completions, not a multiple of num_generations ({num_generations}), so "
        f"groups would be split across processes; set per_device_train_batch_size to a multiple of "
        f"{num_generations // math.gcd(steps_per_generation, num_generations)} (or steps_per_generation to a multiple "
        f"of {num_generations // math.gcd(per_device_batch, num_generations)}), or num_generations to a divisor of "
        f"{per_rank}"
    )


class RowBuffer:
    """A log's ``append`` for the rows one process makes in one round; ``flush_to`` gathers every process's rows and
    the main process alone appends them to the real log (``data.prune_io.JsonlLog``), in ``order`` of their
    ``key``, so a kill loses at most a round and never writes a row twice."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    def flush_to(self, log, order: dict[Any, int]) -> None:
        rows, self.rows = self.rows, []
        rows = gather_object(rows) if state().num_processes > 1 else rows  # a collective: every process calls it
        if is_main():
            for row in sorted(rows, key=lambda r: order.get(r["key"], -1)):
                log.append(row)
