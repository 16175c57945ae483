"""vLLM backend of the generation engine (``rl.engine.Engine``), for GPU machines with vllm installed.

Imported lazily by ``rl.generation.make_engine`` (``backend: vllm``, or ``auto`` when vllm is importable and a
CUDA GPU is present), so nothing else in lcrl needs vllm; this module imports vllm itself. Written against vLLM's
offline API as documented for the versions TRL 1.16 supports (``vllm>=0.22,<=0.31``, all V1):
``LLM(model, logits_processors=[cls])``, ``LLM.generate`` with ``{"prompt_token_ids": ...}`` prompts and one
``SamplingParams`` per prompt (``max_tokens``, ``top_p``, ``stop_token_ids``, ``seed``, ``extra_args``), the V1
batch-level logits processor interface (``vllm.v1.sample.logits_processor.LogitsProcessor``, docs: "Custom Logits
Processors"; V1 has no per-request processors) and ``llm.llm_engine.engine_core.shutdown()`` to free the GPU.

Stop-token temperature scaling is the same formula as on the transformers backend (``rl.controls``): one
batch-level processor (``rl.vllm_logits.StopScalingBatch``), enabled per request through
``SamplingParams.extra_args["lcrl_stop_scaling"]``, applies ``z_e' = z_e + ln(1/tau)`` to ``</think>`` on the rows
whose prompt and output so far do not contain it. Budget forcing needs nothing backend-specific: it runs as rounds
of ``generate_ids`` (``rl.controls``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from vllm.v1.sample.logits_processor import LogitsProcessor

from rl.device_memory import free_accelerator_memory
from rl.engine import Engine, Generation, SamplingParams, stop_token_of
from rl.vllm_logits import EXTRA_ARG, StopScalingBatch

logger = logging.getLogger(__name__)


class StopTokenScalingLogitsProcessor(StopScalingBatch, LogitsProcessor):
    """``StopScalingBatch`` as a vLLM V1 logits processor (module level: the engine process imports it by name)."""


class VLLMEngine(Engine):
    """Generation with vLLM's offline ``LLM``; same ``Generation`` results as ``TransformersEngine``."""

    def __init__(
        self,
        path: str,
        trust_remote_code: bool = False,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        from vllm import LLM

        from rl.distributed import vllm_placement

        self.llm = LLM(
            model=path,
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            **vllm_placement(gpu_memory_utilization),  # one GPU per process (LOCAL_RANK), not all on GPU 0
            max_model_len=max_model_len,
            seed=seed,
            logits_processors=[StopTokenScalingLogitsProcessor],
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_ids = {self.tokenizer.eos_token_id} | set(_generation_eos(path, trust_remote_code))

    def _sampling(self, params: SamplingParams, stop_ids: Sequence[int], limit: int, index: int):
        from vllm import SamplingParams as VSamplingParams

        if params.logits_processors:
            raise ValueError("transformers logits_processors cannot run on the vLLM backend")
        extra = None
        if params.stop_tau != 1.0:
            tid = stop_token_of(self.completion_format)
            extra = {EXTRA_ARG: {"token_id": tid, "tau": params.stop_tau, "top_k": params.stop_top_k}}
        return VSamplingParams(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            seed=params.seed + index if params.temperature > 0 else None,
            max_tokens=limit,
            stop_token_ids=list(stop_ids) or None,
            skip_special_tokens=False,
            extra_args=extra,
        )

    def generate_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        params: SamplingParams,
        stop_ids: Sequence[int] = (),
        limits: Sequence[int] | None = None,
        desc: str = "generate",
    ) -> list[Generation]:
        limits = list(limits) if limits is not None else [params.max_new_tokens] * len(prompt_ids)
        requests = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        sampling = [self._sampling(params, stop_ids, lim, i) for i, lim in enumerate(limits)]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        gens = []
        for out, limit in zip(outputs, limits):
            completion = out.outputs[0]
            ids = list(completion.token_ids)
            stop = completion.stop_reason
            if isinstance(stop, int) and stop in stop_ids and (not ids or ids[-1] != stop):
                ids.append(stop)  # vLLM may leave the matched stop token out; lcrl keeps it
            if completion.finish_reason == "stop" and stop is None and (not ids or ids[-1] not in self.eos_ids):
                ids.append(next(iter(self.eos_ids)))  # ended on end-of-sequence: mark it so it is cut as eos
            gens.append(self.to_generation(ids, stop_ids, limit))
        return gens

    def close(self) -> None:
        """Free the GPU before the next engine: shut vLLM's engine core down (its process holds the weights and the
        KV cache; guarded, for a version without it), drop the ``LLM``, collect, empty the CUDA cache."""
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and callable(getattr(core, "shutdown", None)):
            try:
                core.shutdown()
            except Exception as exc:  # noqa: BLE001 - freeing memory goes on whatever the engine core says
                logger.warning("vLLM engine core shutdown failed (%s: %s); freeing what Python holds",
                               type(exc).__name__, exc)
        del llm, core
        free_accelerator_memory()


def _generation_eos(path: str, trust_remote_code: bool) -> list[int]:
    """End-of-sequence ids of the model's ``generation_config.json`` (vLLM stops on them too); [] if none."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(path, trust_remote_code=trust_remote_code).eos_token_id
    except (OSError, ValueError):
        return []
    return [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
