"""Weights & Biases set-up shared by every stage.

With no API key (``WANDB_API_KEY`` unset and no login in ``~/.netrc``) W&B runs in offline mode on its own: no
prompt, no network, runs land in ``outputs/wandb`` and can be pushed later with ``wandb sync``. Runs are named
``<stage>-<budget>-<recipe>[-<reward recipe>]`` and grouped by ``experiment`` (default: the recipe's folder), and
tagged with the stage, budget, recipe, tier preset, reward recipe (``rewards:kimi``) and reward names, so reward
recipes can be compared side by side in a dashboard. ``comparison_config`` puts the same facts, with the tier
budgets and reward weights, at the top level of the run config, where W&B filters and groups by them.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from rl.config import REPO_ROOT
from rl.recipes import ParsedRun

logger = logging.getLogger(__name__)


def _has_wandb_login() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _group(run: ParsedRun) -> str:
    return run.lcrl.experiment or run.recipe.parent.name


def _named_reward_recipe(run: ParsedRun) -> str | None:
    """The reward recipe's name when it is a named or file recipe (not an inline list, not unset)."""
    from rewards.recipes import INLINE

    name = run.lcrl.reward_recipe
    return None if name in (None, INLINE) else name


def run_identity(run: ParsedRun) -> dict[str, Any]:
    """Name, group and tags of a run.

    Tags: ``stage:``, ``budget:``, ``recipe:`` (the stage recipe's file stem), ``tiers:`` (the tier preset, or
    ``custom`` for per-tier overrides), ``rewards:`` (the reward recipe, ``custom`` for an inline list) and one
    ``reward:`` per reward name. The name adds the reward recipe when it is a named one, so runs of one recipe
    with different ``--rewards`` differ by name as well as by tag.
    """
    recipe = run.recipe.stem
    lcrl = run.lcrl
    reward_names = [str(r.get("name", "?")) for r in (lcrl.rewards or []) if isinstance(r, dict)]
    tags = [f"stage:{run.stage}", f"budget:{lcrl.budget}", f"recipe:{recipe}"]
    if lcrl.tiers is not None:
        tags.append(f"tiers:{lcrl.tiers if isinstance(lcrl.tiers, str) else 'custom'}")
    if lcrl.reward_recipe is not None:
        tags.append(f"rewards:{lcrl.reward_recipe}")
    tags += [f"reward:{n}" for n in dict.fromkeys(reward_names)]
    name = f"{run.stage}-{lcrl.budget}-{recipe}" if run.stage in ("grpo", "eval") else f"{run.stage}-{recipe}"
    if named := _named_reward_recipe(run):
        name += f"-{named}"
    return {"name": name, "group": _group(run), "tags": tags}


def comparison_config(run: ParsedRun) -> dict[str, Any]:
    """What reward-recipe comparisons filter and group by, as top-level W&B config keys.

    ``experiment`` (the group), ``recipe``, ``budget``, ``reward_recipe``, ``rewards`` (the full list with
    parameters), ``reward_weight`` (weight by reward name), and the resolved tiers as ``tier_budget``,
    ``tier_floor`` and ``tier_penalty`` (each tier's thinking-token band and penalty strength, after presets and
    overrides; the no-thinking tier ``none`` only in runs that use it).
    """
    from data.budgets import MIXES, NO_THINKING, resolve_tiers

    lcrl = run.lcrl
    specs = [dict(s) for s in (lcrl.rewards or []) if isinstance(s, dict)]
    used = MIXES.get(lcrl.budget, (lcrl.budget,))  # the no-thinking tier only where the run uses it
    tiers = {n: t for n, t in resolve_tiers(lcrl.tiers).items() if n != NO_THINKING or NO_THINKING in used}
    return {
        "experiment": _group(run),
        "recipe": str(run.recipe.relative_to(REPO_ROOT)) if run.recipe.is_relative_to(REPO_ROOT) else str(run.recipe),
        "budget": lcrl.budget,
        "reward_recipe": lcrl.reward_recipe,
        "rewards": specs,
        "reward_weight": {str(s.get("name")): float(s.get("weight", 1.0)) for s in specs},
        "tier_budget": {name: tier.budget for name, tier in tiers.items()},
        "tier_floor": {name: tier.floor for name, tier in tiers.items()},
        "tier_penalty": {name: tier.penalty for name, tier in tiers.items()},
    }


