"""Device memory of generation: the KV cache a transformers batch needs, and freeing a model before the next.

``model.generate`` keeps keys and values of every layer for every row and position, so a batch of ``B`` rows of
``T`` tokens (prompt + new) holds ``B * T * kv_cache_bytes_per_token`` bytes; at ``batch_size: 512`` and 8192 new
tokens that is about 120 GB for R1-Distill-Qwen-1.5B, more than any one GPU. ``batch_rows`` lowers the rows of a
``generate`` call until the cache fits the budget (``KV_CACHE_SHARE`` of the GPU memory left free after loading
the weights) and says so; vLLM pages its cache itself and needs none of this.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

KV_CACHE_SHARE = 0.5  # the transformers backend's KV cache stays under this share of the free GPU memory


def kv_cache_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Bytes of KV cache one token takes: keys and values of every layer, ``2 * layers * kv_heads * head_dim``
    elements of ``dtype`` (R1-Distill-Qwen-1.5B in bf16: 2 * 28 * 2 * 128 * 2 B = 28 KiB)."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * dtype.itemsize


def kv_cache_budget(device: torch.device) -> int | None:
    """Bytes the KV cache may take on ``device``: ``KV_CACHE_SHARE`` of its free memory; ``None`` (no bound) off GPU."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.mem_get_info(device)[0] * KV_CACHE_SHARE)


def batch_rows(batch_size: int, bytes_per_token: int, tokens: int, budget: int | None) -> int:
    """Rows per ``generate`` call for rows of up to ``tokens`` tokens: ``batch_size``, or fewer (at least 1, with a
    warning) when their KV cache would pass ``budget`` bytes."""
    if budget is None:
        return batch_size
    per_row = bytes_per_token * max(tokens, 1)
    rows = max(1, min(batch_size, budget // per_row))
    if rows < batch_size:
        logger.warning("batch_size %d x %d tokens needs a KV cache of %.1f GiB, over the %.1f GiB allowed (%d%% of the "
                       "free GPU memory): generating %d prompts at a time", batch_size, tokens,
                       batch_size * per_row / 2**30, budget / 2**30, round(KV_CACHE_SHARE * 100), rows)
    return rows


def free_accelerator_memory() -> None:
    """Collect garbage and hand the CUDA caching allocator's free blocks back, so the next model finds them."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
