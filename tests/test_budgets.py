"""The single tier definition: overrides, validation, mixed assignment, the no-thinking tier ``none``."""

from __future__ import annotations

from collections import Counter

import pytest

from data.budgets import (
    ALL_TIERS,
    DEFAULT_TIERS,
    TIER_NAMES,
    assign_tiers,
    check_tier,
    resolve_tiers,
    tier_instruction,
    tier_of_prompt,
)
from data.tasks import make_prompt


def test_overrides_and_defaults():
    tiers = resolve_tiers({"short": {"budget": 64}, "long": {"penalty": 0.2}})
    assert tiers["short"].budget == 64 and tiers["short"].penalty == DEFAULT_TIERS["short"].penalty
    assert tiers["long"].penalty == 0.2 and tiers["medium"] == DEFAULT_TIERS["medium"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"huge": {"budget": 1}}, "unknown tier 'huge'.*allowed: short, medium, long"),
        ({"short": {"tokens": 1}}, r"unknown field\(s\) \['tokens'\].*allowed: budget, penalty, floor"),
        ({"long": {"floor": 4096}}, "floor must be >= 0 and below its budget"),
        ({"short": {"budget": 0}}, "positive"),
        ({"short": {"budget": 5000}}, "grow short <= medium <= long"),
        ("huge", "unknown tier preset 'huge'; allowed: default, synthetic"),
        ({"none": {"budget": 8}}, "tiers.none cannot be overridden: its budget is 0"),
    ],
)
def test_bad_tiers_name_the_allowed_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_tiers(overrides)


def test_presets():
    tiers = resolve_tiers("synthetic")
    assert [tiers[t].budget for t in TIER_NAMES] == [36, 48, 128]
    assert [tiers[t].floor for t in TIER_NAMES] == [0, 36, 64]
    assert resolve_tiers("default") == DEFAULT_TIERS


def test_mixed_assignment_is_balanced_and_seeded():
    names = assign_tiers(300, "mixed", seed=1)
    assert Counter(names) == {t: 100 for t in TIER_NAMES}
    assert names == assign_tiers(300, "mixed", seed=1) != assign_tiers(300, "mixed", seed=2)
    assert assign_tiers(3, "short") == ["short"] * 3
    with pytest.raises(ValueError, match="allowed: short, medium, long, none, mixed, mixed_none"):
        assign_tiers(3, "tiny")


def test_mixed_none_draws_all_four_tiers():
    names = assign_tiers(400, "mixed_none", seed=3)
    assert Counter(names) == {t: 100 for t in ("short", "medium", "long", "none")}
    assert assign_tiers(2, "none") == ["none", "none"]


def test_none_tier_budget_zero_and_compliance_is_skipping():
    tiers = resolve_tiers("synthetic")
    none, medium = tiers["none"], tiers["medium"]
    assert none.budget == 0 and not none.thinks and none == DEFAULT_TIERS["none"]
    assert none.in_band(0, skipped=True) and not none.in_band(0, skipped=False)
    assert medium.in_band(40, skipped=False) and not medium.in_band(30, skipped=False)  # floor 36
    assert not medium.in_band(49, skipped=False) and medium.in_band(36, skipped=True)


def test_bad_tier_name_lists_every_tier_including_none():
    with pytest.raises(ValueError, match="unknown tier 'nil'; allowed: short, medium, long, none"):
        check_tier("nil")
    with pytest.raises(ValueError, match="allowed: short, medium, long, none"):
        tier_instruction("nil")
    assert ALL_TIERS == ("short", "medium", "long", "none") and check_tier("none") == "none"


def test_tier_read_back_from_the_prompt():
    tiers = resolve_tiers("synthetic")
    for tier in ALL_TIERS:
        (msg,) = make_prompt("Start with 3. Op 1: + 4.\nWhat is the final value?", tier, tiers)
        assert tier_of_prompt(msg["content"], tiers) == tier
    assert tier_of_prompt("What is 1 + 1?", tiers) is None


def test_prompt_carries_the_tier_instruction():
    msg = make_prompt("What is 1 + 1?", "short")
    assert msg == [{"role": "user", "content": "What is 1 + 1?\n" + DEFAULT_TIERS["short"].instruction}]


def test_default_tiers_are_bands_so_mixed_grpo_keeps_them_apart():
    """Issue 12, defect 2: the default tiers had no floors, the configuration under which every tier collapses."""
    tiers = resolve_tiers("default")
    assert [(tiers[t].floor, tiers[t].budget) for t in TIER_NAMES] == [(0, 1024), (1024, 2048), (2048, 4096)]
    # the floors are sized to the default budgets: overriding a budget without a floor drops that tier's floor
    small = resolve_tiers({"short": {"budget": 24}, "medium": {"budget": 32}, "long": {"budget": 48}})
    assert [small[t].floor for t in TIER_NAMES] == [0, 0, 0]
    assert resolve_tiers({"short": {"budget": 512}})["medium"].floor == 1024
    assert resolve_tiers({"long": {"budget": 8192, "floor": 3000}})["long"].floor == 3000


def test_none_prompt_sentence():
    (msg,) = make_prompt("What is 1 + 1?", "none")
    assert msg["content"] == "What is 1 + 1?\nReasoning length: none."
