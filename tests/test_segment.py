"""Step segmentation: exact round trip on real R1 traces and the synthetic task, markers, size limits."""

from __future__ import annotations

import statistics

import pytest

from data.segment import SegmentConfig, join_steps, segment
from data.synthetic import generate
from data.traces import load_traces


@pytest.fixture(scope="module")
def real_thinking(shared_dir) -> list[str]:
    texts = []
    for name in ("r1_sat_38.json", "r1_math_5.json"):
        texts += [r.thinking for r in load_traces(str(shared_dir / "traces" / name)).records]
    return texts


@pytest.fixture(scope="module")
def raw_responses(shared_dir) -> list[str]:
    import json

    rows = json.loads((shared_dir / "traces" / "r1_sat_38.json").read_text())
    return [r["deepseek-reasoner (response)"] for r in rows]


def test_round_trip_is_exact_on_real_traces(real_thinking, raw_responses):
    configs = [SegmentConfig(), SegmentConfig(min_chars=0, max_chars=None), SegmentConfig(markers=(), max_chars=200),
               SegmentConfig(paragraphs=False, min_chars=10, max_chars=100)]
    for cfg in configs:
        for text in real_thinking + raw_responses:  # raw responses: with </think>, answer and odd white space
            assert "".join(segment(text, cfg)) == text


def test_real_steps_are_of_sensible_size(real_thinking):
    cfg = SegmentConfig()
    lengths, counts = [], []
    for text in real_thinking:
        steps = segment(text, cfg)
        counts.append(len(steps))
        lengths += [len(s) for s in steps]
        assert all(len(s.strip()) >= cfg.min_chars for s in steps)  # every R1 thinking is longer than min_chars
    assert max(lengths) <= 2 * cfg.max_chars
    assert sum(n > cfg.max_chars for n in lengths) <= 0.01 * len(lengths)
    assert 80 <= statistics.median(lengths) <= 600
    assert min(counts) >= 3 and statistics.median(counts) >= 10  # long traces give many steps


def test_markers_cut_inside_a_paragraph_only_at_sentence_starts():
    text = ("So 24 times 18 is 432. Wait, let me check that again: 24 * 18 = 432. Waiting is not a marker, and "
            "neither is this wait. Alternatively, divide 432 by 24.")
    steps = segment(text, SegmentConfig(min_chars=0))
    assert [s.split(",")[0].split(" ")[0] for s in steps] == ["So", "Wait", "Alternatively"]
    assert steps[0].endswith("432. ")  # the blank stays behind with the earlier step
    assert segment(text, SegmentConfig(min_chars=0, markers=())) == [text]


def test_paragraph_cut_keeps_the_blank_lines_with_the_step():
    text = "First step here.\n\nSecond step.\n\n\nThird.\n"
    assert segment(text, SegmentConfig(min_chars=0)) == ["First step here.\n\n", "Second step.\n\n\n", "Third.\n"]


def test_short_steps_merge_forward_and_a_short_tail_merges_back():
    text = "Looking at the options:\n\nA) is 18 because 432 / 24 = 18 and that fits.\n\nSo A."
    assert segment(text, SegmentConfig(min_chars=30)) == [text]  # heading forward, "So A." back
    steps = segment(text + "\n\nThen the check: 24 * 18 = 432, as given.", SegmentConfig(min_chars=30))
    assert steps == ["Looking at the options:\n\nA) is 18 because 432 / 24 = 18 and that fits.\n\n",
                     "So A.\n\nThen the check: 24 * 18 = 432, as given."]  # a short step joins the next one
    assert segment("", SegmentConfig()) == []


def test_long_steps_are_cut_at_sentence_ends():
    sentence = "This is one sentence of a long paragraph. "
    text = sentence * 20
    steps = segment(text, SegmentConfig(min_chars=0, max_chars=200))
    assert "".join(steps) == text and len(steps) > 1
    assert all(len(s) <= 200 for s in steps) and all(s.endswith(". ") for s in steps)
    unsplittable = "x" * 500
    assert segment(unsplittable, SegmentConfig(min_chars=0, max_chars=200)) == [unsplittable]


def test_synthetic_paragraphs_are_steps():
    for trace in generate("train", 50, seed=3):
        thinking = trace.thinking.strip()
        steps = segment(thinking, SegmentConfig(min_chars=0, markers=()))
        assert [s.strip() for s in steps] == [p.text for p in trace.paragraphs]
        assert join_steps(steps, range(len(steps))) == thinking


def test_bad_knobs_are_named():
    with pytest.raises(ValueError, match="unknown segment knob"):
        SegmentConfig.from_dict({"min_char": 3})
    with pytest.raises(ValueError, match="max_chars must exceed"):
        SegmentConfig(min_chars=50, max_chars=20)
