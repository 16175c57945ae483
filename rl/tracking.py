"""Weights & Biases set-up shared by every stage.

With no API key (``WANDB_API_KEY`` unset and no login in ``~/.netrc``) W&B runs in offline mode on its own: no
prompt, no network, runs land in ``outputs/wandb`` and can be pushed later with ``wandb sync``. Runs are named
``<stage>-<budget>-<recipe>`` and grouped by ``experiment`` (default: the recipe's folder), and tagged with the
stage, budget and reward names, so reward configs can be compared side by side in a dashboard.
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


def run_identity(run: ParsedRun) -> dict[str, Any]:
    """Name, group and tags of a run."""
    recipe = run.recipe.stem
    group = run.lcrl.experiment or run.recipe.parent.name
    reward_names = [r.get("name", "?") for r in (run.lcrl.rewards or []) if isinstance(r, dict)]
    tags = [f"stage:{run.stage}", f"budget:{run.lcrl.budget}", f"recipe:{recipe}"]
    tags += [f"reward:{n}" for n in reward_names]
    name = f"{run.stage}-{run.lcrl.budget}-{recipe}" if run.stage in ("grpo", "eval") else f"{run.stage}-{recipe}"
    return {"name": name, "group": group, "tags": tags}


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
    """A W&B run for stages that have no Trainer (eval); ``None`` if W&B is disabled (``WANDB_MODE=disabled``)."""
    import wandb

    ident = setup_wandb(run)
    if os.environ.get("WANDB_MODE") == "disabled":
        return None
    return wandb.init(
        project=os.environ["WANDB_PROJECT"],
        name=ident["name"],
        group=ident["group"],
        tags=ident["tags"],
        config=run.to_dict(),
        dir=os.environ["WANDB_DIR"],
        reinit="finish_previous",
    )


def lcrl_config_callback(run: ParsedRun):
    """A Trainer callback that adds lcrl's own options (tiers, rewards, budget) to the W&B run config."""
    from transformers import TrainerCallback

    class _LcrlConfig(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            import wandb

            if wandb.run is not None:
                wandb.run.config.update({"lcrl": run.to_dict()}, allow_val_change=True)

    return _LcrlConfig()
