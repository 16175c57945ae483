"""Every recipe under configs/ dry-runs through the real CLI; reward recipes by name; accelerate launcher configs.

Stage recipes are discovered by glob (every ``configs/**/*.yaml`` outside ``configs/accelerate`` and
``configs/rewards``), so a recipe added later is covered without touching this file. The stage of a recipe is
named by its file: ``<stage>.yaml``, ``<stage>_<variant>.yaml`` or ``<variant>_<stage>.yaml`` (``sft_pruned``,
``eval_sweep``). A dry run resolves and validates the recipe and must load no model and write nothing, so a
recipe whose model is a Hub id that is absent here still passes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import train
from rewards.recipes import reward_recipes_available
from rl.config import ConfigError
from rl.recipes import NOT_STAGE_RECIPES, parse_args
from rl.stages import STAGE_MODULES, stage_types

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
ACCELERATE = sorted((CONFIGS / "accelerate").glob("*.yaml"))
STAGE_RECIPES = sorted(
    p for p in CONFIGS.rglob("*.yaml") if p.relative_to(CONFIGS).parts[0] not in NOT_STAGE_RECIPES
)
REWARD_RECIPES = reward_recipes_available()
# A stand-in for a pruned JSONL (--stage prune's output) that a recipe's sft_data names but is not written yet.
PRUNED_ROW = {"id": "r0", "question": "Start with 3. Add 2.", "solution": "5", "completion": "<think>3 + 2 = 5"
              "</think>\n\\boxed{5}", "skip_completion": "<think>5</think>\n\\boxed{5}",
              "full_completion": "<think>3 + 2 = 5. Check: 5.</think>\n\\boxed{5}",
              "chunks": ["Start with 3.\n\n", "3 + 2 = 5"], "skippable": [0], "conclusion": "\\boxed{5}"}


def recipe_stage(path: Path) -> str:
    """The stage a recipe file is for, from its name: ``<stage>``, ``<stage>_<variant>`` or ``<variant>_<stage>``."""
    words = re.split(r"[_\-.]", path.stem)
    for word in (words[0], words[-1]):  # <stage>_<variant> first: eval_sft.yaml evaluates SFT models
        if word in STAGE_MODULES:
            return word
    raise AssertionError(f"{path}: name a recipe <stage>.yaml, <stage>_<variant>.yaml or "
                         f"<variant>_<stage>.yaml with a stage of {', '.join(STAGE_MODULES)}")


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any model, tokenizer or generation engine load fails the test; os.environ is restored (recipes' env:)."""
    import transformers

    import rl.generation

    def refuse(*args, **kwargs):
        raise AssertionError(f"a dry run loaded a model or tokenizer: {args[:1]}")

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer, transformers.PreTrainedModel):
        monkeypatch.setattr(cls, "from_pretrained", refuse)
    monkeypatch.setattr(rl.generation, "make_engine", refuse)
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_recipes_are_discovered_and_named_by_stage():
    found = {str(p.relative_to(REPO)) for p in STAGE_RECIPES}
    assert {"configs/tiny/grpo.yaml", "configs/tiny/eval_sweep.yaml", "configs/tiny/sft_pruned.yaml"} <= found
    assert not any("/rewards/" in p or "/accelerate/" in p for p in found)
    assert recipe_stage(CONFIGS / "tiny" / "sft_pruned.yaml") == "sft"
    assert recipe_stage(CONFIGS / "smollm2" / "real" / "eval_sft.yaml") == "eval"
    assert recipe_stage(CONFIGS / "tiny" / "eval_sweep.yaml") == "eval"
    assert recipe_stage(Path("configs/smollm2/smollm2_grpo.yaml")) == "grpo"
    with pytest.raises(AssertionError, match="name a recipe <stage>.yaml"):
        recipe_stage(Path("configs/x/pretrain.yaml"))


