"""Inference-time length controls: stop-token temperature scaling (formula, processor, engine) and s1 budget
forcing (the thinking cap is never exceeded; "Wait" extensions up to N times)."""

from __future__ import annotations

import math

import pytest
import torch

from data.completion_format import CompletionFormat
from data.format import THINK_CLOSE, split_thinking
from rl.config import InitArguments
from rl.controls import BudgetForcing, StopTokenScaling, scale_stop_logits
from rl.engine import SamplingParams
from rl.generation import TransformersEngine, chat_prompts
from rl.tiny_model import build_model

E = 3  # the stop token in the formula tests


@pytest.fixture(scope="module")
def engine(tiny_tokenizer):
    args = InitArguments(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2)
    torch.manual_seed(0)
    return TransformersEngine(build_model(args, tiny_tokenizer), tiny_tokenizer, batch_size=5)


@pytest.fixture(scope="module")
def prompts(engine):
    return chat_prompts(engine.tokenizer, [[{"role": "user", "content": f"Start with {i}. Op 1: + {i}."}]
                                           for i in range(10)])


def stop_prob(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(-1)[..., E]


# ------------------------------------------------------------------------------------------ the formula


def test_tau_one_is_the_identity():
    z = torch.randn(4, 10)
    assert torch.equal(scale_stop_logits(z.clone(), E, 1.0), z)
    assert torch.equal(StopTokenScaling(E, 1.0)(torch.zeros(4, 2, dtype=torch.long), z.clone()), z)


def test_formula_is_an_additive_log_boost_with_odds_times_one_over_tau():
    z = torch.tensor([[2.0, -1.0, 0.5, -3.0, 1.0]])
    for tau in (0.5, 0.1, 2.0):
        out = scale_stop_logits(z.clone(), E, tau)
        assert out[0, E].item() == pytest.approx(-3.0 + math.log(1 / tau))
        assert torch.equal(out[0, :E], z[0, :E]) and torch.equal(out[0, E + 1 :], z[0, E + 1 :])
        p, q = stop_prob(z).item(), stop_prob(out).item()
        assert q == pytest.approx(p / (p + tau * (1 - p)), rel=1e-5)


def test_smaller_tau_gives_higher_stop_probability_whatever_the_sign_or_offset():
    z = torch.randn(6, 12) * 3
    z[:3] -= 20  # all-negative logits
    z[3:] += 20  # all-positive logits
    probs = [stop_prob(scale_stop_logits(z.clone(), E, tau)) for tau in (2.0, 1.0, 0.5, 0.1, 1e-3)]
    for lo, hi in zip(probs, probs[1:]):
        assert torch.all(hi > lo)
    shifted = [stop_prob(scale_stop_logits(z.clone() + 7.0, E, tau)) for tau in (2.0, 1.0, 0.5, 0.1, 1e-3)]
    for a, b in zip(probs, shifted):
        assert torch.allclose(a, b, atol=1e-6)  # independent of the logits' offset


def test_top_k_gate_and_minus_infinity():
    z = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0], [5.0, 4.0, 3.0, 4.5, 1.0]])
    out = scale_stop_logits(z.clone(), E, 0.1, top_k=2)
    assert out[0, E] == 2.0  # 4th largest: not boosted
    assert out[1, E].item() == pytest.approx(4.5 + math.log(10))  # 2nd largest: boosted
    z = torch.tensor([[0.0, 1.0, 2.0, -math.inf]])
    assert scale_stop_logits(z.clone(), E, 1e-6)[0, E] == -math.inf


def test_processor_leaves_rows_whose_thinking_is_closed():
    z = torch.zeros(2, 8)
    ids = torch.tensor([[1, 2, 5], [1, E, 5]])  # row 1 already emitted the stop token
    out = StopTokenScaling(E, 0.5)(ids, z.clone())
    assert out[0, E].item() == pytest.approx(math.log(2)) and out[1, E] == 0.0
    with pytest.raises(ValueError, match="tau must be > 0"):
        StopTokenScaling(E, 0.0)


# ---------------------------------------------------------------------------------- through the engine