def setup_wandb(run: ParsedRun) -> dict[str, Any]:
    """Configure W&B through its environment variables (read by transformers' callback and ``wandb.init``)."""
    if os.environ.get("WANDB_MODE") is None and not _has_wandb_login():
        os.environ["WANDB_MODE"] = "offline"
        logger.info("W&B: no API key found, logging offline (sync later with `wandb sync outputs/wandb/offline-*`)")
    ident = run_identity(run)
    os.environ.setdefault("WANDB_PROJECT", run.lcrl.wandb_project)
    os.environ.setdefault("WANDB_DIR", str(REPO_ROOT / "outputs"))
    os.environ["WANDB_RUN_GROUP"] = ident["group"]
    os.environ["WANDB_TAGS"] = ",".join(ident["tags"])
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
    return ident


def start_wandb_run(run: ParsedRun):
    """A W&B run for stages that have no Trainer (init, eval, prune); ``None`` if W&B is disabled
    (``WANDB_MODE=disabled``) and on every process but the main one (one run however many processes; the trainers'
    own W&B callback does the same)."""
    import wandb

    from rl.distributed import is_main

    ident = setup_wandb(run)
    if os.environ.get("WANDB_MODE") == "disabled" or not is_main():
        return None
    return wandb.init(
        project=os.environ["WANDB_PROJECT"],
        name=ident["name"],
        group=ident["group"],
        tags=ident["tags"],
        config={**run.to_dict(), **comparison_config(run)},
        dir=os.environ["WANDB_DIR"],
        reinit="finish_previous",
    )


def lcrl_config_callback(run: ParsedRun):
    """A Trainer callback that adds lcrl's options to the W&B run config: all under ``lcrl``, and the comparison
    keys (``comparison_config``: reward recipe, weights, tiers, budget) at the top level."""
    from transformers import TrainerCallback

    class _LcrlConfig(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            import wandb

            if wandb.run is not None:
                wandb.run.config.update({"lcrl": run.to_dict(), **comparison_config(run)}, allow_val_change=True)

    return _LcrlConfig()


SUMMARY_METRICS = {  # eval row field -> summary name
    "accuracy": "accuracy",
    "think_tokens_mean": "think_tokens",
    "total_tokens_mean": "total_tokens",
    "within_budget": "within_budget",
    "truncated": "truncated",
    "accuracy_per_1k": "accuracy_per_1k_think",
    "otb_accuracy": "otb_accuracy",
    "aes": "aes",
}


def _weighted(rows: list[dict], key: str) -> float | None:
    pairs = [(r[key], r.get("n") or 1) for r in rows if r.get(key) is not None]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


def _uncontrolled(rows: list[dict]) -> list[dict]:
    """The evaluation rows with the thinking on and no length control (``mode: think``, ``control: none``)."""
    return [r for r in rows if r.get("mode") == "think" and r.get("control") == "none"]


def comparison_summary(rows: list[dict]) -> dict[str, float]:
    """Flat ``eval/...`` summary keys of a one-model evaluation, for panels across runs.

    From the rows with the thinking on and no length control (``mode: think``, ``control: none``; see
    ``rl.stages.evaluation``): ``eval/accuracy``, ``eval/think_tokens``, ``eval/total_tokens``,
    ``eval/within_budget``, ``eval/truncated``, ``eval/accuracy_per_1k_think``, ``eval/otb_accuracy`` and
    ``eval/aes`` (means over tiers and benchmarks, weighted by problems), and the
    same per tier (``eval/<tier>/accuracy``, ...). A run that evaluates several models gets none (the keys would
    mix models); its ``eval/results`` table and ``eval/accuracy_vs_think_tokens`` scatter hold them.
    """
    plain = _uncontrolled(rows)
    if len({r.get("model") for r in plain}) != 1:
        return {}
    groups = [("eval", plain)]
    groups += [(f"eval/{tier}", [r for r in plain if r.get("tier") == tier])
               for tier in dict.fromkeys(r["tier"] for r in plain)]
    out: dict[str, float] = {}
    for prefix, group in groups:
        for key, name in SUMMARY_METRICS.items():
            value = _weighted(group, key)
            if value is not None:
                out[f"{prefix}/{name}"] = value
    return out


def log_comparison(wb, rows: list[dict]) -> dict[str, float]:
    """Log what comparing runs needs from an evaluation: ``comparison_summary`` and an accuracy-against-thinking-
    tokens scatter of every uncontrolled thinking row (one point per model, benchmark and tier). Returns the
    summary keys written."""
    import wandb

    summary = comparison_summary(rows)
    wb.summary.update(summary)
    plain = _uncontrolled(rows)
    if plain:
        columns = ["model", "benchmark", "tier", "think_tokens", "accuracy"]
        table = wandb.Table(columns=columns, data=[
            [r["model"], r["benchmark"], r["tier"], r["think_tokens_mean"], r["accuracy"]] for r in plain
        ])
        wb.log({"eval/accuracy_vs_think_tokens": wandb.plot.scatter(
            table, "think_tokens", "accuracy", title="accuracy vs thinking tokens (no length control)")})
    return summary
