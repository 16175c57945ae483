"""A tiny end-to-end run of all four stages through the real CLI entry point (train.main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import train

TIERS = "{short: {budget: 16}, medium: {budget: 24}, long: {budget: 64}}"


@pytest.mark.slow
def test_init_sft_grpo_eval(tmp_path: Path):
    base, sft, grpo, ev = (tmp_path / n for n in ("base", "sft", "grpo", "eval"))
    small = ["--hidden_size", "32", "--intermediate_size", "64", "--num_hidden_layers", "2",
             "--num_attention_heads", "2", "--num_key_value_heads", "2", "--tokenizer_corpus", "200"]
    assert train.main(["--stage", "init", "--output_dir", str(base), *small]) == 0
    assert (base / "model.safetensors").is_file() and (base / "tokenizer.json").is_file()

    common = ["--tiers", TIERS, "--report_to", "none", "--save_strategy", "no"]
    assert train.main(["--stage", "sft", "--model_name_or_path", str(base), "--output_dir", str(sft),
                       "--num_train", "16", "--max_steps", "2", "--per_device_train_batch_size", "8", *common]) == 0
    assert (sft / "model.safetensors").is_file()
    assert json.loads((sft / "lcrl_config.json").read_text())["sft_target"] == "full"

    assert train.main(["--stage", "grpo", "--model_name_or_path", str(sft), "--output_dir", str(grpo),
                       "--num_train", "8", "--max_steps", "1", "--per_device_train_batch_size", "8",
                       "--num_generations", "4", "--max_completion_length", "24", *common]) == 0
    assert (grpo / "model.safetensors").is_file()

    assert train.main(["--stage", "eval", "--models", f"sft={sft}", f"grpo={grpo}", "--output_dir", str(ev),
                       "--num_test", "6", "--max_new_tokens", "24", "--tiers", TIERS]) == 0
    rows = json.loads((ev / "results.json").read_text())["rows"]
    by_key = {(r["model"], r["mode"]) for r in rows}
    assert {("sft", "think"), ("sft", "no-think"), ("grpo", "think"), ("oracle", "data")} <= by_key
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["n"] == 6
    oracle = next(r for r in rows if r["model"] == "oracle")
    full = next(r for r in rows if r["model"] == "full traces")
    assert oracle["think_tokens_mean"] < full["think_tokens_mean"]
    assert (ev / "results.md").read_text().startswith("| model |")
