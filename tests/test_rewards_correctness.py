"""Correctness grading: answer forms, real benchmark gold answers, perturbed answers, adversarial completions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rewards.correctness import Grader, correctness_reward, extract_answer, grade, get_grader
from data.gold import as_boxed, boxed_solution, gold_answer, perturbed
from rewards.registry import GradingConfig

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
FILES = {"math500": "math500.jsonl", "amc23": "amc23.jsonl", "gsm8k": "gsm8k_test.jsonl",
         "olympiadbench": "olympiadbench.jsonl", "aime24": "aime24.jsonl"}  # fmt: skip
TIMEOUT = 3.0
# math-verify reads symbols case-insensitively, so this OlympiadBench gold is the tautology n = n: any N = ... matches
DEGENERATE_GOLDS = {"N=n"}


def r1(answer: str, thinking: str = "Let me work this out step by step.") -> str:
    return f"<think>\n{thinking}\n</think>\n\nThe final answer is ${as_boxed(answer)}$."


@pytest.fixture(scope="module")
def grader():
    """A grader with two worker processes and a short hard time limit, started once for the module."""
    g = Grader(GradingConfig(timeout=TIMEOUT, workers=2, parallel_threshold=8))
    g.grade([r1("x")] * 8, [f"y{i}" for i in range(8)])  # start both workers
    yield g
    g.close()


def load(benchmark: str) -> list[dict]:
    path = BENCHMARKS / FILES[benchmark]
    if not path.is_file():
        pytest.skip(f"real benchmark file {path} is absent (../shared/benchmarks sits beside the checkout)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------- answer forms


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("42", "42"), ("-7", "-7"), ("0.5", "\\frac{1}{2}"), ("\\frac{1}{2}", "1/2"), ("\\dfrac{3}{4}", "0.75"),
        ("1,000", "1000"), ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("2\\pi", "2 \\pi"),
        ("\\{1, 2\\}", "\\{2, 1\\}"), ("1, -2", "-2, 1"), ("(0, 1]", "(0,1]"), ("[2, \\infty)", "[2,\\infty)"),
        ("(1, 2)", "(1,2)"), ("x^2+1", "1+x^2"), ("3\\sqrt{13}", "3\\sqrt{13}"), ("\\text{Evelyn}", "\\text{Evelyn}"),
        ("90^\\circ", "90"), ("10\\%", "10"),
    ],
)  # fmt: skip
def test_equivalent_answers_are_correct(answer, gold):
    assert grade(r1(answer), gold) == 1.0


@pytest.mark.parametrize(
    "answer, gold",
    [("41", "42"), ("\\frac{1}{3}", "\\frac{1}{2}"), ("\\{1, 3\\}", "\\{1, 2\\}"), ("(0, 1)", "(0,1]"),
     ("3\\sqrt{13}", "3"), ("3", "3\\sqrt{13}"), ("(2, 1)", "(1,2)")],
)  # fmt: skip
def test_different_answers_are_wrong(answer, gold):
    assert grade(r1(answer), gold) == 0.0


def test_answer_comes_from_after_the_thinking():
    assert grade("<think>maybe \\boxed{7}</think> so \\boxed{8}", "8") == 1.0
    assert grade("<think>maybe \\boxed{7}</think> so \\boxed{8}", "7") == 0.0
    assert grade("<think>the answer is \\boxed{7} but I keep thinking", "7") == 0.0  # never closed: no answer
    assert grade("no thinking at all, so \\boxed{2}", "2") == 1.0  # a model without reasoning: the whole text
    # several boxes read as the set of them, as TRL's accuracy_reward and math-verify read a completion
    assert grade("first \\boxed{1}, finally \\boxed{2}", "2") == 0.0
    assert grade("<think>x</think> \\boxed{-2} \\text{ and } \\boxed{1}", "1,-2") == 1.0


def test_unclosed_several_closes_and_truncated_score_zero():
    grader = Grader(GradingConfig(workers=0))
    texts = ["Let me compute. 6 times 7 = 42, hmm, but maybe I misread the",  # template opened the thinking
             "6*7=42 </think> so \\boxed{42}",  # closed once after a template-opened thinking
             "6*7 </think> hmm </think> \\boxed{42}",  # two closes: no credit
             "<think>6*7</think> \\boxed{42}"]  # cut at the length limit (flag)
    assert grader.grade(texts, ["42"] * 4, truncated=[False, False, False, True], opened=True) == [0, 1, 0, 0]
    assert grader.rejected == {"unclosed": 1, "several_closes": 1, "truncated": 1}
    assert grade(texts[0], "42") == 0.0  # issue 11's example: no box, and the tail fallback is opt-in
    assert grade(texts[0], "42", GradingConfig(workers=0, tail_fallback=True)) == 1.0  # not opened: no thinking
    keep = Grader(GradingConfig(workers=0, zero_truncated=False))
    assert keep.grade(texts[3:], ["42"], truncated=[True]) == [1.0]


def test_fallback_without_a_box_is_opt_in_and_never_reads_the_thinking():
    tail = GradingConfig(workers=0, tail_fallback=True)
    assert extract_answer("<think>x</think> The answer is $\\frac{1}{2}$.") is None
    assert grade("<think>x</think> The answer is $\\frac{1}{2}$.", "0.5") == 0.0
    assert extract_answer("<think>x</think> The answer is $\\frac{1}{2}$.", tail_fallback=True)[0] == "tail"
    assert grade("<think>x</think> The answer is $\\frac{1}{2}$.", "0.5", tail) == 1.0
    assert grade("<think>x</think> Final answer: 12", "12", tail) == 1.0
    assert grade("<think>x</think>   ", "12", tail) == 0.0
    assert grade("<think>the answer is 12</think> I give up", "12", tail) == 0.0  # thinking is never searched


def test_gold_forms_and_missing_gold():
    text = r1("\\frac{2}{3}")
    for gold in ("\\frac{2}{3}", "$\\frac{2}{3}$", "\\boxed{\\frac{2}{3}}", "2/3"):
        assert grade(text, gold) == 1.0, gold
    assert grade(text, None) == 0.0
    assert correctness_reward(None, [text, text], [None, "2/3"]) == [0.0, 1.0]


def test_correctness_reward_shapes():
    conversational = [[{"role": "assistant", "content": r1("5")}], [{"role": "assistant", "content": r1("6")}]]
    assert correctness_reward(None, conversational, ["5", "5"]) == [1.0, 0.0]
    assert correctness_reward(None, [r1("5")], ["5"]) == [1.0]
    with pytest.raises(ValueError, match="1 completions but 2 solutions"):
        correctness_reward(None, [r1("5")], ["5", "6"])


# ----------------------------------------------------------------------------------------------- real data


def test_math500_gold_solutions_are_correct(grader):
    rows = load("math500")
    assert all(boxed_solution(r["solution"]) for r in rows)
    scores = grader.grade([r["solution"] for r in rows], [gold_answer("math500", r) for r in rows])
    wrong = [r["answer"] for r, s in zip(rows, scores) if s != 1.0]
    assert not wrong, f"{len(wrong)} MATH500 solutions graded wrong: {wrong[:10]}"


@pytest.mark.parametrize("benchmark", ["math500", "amc23", "gsm8k", "olympiadbench", "aime24"])
def test_gold_answers_boxed_are_correct_and_perturbed_wrong(grader, benchmark):
    golds = [gold_answer(benchmark, r) for r in load(benchmark)]
    scores = grader.grade([r1(g) for g in golds], golds)
    wrong = [g for g, s in zip(golds, scores) if s != 1.0]
    assert not wrong, f"{len(wrong)} {benchmark} gold answers graded wrong: {wrong[:10]}"
    golds = [g for g in golds if g not in DEGENERATE_GOLDS]
    scores = grader.grade([r1(perturbed(g)) for g in golds], golds)
    right = [g for g, s in zip(golds, scores) if s != 0.0]
    assert not right, f"{len(right)} perturbed {benchmark} answers graded correct: {right[:10]}"


def test_raw_benchmark_fields_as_gold(grader):
    amc = load("amc23")[:5]  # JSON floats such as 27.0
    assert grader.grade([r1(str(int(r["answer"]))) for r in amc], [str(r["answer"]) for r in amc]) == [1.0] * 5
    oly = [r for r in load("olympiadbench") if len(r["final_answer"][0]) > 3][:5]  # "$...$" LaTeX strings
    texts = [r1(gold_answer("olympiadbench", r)) for r in oly]
    assert grader.grade(texts, [r["final_answer"][0] for r in oly]) == [1.0] * 5


# ------------------------------------------------------------------------------------------- adversarial

ADVERSARIAL = {
    "100k characters": "<think>" + "Let me think. " * 7200 + "</think> The answer is \\boxed{5}.",
    "100k characters of answer": "<think>x</think>" + "so then 1 + 2 = 3 and " * 4600,
    "power tower": "<think>x</think> \\boxed{9^{9^{9^{9}}}}",
    "two-level tower": "<think>x</think> \\boxed{9^{9^{9}}}",
    "huge power": "<think>x</think> \\boxed{2^{10^{10}}}",
    "unbalanced braces": "<think>x</think> \\boxed{\\frac{1}{2",
    "stray braces": "<think>x</think> }}}{{{ \\boxed{5}}}} {\\frac{",
    "nested fractions": "<think>x</think> \\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
    "no answer": "<think>I give up.</think> I do not know.",
    "empty": "",
    "never closed": "<think>" + "hmm " * 25000,
    "factorial": "<think>x</think> \\boxed{(10^{8})!}",
    "plain-text tower": "<think>x</think> The answer is 9**9**9**9",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_completion_returns_within_the_time_limit(grader, name):
    start = time.monotonic()
    score = grader.grade([ADVERSARIAL[name]], ["5"])
    elapsed = time.monotonic() - start
    assert score in ([0.0], [1.0])
    assert elapsed < TIMEOUT + 2.0, f"{name}: {elapsed:.1f}s"  # + the replacement of a killed worker


def test_batch_with_adversarial_completions_completes(grader):
    texts = list(ADVERSARIAL.values()) + [r1("5"), r1("\\frac{1}{2}"), r1("6")]
    golds = ["5"] * len(ADVERSARIAL) + ["5", "0.5", "5"]
    start = time.monotonic()
    scores = grader.grade(texts, golds)
    assert scores[-3:] == [1.0, 1.0, 0.0]
    assert scores[0] == 1.0  # the 100k-character completion still has its answer
    assert time.monotonic() - start < 4 * TIMEOUT + 5


def test_in_process_grade_never_raises_on_adversarial_input():
    for name in ("unbalanced braces", "stray braces", "nested fractions", "no answer", "empty", "plain-text tower"):
        assert grade(ADVERSARIAL[name], "5") in (0.0, 1.0), name


# -------------------------------------------------------------------------------------- parallel == serial


def test_parallel_results_identical_to_sequential(grader):
    rows = load("olympiadbench")[:60] + load("math500")[:60]
    golds = [gold_answer("olympiadbench", r) for r in rows[:60]] + [gold_answer("math500", r) for r in rows[60:]]
    texts = [r1(g if i % 2 else perturbed(g)) for i, g in enumerate(golds)]
    serial = Grader(GradingConfig(workers=0)).grade(texts, golds)
    one = Grader(GradingConfig(workers=1, timeout=TIMEOUT))
    try:
        assert one.grade(texts, golds) == serial
    finally:
        one.close()
    grader.clear_cache()
    assert grader.grade(texts, golds) == serial  # 120 distinct answers >= threshold: both workers
    assert sum(serial) == 60


def test_shared_grader_caches_verdicts():
    g = get_grader(GradingConfig(workers=0))
    assert get_grader(GradingConfig(workers=0)) is g
    g.clear_cache()
    assert g.grade([r1("x+1"), r1("x+1")], ["1+x", "1+x"]) == [1.0, 1.0]
    assert len(g._cache) == 1  # identical (answer, gold) pairs are graded once


def test_warm_up_reaches_every_worker_and_caches_nothing(grader):
    grader.clear_cache()
    grader.warm_up([r1("x+1"), r1("7"), "<think>never closed"], ["1+x", "7", "1"])
    assert len(grader._cache) == 0 and len(grader.pool.pids) == 2
