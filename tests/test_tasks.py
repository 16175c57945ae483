"""Synthetic-task datasets (``data.tasks``): prompts carry the tier, SFT targets follow ``sft_target``."""

from __future__ import annotations

import pytest

from data.budgets import resolve_tiers
from data.synthetic import generate
from data.tasks import traces_to_dataset

TIERS = resolve_tiers("synthetic")


def _thinking_chars(text: str) -> int:
    return len(text.split("</think>")[0])


def test_tiered_targets_follow_each_prompts_tier():
    traces = generate("train", 90, seed=3)
    ds = traces_to_dataset(traces, "mixed", TIERS, seed=0, target="tiered")
    by_tier: dict[str, list[int]] = {"short": [], "medium": [], "long": []}
    for trace, row in zip(traces, ds, strict=True):
        assert row["tier"] in row["prompt"][0]["content"].lower()  # the instruction names the tier
        text = row["completion"][0]["content"]
        thinking = text.split("</think>")[0].removeprefix("<think>\n")
        # the same answer and essential steps on every tier
        assert text.endswith(trace.conclusion) and all(p.text in text for p in trace.paragraphs if p.kind == "step")
        if row["tier"] == "short":
            assert text == trace.oracle_text
        if row["tier"] == "medium":  # opens by restating the problem, its only extra paragraph
            assert thinking.startswith("Okay, so I start with")
            assert thinking.count("\n\n") == len(trace.problem.ops)
        if row["tier"] == "long":  # checks every step from Op 1 on and closes with the verification
            assert thinking.startswith("Op 1:") and thinking.index("double-check Op 1.") < thinking.index("Op 2:")
            assert thinking.count("Wait, let me double-check") == len(trace.problem.ops)
            assert "Let me verify the result once more." in thinking.split("\n\n")[-1]
        by_tier[row["tier"]].append(_thinking_chars(text) - _thinking_chars(trace.oracle_text))
    mean = {t: sum(v) / len(v) for t, v in by_tier.items()}
    assert mean["short"] == 0 < mean["medium"] < mean["long"]
    again = traces_to_dataset(traces, "mixed", TIERS, seed=0, target="tiered")
    assert again["completion"] == ds["completion"]  # reproducible


def test_tiered_targets_write_facts_as_their_traces_do():
    from data.synthetic import SyntheticConfig

    traces = generate("train", 30, seed=3, cfg=SyntheticConfig(show_wrap=True))
    ds = traces_to_dataset(traces, "mixed", TIERS, seed=0, target="tiered")
    for trace, row in zip(traces, ds, strict=True):  # every step of the trace, as it wrote it, in each tier's target
        assert all(p.text in row["completion"][0]["content"] for p in trace.paragraphs if p.kind == "step")
    assert any("which is" in row["completion"][0]["content"] for row in ds)


def test_unknown_target_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown SFT target 'half'.*full, oracle, tiered"):
        traces_to_dataset(generate("train", 2, seed=0), "medium", TIERS, target="half")
