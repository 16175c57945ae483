"""The 2025-26 group-relative length rewards against hand-computed values (``rewards.group_length``)."""

from __future__ import annotations

import pytest

from rewards import GradingConfig, RewardContext, build_rewards
from rewards.group_length import difficulty_bucket, quantile, smartthinker_optimal_length

END = 9  # the </think> token id in these tests
CTX = RewardContext(think_end_id=END, grading=GradingConfig(workers=0), tier_metrics=False)
RIGHT = [{"role": "assistant", "content": "<think>ok</think> The answer is \\boxed{5}."}]
WRONG = [{"role": "assistant", "content": "<think>ok</think> The answer is \\boxed{4}."}]


def reward(name: str, **params):
    (func,), _ = build_rewards([{"name": name, "length_of": "thinking", **params}], CTX)
    return func


def call(func, groups: list[tuple[list[int], list[int]]], **columns) -> list[float]:
    """One batch of groups, each ``(thinking lengths, correct flags)``; each group has its own prompt."""
    prompts, completions, ids = [], [], []
    for g, (lengths, correct) in enumerate(groups):
        for n, c in zip(lengths, correct, strict=True):
            prompts.append([{"role": "user", "content": f"Q{g}"}])
            completions.append(RIGHT if c else WRONG)
            ids.append([1] * (n - 1) + [END] + [2, 2])  # n thinking tokens, then an answer of 2
    return func(prompts=prompts, completions=completions, completion_ids=ids, solution=["5"] * len(ids), **columns)


def test_shorter_better_targets_the_shortest_correct_length_else_the_mean():
    func = reward("shorter_better", alpha=2.0, beta=0.1)
    # group 1: SOL = 4 (shortest correct); group 2: none correct, SOL = mean(3, 5) = 4
    got = call(func, [([4, 6, 10], [1, 0, 1]), ([3, 5], [0, 0])])
    assert got == pytest.approx([2.0, -0.2, 1.4, -0.1, -0.1])


def test_smartthinker_optimal_length_special_cases():
    assert smartthinker_optimal_length([3, 5, 7], [1, 1, 1]) == 3  # all correct: the shortest
    assert smartthinker_optimal_length([3, 5, 7], [0, 0, 0]) == 7  # none correct: the longest
    # var_c = 6.22 > var_all = 5: the shortest
    assert smartthinker_optimal_length([2, 4, 6, 8], [1, 1, 0, 1]) == 2


def test_smartthinker_crossing_point_and_self_tuned_coefficient():
    # all: mu 16.5, var 251/4; correct: mu 12, var 8/3 -> l_opt = (8/3*16.5 - 251/4*12)/(8/3 - 251/4) = 8508/721
    l_opt = 8508 / 721
    assert smartthinker_optimal_length([10, 12, 14, 30], [1, 1, 1, 0]) == pytest.approx(l_opt)
    s12, s14 = 12 - l_opt, 14 - l_opt  # 10 is under l_opt and 30 is wrong: score 0
    lam = 0.25 / (s14 - (s12 + s14) / 4 + 1e-6)  # error ratio / (max correct score - mean score)
    got = call(reward("smartthinker"), [([10, 12, 14, 30], [1, 1, 1, 0])])
    assert got == pytest.approx([1.0, 1 - lam * s12, 1 - lam * s14, 0.0])


def test_smartthinker_keeps_the_longest_correct_advantage_non_negative():
    # l_opt = 2; scores [0, 2, 0, 6]; lam = 0.25 / (6 - 2) = 1/16 -> [1, 0.875, 0, 0.625], mean 0.625
    got = call(reward("smartthinker"), [([2, 4, 6, 8], [1, 1, 0, 1])])
    assert got == pytest.approx([1.0, 0.875, 0.0, 0.625])
    assert got[3] >= sum(got) / 4 - 1e-6
    assert call(reward("smartthinker"), [([3, 9], [1, 1])]) == [1.0, 1.0]  # all correct: lam = 0


def test_alp_scales_the_penalty_by_the_group_solve_rate():
    func = reward("alp", beta=0.01)
    # p = 3/4: r = c - 0.01 * L * 0.75; the never-solved group pays nothing
    got = call(func, [([10, 20, 30, 40], [1, 1, 1, 0]), ([10, 20], [0, 0])])
    assert got == pytest.approx([0.925, 0.85, 0.775, -0.3, 0.0, 0.0])
    floor = reward("alp", beta=0.01, min_rate=0.5)  # the paper's max(p, 1/K) with K = 2
    assert call(floor, [([10, 20], [0, 0])]) == pytest.approx([-0.05, -0.1])


def test_laser_fixed_target_step_bonus():
    got = call(reward("laser", target=5, bonus=0.5, adaptive=False), [([4, 5, 6, 3], [1, 1, 1, 0])])
    assert got == [1.5, 1.5, 1.0, 0.0]


def test_laser_d_target_adapts_per_difficulty_bucket():
    func = reward("laser", target=100, bonus=0.5, quantile=0.5, min_samples=2)
    batch = [([4, 5, 6, 3], [1, 1, 1, 0]), ([7, 8, 9, 10], [1, 0, 0, 0])]  # easy (3/4) and hard (1/4)
    assert call(func, batch) == [1.5, 1.5, 1.5, 0.0, 1.5, 0.0, 0.0, 0.0]  # every target still 100
    assert func.targets() == {"easy": 5.0, "medium": 100.0, "hard": 100.0}  # median of 4, 5, 6; hard has 1 < 2
    logged = {}
    got = call(func, batch, log_metric=logged.__setitem__)
    assert got == [1.5, 1.5, 1.0, 0.0, 1.5, 0.0, 0.0, 0.0]
    assert logged["laser/target_easy"] == 5.0


def test_difficulty_buckets_and_quantile():
    assert [difficulty_bucket(p) for p in (1.0, 2 / 3, 0.5, 1 / 3, 0.25, 0.0)] == \
        ["easy", "easy", "medium", "medium", "hard", "hard"]
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([10], 0.9) == 10


@pytest.mark.parametrize("spec, message", [
    ({"name": "alp", "min_rate": 2}, "min_rate must be in"),
    ({"name": "shorter_better", "beta": -1}, "beta must be >= 0"),
    ({"name": "laser", "quantile": 1.5}, "quantile must be in"),
    ({"name": "smartthinker", "length_of": "words"}, "allowed: thinking, completion"),
])
def test_bad_parameters_fail_at_build_time(spec, message):
    with pytest.raises(ValueError, match=message):
        build_rewards([spec], CTX)
