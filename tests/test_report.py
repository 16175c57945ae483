"""Evaluation rows: thinking counted by the completion format, unparsable golds left out of the accuracy and
counted, truncated and unclosed completions scored 0 (``rl.report.summarize`` through ``run_once``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from data.budgets import Tier
from data.completion_format import CompletionFormat
from rl.engine import Generation, SamplingParams
from rl.report import summarize
from rl.stages.evaluation import run_once

CLOSE = (7, 8)  # a two-token close marker
FMT = CompletionFormat.from_ids(CLOSE, eos_ids=[0])
TIER = Tier("medium", "Reasoning length: medium.", budget=100, penalty=0.5)


def gen(think: int, answer: int, finished: bool = True, text: str = "") -> Generation:
    ids = [1] * (think - 2) + list(CLOSE) + [2] * answer
    return Generation(text, ids, finished, "eos" if finished else "length")


def test_summarize_counts_thinking_with_the_format_and_leaves_unparsable_golds_out():
    gens = [gen(10, 5), gen(20, 3), gen(4, 1)]
    row = summarize(gens, [1.0, 0.0, None], FMT, 12)
    assert row["accuracy"] == 0.5 and row["unparsable_gold"] == 1 and row["n"] == 3
    assert row["think_tokens_mean"] == pytest.approx(34 / 3) and row["answer_tokens_mean"] == pytest.approx(3)
    assert row["within_budget"] == pytest.approx(2 / 3)
    assert row["within_band"] == pytest.approx(2 / 3)  # no floor: the band is [0, budget]
    tier = Tier("medium", "", budget=12, penalty=0.5, floor=8)
    banded = summarize(gens, [1.0, 0.0, None], FMT, tier)  # thinking 10, 20, 4: only 10 in [8, 12]
    assert banded["within_budget"] == pytest.approx(2 / 3) and banded["within_band"] == pytest.approx(1 / 3)
    assert summarize(gens, [1.0, 1.0, 1.0], None, None)["think_tokens_mean"] == pytest.approx(43 / 3)


def test_run_once_scores_truncated_and_unclosed_zero_and_excludes_unparsable_golds():
    texts = [("<think>x</think> \\boxed{42}", True), ("<think>x</think> \\boxed{42}", False),  # cut at the limit
             ("<think>6*7 = \\boxed{42}", True), ("<think>x</think> \\boxed{42}", True)]
    gens = [Generation(t, [1, 7, 8, 2], f, "eos" if f else "length") for t, f in texts]
    engine = SimpleNamespace(generate=lambda prompts, params, desc="": gens, completion_format=FMT)
    problems = [SimpleNamespace(id=str(i), question="q", solution=s)
                for i, s in enumerate(["42", "42", "42", "Answer is forty two."])]
    args = SimpleNamespace(num_samples=1, log_samples=4, otb_t_max=1000)
    row, samples = run_once(engine, args, problems, ["p"] * 4, SamplingParams(), TIER, False, "test")
    assert [s["correct"] for s in samples] == [1.0, 0.0, 0.0, None]
    assert row["accuracy"] == pytest.approx(1 / 3) and row["unparsable_gold"] == 1
    assert all(s["think_tokens"] == 3 for s in samples)


def test_no_thinking_run_gives_no_credit_to_a_model_that_reasons_before_a_second_close():
    # the prefill closed the thinking; the first completion ignores it, reasons and closes again (as a tiny model
    # trained only on full traces does), the second answers at once
    texts = ["Op 1: + 2, so 4 + 2 = 6.\n</think>\n\nThe final value is \\boxed{6}.", "The final value is \\boxed{6}."]
    gens = [Generation(texts[0], [1, 1, 1, *CLOSE, 2, 2, 0], True, "eos"), Generation(texts[1], [2, 2, 0], True, "eos")]
    engine = SimpleNamespace(generate=lambda prompts, params, desc="": gens, completion_format=FMT)
    problems = [SimpleNamespace(id=str(i), question="q", solution="6") for i in range(2)]
    args = SimpleNamespace(num_samples=1, log_samples=2, otb_t_max=1000)
    row, samples = run_once(engine, args, problems, ["p"] * 2, SamplingParams(), TIER, True, "no-think")
    assert [s["correct"] for s in samples] == [0.0, 1.0]
    assert row["accuracy"] == 0.5 and row["think_tokens_mean"] == pytest.approx(5 / 2)  # its 5 tokens of reasoning
