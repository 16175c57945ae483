"""The one definition of the reasoning-length tiers (``short | medium | long``).

Prompts, rewards and evaluation all read tiers from here: a tier is the instruction the model sees in its
prompt, the thinking-token budget the rewards and the compliance metric measure against, and the strength of
the length penalty (stronger for shorter tiers, as in TLDR, Zhang et al. 2025). The budgets that suit a task
depend on its trace lengths, so a recipe names a preset (``tiers: synthetic``) or overrides ``budget`` and
``penalty`` per tier (``tiers: {short: {budget: 512}}``); names and instructions stay fixed so that every model
trained with lcrl understands the same prompts.

``none`` is the fourth tier, the no-thinking choice of AdaptThink (Zhang et al. 2025, arXiv 2505.13417): its
budget is 0 thinking tokens (the model closes the thinking at once), it has no length penalty, and its reward is
``adaptthink`` (``rewards.adaptive``): no thinking is rewarded as long as accuracy holds, so one model learns which
problems it can answer without thinking. Its compliance is the share of completions that skip the thinking.
It is kept apart from the length tiers (``TIER_NAMES``, whose budgets grow short <= medium <= long and which the
embedded tokenizer's corpus lists), and its budget and penalty cannot be overridden.

``mixed`` is not a tier but a training choice: every prompt gets one of the three length tiers; ``mixed_none``
draws from all four tiers (see ``assign_tiers``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TIER_NAMES: tuple[str, ...] = ("short", "medium", "long")  # the length tiers
NO_THINKING = "none"
ALL_TIERS: tuple[str, ...] = (*TIER_NAMES, NO_THINKING)
MIXES: dict[str, tuple[str, ...]] = {"mixed": TIER_NAMES, "mixed_none": ALL_TIERS}  # budget choice -> tiers drawn
BUDGET_CHOICES: tuple[str, ...] = (*ALL_TIERS, *MIXES)


@dataclass(frozen=True)
class Tier:
    """One reasoning-length level.

    Attributes:
        name: ``short``, ``medium``, ``long`` or ``none``.
        instruction: the sentence appended to the user prompt that asks for this length.
        budget: thinking-token budget; the length rewards penalise going over it and evaluation reports the
            share of completions within it.
        penalty: length-penalty strength used by tier-aware rewards (``tldr``).
        floor: thinking tokens below which ``tldr`` also penalises (0: none), so a tier is a band
            ``[floor, budget]``. With ``budget: mixed`` a tier without a floor has no reason to think longer than
            a shorter tier, and in practice every tier collapses to the shortest (one policy learns all tiers and
            shortening generalises across them); a floor on the longer tiers keeps them apart.
    """

    name: str
    instruction: str
    budget: int
    penalty: float
    floor: int = 0

    @property
    def thinks(self) -> bool:
        """False for the no-thinking tier (budget 0)."""
        return self.budget > 0

    def in_band(self, thinking_tokens: int, skipped: bool) -> bool:
        """Compliance: thinking within ``[floor, budget]``; for the no-thinking tier, the thinking was skipped."""
        return skipped if not self.thinks else self.floor <= thinking_tokens <= self.budget


# Defaults sized for R1-distilled 1.5B models on competition math; the embedded tiny recipe overrides budgets.
# The bands tile the lengths: short [0, 1024], medium [1024, 2048], long [2048, 4096]. The floors are what keeps
# mixed-tier GRPO from collapsing every tier to the shortest (see ``Tier.floor``); they are sized to these
# budgets, so an override that changes a tier's budget without naming its floor drops that floor (``resolve_tiers``).
DEFAULT_TIERS: dict[str, Tier] = {
    "short": Tier("short", "Reasoning length: short.", budget=1024, penalty=1.0),
    "medium": Tier("medium", "Reasoning length: medium.", budget=2048, penalty=0.5, floor=1024),
    "long": Tier("long", "Reasoning length: long.", budget=4096, penalty=0.1, floor=2048),
    NO_THINKING: Tier(NO_THINKING, "Reasoning length: none.", budget=0, penalty=0.0),
}

# Budgets sized to a task's traces. synthetic: the embedded task, whose full traces think for ~95 tokens
# (68 / 96 / 126 for 2 / 3 / 4 operations) and oracle traces for ~32 (22 / 32 / 42) in the embedded tokenizer,
# which writes an arithmetic fact in two tokens. short asks for about the oracle, medium for the oracle plus a
# sentence or two, long for full reasoning with its checks.
TIER_PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "default": {},
    "synthetic": {
        "short": {"budget": 36},
        "medium": {"budget": 48, "floor": 36},
        # long pays 5.0 (not the default 0.1) per budget of thinking outside its band: long reasoning costs accuracy
        # when sampled (each step checked is one more draw of a result), and at 0.1 mixed-tier GRPO traded the
        # floor's penalty for that accuracy: long fell to the medium length (greedy 53.1 tokens). At 5.0 it holds
        # (96.4, accuracy 0.997; make tiers, seed 0).
        "long": {"budget": 128, "floor": 64, "penalty": 5.0},
    },
    # make real's task in SmolLM2's BPE tokens (configs/smollm2/real/: 2-3 operations at twice the default
    # redundancy, a wrapping fact written out, `9 * 3 = 27, which is 7`): a digit, a space and each marker piece are
    # tokens of their own, so oracle traces think for 39-76 tokens (mean 54) and full traces for 179 (median; 5-95%:
    # 124-272, at most ~307). short asks for about the oracle, medium for a pruned trace without its re-checks (make
    # real's tier SFT target, sft_completion: tiered_early), long for the full reasoning with its checks.
    "synthetic_smollm2": {
        "short": {"budget": 80},
        "medium": {"budget": 128, "floor": 80},
        "long": {"budget": 320, "floor": 128, "penalty": 5.0},
    },
}

_OVERRIDABLE = ("budget", "penalty", "floor")


def check_budget(budget: str) -> str:
    """Return ``budget`` if it is a known tier or ``mixed``; otherwise raise a ``ValueError`` naming the choices."""
    if budget not in BUDGET_CHOICES:
        raise ValueError(f"unknown budget {budget!r}; allowed: {', '.join(BUDGET_CHOICES)}")
    return budget


def resolve_tiers(overrides: str | Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Tier]:
    """The tiers of a preset name (``TIER_PRESETS``), or the defaults with overrides (``{"short": {"budget": 48}}``).

    A tier whose ``budget`` is overridden without a ``floor`` gets floor 0: the default floors are sized to the
    default budgets and would not fit another scale (name the floor to keep a band).
    Raises ``ValueError`` for an unknown preset, tier or field, or a non-positive budget, naming the allowed values.
    """
    if isinstance(overrides, str):
        if overrides not in TIER_PRESETS:
            raise ValueError(f"unknown tier preset {overrides!r}; allowed: {', '.join(TIER_PRESETS)}")
        overrides = TIER_PRESETS[overrides]
    tiers = dict(DEFAULT_TIERS)
    for name, fields in (overrides or {}).items():
        if name == NO_THINKING:
            raise ValueError(f"tiers.{NO_THINKING} cannot be overridden: its budget is 0 thinking tokens by "
                             f"definition; allowed: {', '.join(TIER_NAMES)}")
        if name not in tiers:
            raise ValueError(f"unknown tier {name!r} in tiers; allowed: {', '.join(TIER_NAMES)}")
        if not isinstance(fields, Mapping):
            raise ValueError(f"tiers.{name} must be a mapping of {', '.join(_OVERRIDABLE)}, got {fields!r}")
        bad = sorted(set(fields) - set(_OVERRIDABLE))
        if bad:
            raise ValueError(f"unknown field(s) {bad} in tiers.{name}; allowed: {', '.join(_OVERRIDABLE)}")
        values = {"floor": 0, **fields} if "budget" in fields else fields
        tier = dataclasses.replace(tiers[name], **{k: type(getattr(tiers[name], k))(v) for k, v in values.items()})
        if tier.budget <= 0:
            raise ValueError(f"tiers.{name}.budget must be a positive number of tokens, got {tier.budget}")
        if not 0 <= tier.floor < tier.budget:
            raise ValueError(f"tiers.{name}.floor must be >= 0 and below its budget ({tier.budget}), got {tier.floor}")
        tiers[name] = tier
    budgets = [tiers[n].budget for n in TIER_NAMES]
    if budgets != sorted(budgets):
        raise ValueError(f"tier budgets must grow short <= medium <= long, got {dict(zip(TIER_NAMES, budgets))}")
    return tiers


def budget_tiers(budget: str) -> tuple[str, ...]:
    """The tiers a budget choice draws from: its mix's tiers, or the one tier it names."""
    check_budget(budget)
    return MIXES.get(budget, (budget,))


