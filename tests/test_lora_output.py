"""A LoRA run's output folder holds a full model (rl/stages/common.py ``train_and_save``): the base with the
adapter merged at the root, the adapter in ``adapter/`` (issue 12, defect 5). The next stage, evaluation and
``trl vllm-serve`` then read ``<output_dir>`` as any model."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import train
from rl.stages.common import ADAPTER_DIR


def test_lora_sft_writes_the_merged_model_and_the_next_stage_reads_it(tiny_base, tmp_path):
    from peft import PeftModel

    out = tmp_path / "sft_lora"
    common = ["--report_to", "none", "--save_strategy", "no", "--per_device_train_batch_size", "4",
              "--max_length", "160", "--seed", "0"]
    argv = ["--stage", "sft", "--model_name_or_path", str(tiny_base), "--output_dir", str(out), "--num_train", "8",
            "--max_steps", "2", "--use_peft", "true", "--lora_r", "4", "--learning_rate", "0.05", *common]
    assert train.main(argv) == 0
    assert not (out / "adapter_config.json").exists()  # transformers would read the root as an adapter
    assert json.loads((out / ADAPTER_DIR / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert json.loads((out / "lcrl_config.json").read_text())["use_peft"] is True

    full = AutoModelForCausalLM.from_pretrained(out)  # a plain full model: no peft involved
    assert not isinstance(full, PeftModel) and not any("lora" in n for n, _ in full.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), out / ADAPTER_DIR)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("Start with 3. Add 2.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got, want, before = (m(ids).logits for m in (full, reference.eval(), base))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # the adapter, merged
    assert not torch.allclose(got, before, atol=1e-4)  # and the two steps changed the model

    grpo = tmp_path / "grpo"  # the next stage starts from the folder as from any model
    assert train.main(["--stage", "grpo", "--model_name_or_path", str(out), "--output_dir", str(grpo),
                       "--num_train", "4", "--max_steps", "1", "--num_generations", "4",
                       "--per_device_train_batch_size", "4", "--max_completion_length", "16", *common[:4]]) == 0
    assert (grpo / "model.safetensors").is_file()
