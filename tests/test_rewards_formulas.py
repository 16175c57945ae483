"""Every per-completion reward formula against hand-computed values, mixed tiers, thinking vs completion (the group
rewards: tests/test_rewards_group.py)."""

from __future__ import annotations

import pytest

from data.budgets import resolve_tiers
from rewards import GradingConfig, RewardContext, build_rewards
from rewards.length import token_lengths
from rewards.metrics import tier_metrics
from tests.reward_cases import END, TIERS, call, ids, reward, right, wrong

# ---------------------------------------------------------------------------------------------- lengths


def test_token_lengths_thinking_vs_completion():
    batch = [ids(3, after=2), [1, 1, 1, 1], []]
    assert token_lengths(batch, "thinking", END) == [3, 4, 0]  # no </think>: the whole completion is thinking
    assert token_lengths(batch, "completion", END) == [5, 4, 0]
    assert token_lengths(batch, "thinking", None) == [5, 4, 0]
    with pytest.raises(ValueError, match="allowed: thinking, completion"):
        token_lengths(batch, "words", END)


# ------------------------------------------------------------------------------------------------ tldr


def test_tldr_excess_mixed_tiers_in_one_batch():
    tldr = reward("tldr", shape="excess", length_of="thinking")
    completions = right(3) + wrong(1)
    lengths = [ids(15), ids(8), ids(30), ids(20)]
    tiers = ["short", "short", "medium", "short"]
    # short: 1 - 1.0 * 5/10 = 0.5 | within budget: 1 | medium: 1 - 0.5 * 10/20 = 0.75 | wrong short: 0 - 1.0 * 10/10
    assert call(tldr, completions, lengths, tier=tiers) == pytest.approx([0.5, 1.0, 0.75, -1.0])


def test_tldr_normalized_shape():
    tldr = reward("tldr", shape="normalized")
    out = call(tldr, right(2), [ids(5), ids(40)], tier=["short", "long"])
    assert out == pytest.approx([1 - 1.0 * 5 / 10, 1 - 0.1 * 40 / 40])


def test_tldr_floor_makes_a_tier_a_band():
    tiers = resolve_tiers({"short": {"budget": 10}, "medium": {"budget": 20}, "long": {"budget": 40, "floor": 20}})
    ctx = RewardContext(tiers=tiers, think_end_id=END, grading=GradingConfig(workers=0), tier_metrics=False)
    excess, normalized = (build_rewards([{"name": "tldr", "shape": s}], ctx)[0][0] for s in ("excess", "normalized"))
    lengths = [ids(10), ids(30), ids(50)]
    # long: w 0.1, B 40, F 20 | below the floor: 1 - 0.1 * 10/40 | in the band: 1 | over: 1 - 0.1 * 10/40
    assert call(excess, right(3), lengths, tier=["long"] * 3) == pytest.approx([0.975, 1.0, 0.975])
    assert call(normalized, right(1), [ids(10)], tier=["long"]) == pytest.approx([1 - 0.1 * (10 + 10) / 40])


def test_tldr_thinking_only_vs_whole_completion():
    completion_ids = [ids(10, after=10)]  # 10 thinking tokens, 20 in all
    thinking = call(reward("tldr", length_of="thinking"), right(), completion_ids, tier=["short"])
    whole = call(reward("tldr", length_of="completion"), right(), completion_ids, tier=["short"])
    assert thinking == [1.0] and whole == pytest.approx([1 - 1.0 * 10 / 10])


def test_tldr_needs_a_known_tier():
    tldr = reward("tldr")
    with pytest.raises(ValueError, match="unknown tier.*'huge'.*allowed: short, medium, long"):
        call(tldr, right(), [ids(3)], tier=["huge"])
    with pytest.raises(ValueError, match="'tier' column"):
        call(tldr, right(), [ids(3)])


# --------------------------------------------------------------------------------------------------- L1


def test_l1_exact_target_from_prompt():
    l1 = reward("l1_exact", alpha=0.001)
    prompts = [[{"role": "user", "content": "Q\nThink for 100 tokens."}]] * 2
    out = call(l1, right() + wrong(), [[1] * 150, [1] * 50], prompts=prompts)
    assert out == pytest.approx([1 - 0.001 * 50, 0 - 0.001 * 50])


def test_l1_exact_target_from_column_and_tier():
    by_column = reward("l1_exact", alpha=0.001, target="column")
    assert call(by_column, right(), [[1] * 30], target_length=[10]) == pytest.approx([1 - 0.02])
    by_tier = reward("l1_exact", alpha=0.01, target="tier", length_of="thinking")
    assert call(by_tier, right(2), [ids(12), ids(12)], tier=["short", "medium"]) == pytest.approx([0.98, 0.92])


