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


def test_stop_ids_and_per_prompt_limits(engine):
    prompts = chat_prompts(engine.tokenizer, [[{"role": "user", "content": f"Start with {i}."}] for i in range(5)])
    full = engine.generate(prompts, SamplingParams(max_new_tokens=10))
    limits = [1, 3, 5, 7, 10]
    cut = engine.generate_ids(engine.encode(prompts), SamplingParams(max_new_tokens=10), limits=limits)
    for f, c, lim in zip(full, cut, limits):
        assert c.token_ids == f.token_ids[:lim] and c.num_tokens <= lim
        assert c.stop_reason == ("length" if lim <= f.num_tokens or not f.finished else f.stop_reason)
    # an extra stop token ends the completion and is kept in its ids
    stop = full[0].token_ids[2]
    (g,) = engine.generate_ids(engine.encode(prompts[:1]), SamplingParams(max_new_tokens=10), stop_ids=[stop])
    assert g.token_ids[-1] == stop and stop not in g.token_ids[:-1] and g.stop_reason == "stop" and g.finished


def test_to_generation_cuts_at_eos_stop_or_limit(engine):
    eos = next(iter(engine.eos_ids))
    g = engine.to_generation([7, 8, eos, 9])
    assert (g.token_ids, g.finished, g.stop_reason) == ([7, 8], True, "eos")
    g = engine.to_generation([7, 8, 9, eos], stop_ids=[8])
    assert (g.token_ids, g.stop_reason) == ([7, 8], "stop")
    g = engine.to_generation([7, 8, 9, eos], limit=2)
    assert (g.token_ids, g.finished, g.stop_reason) == ([7, 8], False, "length")


def test_make_engine_backends(tmp_path, engine):
    from rl.generation import make_engine, vllm_available

    engine.model.save_pretrained(tmp_path)
    engine.tokenizer.save_pretrained(tmp_path)
    e = make_engine(str(tmp_path), backend="auto", batch_size=3)
    assert type(e).__name__ == ("VLLMEngine" if vllm_available() else "TransformersEngine")
    with pytest.raises(ValueError, match="unknown generation backend 'tgi'; allowed: auto, transformers, vllm"):
        make_engine(str(tmp_path), backend="tgi")
    if not vllm_available():
        with pytest.raises(ValueError, match="needs the vllm package and a CUDA GPU"):
            make_engine(str(tmp_path), backend="vllm")


def test_bad_sampling_params():
    with pytest.raises(ValueError, match="stop_tau must be > 0"):
        SamplingParams(stop_tau=0.0)
    with pytest.raises(ValueError, match="max_new_tokens must be positive"):
        SamplingParams(max_new_tokens=0)