def assign_tiers(n: int, budget: str, seed: int = 0) -> list[str]:
    """One tier name per example: the chosen tier for all, or for ``mixed`` / ``mixed_none`` a balanced shuffled
    assignment over the length tiers / all four tiers."""
    pool = budget_tiers(budget)
    if len(pool) == 1:
        return [budget] * n
    names = [pool[i % len(pool)] for i in range(n)]
    random.Random(seed).shuffle(names)
    return names


def tier_instruction(tier: str, tiers: Mapping[str, Tier] | None = None) -> str:
    """The prompt sentence for ``tier``."""
    table = tiers or DEFAULT_TIERS
    if tier not in table:
        raise ValueError(f"unknown tier {tier!r}; allowed: {', '.join(ALL_TIERS)}")
    return table[tier].instruction


def check_tier(tier: str) -> str:
    """Return ``tier`` if it is one of the four tiers; otherwise raise a ``ValueError`` naming them."""
    if tier not in ALL_TIERS:
        raise ValueError(f"unknown tier {tier!r}; allowed: {', '.join(ALL_TIERS)}")
    return tier


def tier_of_prompt(text: str, tiers: Mapping[str, Tier] | None = None) -> str | None:
    """The tier whose instruction ends ``text`` (the last user turn, as ``data.tasks.make_prompt`` writes it), or
    ``None`` when it names none. Used where only the prompt is known (TRL's ``rollout_func``)."""
    tail = text.rstrip()
    found = [t.name for t in (tiers or DEFAULT_TIERS).values() if tail.endswith(t.instruction)]
    return max(found, key=lambda n: len((tiers or DEFAULT_TIERS)[n].instruction)) if found else None


def tier_budgets(tiers: Sequence[str], table: Mapping[str, Tier]) -> list[int]:
    """The thinking-token budget of each tier name in ``tiers``."""
    return [table[t].budget for t in tiers]