def test_l1_exact_without_a_target_is_a_clear_error():
    with pytest.raises(ValueError, match="Think for N tokens"):
        call(reward("l1_exact"), right(), [[1]])


def test_l1_max():
    l1 = reward("l1_max", alpha=0.001, delta=0.5)
    prompts = [[{"role": "user", "content": "Q Think for maximum 100 tokens."}]] * 4
    out = call(l1, right(3) + wrong(), [[1] * 50, [1] * 600, [1] * 10, [1] * 10], prompts=prompts)
    # clip(0.05 + 0.5) = 0.55 | clip(-0.5 + 0.5) = 0 | clip(0.09 + 0.5) = 0.59 | wrong: 0
    assert out == pytest.approx([0.55, 0.0, 0.59, 0.0])
    big = call(l1, right(), [[1] * 100], prompts=[[{"role": "user", "content": "Think for maximum 2000 tokens."}]])
    assert big == [1.0]  # clip(1.9 + 0.5, 0, 1)


# ------------------------------------------------------------------------------------------- thinkprune


def test_thinkprune_fixed_limit_and_tier_budget():
    fixed = reward("thinkprune", limit=10)
    assert call(fixed, right(2) + wrong(), [[1] * 10, [1] * 11, [1] * 5]) == [1.0, 0.0, 0.0]
    by_tier = reward("thinkprune", length_of="thinking")
    out = call(by_tier, right(2), [ids(15, after=50), ids(15)], tier=["medium", "short"])
    assert out == [1.0, 0.0]


# --------------------------------------------------------------------------------------- TRL wrappers


def test_cosine_matches_trl_schedule():
    cos = reward("cosine", max_len=100)
    out = call(cos, right(4) + wrong(2), [[1] * 50, [1] * 0, [1] * 100, [1] * 150, [1] * 50, [1] * 0])
    # TRL defaults: correct 1.0 -> 0.5, wrong -1.0 -> -0.5; past max_len the long-length bound holds
    assert out == pytest.approx([0.75, 1.0, 0.5, 0.5, -0.75, -1.0])


def test_cosine_yeo_constants_thinking_length_and_exceed_value():
    cos = reward(
        "cosine", max_len=100, min_value_correct=1.0, max_value_correct=2.0, min_value_wrong=-10.0,
        max_value_wrong=0.0, exceed_value=-10.0, length_of="thinking",
    )  # fmt: skip
    out = call(cos, right(2) + wrong(), [ids(50, after=60), ids(101), ids(100)])  # 60 answer tokens: allowed
    assert out == pytest.approx([1.5, -10.0, 0.0])
    # reasoning moved after an early close is charged: 50 + (500 - 64) thinking tokens, beyond max_len
    assert call(cos, right(), [ids(50, after=500)]) == pytest.approx([-10.0])


def test_overlong_matches_dapo():
    over = reward("overlong", max_completion_len=100, soft_punish_cache=20)
    assert call(over, right(4), [[1] * 80, [1] * 90, [1] * 100, [1] * 101]) == pytest.approx([0.0, -0.5, -1.0, -1.0])
    default_cache = reward("overlong", max_completion_len=100)  # L_cache = 100 // 5 = 20
    assert call(default_cache, right(), [[1] * 90]) == pytest.approx([-0.5])
    thinking = reward("overlong", max_completion_len=100, length_of="thinking")
    assert call(thinking, right(), [ids(80, after=20)]) == [0.0]
    assert call(thinking, right(), [ids(80, after=74)]) == pytest.approx([-0.5])  # 80 + 10 charged answer tokens


def test_thinking_length_prices_reasoning_after_an_early_close():
    """"10 tokens, </think>, 3000 tokens of reasoning, answer" must not beat an honest 3000-token thinking."""
    assert token_lengths([ids(10, after=3000)], "thinking", END, answer_allowance=64) == [10 + 3000 - 64]
    assert token_lengths([ids(10, after=3000)], "thinking", END) == [10]  # the eval's pure thinking count
    tldr = reward("tldr", shape="excess")
    early, honest, old = call(tldr, right(3), [ids(10, after=3000), ids(2946, after=20), ids(10, after=20)],
                              tier=["long"] * 3)
    assert early == pytest.approx(honest) and early < 0 < old == 1.0  # priced as 2946 tokens of thinking


