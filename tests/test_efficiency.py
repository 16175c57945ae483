"""Efficiency metrics (``rl.efficiency``) and their eval-row columns (``rl.report``) against hand-computed values."""

from __future__ import annotations

import pytest

from rl.efficiency import (
    AesWeights,
    accuracy_per_1k,
    add_aes,
    aes,
    budget_curves,
    even_edges,
    histogram,
    overthinking_adjusted_accuracy,
    split_lengths,
)
from rl.engine import Generation
from rl.report import markdown_table, summarize

END = 9


def test_accuracy_per_1k_thinking_tokens():
    assert accuracy_per_1k(0.6, 120) == pytest.approx(5.0)
    assert accuracy_per_1k(0.5, 0) is None


def test_aes_gain_loss_and_weights():
    assert aes(0.8, 60, 0.8, 100) == pytest.approx(0.4)  # same accuracy, 40% shorter
    assert aes(0.9, 50, 0.8, 100) == pytest.approx(0.5 + 5 * 0.125)  # gain: + b |dA|
    assert aes(0.6, 50, 0.8, 100) == pytest.approx(0.5 - 10 * 0.25)  # loss: - g |dA|
    assert aes(0.6, 50, 0.8, 100, AesWeights(1, 3, 5)) == pytest.approx(0.5 - 5 * 0.25)
    assert aes(0.6, 50, 0.0, 100) is None
    assert AesWeights().label() == "w 1, b 5, g 10"


def test_overthinking_adjusted_accuracy():
    # per item c * max(0, 1000 - T) / 1000: 1, 0.5, 0 (wrong), 0 (over t_max)
    assert overthinking_adjusted_accuracy([1, 1, 0, 1], [0, 500, 100, 1200], 1000) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="t_max must be > 0"):
        overthinking_adjusted_accuracy([1], [3], 0)


def test_lengths_split_and_histogram():
    assert split_lengths([1, 0, 1, 0], [5, 7, 3, 9]) == ([5, 3], [7, 9])
    assert even_edges([0, 8], 4) == [0, 2, 4, 6, 8]
    assert histogram([0, 1, 2, 3, 4, 4, 5], [0, 2, 4]) == [2, 4]  # the last bin is closed; 5 is outside


def _row(model, tier, accuracy, think, **extra):
    return {"model": model, "benchmark": "synthetic", "tier": tier, "mode": "think", "control": "none",
            "accuracy": accuracy, "think_tokens_mean": think, **extra}


def test_add_aes_against_the_named_base_row_of_the_same_tier():
    rows = [_row("sft", "short", 0.8, 100), _row("sft", "long", 0.5, 200), _row("kimi", "short", 0.8, 60),
            _row("kimi", "long", 0.6, 100), _row("kimi", "medium", 0.7, 50),
            {"model": "oracle", "mode": "data", "accuracy": 1.0, "think_tokens_mean": 38}]
    add_aes(rows, "sft")
    assert [r.get("aes") for r in rows[:5]] == pytest.approx([0.0, 0.0, 0.4, 0.5 + 5 * 0.2, None], abs=1e-12)
    assert "aes" not in rows[5]
    assert rows[2]["aes_base"] == "sft" and rows[2]["aes_weights"] == "w 1, b 5, g 10"
    assert "| AES (vs sft; w 1, b 5, g 10) |" in markdown_table(rows)


def test_budget_curves_by_cap_split_by_correct_and_wrong():
    cap = dict(mode="think", sweep="cap")
    rows = [_row("m", "long", 0.9, 30, sweep="base"),
            _row("m", "long", 0.7, 16, think_cap=16, think_tokens_correct_mean=15.0, think_tokens_wrong_mean=16.0,
                 **cap),
            _row("m", "long", 0.2, 8, think_cap=8, think_tokens_correct_mean=7.5, think_tokens_wrong_mean=None,
                 **cap)]
    (curve,) = budget_curves(rows)
    assert (curve["model"], curve["tier"]) == ("m", "long")
    assert [(p["cap"], p["accuracy"], p["think_tokens_correct_mean"], p["think_tokens_wrong_mean"])
            for p in curve["points"]] == [(8, 0.2, 7.5, None), (16, 0.7, 15.0, 16.0)]
    assert budget_curves(rows[:1]) == []


def test_summarize_adds_the_efficiency_columns():
    gens = [Generation("a", [1] * 99 + [END, 2], True), Generation("b", [1] * 299 + [END], True),
            Generation("c", [1] * 199 + [END], True), Generation("d", [1] * 400, False)]
    row = summarize(gens, [1.0, 1.0, 0.0, 0.0], END, None, t_max=1000)
    # thinking 100, 300, 200, 400: mean 250, accuracy 0.5
    assert row["accuracy_per_1k"] == pytest.approx(2.0)
    assert row["otb_accuracy"] == pytest.approx((0.9 + 0.7) / 4)
    assert row["think_tokens_correct_mean"] == 200 and row["think_tokens_wrong_mean"] == 300
    assert row["think_lengths_correct"] == [100, 300] and row["think_lengths_wrong"] == [200, 400]
    assert "| acc / 1k think tok | OTB acc | AES |" in markdown_table([row])


def test_eval_arguments_check_the_efficiency_options():
    from rl.config import ConfigError
    from rl.eval_config import EvalArguments

    args = EvalArguments(models=["sft=a", "kimi=b"], aes_base="sft", otb_t_max=200)
    assert args.aes_weights == [1.0, 5.0, 10.0] and args.otb_t_max == 200
    with pytest.raises(ConfigError, match="aes_base 'base' is not a model label; labels: sft, kimi"):
        EvalArguments(models=["sft=a", "kimi=b"], aes_base="base")
    with pytest.raises(ConfigError, match="otb_t_max must be > 0"):
        EvalArguments(models=["sft=a"], otb_t_max=0)
