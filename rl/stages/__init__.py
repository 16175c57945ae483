"""Pipeline stages. Each stage module has ``run(run: ParsedRun) -> None``; train.py dispatches here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import import_module

from rl.config import InitArguments, LcrlArguments
from rl.eval_config import EvalArguments
from rl.prune_config import PruneArguments
from rl.recipes import ParsedRun
from rl.refresh import RefreshArguments

STAGE_MODULES: dict[str, str] = {
    "init": "rl.stages.init",
    "sft": "rl.stages.sft",
    "grpo": "rl.stages.grpo",
    "eval": "rl.stages.evaluation",
    "prune": "rl.stages.prune",
    "dpo": "rl.stages.dpo",
}


def _sft() -> tuple[type, ...]:
    from trl import ModelConfig, SFTConfig

    return LcrlArguments, SFTConfig, ModelConfig


def _dpo() -> tuple[type, ...]:
    from trl import DPOConfig, ModelConfig

    return LcrlArguments, DPOConfig, ModelConfig


def _grpo() -> tuple[type, ...]:
    from trl import GRPOConfig, ModelConfig

    from rl.budget_rollout import BudgetRolloutArguments
    from rl.dynamic_sampling import DynamicSamplingArguments

    return (LcrlArguments, GRPOConfig, ModelConfig, RefreshArguments, DynamicSamplingArguments,
            BudgetRolloutArguments)


_TYPES: dict[str, Callable[[], tuple[type, ...]]] = {
    "init": lambda: (LcrlArguments, InitArguments),
    "sft": _sft,
    "grpo": _grpo,
    "eval": lambda: (LcrlArguments, EvalArguments),
    "prune": lambda: (LcrlArguments, PruneArguments),
    "dpo": _dpo,
}


class StageTypes(Mapping[str, tuple[type, ...]]):
    """Stage name -> the dataclasses its recipe fills, ``LcrlArguments`` first. A stage's types are imported when
    asked for: TRL's trainer configs bring transformers' ``TrainingArguments`` and peft (~5 s on 2 cores), which
    ``init``, ``eval`` and ``prune`` never use."""

    def __getitem__(self, stage: str) -> tuple[type, ...]:
        return _TYPES[stage]()

    def __contains__(self, stage: object) -> bool:  # without importing the stage's types
        return stage in _TYPES

    def __iter__(self) -> Iterator[str]:
        return iter(_TYPES)

    def __len__(self) -> int:
        return len(_TYPES)


def stage_types() -> StageTypes:
    """The dataclasses each stage's recipe fills, ``LcrlArguments`` first (imported per stage when read)."""
    return StageTypes()


def run_stage(run: ParsedRun) -> None:
    """Run ``run``'s stage; the output folders it locked (``data.writer_lock``) are free again once it ends."""
    from data.writer_lock import released_on_exit

    with released_on_exit():
        import_module(STAGE_MODULES[run.stage]).run(run)
