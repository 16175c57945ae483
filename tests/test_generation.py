"""The batched transformers engine gives the same greedy completions as one-prompt-at-a-time generate."""

from __future__ import annotations

import pytest
import torch

from rl.config import InitArguments
from rl.engine import SamplingParams
from rl.generation import TransformersEngine, chat_prompts
from rl.tiny_model import build_model
from tests.vllm_fakes import stub_vllm


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


def test_vllm_is_never_handed_a_gguf_file(tmp_path, monkeypatch):
    import rl.generation as generation

    monkeypatch.setattr(generation, "vllm_available", lambda: True)  # as on a GPU machine with vllm installed
    (tmp_path / "m.gguf").write_bytes(b"")
    with pytest.raises(ValueError, match="backend 'vllm' takes a model folder or Hub id, not the GGUF file"):
        generation.make_engine(str(tmp_path / "m.gguf"), backend="vllm")
    with pytest.raises(ValueError, match="cannot be loaded"):  # auto: the transformers engine tries (empty file)
        generation.make_engine(str(tmp_path / "m.gguf"), backend="auto")


def test_bad_sampling_params():
    with pytest.raises(ValueError, match="stop_tau must be > 0"):
        SamplingParams(stop_tau=0.0)
    with pytest.raises(ValueError, match="max_new_tokens must be positive"):
        SamplingParams(max_new_tokens=0)


def test_vllm_engine_against_a_stub_llm(monkeypatch, engine, tmp_path):
    """The vLLM backend's request building and result mapping, and its one batch-level stop-scaling processor."""
    import torch as _torch

    calls = stub_vllm(monkeypatch, engine.tokenizer, [])
    from rl.vllm_engine import StopTokenScalingLogitsProcessor, VLLMEngine
    from rl.vllm_logits import EXTRA_ARG, StopScalingBatch

    engine.model.generation_config.save_pretrained(tmp_path)
    v = VLLMEngine(str(tmp_path))
    assert v.eos_ids == {engine.tokenizer.eos_token_id}
    (proc,) = calls["llm"]["logits_processors"]
    assert proc is StopTokenScalingLogitsProcessor and issubclass(proc, calls["base"])
    assert issubclass(proc, StopScalingBatch) and not proc(None, _torch.device("cpu"), False).is_argmax_invariant()
    gens = v.generate_ids([[1, 2], [3], [4, 5]], SamplingParams(max_new_tokens=3, stop_tau=0.5), stop_ids=[4],
                          limits=[3, 3, 3])
    assert [(g.token_ids, g.stop_reason) for g in gens] == [([7, 8], "eos"), ([7, 8, 4], "stop"), ([7, 8, 9], "length")]
    assert calls["requests"][0] == {"prompt_token_ids": [1, 2]}
    s = calls["sampling"][0]
    assert s.max_tokens == 3 and s.stop_token_ids == [4] and s.temperature == 0.0 and s.top_p == 1.0
    assert s.extra_args[EXTRA_ARG] == {"token_id": engine.think_end_id, "tau": 0.5, "top_k": 0}
    v.generate_ids([[1]], SamplingParams(max_new_tokens=3, temperature=0.6, top_p=0.95))
    assert calls["sampling"][0].top_p == 0.95 and calls["sampling"][0].extra_args is None


def test_vllm_engine_close_shuts_the_engine_core_down(monkeypatch, engine, tmp_path):
    events: list = []
    stub_vllm(monkeypatch, engine.tokenizer, events)
    from rl.vllm_engine import VLLMEngine

    v = VLLMEngine(str(tmp_path))
    v.close()
    v.close()  # a second close does nothing
    assert events == [("create", str(tmp_path)), ("shutdown", str(tmp_path))] and not hasattr(v, "llm")


def test_transformers_top_p_reaches_generate(engine, monkeypatch):
    seen = []
    real = engine.model.generate
    monkeypatch.setattr(engine.model, "generate", lambda **kw: seen.append(kw) or real(**kw))
    engine.generate_ids([[1, 2]], SamplingParams(max_new_tokens=2, temperature=0.6, top_p=0.95))
    assert seen[0]["top_p"] == 0.95 and seen[0]["temperature"] == 0.6 and seen[0]["do_sample"]
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        SamplingParams(top_p=0.0)
