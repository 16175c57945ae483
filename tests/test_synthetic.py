"""The synthetic long-CoT task: gold answers, splits, oracle traces, R1 format, token statistics."""

from __future__ import annotations

import operator
import re

import pytest

from data.format import last_boxed, parse_completion, split_thinking
from data.synthetic import SyntheticConfig, generate, iter_problems, make_trace, split_of


OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def brute_force_answer(question: str) -> int:
    """Recompute the answer from the question text alone, via integer arithmetic without the modulus first."""
    start = int(re.search(r"Start with (\d+)\.", question).group(1))
    modulus = int(re.search(r"modulo (\d+):", question).group(1))
    value = start  # exact integer arithmetic, reduced once at the end: equal mod m for +, -, *
    for op, arg in re.findall(r"Op \d+: ([-+*]) (\d+)\.", question):
        value = OPS[op](value, int(arg))
    return value % modulus


def test_gold_answers_are_right():
    for trace in generate("train", 300, seed=7) + generate("test", 100, seed=7):
        assert trace.problem.answer == brute_force_answer(trace.problem.question)
        assert last_boxed(trace.conclusion) == str(trace.problem.answer)


def test_every_essential_step_is_arithmetically_right():
    for trace in generate("train", 200, seed=1):
        steps = [p.text for p in trace.paragraphs if p.essential]
        assert len(steps) == len(trace.problem.ops)
        for text in steps:
            a, op, b, c = re.match(r"Op \d+: [-+*] \d+, so (\d+) ([-+*]) (\d+) = (\d+)\.$", text).groups()
            assert OPS[op](int(a), int(b)) % trace.problem.modulus == int(c)


def test_every_fact_of_make_reals_traces_is_right_with_wrapping_facts_written_out():
    facts = re.compile(r"(\d+) ([-+*]) (\d+) = (-?\d+)(?:, which is (\d+))?")
    cfg = SyntheticConfig(max_ops=3, redundancy=2.0, show_wrap=True)
    wrapped = 0  # traces with a wrapping fact
    for trace in generate("train", 300, seed=5, cfg=cfg):
        wraps = False
        m = trace.problem.modulus
        for para in trace.paragraphs:
            if para.kind == "mistake":  # a wrong reduced value on purpose, then the right step
                continue
            for a, op, b, plain, reduced in facts.findall(para.text):
                exact = OPS[op](int(a), int(b))
                if reduced:  # "9 * 3 = 27, which is 7": the exact result, then its residue
                    wraps = True
                    assert int(plain) == exact and exact != exact % m and int(reduced) == exact % m
                else:  # a fact that does not wrap writes its result once
                    assert int(plain) == exact == exact % m, para.text
        assert parse_completion(trace.text).boxed == str(trace.problem.answer)
        wrapped += wraps
    assert wrapped > 150  # most traces have one (198 of these 300)


def test_the_default_traces_are_pinned():
    """The demo's figures were measured on these traces: a change to the generator's defaults (a new knob, a
    draw moved) must show here, not as a demo that quietly no longer reproduces."""
    import hashlib

    digest = hashlib.md5("".join(t.text for t in generate("train", 50, seed=0)).encode()).hexdigest()
    assert digest == "7644d0c74114cc48c43939ef9571fa5d"
    digest = hashlib.md5("".join(t.text for t in generate("test", 50, seed=0)).encode()).hexdigest()
    assert digest == "b1a763682a9b351be92ae570725ab4c5"


def test_splits_never_share_a_problem_and_are_reproducible():
    train = generate("train", 1000, seed=0)
    test = generate("test", 300, seed=0)
    assert not {t.problem.key for t in train} & {t.problem.key for t in test}
    assert len({t.problem.key for t in train}) == 1000  # no duplicates within a split
    assert [t.text for t in generate("test", 50, seed=0)] == [t.text for t in test[:50]]
    assert [t.text for t in generate("test", 50, seed=1)] != [t.text for t in test[:50]]
    cfg = SyntheticConfig()
    assert all(split_of(t.problem, cfg.test_fraction) == "test" for t in test)


def test_traces_parse_in_r1_format():
    for trace in generate("train", 100, seed=3):
        parsed = parse_completion(trace.text)
        assert parsed.closed and trace.text.startswith("<think>\n")
        assert parsed.thinking.strip() == trace.thinking.strip()
        assert parsed.boxed == str(trace.problem.answer)
        oracle = parse_completion(trace.oracle_text)
        assert oracle.boxed == parsed.boxed and len(oracle.thinking) <= len(parsed.thinking)


