"""Binary cutting and skip search on scripted validators: monotone, non-monotone, call counts, batching."""

from __future__ import annotations

import math
import random

import pytest

from data.prune import FULL_TRACE_INVALID, NO_STEPS, binary_cut, skip_search, validation_bound


class Scripted:
    """Validity of prefix k of trace i is ``valid[i](k)``; records every batch it receives."""

    def __init__(self, valid):
        self.valid = valid
        self.batches: list[list] = []

    def __call__(self, requests):
        self.batches.append(list(requests))
        out = []
        for i, kept in requests:
            assert kept == tuple(range(len(kept)))  # binary cut only asks for prefixes
            out.append(self.valid[i](len(kept)))
        return out


def test_monotone_validity_finds_the_shortest_valid_prefix():
    rng = random.Random(0)
    ns = [rng.randint(1, 200) for _ in range(300)]
    first = [rng.randint(1, n) for n in ns]
    v = Scripted([lambda k, f=f: k >= f for f in first])
    results = binary_cut(ns, v)
    for r, n, f in zip(results, ns, first):
        assert r.kept == f and r.dropped is None
        assert r.calls <= validation_bound(n) == math.ceil(math.log2(n)) + 1 if n > 1 else r.calls == 1
    # level-synchronous: one validator call per level, never more levels than the worst trace's bound
    assert len(v.batches) <= max(validation_bound(n) for n in ns)
    assert sum(len(b) for b in v.batches) == sum(r.calls for r in results)
    assert len(v.batches[0]) == len(ns)  # the full traces, all in the first batch


def test_non_monotone_validity_returns_a_valid_prefix_never_an_invalid_one():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 64)
        table = {k: rng.random() < 0.5 for k in range(1, n + 1)}
        table[n] = True  # the full trace is valid
        v = Scripted([lambda k, t=table: t[k]])
        (r,) = binary_cut([n], v)
        assert table[r.kept] and 1 <= r.kept <= n
        assert r.calls <= validation_bound(n) <= math.ceil(math.log2(n)) + 2
        assert all(table[k] == ok for k, ok in r.history)


def test_a_hole_in_validity_can_only_lengthen_the_result():
    # valid at k=2 and k>=7 only: 10 (valid) -> 5 (invalid) -> 8 (valid) -> 7 (valid) -> 6 (invalid); k=2 is missed
    v = Scripted([lambda k: k == 2 or k >= 7])
    (r,) = binary_cut([10], v)
    assert r.kept == 7 and [k for k, _ in r.history] == [10, 5, 8, 7, 6] and r.calls == 5 == validation_bound(10)


def test_invalid_full_trace_is_dropped_after_one_call_and_empty_traces_too():
    done = []
    v = Scripted([lambda k: False, lambda k: True, lambda k: True])
    results = binary_cut([8, 0, 1], v, on_done=done.append)
    assert results[0].dropped == FULL_TRACE_INVALID and results[0].calls == 1 and results[0].kept is None
    assert results[1].dropped == NO_STEPS and results[1].calls == 0
    assert results[2].kept == 1 and results[2].calls == 1
    assert sorted(r.index for r in done) == [0, 1, 2]  # every trace reported exactly once


def test_min_steps_zero_allows_dropping_all_thinking():
    v = Scripted([lambda k: True])
    (r,) = binary_cut([9], v, min_steps=0)
    assert r.kept == 0 and r.calls <= validation_bound(10)


def test_on_done_fires_as_traces_finish_not_at_the_end():
    order = []
    v = Scripted([lambda k: k >= 1, lambda k: k >= 50])

    def on_done(r):
        order.append((r.index, len(v.batches)))

    binary_cut([1, 100], v, on_done=on_done)
    assert order[0] == (0, 1) and order[1][0] == 1 and order[1][1] > 1


def test_bad_validator_is_caught():
    with pytest.raises(ValueError, match="verdicts"):
        binary_cut([3, 4], lambda reqs: [True])


def test_skip_search_is_greedy_cumulative_and_batched():
    # trace 0: chunks [[0],[1],[2],[3]]; removing 1 alone is fine, 2 alone is fine, but not both
    chunks = [[[0], [1], [2], [3]], [[0, 1], [2], [3, 4]], [[0], [1]]]
    candidates = [[1, 2], [1], []]
    seen = []

    def validate(requests):
        seen.append(list(requests))
        out = []
        for i, kept in requests:
            if i == 0:
                out.append(not (1 not in kept and 2 not in kept))
            else:
                out.append(True)
        return out

    results = skip_search(chunks, candidates, validate)
    assert results[0].skipped == [1] and results[0].calls == 2
    assert results[1].skipped == [1] and results[1].calls == 1
    assert results[2].skipped == [] and results[2].calls == 0
    assert len(seen) == 2 and len(seen[0]) == 2  # level 0 holds both traces' first candidates
    assert seen[1] == [(0, (0, 3))]  # level 1: chunk 1 already skipped, now also chunk 2
