"""The batched transformers engine gives the same greedy completions as one-prompt-at-a-time generate."""

from __future__ import annotations

import pytest
import torch

from rl.config import InitArguments
from rl.generation import SamplingParams, TransformersEngine, chat_prompts
from rl.tiny_model import build_model


@pytest.fixture(scope="module")
def engine(tiny_tokenizer):
    args = InitArguments(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2)
    return TransformersEngine(build_model(args, tiny_tokenizer), tiny_tokenizer, batch_size=4)


def test_batched_equals_sequential(engine):
    questions = ["Start with 3.", "Start with 1. Apply these operations in order: + 4, * 2, - 7.", "Hi", "What?" * 5,
                 "Start with 9. Apply: * 3."]
    prompts = chat_prompts(engine.tokenizer, [[{"role": "user", "content": q}] for q in questions])
    params = SamplingParams(max_new_tokens=12)
    batched = engine.generate(prompts, params)
    model, tok = engine.model, engine.tokenizer
    for prompt, gen in zip(prompts, batched):
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            ref = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]
        ref = ref.tolist()
        eos = tok.eos_token_id
        expect = ref[: ref.index(eos)] if eos in ref else ref
        assert gen.token_ids == expect
        assert gen.finished == (eos in ref)
        assert gen.text == tok.decode(expect, skip_special_tokens=False)


def test_prefill_is_appended(engine):
    conv = [[{"role": "user", "content": "x"}]]
    assert chat_prompts(engine.tokenizer, conv, prefill="<think>\n</think>\n\n")[0].endswith(
        "<|im_start|>assistant\n<think>\n</think>\n\n"
    )


def test_sampling_is_seeded(engine):
    prompts = chat_prompts(engine.tokenizer, [[{"role": "user", "content": "Start with 5."}]] * 3)
    a = engine.generate(prompts, SamplingParams(max_new_tokens=8, temperature=1.0, seed=3))
    b = engine.generate(prompts, SamplingParams(max_new_tokens=8, temperature=1.0, seed=3))
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
