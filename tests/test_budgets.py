"""The single tier definition: overrides, validation, mixed assignment."""

from __future__ import annotations

from collections import Counter

import pytest

from data.budgets import DEFAULT_TIERS, TIER_NAMES, assign_tiers, resolve_tiers
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
    with pytest.raises(ValueError, match="allowed: short, medium, long, mixed"):
        assign_tiers(3, "tiny")


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