def think_tokens(gens, end: int) -> list[int]:
    return [CompletionFormat.from_ids([end]).thinking_tokens(g.token_ids) for g in gens]


def test_lower_tau_gives_shorter_or_equal_thinking_per_prompt(engine, prompts):
    end = engine.think_end_id
    lengths = []
    for tau in (1.0, 0.5, 0.45, 0.42, 0.4, 0.35, 0.3, 1e-9):
        gens = engine.generate(prompts, SamplingParams(max_new_tokens=24, stop_tau=tau))
        lengths.append(think_tokens(gens, end))
    for longer, shorter in zip(lengths, lengths[1:]):
        assert all(s <= l for s, l in zip(shorter, longer)), lengths  # greedy: exact per-prompt monotonicity
    assert len({sum(x) for x in lengths}) >= 3  # not all-or-nothing: intermediate lengths too
    assert lengths[-1] == [1] * len(prompts)  # tau -> 0: stop at once


def test_scaling_does_nothing_after_the_thinking_is_closed(engine, prompts):
    closed = [p + f"<think>\nx\n{THINK_CLOSE}\n\n" for p in prompts]
    plain = engine.generate(closed, SamplingParams(max_new_tokens=12))
    scaled = engine.generate(closed, SamplingParams(max_new_tokens=12, stop_tau=1e-6))
    assert [g.token_ids for g in plain] == [g.token_ids for g in scaled]


# ----------------------------------------------------------------------------------------- budget forcing


@pytest.mark.parametrize("cap", [2, 5, 9, 16])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_thinking_never_exceeds_the_cap(engine, prompts, cap, temperature):
    end = engine.think_end_id
    bf = BudgetForcing(think_cap=cap, answer_cue="\n\nFinal Answer:", answer_tokens=6)
    gens = engine.generate(prompts, SamplingParams(max_new_tokens=20, temperature=temperature, budget=bf))
    for g in gens:
        assert engine.completion_format.thinking_tokens(g.token_ids) <= cap
        if g.forced_stop:
            assert engine.completion_format.thinking_tokens(g.token_ids) == cap and g.token_ids[cap - 1] == end
            assert split_thinking(g.text)[1].startswith("\n\nFinal Answer:")
            assert g.num_tokens <= cap + len(engine.tokenizer.encode("\n\nFinal Answer:")) + 6


def test_cap_with_tau_and_natural_closes(engine, prompts):
    end = engine.think_end_id
    gens = engine.generate(prompts, SamplingParams(max_new_tokens=20, stop_tau=1e-9, budget=BudgetForcing(think_cap=4)))
    assert all(engine.completion_format.thinking_tokens(g.token_ids) == 1 and not g.forced_stop for g in gens)  # closed before the cap


def test_minimum_appends_wait_up_to_n_times(engine, prompts):
    end = engine.think_end_id
    wait = engine.tokenizer.encode("Wait", add_special_tokens=False)
    for n in (0, 1, 2):
        bf = BudgetForcing(min_think=8, max_waits=n, answer_tokens=4)
        gens = engine.generate(prompts, SamplingParams(max_new_tokens=20, stop_tau=1e-9, budget=bf))
        for g in gens:  # the model closes at once; each early close becomes "Wait", n times, then it may close
            assert g.waits == n
            assert g.token_ids[: n * len(wait) + 1] == wait * n + [end]
            assert split_thinking(g.text)[0].count("Wait") == n


def test_minimum_inside_the_cap(engine, prompts):
    end = engine.think_end_id
    bf = BudgetForcing(think_cap=5, min_think=5, max_waits=10, answer_tokens=3)
    gens = engine.generate(prompts, SamplingParams(max_new_tokens=20, stop_tau=1e-9, budget=bf))
    assert all(engine.completion_format.thinking_tokens(g.token_ids) <= 5 for g in gens)


def test_bad_budget_forcing():
    with pytest.raises(ValueError, match="must not exceed think_cap"):
        BudgetForcing(think_cap=4, min_think=8)
    with pytest.raises(ValueError, match="think_cap must be >= 2"):
        BudgetForcing(think_cap=1)
    assert not BudgetForcing().active and not BudgetForcing(min_think=5).active and BudgetForcing(think_cap=9).active
