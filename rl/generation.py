"""The transformers generation engine and the factory that picks a backend, for evaluation, pruning validation
and data refresh.

The engine interface and its value types (``Engine``, ``SamplingParams``, ``Generation``) are ``rl.engine``'s.
Two backends implement it:

- ``TransformersEngine`` (here): batches prompts (sorted by length, left-padded, KV cache) through
  ``model.generate`` on CPU or GPU, on a GPU no more rows at a time than their KV cache allows
  (``rl.device_memory``);
- ``VLLMEngine`` (``rl/vllm_engine.py``, imported lazily): vLLM's offline ``LLM``, chosen by ``make_engine`` when
  vllm is installed and a GPU is present (``auto`` without them warns why and takes transformers).

The inference-time length controls (``rl/controls.py``) sit on top of the common low-level call
``generate_ids(prompt_ids, params, stop_ids, limits)``: stop-token temperature scaling (``params.stop_tau``) is a
logits processor inside each backend, budget forcing (``params.budget``) a multi-round loop over that call, so
both work identically on either backend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rl.controls import StopTokenScaling
from rl.device_memory import (
    KV_CACHE_SHARE, batch_rows, free_accelerator_memory, kv_cache_budget, kv_cache_bytes_per_token,
)
from rl.engine import Engine, Generation, SamplingParams, stop_token_of
from rl.model_files import load_pretrained, resolve_model

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "vllm")


def chat_prompts(
    tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Sequence[dict]], prefill: str = ""
) -> list[str]:
    """Render chat prompts with the generation prompt, plus an optional assistant prefill (e.g. empty thinking)."""
    return [
        tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True) + prefill
        for c in conversations
    ]


class TransformersEngine(Engine):
    """Batched generation with a transformers model (KV cache, left padding, length-sorted batches)."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64,
        kv_cache_bytes: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.kv_cache_bytes = kv_cache_bytes  # a batch's KV cache stays under this (None: no bound)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = set(_as_list(model.generation_config.eos_token_id) or [tokenizer.eos_token_id])

    @classmethod
    def from_pretrained(
        cls, path: str, batch_size: int = 64, trust_remote_code: bool = False, dtype: str | None = None
    ) -> TransformersEngine:
        """Any ``model_name_or_path`` a recipe takes (``rl.model_files``: a folder, a Hub id or a GGUF file)."""
        from rl.distributed import local_device

        model, tokenizer = load_pretrained(path, trust_remote_code=trust_remote_code, dtype=dtype)
        model = model.to(local_device())  # cuda:LOCAL_RANK, or the CPU
        return cls(model, tokenizer, batch_size=batch_size, kv_cache_bytes=kv_cache_budget(model.device))

    def close(self) -> None:
        self.__dict__.pop("model", None)
        free_accelerator_memory()

    def _processors(self, params: SamplingParams) -> list:
        processors = list(params.logits_processors)
        if params.stop_tau != 1.0:
            processors.append(StopTokenScaling(stop_token_of(self.completion_format), params.stop_tau,
                                               params.stop_top_k))
        return processors

    @torch.inference_mode()
    def generate_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        params: SamplingParams,
        stop_ids: Sequence[int] = (),
        limits: Sequence[int] | None = None,
        desc: str = "generate",
    ) -> list[Generation]:
        tok = self.tokenizer
        limits = list(limits) if limits is not None else [params.max_new_tokens] * len(prompt_ids)
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]), reverse=True)
        out: list[Generation | None] = [None] * len(prompt_ids)
        torch.manual_seed(params.seed)
        device = self.model.device
        processors = self._processors(params)
        eos = sorted(self.eos_ids | set(stop_ids))
        sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
        tokens = max(map(len, prompt_ids), default=0) + max(limits, default=0)
        size = batch_rows(self.batch_size, kv_cache_bytes_per_token(self.model.config, self.model.dtype), tokens,
                          self.kv_cache_bytes)
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        for batch in tqdm(batches, desc=desc, leave=False, disable=len(batches) < 2):
            width = max(len(prompt_ids[i]) for i in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, width - len(prompt_ids[i]) :] = torch.tensor(list(prompt_ids[i]), dtype=torch.long)
                mask[row, width - len(prompt_ids[i]) :] = 1
            gen = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max(limits[i] for i in batch),
                pad_token_id=tok.pad_token_id,
                eos_token_id=eos,
                logits_processor=processors or None,
                **(sampling if params.temperature > 0 else {"do_sample": False}),
            )
            for row, i in enumerate(batch):
                out[i] = self.to_generation(gen[row, width:].tolist(), stop_ids, limits[i])
        return out  # type: ignore[return-value]


def vllm_unavailable_reason() -> str | None:
    """Why the vLLM backend cannot run here, or ``None`` when vllm is importable and a CUDA GPU is present."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed (pip install 'lcrl[vllm]')"
    return None if torch.cuda.is_available() else "no CUDA GPU is visible"


def vllm_available() -> bool:
    """True when vllm is importable and a CUDA GPU is present."""
    return vllm_unavailable_reason() is None


def make_engine(
    path: str,
    backend: str = "auto",
    batch_size: int = 64,
    trust_remote_code: bool = False,
    dtype: str | None = None,
    **vllm_kwargs: Any,
) -> Engine:
    """The engine for ``path``: ``vllm`` when asked (or ``auto`` with vllm installed and a GPU, for a model that is not
    a GGUF file), else transformers."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend == "vllm" and not vllm_available():
        raise ValueError("backend 'vllm' needs the vllm package and a CUDA GPU (pip install 'lcrl[vllm]')")
    gguf = resolve_model(path).gguf_file is not None  # vLLM is given a folder or Hub id; a GGUF spec is ours
    if backend == "vllm" and gguf:
        raise ValueError(f"backend 'vllm' takes a model folder or Hub id, not the GGUF file {path!r}; allowed for "
                         "GGUF: backend transformers (or auto)")
    if backend == "vllm" or (backend == "auto" and vllm_available() and not gguf):
        from rl.vllm_engine import VLLMEngine

        logger.info("generation backend: vLLM")
        return VLLMEngine(path, trust_remote_code=trust_remote_code, dtype=dtype or "auto", **vllm_kwargs)
    if backend == "auto":  # not silent: say why, and that the batch is bounded by the KV cache it needs
        why = f"the model {path!r} is a GGUF file" if gguf else vllm_unavailable_reason() or "vLLM is unavailable"
        logger.warning("generation backend auto: transformers, not vLLM (%s); batch_size %d (on a GPU fewer prompts "
                       "at a time when their KV cache would pass %d%% of the free memory)", why, batch_size,
                       round(KV_CACHE_SHARE * 100))
    else:
        logger.info("generation backend: transformers")
    return TransformersEngine.from_pretrained(path, batch_size, trust_remote_code=trust_remote_code, dtype=dtype)


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
