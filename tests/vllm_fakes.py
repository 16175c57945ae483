"""A stand-in for the ``vllm`` package (no GPU or vllm here), written to vLLM's documented offline interfaces."""

from __future__ import annotations

import abc
import sys
import types


def stub_vllm(monkeypatch, tokenizer, events: list) -> dict:
    """A stand-in for ``vllm`` (no GPU here): ``LLM`` records its arguments, requests and shutdown in ``events``."""
    calls: dict = {}

    class StubSamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class StubCore:
        def __init__(self, model):
            self.model = model

        def shutdown(self):
            events.append(("shutdown", self.model))

    class StubLLM:
        def __init__(self, **kw):
            calls["llm"] = kw
            events.append(("create", kw["model"]))
            self.llm_engine = types.SimpleNamespace(engine_core=StubCore(kw["model"]))

        def get_tokenizer(self):
            return tokenizer

        def generate(self, requests, sampling, use_tqdm=False):
            calls["requests"], calls["sampling"] = requests, sampling
            calls.setdefault("all_sampling", []).extend(sampling)
            eos, end = tokenizer.eos_token_id, 4
            scripted = [([7, 8, eos], "stop", None), ([7, 8], "stop", end), ([7, 8, 9], "length", None)]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids, finish_reason=f,
                                                                          stop_reason=r)])
                    for ids, f, r in (scripted[i % 3] for i in range(len(requests)))]

    class StubLogitsProcessor(abc.ABC):  # vLLM V1's batch-level interface: every method abstract
        @abc.abstractmethod
        def __init__(self, vllm_config, device, is_pin_memory): ...

        @abc.abstractmethod
        def apply(self, logits): ...

        @abc.abstractmethod
        def is_argmax_invariant(self): ...

        @abc.abstractmethod
        def update_state(self, batch_update): ...

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = StubLLM, StubSamplingParams
    lp = types.ModuleType("vllm.v1.sample.logits_processor")
    lp.LogitsProcessor = StubLogitsProcessor
    for name, mod in {"vllm": vllm, "vllm.v1": types.ModuleType("vllm.v1"),
                      "vllm.v1.sample": types.ModuleType("vllm.v1.sample"),
                      "vllm.v1.sample.logits_processor": lp}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "rl.vllm_engine", raising=False)  # imported afresh on the stand-in
    calls["base"] = StubLogitsProcessor
    return calls
