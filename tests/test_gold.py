"""Gold-answer normalisation per benchmark (reused by the evaluation harness)."""

from __future__ import annotations

import pytest

from data.gold import (
    amc_gold, as_boxed, boxed_solution, gold_answer, gsm8k_gold, latex_gold, number_gold, olympiad_gold, perturbed,
)  # fmt: skip


@pytest.mark.parametrize(
    "value, expected",
    [(27.0, "27"), (-1.0, "-1"), (0.5, "0.5"), (3159, "3159"), ("204", "204"), ("1,450,000", "1450000"), ("$18", "18")],
)
def test_numbers(value, expected):
    assert number_gold(value) == expected
    assert amc_gold(27.0) == "27"


def test_gsm8k():
    assert gsm8k_gold("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18") == "18"
    assert gsm8k_gold("...\n#### 70,000") == "70000"
    with pytest.raises(ValueError, match="no '####'"):
        gsm8k_gold("no final answer")


@pytest.mark.parametrize(
    "final_answer, expected",
    [
        (["$\\frac{2}{3}$"], "\\frac{2}{3}"),
        (["50"], "50"),
        (["$69$,$84$"], "69, 84"),
        (["$(2,4)$"], "(2,4)"),
        (["$(-\\infty, 0) \\cup\\{1\\}$."], "(-\\infty, 0) \\cup\\{1\\}"),
        (["$f(x)=-1$,$f(x)=x+1$"], "f(x)=-1, f(x)=x+1"),
        (["$a$", "$b$"], "a, b"),
        ("$8 \\%$", "8 \\%"),
    ],
)
def test_olympiadbench(final_answer, expected):
    assert olympiad_gold(final_answer) == expected


def test_latex_and_boxed_solution():
    assert latex_gold(" $\\frac{1}{2}$ ") == "\\frac{1}{2}" and latex_gold("\\$18.90") == "\\$18.90"
    assert boxed_solution("so we get $\\boxed{\\frac{14}{3}}$.") == "\\frac{14}{3}"
    assert boxed_solution("no box") is None
    assert as_boxed("x") == "\\boxed{x}"


def test_gold_answer_dispatch():
    assert gold_answer("amc23", {"answer": 36.0}) == "36"
    assert gold_answer("olympiadbench", {"final_answer": ["$3$"]}) == "3"
    assert gold_answer("gsm8k", {"answer": "x\n#### 5"}) == "5"
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'; known: math500"):
        gold_answer("mmlu", {})
    with pytest.raises(ValueError, match="no 'answer' field"):
        gold_answer("math500", {"solution": "x"})


@pytest.mark.parametrize("answer, expected", [("27", "28"), ("-1", "0"), ("1.25", "2.25"), ("x=5", "x=5+1")])
def test_perturbed(answer, expected):
    assert perturbed(answer) == expected
