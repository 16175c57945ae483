"""W&B: offline on its own without an API key; runs named, grouped and tagged for comparing reward configs."""

from __future__ import annotations

import os

import pytest

from rl.recipes import parse_args
from rl.stages import stage_types
from rl.tracking import (
    comparison_config,
    comparison_summary,
    lcrl_config_callback,
    log_comparison,
    run_identity,
    setup_wandb,
    start_wandb_run,
)


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


def test_reward_recipe_runs_are_named_grouped_and_tagged_for_comparison():
    argv = ["--stage", "grpo", "--rewards", "kimi", "--budget", "short", "--experiment", "compare"]
    ident = run_identity(parse_args(argv, stage_types()))
    assert ident["name"] == "grpo-short-grpo-kimi" and ident["group"] == "compare"
    tags = {"rewards:kimi", "budget:short", "tiers:synthetic", "reward:correctness", "reward:kimi"}
    assert tags <= set(ident["tags"])
    inline = run_identity(parse_args(["--stage", "grpo"], stage_types()))  # the tiny recipe lists its rewards
    assert inline["name"] == "grpo-medium-grpo" and "rewards:custom" in inline["tags"]
    init = run_identity(parse_args(["--stage", "init"], stage_types()))
    assert not any(t.startswith("rewards:") for t in init["tags"])  # no rewards, no reward-recipe tag


def test_comparison_config_carries_recipe_weights_and_resolved_tiers():
    argv = ["--stage", "grpo", "--rewards", "l1_max", "--budget", "mixed", "--tiers", "{short: {budget: 40}}"]
    run = parse_args(argv, stage_types())
    config = comparison_config(run)
    assert config["reward_recipe"] == "l1_max" and config["budget"] == "mixed" and config["experiment"] == "tiny"
    assert config["recipe"] == "configs/tiny/grpo.yaml"
    assert config["rewards"] == [{"name": "l1_max", "weight": 1.0, "alpha": 0.01, "delta": 0.5, "target": "tier",
                                  "length_of": "thinking"}]
    assert config["reward_weight"] == {"l1_max": 1.0}
    assert config["tier_budget"] == {"short": 40, "medium": 2048, "long": 4096}  # overrides on the defaults
    assert config["tier_penalty"] == {"short": 1.0, "medium": 0.5, "long": 0.1}
    assert "tiers:custom" in run_identity(run)["tags"]


def test_setup_puts_group_and_recipe_tags_in_the_environment(no_wandb_env):
    setup_wandb(parse_args(["--stage", "grpo", "--rewards", "cosine", "--experiment", "cmp"], stage_types()))
    assert os.environ["WANDB_RUN_GROUP"] == "cmp"
    assert {"rewards:cosine", "budget:medium", "reward:cosine"} <= set(os.environ["WANDB_TAGS"].split(","))


def test_offline_runs_carry_the_comparison_config(no_wandb_env):
    import wandb

    run = parse_args(["--stage", "eval", "--rewards", "kimi", "--experiment", "cmp"], stage_types())
    wb = start_wandb_run(run)
    try:
        assert wb.group == "cmp" and "rewards:kimi" in wb.tags and "budget:medium" in wb.tags
        assert wb.config["reward_recipe"] == "kimi" and wb.config["tier_budget"]["medium"] == 48
        assert wb.config["tier_floor"] == {"short": 0, "medium": 36, "long": 64}
        assert wb.config["reward_weight"] == {"correctness": 1.0, "kimi": 1.0}
        # the Trainer stages add the same keys through their callback, on top of TRL's own config
        grpo = parse_args(["--stage", "grpo", "--rewards", "tldr", "--budget", "long"], stage_types())
        lcrl_config_callback(grpo).on_train_begin(None, None, None)
        assert wandb.run.config["reward_recipe"] == "tldr" and wandb.run.config["lcrl"]["budget"] == "long"
        assert wandb.run.config["tier_penalty"]["long"] == 5.0  # the synthetic preset's long tier
    finally:
        wb.finish()


def _row(model, tier, accuracy, think, n=100, mode="think", control="none"):
    return {"model": model, "benchmark": "synthetic", "tier": tier, "mode": mode, "control": control, "n": n,
            "accuracy": accuracy, "think_tokens_mean": think, "total_tokens_mean": think + 10,
            "within_budget": 1.0 if think < 60 else 0.0, "truncated": 0.0}


def test_comparison_summary_of_a_one_model_eval():
    rows = [_row("kimi", "short", 0.5, 40, n=300), _row("kimi", "long", 0.9, 100, n=100),
            _row("kimi", "short", 0.1, 0, mode="no-think"), _row("kimi", "short", 0.2, 24, control="cap=24")]
    summary = comparison_summary(rows)
    assert summary["eval/accuracy"] == pytest.approx((0.5 * 300 + 0.9 * 100) / 400)  # weighted by problems
    assert summary["eval/think_tokens"] == pytest.approx((40 * 300 + 100 * 100) / 400)
    assert summary["eval/short/accuracy"] == 0.5 and summary["eval/long/think_tokens"] == 100
    assert summary["eval/short/within_budget"] == 1.0 and summary["eval/long/total_tokens"] == 110
    assert comparison_summary(rows + [_row("sft", "short", 0.4, 95)]) == {}  # several models: no flat keys
    rows[0]["otb_accuracy"], rows[1]["otb_accuracy"] = 0.4, 0.8  # efficiency columns weigh the same way
    assert comparison_summary(rows)["eval/otb_accuracy"] == pytest.approx((0.4 * 300 + 0.8 * 100) / 400)


def test_log_comparison_writes_summary_and_scatter():
    import wandb

    class Run:
        def __init__(self):
            self.logged, self.summary = {}, {}

        def log(self, payload):
            self.logged.update(payload)

    wb = Run()
    rows = [_row("kimi", "medium", 0.6, 45), _row("sft", "medium", 0.4, 95), _row("sft", "medium", 0, 0, mode="data")]
    assert log_comparison(wb, rows) == {} and wb.summary == {}
    chart = wb.logged["eval/accuracy_vs_think_tokens"]
    assert isinstance(chart, wandb.plot.CustomChart)
    assert [r[0] for r in chart.table.data] == ["kimi", "sft"]  # the data row (oracle) is no model point
    log_comparison(wb, rows[:1])
    assert wb.summary["eval/accuracy"] == 0.6 and wb.summary["eval/think_tokens"] == 45
