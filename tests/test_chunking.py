"""Chunkers (average, search over boundary positions) and the skip-candidate rule, on synthetic and real traces."""

from __future__ import annotations

import itertools
import random

import pytest

from data.chunking import (
    ChunkConfig,
    average_chunks,
    chunk_steps,
    content_units,
    gap_cohesion,
    novel_content,
    objective,
    search_chunks,
    skip_candidates,
)
from data.segment import SegmentConfig, segment
from data.synthetic import generate
from data.traces import load_traces


def _covers(chunks, n):
    return [i for c in chunks for i in c] == list(range(n)) and all(chunks)


def test_average_chunks_are_equal_in_length():
    lengths = [10] * 12
    assert average_chunks(lengths, 3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    uneven = [30, 5, 5, 5, 5, 30, 10, 10]
    chunks = average_chunks(uneven, 2)
    assert _covers(chunks, 8) and [sum(uneven[i] for i in c) for c in chunks] == [50, 50]
    assert average_chunks([], 3) == []


TOPICS = {
    "area": "the area of the rectangle is length times width so area equals {} square units",
    "speed": "speed is distance over time the car drives {} miles per hour on the road",
    "prob": "probability of a red ball is red balls over all balls {} out of ten draws",
}


def _topic_steps(sizes):
    steps, labels = [], []
    for topic, count in sizes:
        for k in range(count):
            steps.append(TOPICS[topic].format(k + 3) + ".\n\n")
            labels.append(topic)
    return steps, labels


def test_search_finds_topic_boundaries_that_average_chunking_misses():
    steps, labels = _topic_steps([("area", 2), ("speed", 6), ("prob", 2)])
    lengths = [10] * len(steps)
    cfg = ChunkConfig(num_chunks=3, min_len=10, max_len=80)
    found = search_chunks(steps, lengths, cfg)
    assert [[labels[i] for i in c] for c in found] == [["area"] * 2, ["speed"] * 6, ["prob"] * 2]
    average = average_chunks(lengths, 3)
    assert any(len({labels[i] for i in c}) > 1 for c in average)  # equal sizes cut through topics
    cohesion = gap_cohesion(steps)
    assert objective(found, cohesion) > objective(average, cohesion)


def test_search_is_the_exact_optimum_under_the_size_limits():
    rng = random.Random(0)
    words = "a b c d e f g h".split()
    for _ in range(40):
        n = rng.randint(2, 9)
        steps = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(n)]
        lengths = [rng.randint(1, 8) for _ in range(n)]
        m = rng.randint(1, n)
        cfg = ChunkConfig(num_chunks=m, min_len=3, max_len=14, window=rng.choice([1, 2]))
        cohesion = gap_cohesion(steps, cfg.window)

        def feasible(chunks):
            return all(len(c) == 1 or 3 <= sum(lengths[i] for i in c) <= 14 for c in chunks)

        best = None
        for cut in itertools.combinations(range(1, n), m - 1):
            bounds = [0, *cut, n]
            chunks = [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
            if feasible(chunks):
                value = objective(chunks, cohesion)
                best = value if best is None else max(best, value)
        found = search_chunks(steps, lengths, cfg)
        assert _covers(found, n)
        if best is not None:  # feasible with m chunks: the search must return m chunks at the optimum
            assert len(found) == m and feasible(found)
            assert objective(found, cohesion) == pytest.approx(best)


def test_infeasible_limits_fall_back_to_the_nearest_feasible_count():
    lengths = [50, 50, 50, 50]
    steps = ["x y"] * 4
    found = search_chunks(steps, lengths, ChunkConfig(num_chunks=1, min_len=0, max_len=100))
    assert len(found) == 2 and _covers(found, 4)


def test_chunks_of_real_traces_cover_the_steps_and_respect_the_limits(shared_dir):
    records = load_traces(str(shared_dir / "traces" / "r1_sat_38.json")).records
    cfg = ChunkConfig(target_len=300, min_len=80, max_len=900)
    for rec in records[:12]:
        steps = segment(rec.thinking, SegmentConfig())
        lengths = [max(1, len(s) // 4) for s in steps]  # about 4 characters per token
        for method in ("search", "average"):
            chunks = chunk_steps(steps, lengths, ChunkConfig(**{**cfg.__dict__, "method": method}))
            assert _covers(chunks, len(steps))
            assert "".join("".join(steps[i] for i in c) for c in chunks) == rec.thinking
            if method == "search":
                assert all(len(c) == 1 or 80 <= sum(lengths[i] for i in c) <= 900 for c in chunks)


def test_content_units():
    units = content_units("Let me verify: 7 + 5 = 2, 2 * 3 = 6. So 10,368 and 4.5 and 432 / 24 = 18.")
    assert {"7+5=2", "2*3=6", "432/24=18", "10368", "4.5", "18"} <= units
    assert novel_content("Wait, 2 * 3 = 6. Yes.", "we had 2 * 3 = 6 before") == set()
    assert novel_content("So 2 * 3 = 7.", "we had 2 * 3 = 6 before") == {"2*3=7", "7"}


def test_skip_rule_on_labelled_synthetic_paragraphs():
    """One chunk per paragraph: re-checks, summaries and transitions in the middle are candidates; mistakes never;
    an essential step only when it repeats an earlier step word for word (the same operation on the same value)."""
    seen = {k: [0, 0] for k in ("step", "mistake", "recheck", "summary", "transition")}
    for trace in generate("train", 300, seed=5):
        steps = segment(trace.thinking.strip(), SegmentConfig(min_chars=0, markers=()))
        chunks = [[i] for i in range(len(steps))]
        candidates = set(skip_candidates(trace.problem.question, steps, chunks))
        for i, para in enumerate(trace.paragraphs[1:-1], start=1):
            if para.kind in seen:
                seen[para.kind][0] += 1
                seen[para.kind][1] += i in candidates
            if para.kind == "step" and i in candidates:
                assert any(p.text.split(", so ")[1] == para.text.split(", so ")[1]
                           for p in trace.paragraphs[:i] if p.kind == "step")
        assert 0 not in candidates and len(steps) - 1 not in candidates
    assert seen["mistake"][1] == 0
    for kind in ("recheck", "summary", "transition"):
        assert seen[kind][1] == seen[kind][0] > 0
    assert seen["step"][1] <= 0.02 * seen["step"][0]


def test_opening_restatement_is_a_candidate_only_with_first():
    """``first=True`` offers the opening chunk too: a restated question qualifies, an opening step never does
    (it derives the first value), and the last chunk stays out either way."""
    restate = step = 0
    for trace in generate("train", 300, seed=7):
        steps = segment(trace.thinking.strip(), SegmentConfig(min_chars=0, markers=()))
        chunks = [[i] for i in range(len(steps))]
        middle = skip_candidates(trace.problem.question, steps, chunks)
        with_first = skip_candidates(trace.problem.question, steps, chunks, first=True)
        assert set(with_first) - set(middle) <= {0} and len(steps) - 1 not in with_first
        if trace.paragraphs[0].kind == "restate":
            restate += 1
            assert 0 in with_first
        else:
            step += trace.paragraphs[0].kind == "step"
            assert 0 not in with_first
    assert restate > 100 and step > 100


def test_skipping_candidates_never_loses_a_stated_fact():
    for trace in generate("train", 100, seed=6):
        steps = segment(trace.thinking.strip(), SegmentConfig(min_chars=0, markers=()))
        lengths = [len(s) for s in steps]
        chunks = chunk_steps(steps, lengths, ChunkConfig(target_len=60, min_len=10, max_len=200))
        skipped = set(skip_candidates(trace.problem.question, steps, chunks))
        kept = trace.problem.question + "".join(steps[i] for j, c in enumerate(chunks) if j not in skipped for i in c)
        assert content_units(trace.thinking) <= content_units(kept)


def test_bad_knobs_are_named():
    with pytest.raises(ValueError, match="unknown chunking method 'x'; allowed: search, average"):
        ChunkConfig(method="x")
    with pytest.raises(ValueError, match="unknown chunking knob"):
        ChunkConfig.from_dict({"size": 3})
    with pytest.raises(ValueError, match="lengths"):
        chunk_steps(["a"], [1, 2])
