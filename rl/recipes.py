"""Recipes: find and load a stage's YAML recipe, validate its keys and the command line, fill the dataclasses.

``parse_args`` is the one entry point (train.py calls it). Every check happens here, before any stage runs, so
bad input never leaves a half-written output dir: an unknown stage, budget, recipe file, recipe key or flag
raises ``ConfigError`` naming the bad value and the allowed ones.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from rl.config import CONFIG_DIR, DEFAULT_RECIPE_DIR, REPO_ROOT, ConfigError, LcrlArguments


@dataclass
class ParsedRun:
    stage: str
    recipe: Path
    lcrl: LcrlArguments
    stage_args: tuple  # the stage's other dataclasses, in the order of its ``dataclass_types``
    recipe_values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Everything that identifies the run, for W&B and the run's output dir."""
        out: dict[str, Any] = {"stage": self.stage, "recipe": str(self.recipe)}
        for obj in (self.lcrl, *self.stage_args):
            for f in fields(obj):
                value = getattr(obj, f.name)
                out[f.name] = value if isinstance(value, (int, float, str, bool, list, dict, type(None))) else str(value)
        return out


def _allowed_keys(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(a.dest for a in parser._actions if a.dest not in ("help",) and not a.dest.startswith("_"))


def _unknown_keys_message(bad: list[str], allowed: list[str], where: str) -> str:
    hints = []
    for key in bad:
        close = difflib.get_close_matches(key.lstrip("-"), allowed, n=3)
        hints.append(f"{key!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return f"unknown {where}: {'; '.join(hints)}. Allowed keys: {', '.join(allowed)}"


NOT_STAGE_RECIPES = ("accelerate", "rewards")  # configs/ folders of launcher configs and reward recipes


def recipes_available() -> list[str]:
    """Stage recipes under ``configs/`` (repo-relative paths); accelerate configs and reward recipes excluded."""
    return sorted(
        str(p.relative_to(REPO_ROOT))
        for p in CONFIG_DIR.rglob("*.yaml")
        if p.relative_to(CONFIG_DIR).parts[0] not in NOT_STAGE_RECIPES
    )


def load_recipe(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; available recipes: {', '.join(recipes_available())}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a YAML mapping of keys to values")
    return values


def _dry_run_requested(values: dict[str, Any], rest: list[str]) -> bool:
    """Whether the recipe or the command line asks for ``dry_run`` (``--dry_run``, ``--dry_run true``, ``=true``)."""
    flag = values.get("dry_run", False)
    for i, arg in enumerate(rest):
        name, eq, value = arg.partition("=")
        if name == "--dry_run":
            nxt = value if eq else (rest[i + 1] if i + 1 < len(rest) and not rest[i + 1].startswith("--") else "true")
            flag = str(nxt).lower() in ("true", "1", "yes")
    return bool(flag)


def _expand_flow_lists(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--models "[a=x, b=y]"`` (a YAML list, as in a recipe) becomes ``--models a=x b=y`` for list-valued flags."""
    many = {opt for a in parser._actions if a.nargs in ("+", "*") for opt in a.option_strings}
    out: list[str] = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if eq and flag in many and value.startswith("["):
            out.append(flag)
            arg = value
        elif not (i and args[i - 1] in many and arg.startswith("[")):
            out.append(arg)
            continue
        try:
            items = yaml.safe_load(arg)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{out[-1]}: {arg!r} is not a YAML list: {exc}") from exc
        if not isinstance(items, list):
            raise ConfigError(f"{out[-1]}: {arg!r} is not a YAML list")
        out += [str(x) for x in items]
    return out


REWARD_STAGES = ("grpo",)  # stages that train on the rewards: a reward recipe's trainer: values apply there only


def _flag_value(rest: list[str], flag: str) -> str | None:
    """The last value given to ``flag`` on the command line (``--flag v`` or ``--flag=v``), or ``None``."""
    found = None
    for i, arg in enumerate(rest):
        name, eq, value = arg.partition("=")
        if name == flag:
            found = value if eq else (rest[i + 1] if i + 1 < len(rest) else None)
    return found


def reward_trainer_values(values: dict[str, Any], rest: list[str], allowed: list[str]) -> dict[str, Any]:
    """The ``trainer:`` values of the run's named reward recipe (``--rewards`` or the recipe's ``rewards:``).

    A reward recipe such as DLER's sets GRPOConfig keys (``scale_rewards``, ``epsilon_high``, ...); they apply
    over the stage recipe and under the command line in the stages of ``REWARD_STAGES`` (an eval run that names
    the recipe only to tag itself ignores them). Unknown keys raise ``ConfigError`` naming the allowed ones.
    """
    ref = _flag_value(rest, "--rewards")
    ref = values.get("rewards") if ref is None else ref
    if not isinstance(ref, str) or ref.lstrip().startswith("["):
        return {}
    from rewards.recipes import load_reward_recipe

    try:
        trainer = load_reward_recipe(ref).trainer
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    bad = sorted(k for k in trainer if k not in allowed or k in ("rewards", "stage", "config"))
    if bad:
        raise ConfigError(f"reward recipe {ref!r}: " + _unknown_keys_message(bad, allowed, "trainer key(s)"))
    return dict(trainer)


def parse_args(argv: list[str] | None, stages: Mapping[str, tuple[type, ...]]) -> ParsedRun:
    """Parse ``--stage``, the recipe and the overrides into the stage's dataclasses.

    ``stages`` maps a stage name to its dataclass types (``LcrlArguments`` first). Raises ``ConfigError``.
    """
    from trl import TrlParser

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--stage", required=True)
    pre.add_argument("--config", default=None)
    try:
        known, rest = pre.parse_known_args(argv)
    except SystemExit as exc:  # argparse exits on a missing --stage
        raise ConfigError(f"--stage is required; allowed stages: {', '.join(stages)}") from exc
    if known.stage not in stages:
        raise ConfigError(f"unknown stage {known.stage!r}; allowed stages: {', '.join(stages)}")

    recipe = Path(known.config) if known.config else DEFAULT_RECIPE_DIR / f"{known.stage}.yaml"
    values = load_recipe(recipe)
    env = values.pop("env", {}) or {}
    parser = TrlParser(stages[known.stage], prog=f"train.py --stage {known.stage}")
    allowed = _allowed_keys(parser)
    bad = sorted(k for k in values if k not in allowed)
    if bad:
        raise ConfigError(f"{recipe}: " + _unknown_keys_message(bad, allowed, "config key(s)"))
    rest = _expand_flow_lists(rest, parser)
    flags = [a.split("=", 1)[0] for a in rest if a.startswith("--")]
    bad_flags = sorted({f for f in flags if f[2:] not in allowed and f not in ("--help", "-h")})
    if bad_flags:
        raise ConfigError(_unknown_keys_message(bad_flags, allowed, "command-line flag(s)"))

    extra: dict[str, Any] = reward_trainer_values(values, rest, allowed) if known.stage in REWARD_STAGES else {}
    if "use_cpu" in allowed and _dry_run_requested(values, rest):
        import torch

        if not torch.cuda.is_available():  # a GPU recipe (bf16) validates here too; a dry run trains nothing
            extra["use_cpu"] = True
    parser.set_defaults_with_config(**{**values, **extra}, stage=known.stage)
    try:
        parsed = parser.parse_args_into_dataclasses(args=rest)
    except SystemExit as exc:  # argparse already printed the bad value and the choices
        raise ConfigError("invalid command-line arguments (see the message above)") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{recipe}: {exc}") from exc
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    return ParsedRun(known.stage, recipe, parsed[0], tuple(parsed[1:]), values)


def dump_run(run: ParsedRun, output_dir: str | Path) -> Path:
    """Write the resolved configuration next to the run's outputs (``lcrl_config.json``)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lcrl_config.json"
    path.write_text(json.dumps(run.to_dict(), indent=2, default=str))
    return path