def test_redundancy_knob():
    import random

    problem = next(iter_problems("train", 0, SyntheticConfig()))
    plain = make_trace(problem, random.Random(0), redundancy=0.0)
    assert plain.text == plain.oracle_text
    heavy = make_trace(problem, random.Random(0), redundancy=5.0)
    assert {p.kind for p in heavy.paragraphs} >= {"restate", "recheck", "verify"}
    only = make_trace(problem, random.Random(0), rates={"verify": 1.0})  # rates: other kinds are never drawn
    assert [p.kind for p in only.paragraphs if p.kind != "step"] == ["verify"]


def test_show_wrap_writes_the_plain_result_of_a_wrapping_fact_and_nothing_else_changes():
    from data.synthetic import Problem

    problem = Problem(start=9, ops=(("*", 3), ("-", 1), ("+", 4)), modulus=10)  # 27 -> 7; 7 - 1 = 6; 10 -> 0
    import random

    wrap = make_trace(problem, random.Random(0), redundancy=5.0, show_wrap=True)
    plain = make_trace(problem, random.Random(0), redundancy=5.0)
    steps = [p.text for p in wrap.paragraphs if p.kind == "step"]
    assert steps == ["Op 1: * 3, so 9 * 3 = 27, which is 7.", "Op 2: - 1, so 7 - 1 = 6.",
                     "Op 3: + 4, so 6 + 4 = 10, which is 0."]
    assert "Wait, let me double-check Op 1. 9 * 3 = 27, which is 7. Yes, that is right." in wrap.thinking
    assert [p.kind for p in wrap.paragraphs] == [p.kind for p in plain.paragraphs]  # the same draws
    assert wrap.conclusion == plain.conclusion and "which is" not in plain.text
    negative = make_trace(Problem(start=1, ops=(("-", 3),), modulus=10), random.Random(0), 0.0, show_wrap=True)
    assert negative.oracle_thinking == "Op 1: - 3, so 1 - 3 = -2, which is 8.\n"
    cfg = SyntheticConfig(show_wrap=True)  # the knob reaches generate()
    assert any("which is" in t.text for t in generate("train", 20, seed=0, cfg=cfg))
    with pytest.raises(ValueError, match="show_wrap must be true or false"):
        SyntheticConfig(show_wrap="false")


def test_traces_retokenise_losslessly(tiny_tokenizer):
    for trace in generate("test", 50, seed=2):
        ids = tiny_tokenizer(trace.text, add_special_tokens=False)["input_ids"]
        assert tiny_tokenizer.decode(ids) == trace.text
        assert ids.count(tiny_tokenizer.convert_tokens_to_ids("</think>")) == 1


def test_essential_share_of_thinking_tokens_matches_r1(tiny_tokenizer):
    traces = generate("train", 400, seed=11)
    # in words, the share pruning finds in real R1 traces (35-50%)
    words = sum(len(t.oracle_thinking.split()) for t in traces) / sum(len(t.thinking.split()) for t in traces)
    assert 0.35 <= words <= 0.50
    # in the embedded tokenizer's tokens a little lower: an essential step's arithmetic is one token (" 2 * 4 =")
    full = sum(len(tiny_tokenizer(t.thinking)["input_ids"]) for t in traces)
    essential = sum(len(tiny_tokenizer(t.oracle_thinking)["input_ids"]) for t in traces)
    assert 0.27 <= essential / full <= 0.50


def test_bad_knobs_are_rejected():
    with pytest.raises(ValueError, match="min_ops"):
        SyntheticConfig(min_ops=4, max_ops=2)
    with pytest.raises(ValueError, match="allowed: train, test"):
        generate("dev", 3)


def test_split_thinking_shapes():
    assert split_thinking("<think>\nabc</think>\nans") == ("\nabc", "\nans")
    assert split_thinking("abc</think>ans") == ("abc", "ans")  # R1 API shape: no opening tag
    assert split_thinking("<think>never closed") == (None, "<think>never closed")
    assert last_boxed(r"x \boxed{\frac{1}{2}} y") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{1} then \boxed{2}") == "2"
    assert last_boxed(r"\boxed{\frac{1}{2}") is None
