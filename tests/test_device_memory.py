"""The transformers backend bounds its KV cache (fewer prompts per ``generate`` call, same completions), and
``backend: auto`` says why it did not take vLLM instead of falling back silently."""

from __future__ import annotations

import logging
import types

import pytest
import torch

from rl.config import InitArguments
from rl.device_memory import batch_rows, kv_cache_bytes_per_token
from rl.engine import SamplingParams
from rl.generation import TransformersEngine, chat_prompts, make_engine, vllm_unavailable_reason
from rl.tiny_model import build_model

R1_DISTILL_1P5B = types.SimpleNamespace(num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                                        hidden_size=1536)  # Qwen2-1.5B's config.json


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    args = InitArguments(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2)
    torch.manual_seed(0)
    return build_model(args, tiny_tokenizer)


def test_kv_cache_of_the_r1_recipe_is_bounded():
    per_token = kv_cache_bytes_per_token(R1_DISTILL_1P5B, torch.bfloat16)
    assert per_token == 2 * 28 * 2 * 128 * 2  # 28 KiB
    tokens = 8192 + 300  # max_new_tokens + a MATH500 prompt
    assert 512 * tokens * per_token > 120e9  # the recipe's batch_size 512, unbounded: ~125 GB
    budget = 38 * 2**30  # half of what an 80 GB GPU has free after the weights
    rows = batch_rows(512, per_token, tokens, budget)
    assert rows * tokens * per_token <= budget < (rows + 1) * tokens * per_token
    assert batch_rows(512, per_token, tokens, None) == 512  # CPU: no bound
    assert batch_rows(512, per_token, tokens, 1) == 1  # never zero rows


def test_capped_batches_give_the_same_completions(model, tiny_tokenizer, caplog):
    prompts = chat_prompts(tiny_tokenizer, [[{"role": "user", "content": f"Start with {i}."}] for i in range(6)])
    params = SamplingParams(max_new_tokens=6)
    free = TransformersEngine(model, tiny_tokenizer, batch_size=6)
    ids = free.encode(prompts)
    tokens = max(map(len, ids)) + params.max_new_tokens
    per_row = kv_cache_bytes_per_token(model.config, model.dtype) * tokens
    capped = TransformersEngine(model, tiny_tokenizer, batch_size=6, kv_cache_bytes=2 * per_row + per_row // 2)
    widths = []
    real = model.generate

    def recording(**kw):
        widths.append(kw["input_ids"].shape[0])
        return real(**kw)

    want = free.generate_ids(ids, params)
    model.generate = recording
    try:
        with caplog.at_level(logging.WARNING, logger="rl.device_memory"):
            got = capped.generate_ids(ids, params)
    finally:
        del model.generate
    assert widths == [2, 2, 2]
    assert [g.token_ids for g in got] == [g.token_ids for g in want]
    assert "generating 2 prompts at a time" in caplog.text and "batch_size 6" in caplog.text


def test_auto_says_why_it_is_not_vllm(model, tiny_tokenizer, tmp_path, caplog):
    import rl.generation as generation

    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    reason = vllm_unavailable_reason()
    if reason is None:
        pytest.skip("vllm and a GPU are here: auto takes vLLM")
    with caplog.at_level(logging.INFO, logger="rl.generation"):
        make_engine(str(tmp_path), backend="auto", batch_size=3)
    assert f"generation backend auto: transformers, not vLLM ({reason})" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records if r.name == "rl.generation")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rl.generation"):
        make_engine(str(tmp_path), backend="transformers", batch_size=3)  # asked for: no warning
    assert "generation backend: transformers" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "rl.generation"]
    assert generation.vllm_available() is False
