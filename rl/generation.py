"""One generation engine interface for evaluation, pruning validation and data refresh.

``TransformersEngine`` batches prompts (sorted by length, left-padded, KV cache) through ``model.generate`` on
CPU or GPU. Every engine returns, per prompt, the completion text, its token ids and whether it finished
(emitted the end-of-sequence token) or was truncated at ``max_new_tokens``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    finished: bool  # False when cut at max_new_tokens

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class SamplingParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    logits_processors: list = field(default_factory=list)


class GenerationEngine(Protocol):
    tokenizer: PreTrainedTokenizerBase

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Generation]: ...


def chat_prompts(
    tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Sequence[dict]], prefill: str = ""
) -> list[str]:
    """Render chat prompts with the generation prompt, plus an optional assistant prefill (e.g. empty thinking)."""
    return [
        tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True) + prefill
        for c in conversations
    ]


class TransformersEngine:
    """Batched generation with a transformers model (KV cache, left padding, length-sorted batches)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = set(_as_list(model.generation_config.eos_token_id) or [tokenizer.eos_token_id])

    @classmethod
    def from_pretrained(
        cls, path: str, batch_size: int = 64, trust_remote_code: bool = False, dtype: str | None = None
    ) -> TransformersEngine:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, dtype=dtype or ("auto" if device == "cuda" else torch.float32)
        ).to(device)
        return cls(model, tokenizer, batch_size=batch_size)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], params: SamplingParams, desc: str = "generate") -> list[Generation]:
        tok = self.tokenizer
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
        out: list[Generation | None] = [None] * len(prompts)
        torch.manual_seed(params.seed)
        device = self.model.device
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=desc, leave=False, disable=len(batches) < 2):
            width = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            gen = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=params.max_new_tokens,
                pad_token_id=tok.pad_token_id,
                logits_processor=list(params.logits_processors) or None,
                **(sampling if params.temperature > 0 else {"do_sample": False}),
            )
            for row, i in enumerate(batch):
                out[i] = self._to_generation(gen[row, width:].tolist())
        return out  # type: ignore[return-value]

    def _to_generation(self, new_ids: list[int]) -> Generation:
        finished = False
        for j, t in enumerate(new_ids):
            if t in self.eos_ids:
                new_ids, finished = new_ids[:j], True
                break
        text = self.tokenizer.decode(new_ids, skip_special_tokens=False)
        return Generation(text=text, token_ids=new_ids, finished=finished)


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
