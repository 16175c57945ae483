"""Stop-token temperature scaling as one vLLM batch-level logits processor (no vllm import here).

vLLM V1 (every version TRL 1.16 supports, ``vllm>=0.22``) runs logits processors on the whole batch: the engine
builds each processor once with ``(vllm_config, device, is_pin_memory)``, calls ``update_state(batch_update)``
before every forward pass (``None`` when the batch did not change; else the requests ``removed``, ``added`` as
``(index, params, prompt_ids, output_ids)`` and ``moved`` as ``(a, b, SWAP | UNIDIRECTIONAL)``, to be read in that
order), then ``apply(logits)`` on the ``[num_requests, vocab]`` logits (docs: "Custom Logits Processors";
``vllm.v1.sample.logits_processor.LogitsProcessor``). ``rl.vllm_engine`` mixes ``StopScalingBatch`` into that base
class; kept apart so it is tested without vllm.

The formula is ``rl.controls``' (the transformers backend's ``StopTokenScaling``): while a request's thinking is
open (its stop token in neither the prompt nor the output so far), ``z_e' = z_e + ln(1/tau)``; with ``top_k``
only where ``e`` is among the row's ``top_k`` largest logits. Unlike vLLM's ``AdapterLogitsProcessor`` (one Python
call and a few one-row tensor ops per request per step), the per-request state lives in ``update_state`` and the
index tensors are rebuilt only when the set of open rows changes (a request added, removed, moved or closed), so
``apply`` is one ``index_put_`` (plus a ``topk`` on the open rows with ``top_k``) whatever the batch size.

``output_ids`` is vLLM's reference to the request's running output list. Under async scheduling vLLM may append
``-1`` placeholders that it fills in a step later, so a row's scan position never moves past a trailing
placeholder: the close is seen once the id is real (a step late at worst, as for any processor reading ids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

EXTRA_ARG = "lcrl_stop_scaling"  # SamplingParams.extra_args key: {"token_id": int, "tau": float, "top_k": int}


def stop_scaling_spec(params: Any) -> tuple[int, float, int] | None:
    """``(token_id, tau, top_k)`` from a request's ``SamplingParams.extra_args``; ``None`` when scaling is off."""
    spec = (getattr(params, "extra_args", None) or {}).get(EXTRA_ARG)
    if not spec:
        return None
    token_id, tau, top_k = int(spec["token_id"]), float(spec["tau"]), int(spec.get("top_k", 0))
    if tau <= 0 or top_k < 0:
        raise ValueError(f"{EXTRA_ARG}: tau must be > 0 and top_k >= 0 (0 = always), got tau {tau}, top_k {top_k}")
    return None if tau == 1.0 else (token_id, tau, top_k)


@dataclass
class _Row:
    """One open request: its stop token, log-boost, top-k gate and the live output list vLLM appends to."""

    token_id: int
    boost: float
    top_k: int
    output: list[int]
    seen: int = 0  # output[:seen] holds no stop token and no placeholder

    def closed_by_new_output(self) -> bool:
        out, end = self.output, len(self.output)
        if self.token_id in out[self.seen : end]:
            return True
        while end > self.seen and out[end - 1] < 0:  # async scheduling's placeholders: look again next step
            end -= 1
        self.seen = end
        return False


class StopScalingBatch:
    """vLLM V1 batch-level logits processor for ``z_e' = z_e + ln(1/tau)`` on the rows whose thinking is open."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.device = torch.device(device)
        self.pin_memory = bool(is_pin_memory) and self.device.type != "cpu"
        self.rows: dict[int, _Row] = {}  # batch index -> open request
        self._index: tuple[torch.Tensor, torch.Tensor] | None = None  # (rows, stop-token columns)
        self._boost = self._gated = self._kth = torch.empty(0)
        self._kmax = 0

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """vLLM calls this on each request: a malformed ``extra_args`` spec fails there, not mid-batch."""
        stop_scaling_spec(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False  # the boost can change the greedy choice

    def update_state(self, batch_update: Any | None) -> None:
        """Apply the batch changes (removed, added, moved, in that order), drop rows that closed, rebuild on change."""
        changed = False
        if batch_update is not None:
            for index in batch_update.removed:
                changed |= self.rows.pop(index, None) is not None
            for index, params, prompt_ids, output_ids in batch_update.added:
                row = self._new_row(params, prompt_ids, output_ids)
                changed |= self.rows.pop(index, None) is not None or row is not None  # an add replaces the index
                if row is not None:
                    self.rows[index] = row
            for a, b, direction in batch_update.moved:
                row_a, row_b = self.rows.pop(a, None), self.rows.pop(b, None)
                changed |= row_a is not None or row_b is not None
                if row_a is not None:
                    self.rows[b] = row_a
                if row_b is not None and direction.name == "SWAP":  # UNIDIRECTIONAL: a's request replaces b's
                    self.rows[a] = row_b
        closed = [index for index, row in self.rows.items() if row.closed_by_new_output()]
        for index in closed:
            del self.rows[index]
        if changed or closed:
            self._rebuild()

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """One in-place add on the stop-token column of the open rows (O(1) tensor ops in the batch size)."""
        if self._index is None:
            return logits
        boost = self._boost
        if self._kmax:
            k = min(self._kmax, logits.shape[-1])
            picked = logits[self._index]
            kth = logits.index_select(0, self._index[0]).topk(k, dim=-1).values
            kth = kth.gather(1, self._kth.clamp(max=k - 1)).squeeze(1)
            boost = torch.where(self._gated & (picked < kth), torch.zeros_like(boost), boost)
        logits.index_put_(self._index, boost.to(logits.dtype), accumulate=True)
        return logits

    def _new_row(self, params: Any, prompt_ids: list[int] | None, output_ids: list[int]) -> _Row | None:
        spec = stop_scaling_spec(params)
        if spec is None or (prompt_ids is not None and spec[0] in prompt_ids):
            return None  # off, or the prompt closed the thinking (no-thinking prefill, a forced answer round)
        row = _Row(spec[0], math.log(1.0 / spec[1]), spec[2], output_ids)
        return None if row.closed_by_new_output() else row  # a resumed request may have closed already

    def _rebuild(self) -> None:
        if not self.rows:
            self._index, self._kmax = None, 0
            return
        items = sorted(self.rows.items())
        self._index = (self._tensor([i for i, _ in items], torch.long),
                       self._tensor([r.token_id for _, r in items], torch.long))
        self._boost = self._tensor([r.boost for _, r in items], torch.float32)
        self._kmax = max(r.top_k for _, r in items)
        if self._kmax:
            self._gated = self._tensor([r.top_k > 0 for _, r in items], torch.bool)
            self._kth = self._tensor([[max(r.top_k - 1, 0)] for _, r in items], torch.long)

    def _tensor(self, data: list, dtype: torch.dtype) -> torch.Tensor:
        cpu = torch.tensor(data, dtype=dtype, pin_memory=self.pin_memory)
        return cpu.to(self.device, non_blocking=self.pin_memory)