@pytest.mark.parametrize(
    "text, think_in_prompt, expected",
    [
        ("<think>\nsteps\n</think>\nSo \\boxed{5}.", False, 1.0),
        ("steps\n</think>\nSo \\boxed{5}.", False, 0.0),  # TRL's check wants the opening tag ...
        ("steps\n</think>\nSo \\boxed{5}.", True, 1.0),  # ... unless the chat template wrote it
        ("<think>a</think> \\boxed{5} or \\boxed{6}", False, 0.0),  # two answers
        ("<think>a</think> no box", False, 0.0),
        ("<think>a</think> \\boxed{}", False, 0.0),
        ("<think>a</think> \\boxed{5", False, 0.0),  # unbalanced
        ("<think>a</think>b</think> \\boxed{5}", False, 0.0),  # thinking closed twice
        ("<think>a<think>b</think> \\boxed{5}", False, 0.0),  # opened twice
        ("<think>never closed \\boxed{5}", False, 0.0),
    ],
)
def test_format(text, think_in_prompt, expected):
    fmt = reward("format", think_in_prompt=think_in_prompt)
    assert fmt(prompts=["q"], completions=[text]) == [expected]
    assert fmt(prompts=["q"], completions=[[{"role": "assistant", "content": text}]]) == [expected]


# ----------------------------------------------------------------------------------------------- metrics


def test_tier_metrics_values():
    out = tier_metrics([5, 15, 30, 10], ["short", "short", "medium", "short"], TIERS, correct=[1.0, 0.0, 1.0, 1.0])
    assert out == pytest.approx(
        {
            "tiers/short/mean_length": 10.0, "tiers/short/within_budget": 2 / 3, "tiers/short/accuracy": 2 / 3,
            "tiers/medium/mean_length": 30.0, "tiers/medium/within_budget": 0.0, "tiers/medium/accuracy": 1.0,
        }
    )  # fmt: skip
    assert tier_metrics([4, 6], None, TIERS) == {"tiers/all/mean_length": 5.0}


def test_metrics_logged_through_log_metric_once_per_batch():
    ctx = RewardContext(tiers=TIERS, think_end_id=END, grading=GradingConfig(workers=0))
    funcs, weights = build_rewards([{"name": "correctness"}, {"name": "tldr", "weight": 0.5}], ctx)
    assert weights == [1.0, 0.5] and [f.__name__ for f in funcs] == ["correctness", "tldr"]
    logged: dict[str, list[float]] = {}
    columns = {
        "solution": ["5"] * 3, "tier": ["short", "long", "short"], "id": ["a", "b", "a"],
        "trainer_state": None, "log_extra": lambda *a: None,
        "log_metric": lambda k, v: logged.setdefault(k, []).append(v),
    }  # fmt: skip
    completion_ids = [ids(4, 3), ids(50), ids(12)]
    completions = right(2) + wrong()
    prompts = ["a", "b", "a"]
    rewards = [f(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns) for f in funcs]
    assert rewards[0] == [1.0, 1.0, 0.0]
    assert rewards[1] == pytest.approx([1.0, 1 - 0.1 * 10 / 40, -0.2])
    assert logged == {
        "tiers/short/mean_length": [8.0], "tiers/short/within_budget": [0.5], "tiers/short/accuracy": [0.5],
        "tiers/long/mean_length": [50.0], "tiers/long/within_budget": [0.0], "tiers/long/accuracy": [1.0],
    }  # fmt: skip


def test_truncated_completions_score_zero_in_every_reward_and_are_logged():
    from data.completion_format import CompletionFormat

    fmt = CompletionFormat.from_ids([END], eos_ids=[0])
    ctx = RewardContext(tiers=TIERS, completion_format=fmt, grading=GradingConfig(workers=0))
    funcs, _ = build_rewards([{"name": "correctness"}, {"name": "tldr"}], ctx)
    logged: dict[str, list[float]] = {}
    completion_ids = [ids(4, 3) + [0], ids(4, 3)]  # the second never reached EOS: cut at the length limit
    columns = {"solution": ["5"] * 2, "tier": ["short"] * 2,
               "log_metric": lambda k, v: logged.setdefault(k, []).append(v)}
    correct, tldr = [f(prompts=["a", "a"], completions=right(2), completion_ids=completion_ids, **columns)
                     for f in funcs]
    assert correct == [1.0, 0.0] and tldr[0] == 1.0 and tldr[1] <= 0.0
    assert logged["correctness/truncated"] == [0.5]
