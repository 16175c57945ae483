"""W&B: offline on its own without an API key; runs named, grouped and tagged for comparing reward configs."""

from __future__ import annotations

import os

import pytest

from rl.recipes import parse_args
from rl.stages import stage_types
from rl.tracking import run_identity, setup_wandb, start_wandb_run


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    return tmp_path


def test_identity_names_groups_and_tags():
    run = parse_args(["--stage", "grpo", "--budget", "short", "--experiment", "ablation"], stage_types())
    ident = run_identity(run)
    assert ident["name"] == "grpo-short-grpo" and ident["group"] == "ablation"
    assert {"stage:grpo", "budget:short", "recipe:grpo", "reward:tldr"} <= set(ident["tags"])
    default = run_identity(parse_args(["--stage", "sft"], stage_types()))
    assert default["group"] == "tiny"  # the recipe folder


def test_offline_without_a_key(no_wandb_env):
    run = parse_args(["--stage", "eval"], stage_types())
    setup_wandb(run)
    assert os.environ["WANDB_MODE"] == "offline"
    assert os.environ["WANDB_RUN_GROUP"] == "tiny" and "stage:eval" in os.environ["WANDB_TAGS"]


def test_eval_run_logs_offline_with_its_config(no_wandb_env):
    run = parse_args(["--stage", "eval"], stage_types())
    wb = start_wandb_run(run)
    try:
        assert wb is not None and wb.settings.mode == "offline"
        assert wb.config["stage"] == "eval" and wb.config["budget"] == "medium"
        wb.log({"x": 1.0})
    finally:
        wb.finish()
    assert list((no_wandb_env / "wb" / "wandb").glob("offline-run-*"))
