"""The grader against test suites nobody here wrote: math-verify's published cases (``tests/data``: every case of
Math-Verify's ``tests/test_all.py`` whose prediction holds a box) and TRL's ``accuracy_reward`` tests, each
prediction graded as a completion without thinking. ``trl`` normalisation must give TRL's verdict on every boxed
case (TRL is run live); ``full`` (evaluation) must give math-verify's published verdict. Remaining disagreements
are listed in the README."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rewards.correctness import EVAL_GRADING, grade
from rewards.registry import GradingConfig
from rewards.verify import gold_parses

CASES = json.loads((Path(__file__).parent / "data" / "math_verify_boxed_cases.json").read_text())["cases"]
TRL_GRADING = GradingConfig(workers=0)
FULL = GradingConfig(workers=0, normalization=EVAL_GRADING.normalization)


def trl_accuracy(pred: str, gold: str) -> float | None:
    from trl.rewards import accuracy_reward

    return accuracy_reward([[{"role": "assistant", "content": pred}]], [gold])[0]


@pytest.fixture(autouse=True)
def quiet_math_verify():
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def test_the_published_boxed_cases_are_all_there():
    assert len(CASES) == 59 and all("\\boxed" in c["pred"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['test']}" for i, c in enumerate(CASES)])
def test_trl_normalisation_agrees_with_trl_accuracy_reward(case):
    expected = trl_accuracy(case["pred"], case["gold"])
    assert grade(case["pred"], case["gold"], TRL_GRADING) == float(expected or 0.0)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['test']}" for i, c in enumerate(CASES)])
def test_eval_normalisation_agrees_with_math_verify(case):
    assert grade(case["pred"], case["gold"], FULL) == float(case["expected"])


@pytest.mark.parametrize(
    "pred, gold, trl, full",
    [("\\boxed{\\frac94}", "\\frac{9}{4}", 0.0, 1.0), ("\\boxed{\\tfrac12}", "0.5", 0.0, 1.0),
     ("\\boxed{\\sqrt 2}", "\\sqrt{2}", 0.0, 1.0), ("\\boxed{\\dfrac{1}{2}}", "\\frac12", 1.0, 1.0)],
)  # fmt: skip
def test_shorthand_is_read_by_the_eval_normalisation_only(pred, gold, trl, full):
    assert grade(pred, gold, TRL_GRADING) == trl and grade(pred, gold, FULL) == full


def test_trl_published_accuracy_cases():
    """TRL's tests/test_rewards.py::TestAccuracyReward, through our grader."""
    assert grade("\\boxed{\\frac{63}{400}}", "\\frac{63}{400}", TRL_GRADING) == 1.0
    assert grade("\\boxed{\\frac{63}{400}}", "63/400", TRL_GRADING) == 1.0
    assert grade("\\boxed{\\frac{64}{400}}", "\\frac{63}{400}", TRL_GRADING) == 0.0
    assert grade("\\boxed{3}", "6", TRL_GRADING) == 0.0
    # an unparsable gold: TRL skips it (None), evaluation leaves it out of the accuracy and counts it
    assert trl_accuracy("Some other content. \\boxed{43}.", "Answer is forty three.") is None
    assert not gold_parses("Answer is forty three.") and not gold_parses("Answer is forty two.", "full")
    for gold in ("42", "\\frac{63}{400}", "$1,-2$", "1,-2", "\\{1,3\\}", "(0,1]", "x^2+1", "\\frac12", "\\text{(C)}"):
        assert gold_parses(gold) and gold_parses(gold, "full"), gold


def test_reasoning_completions_as_trl_reasoning_accuracy_reward_reads_them():
    """TRL's reasoning_accuracy_reward cases: the answer is read after </think>, never inside it."""
    assert grade("<think> Reasoning content </think> \\boxed{\\frac{63}{400}}", "\\frac{63}{400}") == 1.0
    assert grade("Reasoning content </think> \\boxed{\\frac{63}{400}}", "\\frac{63}{400}") == 1.0
    assert grade("<think> My answer is \\boxed{42} </think> Some other text.", "\\boxed{42}") == 0.0
    assert grade("<think> The answer is \\boxed{42} </think> Here's a wrong answer: \\boxed{43}.", "42") == 0.0
