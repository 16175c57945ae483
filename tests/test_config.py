"""Recipe parsing: defaults per stage, overrides, and clear errors on bad input before anything is written."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from rl.config import ConfigError, LcrlArguments
from rl.recipes import parse_args, recipes_available
from rl.stages import STAGE_MODULES, stage_types

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def types():
    return stage_types()


@pytest.mark.parametrize("stage", list(STAGE_MODULES))
def test_every_stage_reads_its_default_recipe(stage, types):
    run = parse_args(["--stage", stage], types)
    assert run.stage == stage and run.recipe == REPO / "configs" / "tiny" / f"{stage}.yaml"
    assert run.lcrl.stage == stage


def test_command_line_overrides_the_recipe(types):
    run = parse_args(["--stage", "grpo", "--budget", "short", "--learning_rate", "1e-5", "--max_steps", "3"], types)
    grpo_args, model_args, refresh, dynamic, budget_rollouts = run.stage_args
    assert run.lcrl.budget == "short" and grpo_args.learning_rate == 1e-5 and grpo_args.max_steps == 3
    assert model_args.model_name_or_path == "outputs/tiny/sft"  # from the recipe
    assert run.lcrl.rewards[0]["name"] == "tldr"
    assert refresh.refresh_every == 0  # on-policy refresh is off unless the recipe turns it on
    assert not budget_rollouts.budget_rollouts  # so are budget-constrained rollouts
    run = parse_args(["--stage", "grpo", "--tiers", "{short: {budget: 10}}", "--grading", "{timeout: 2}"], types)
    assert run.lcrl.tiers == {"short": {"budget": 10}}
    assert run.lcrl.grading_config().timeout == 2.0


def test_list_flags_take_a_yaml_list_as_in_a_recipe(types):
    spaced = parse_args(["--stage", "eval", "--models", "a=x", "b=y/z", "--benchmarks", "synthetic", "gsm8k"], types)
    for argv in (["--models", "[a=x, b=y/z]", "--benchmarks", "[synthetic, gsm8k]"],
                 ["--models=[a=x, b=y/z]", "--benchmarks=[synthetic, gsm8k]"]):
        (args,) = parse_args(["--stage", "eval", *argv], types).stage_args
        assert args.models == spaced.stage_args[0].models == ["a=x", "b=y/z"]
        assert args.benchmarks == ["synthetic", "gsm8k"]
    with pytest.raises(ConfigError, match="--models: '\\[a=x, b' is not a YAML list"):
        parse_args(["--stage", "eval", "--models", "[a=x, b"], types)


def test_our_fields_do_not_collide_with_trl(types):
    ours = {f.name for f in dataclasses.fields(LcrlArguments)}
    for stage_classes in types.values():
        for cls in stage_classes[1:]:
            assert not ours & {f.name for f in dataclasses.fields(cls)}, cls


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--stage", "distill"], "unknown stage 'distill'; allowed stages: init, sft, grpo, eval, prune, dpo"),
        (["--stage", "sft", "--config", "configs/nope.yaml"], "'configs/nope.yaml' not found; available recipes:"),
        (["--stage", "sft", "--learning_rat", "1"], r"unknown command-line flag\(s\): '--learning_rat' \(did you mean learning_rate"),
        (["--stage", "grpo", "--tiers", "{huge: {budget: 1}}"], "unknown tier 'huge' in tiers; allowed: short, medium, long"),
        (["--stage", "eval", "--eval_tiers", "tiny"], "unknown tier 'tiny' in eval_tiers; allowed: short, medium, long"),
        (["--stage", "grpo", "--grading", "{timeout: 2, wrkers: 1}"], r"unknown grading knob\(s\) \['wrkers'\]; allowed: "),
        (["--stage", "grpo", "--grading", "{timeout: 0}"], "grading timeout must be > 0"),
        ([], "--stage is required; allowed stages: init, sft, grpo, eval, prune, dpo"),
    ],
)
def test_bad_input_names_the_value_and_the_choices(argv, message, types):
    with pytest.raises(ConfigError, match=message):
        parse_args(argv, types)


def test_bad_recipe_key_is_named_with_a_suggestion(tmp_path, types):
    recipe = tmp_path / "sft.yaml"
    recipe.write_text("model_name_or_path: x\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key\(s\): 'learning_rte' \(did you mean learning_rate"):
        parse_args(["--stage", "sft", "--config", str(recipe)], types)
    recipe.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a YAML mapping"):
        parse_args(["--stage", "sft", "--config", str(recipe)], types)


def test_recipes_are_listed():
    assert "configs/tiny/sft.yaml" in recipes_available()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--stage", "sft", "--budget", "huge"], "invalid choice: 'huge'"),
        (["--stage", "grpo", "--bogus_key", "1"], "unknown command-line flag"),
        (["--stage", "prune-everything"], "allowed stages: init, sft, grpo, eval, prune, dpo"),
    ],
)
def test_cli_exits_non_zero_before_writing_anything(tmp_path, extra, message):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", *extra, "--output_dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "allowed" in proc.stderr.lower() or "choose from" in proc.stderr
    assert not out.exists()
