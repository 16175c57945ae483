"""Stop-token scaling as vLLM's batch-level logits processor (``rl.vllm_logits``), against a stand-in of vLLM V1's
``BatchUpdate`` (added ``(index, params, prompt_ids, output_ids)``, removed, moved ``(a, b, SWAP | UNIDIRECTIONAL)``):
every row equals the per-request processor (the transformers backend's ``StopTokenScaling`` on that row's prompt and
output so far) through adds, removals, moves, swaps and closes, and ``apply`` costs the same tensor ops whatever the
batch size."""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from enum import Enum, auto

import pytest
import torch
from torch.overrides import TorchFunctionMode

from rl.controls import StopTokenScaling
from rl.vllm_logits import EXTRA_ARG, StopScalingBatch

E, V = 3, 12  # the stop token, the vocabulary


class Move(Enum):  # vLLM's MoveDirectionality
    UNIDIRECTIONAL = auto()
    SWAP = auto()


@dataclass(frozen=True)
class FakeBatchUpdate:  # vLLM's BatchUpdate
    batch_size: int
    removed: list = field(default_factory=list)
    added: list = field(default_factory=list)
    moved: list = field(default_factory=list)


@dataclass
class Req:
    prompt: list[int]
    tau: float | None = None  # None: no lcrl_stop_scaling in extra_args
    top_k: int = 0
    output: list[int] = field(default_factory=list)
    stop_after: int | None = None  # emits the stop token once its output is this long

    @property
    def open(self) -> bool:
        return self.tau not in (None, 1.0) and E not in self.prompt + self.output

    @property
    def params(self):
        spec = None if self.tau is None else {EXTRA_ARG: {"token_id": E, "tau": self.tau, "top_k": self.top_k}}
        return types.SimpleNamespace(extra_args=spec)

    def reference(self, logits_row: torch.Tensor) -> torch.Tensor:
        """The per-request processor: this request alone, its prompt and output so far."""
        if self.tau is None:
            return logits_row
        ids = torch.tensor([self.prompt + self.output])
        return StopTokenScaling(E, self.tau, self.top_k)(ids, logits_row[None].clone())[0]


class Batch:
    """vLLM's persistent batch in miniature: index -> request, changed as a BatchUpdate says."""

    def __init__(self) -> None:
        self.slots: dict[int, Req] = {}

    def update(self, removed=(), added=(), moved=()) -> FakeBatchUpdate:
        for i in removed:
            del self.slots[i]
        for i, req in added:
            self.slots[i] = req
        for a, b, direction in moved:
            ra, rb = self.slots.pop(a, None), self.slots.pop(b, None)
            if ra is not None:
                self.slots[b] = ra
            if direction is Move.SWAP and rb is not None:
                self.slots[a] = rb
        size = max(self.slots, default=-1) + 1
        return FakeBatchUpdate(size, list(removed), [(i, r.params, r.prompt, r.output) for i, r in added],
                               list(moved))


def check_step(proc: StopScalingBatch, batch: Batch, gen: torch.Generator, integer: bool = False) -> None:
    size = max(batch.slots) + 1
    logits = (torch.randint(-3, 4, (size, V), generator=gen).float() if integer  # ties at the top-k edge
              else torch.randn(size, V, generator=gen) * 3)
    got = proc.apply(logits.clone())
    for i in range(size):
        want = batch.slots[i].reference(logits[i]) if i in batch.slots else logits[i]
        assert torch.equal(got[i], want), (i, batch.slots.get(i), got[i], want)


def decode(batch: Batch, gen: torch.Generator) -> None:
    """One sampled token per request: the stop token at its ``stop_after``, else any other."""
    for req in batch.slots.values():
        stop = len(req.output) == req.stop_after
        req.output.append(E if stop else int(torch.randint(4, V, (), generator=gen)))


