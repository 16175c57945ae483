"""Pipeline stages. Each stage module has ``run(run: ParsedRun) -> None``; train.py dispatches here."""

from __future__ import annotations

from importlib import import_module

from rl.config import InitArguments, LcrlArguments, PruneArguments
from rl.eval_config import EvalArguments
from rl.recipes import ParsedRun
from rl.refresh import RefreshArguments

STAGE_MODULES: dict[str, str] = {
    "init": "rl.stages.init",
    "sft": "rl.stages.sft",
    "grpo": "rl.stages.grpo",
    "eval": "rl.stages.evaluation",
    "prune": "rl.stages.prune",
}


def stage_types() -> dict[str, tuple[type, ...]]:
    """The dataclasses each stage's recipe fills, ``LcrlArguments`` first."""
    from trl import GRPOConfig, ModelConfig, SFTConfig

    from rl.budget_rollout import BudgetRolloutArguments
    from rl.dynamic_sampling import DynamicSamplingArguments

    return {
        "init": (LcrlArguments, InitArguments),
        "sft": (LcrlArguments, SFTConfig, ModelConfig),
        "grpo": (LcrlArguments, GRPOConfig, ModelConfig, RefreshArguments, DynamicSamplingArguments,
                 BudgetRolloutArguments),
        "eval": (LcrlArguments, EvalArguments),
        "prune": (LcrlArguments, PruneArguments),
    }


def run_stage(run: ParsedRun) -> None:
    import_module(STAGE_MODULES[run.stage]).run(run)