@pytest.mark.parametrize("recipe", STAGE_RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_recipe_dry_runs_through_the_cli(recipe, tmp_path, no_model_loads, capsys):
    out = tmp_path / "out"
    argv = ["--stage", recipe_stage(recipe), "--config", str(recipe), "--dry_run", "true", "--output_dir", str(out)]
    values = parse_args(argv, stage_types()).recipe_values
    if values.get("sft_data") and not Path(values["sft_data"]).is_file():  # another stage's output, absent here
        stand_in = tmp_path / "pruned.jsonl"
        stand_in.write_text(json.dumps(PRUNED_ROW) + "\n")
        argv += ["--sft_data", str(stand_in)]
    assert train.main(argv) == 0, capsys.readouterr().err
    assert not out.exists(), "a dry run wrote its output_dir"


def test_the_reward_recipes_exist_and_are_documented():
    assert {"tldr", "l1_exact", "l1_max", "kimi", "efficiency", "cosine", "correctness", "thinkprune",
            "shorter_better", "smartthinker", "alp", "laser", "dler"} <= set(
        REWARD_RECIPES
    )
    for name in REWARD_RECIPES:
        text = (CONFIGS / "rewards" / f"{name}.yaml").read_text()
        assert text.startswith("#"), f"configs/rewards/{name}.yaml starts without a comment saying what it is"


@pytest.mark.parametrize("name", REWARD_RECIPES)
def test_grpo_dry_runs_with_each_reward_recipe(name, tmp_path, no_model_loads, capsys, caplog):
    out = tmp_path / "out"
    argv = ["--stage", "grpo", "--rewards", name, "--budget", "mixed", "--num_train", "30", "--dry_run", "true",
            "--output_dir", str(out)]
    caplog.set_level(logging.INFO, logger="rl.stages.grpo")
    assert train.main(argv) == 0, capsys.readouterr().err
    names = [spec["name"] for spec in yaml.safe_load((CONFIGS / "rewards" / f"{name}.yaml").read_text())["rewards"]]
    assert f"budget mixed, rewards {names}" in caplog.text  # the recipe's rewards reached the GRPO stage
    assert not out.exists()


def test_a_reward_recipes_trainer_values_apply_under_the_command_line(tmp_path):
    base = ["--stage", "grpo", "--dry_run", "true", "--output_dir", str(tmp_path / "out")]
    grpo = parse_args([*base, "--rewards", "dler"], stage_types()).stage_args[0]
    assert (grpo.scale_rewards, grpo.epsilon_high, grpo.max_completion_length) == ("batch", 0.28, 96)
    grpo = parse_args([*base, "--rewards=dler", "--epsilon_high", "0.2"], stage_types()).stage_args[0]
    assert (grpo.scale_rewards, grpo.epsilon_high) == ("batch", 0.2)  # the command line wins
    grpo = parse_args([*base, "--rewards", "kimi"], stage_types()).stage_args[0]
    assert (grpo.scale_rewards, grpo.epsilon_high, grpo.max_completion_length) == ("group", None, 256)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards: [{name: correctness}]\ntrainer: {epsilon_hi: 0.3}\n")
    with pytest.raises(ConfigError, match="unknown trainer key.*did you mean epsilon_high"):
        parse_args([*base, "--rewards", str(bad)], stage_types())
    ev = parse_args(["--stage", "eval", "--rewards", "dler", "--models", "m=x"], stage_types())  # tags only
    assert ev.lcrl.reward_recipe == "dler" and ev.stage_args[0].max_new_tokens == 320  # configs/tiny/eval.yaml


def test_unknown_reward_recipe_exits_2_naming_the_recipes(capsys):
    assert train.main(["--stage", "grpo", "--rewards", "kimmi", "--dry_run", "true"]) == 2
    err = capsys.readouterr().err
    assert "unknown reward recipe 'kimmi'; available: " in err and "kimi" in err and "l1_exact" in err


def test_train_py_subprocess_takes_a_reward_recipe_name(tmp_path):
    """The command ``make compare`` runs per recipe, as a real process."""
    out = tmp_path / "out"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "train.py", "--stage", "grpo", "--rewards", "kimi", "--experiment", "compare",
         "--num_train", "20", "--dry_run", "true", "--output_dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rewards ['correctness', 'kimi']" in proc.stderr
    assert not out.exists()


# --- accelerate launcher configs ---

EXPECTED_ACCELERATE = {
    "single_gpu.yaml": ("NO", 1),
    "multi_gpu.yaml": ("MULTI_GPU", 8),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 8),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 8),
    "fsdp.yaml": ("FSDP", 8),
    "multi_node.yaml": ("MULTI_GPU", 16),
}
MACHINES = {"multi_node.yaml": 2}


def test_accelerate_configs_are_all_there():
    assert {p.name for p in ACCELERATE} == set(EXPECTED_ACCELERATE)


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_loads_with_accelerates_own_loader(path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    config = load_config_from_file(str(path))  # rejects unknown keys
    assert isinstance(config, ClusterConfig)
    kind, processes = EXPECTED_ACCELERATE[path.name]
    assert config.distributed_type.value == kind and config.num_processes == processes
    machines = MACHINES.get(path.name, 1)
    assert config.mixed_precision == "bf16" and config.num_machines == machines and not config.use_cpu
    if machines > 1:
        assert config.main_process_ip and config.main_process_port and config.machine_rank == 0
    if kind == "DEEPSPEED":
        stage = int(path.stem[-1])
        assert config.deepspeed_config["zero_stage"] == stage
        assert config.deepspeed_config["zero3_init_flag"] is (stage == 3)
        assert "gradient_accumulation_steps" not in config.deepspeed_config  # "auto": the recipe decides
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    # what `accelerate launch --config_file <path> train.py ...` resolves before starting any process
    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py", "--stage", "grpo"])
    args, _, _ = _validate_launch_command(args)
    assert args.num_processes == processes and args.mixed_precision == "bf16" and args.num_machines == machines
    assert (args.use_deepspeed, args.use_fsdp, args.multi_gpu) == (kind == "DEEPSPEED", kind == "FSDP",
                                                                   kind == "MULTI_GPU")