def test_every_row_equals_the_per_request_processor_through_adds_removals_moves_and_closes():
    gen = torch.Generator().manual_seed(0)
    proc, batch = StopScalingBatch(None, torch.device("cpu"), False), Batch()
    first = [Req([1, 2], 0.5), Req([1], 0.1, top_k=3, stop_after=2), Req([2, 2]), Req([1], 1.0), Req([1, E, 2], 0.2),
             Req([1], 0.3, output=[5, E]), Req([2], 2.0), Req([1, 1], 0.05, stop_after=9)]
    proc.update_state(batch.update(added=list(enumerate(first))))
    assert set(proc.rows) == {0, 1, 6, 7}  # off, tau 1, closed in the prompt, resumed closed: no state
    script = {
        3: {"removed": [0, 2]},  # holes at 0 and 2 for two steps: the removed open row 0 gets no boost
        5: {"moved": [(7, 0, Move.UNIDIRECTIONAL), (6, 2, Move.UNIDIRECTIONAL)]},  # vLLM condenses the holes
        6: {"moved": [(0, 2, Move.SWAP)]},  # two open rows trade places
        8: {"removed": [3], "added": [(3, Req([4], 0.4, top_k=2, stop_after=12)), (6, Req([4, 4], 0.5)),
                                      (7, Req([5]))]},
        10: {"removed": [0], "added": [(0, Req([2], 0.25)), (6, Req([1]))]},  # an add replaces (6: a live open row)
        12: {"moved": [(7, 0, Move.UNIDIRECTIONAL)]},  # onto a live open row: that request leaves the batch
        14: {"added": [(7, Req([1], 0.5, top_k=1)), (8, Req([1], 0.5, top_k=20))]},  # top_k past the vocabulary
    }
    for step in range(20):
        proc.update_state(batch.update(**script[step]) if step in script else None)
        assert set(proc.rows) == {i for i, r in batch.slots.items() if r.open}, step
        check_step(proc, batch, gen, integer=step % 3 == 0)
        decode(batch, gen)
    assert any(r.tau not in (None, 1.0) and E in r.output for r in batch.slots.values())  # some closed on the way


def test_a_placeholder_is_read_once_vllm_fills_it_in():
    proc, out = StopScalingBatch(None, torch.device("cpu"), False), [5]
    proc.update_state(FakeBatchUpdate(1, added=[(0, Req([1], 0.5).params, [1], out)]))
    out.append(-1)  # async scheduling: the sampled id arrives a step later
    proc.update_state(None)
    assert 0 in proc.rows
    out[-1] = E
    out.append(-1)
    proc.update_state(None)
    assert not proc.rows
    z = torch.zeros(1, V)
    assert torch.equal(proc.apply(z.clone()), z)


class CountOps(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("top_k", [0, 3])
def test_apply_costs_the_same_tensor_ops_whatever_the_batch_size(top_k):
    counts = []
    for size in (2, 64, 512):
        proc, batch = StopScalingBatch(None, torch.device("cpu"), False), Batch()
        proc.update_state(batch.update(added=[(i, Req([1], 0.5, top_k=top_k)) for i in range(size)]))
        logits = torch.randn(size, V)
        with CountOps() as ops:
            proc.apply(logits)
        counts.append(len(ops.calls))
        decode(batch, torch.Generator().manual_seed(1))
        with CountOps() as ops:  # a decode step with no batch change and no close: no tensor work at all
            proc.update_state(None)
        assert ops.calls == []
    assert counts[0] == counts[1] == counts[2] and counts[0] <= 16, counts  # per request: >= 512


def test_a_bad_spec_fails_when_the_request_arrives():
    params = types.SimpleNamespace(extra_args={EXTRA_ARG: {"token_id": E, "tau": 0.0}})
    with pytest.raises(ValueError, match="tau must be > 0"):
        StopScalingBatch.validate_params(params)
    assert StopScalingBatch.validate_params(types.SimpleNamespace(extra_args=None)) is None
    assert not StopScalingBatch(None, torch.device("cpu"), False).is_argmax_invariant()


def test_the_boost_is_ln_one_over_tau_on_the_stop_column_only():
    proc = StopScalingBatch(None, torch.device("cpu"), False)
    proc.update_state(FakeBatchUpdate(2, added=[(1, Req([1], 0.5).params, [1], [])]))
    out = proc.apply(torch.zeros(2, V))
    assert out[1, E].item() == pytest.approx(math.log(2)) and out.count_nonzero() == 1
