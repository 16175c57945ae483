"""Group-relative rewards (``rewards.group``): ``kimi`` and ``efficiency`` against hand-computed values, their edge
cases, and groups formed by prompt (and id), not by position in the batch."""

from __future__ import annotations

import math

import pytest

from rewards.group import group_indices
from tests.reward_cases import call, reward, right, wrong

# ------------------------------------------------------------------------------------------------- kimi


def test_kimi_group_values():
    kimi = reward("kimi")
    completions = right() + wrong() + right() + wrong()
    # Lmin 10, Lmax 50: lam = 0.5 - (L - 10)/40 = 0.5, 0.25, 0.0, -0.5; wrong -> min(0, lam)
    out = call(kimi, completions, [[1] * 10, [1] * 20, [1] * 30, [1] * 50])
    assert out == pytest.approx([0.5, 0.0, 0.0, -0.5])


@pytest.mark.parametrize(
    "completions, lengths, expected",
    [
        (right(2) + wrong(), [[1] * 7] * 3, [0.0, 0.0, 0.0]),  # all the same length
        (right(), [[1] * 7], [0.0]),  # one completion
        (wrong(2), [[1] * 10, [1] * 30], [0.0, -0.5]),  # no correct answer: min(0, lam)
    ],
)
def test_kimi_edge_cases(completions, lengths, expected):
    assert call(reward("kimi"), completions, lengths) == pytest.approx(expected)


def test_kimi_groups_by_prompt_not_position():
    kimi = reward("kimi")
    a, b = [{"role": "user", "content": "A"}], [{"role": "user", "content": "B"}]
    prompts = [a, b, a, b]  # two prompts interleaved
    out = call(kimi, right(4), [[1] * 10, [1] * 100, [1] * 20, [1] * 300], prompts=prompts)
    # group A: 10, 20 -> 0.5, -0.5; group B: 100, 300 -> 0.5, -0.5 (across the batch 10..300 it would differ)
    assert out == pytest.approx([0.5, 0.5, -0.5, -0.5])


# ------------------------------------------------------------------------------------------- efficiency


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_efficiency_group_values():
    eff = reward("efficiency", alpha=0.1)
    # correct lengths 10, 30: mu 20, population sigma 10; the wrong one scores 0 whatever its length
    out = call(eff, right(2) + wrong(), [[1] * 10, [1] * 30, [1] * 5])
    assert out == pytest.approx([1 - 0.1 * sig(-1), 1 - 0.1 * sig(1), 0.0], abs=1e-6)
    assert out[0] == pytest.approx(0.9731059, abs=1e-6)


@pytest.mark.parametrize(
    "completions, lengths, expected",
    [
        (right() + wrong(), [[1] * 10, [1] * 40], [0.95, 0.0]),  # one correct: sigma 0 -> 1 - alpha/2
        (right(3), [[1] * 8] * 3, [0.95] * 3),  # all the same length
        (wrong(3), [[1] * 3, [1] * 6, [1] * 9], [0.0] * 3),  # no correct answer
        (right(), [[1] * 8], [0.95]),  # one completion
    ],
)
def test_efficiency_edge_cases(completions, lengths, expected):
    assert call(reward("efficiency", alpha=0.1), completions, lengths) == pytest.approx(expected)


def test_efficiency_groups_interleaved_prompts_and_ids():
    eff = reward("efficiency", alpha=0.1)
    p = [{"role": "user", "content": "same prompt text"}]
    # same prompt, different ids: two groups; ids interleaved
    out = call(eff, right(4), [[1] * 10, [1] * 50, [1] * 30, [1] * 50], prompts=[p] * 4, id=["x", "y", "x", "y"])
    assert out == pytest.approx([1 - 0.1 * sig(-1), 0.95, 1 - 0.1 * sig(1), 0.95], abs=1e-6)


def test_group_indices():
    assert group_indices(["a", "b", "a", "c", "b"]) == [[0, 2], [1, 4], [3]]
    assert group_indices(["a", "a", "a"], ids=[1, 2, 1]) == [[0, 2], [1]]
