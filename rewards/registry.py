"""Rewards registered by name and built from a recipe's ``rewards:`` list.

A recipe selects and weights rewards in YAML::

    rewards:
      - {name: correctness, weight: 1.0}
      - {name: tldr, weight: 1.0, shape: excess}

Each registered name maps to a *factory* ``factory(ctx, **params) -> reward_func``; the reward function has
TRL's signature ``reward_func(prompts, completions, completion_ids, **columns) -> list[float | None]``.
Unknown names or parameters fail at start-up with the list of known ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from data.budgets import DEFAULT_TIERS, Tier

RewardFunc = Callable[..., list[float | None]]
RewardFactory = Callable[..., RewardFunc]


@dataclass(frozen=True)
class RewardContext:
    """What factories may need beyond their own parameters.

    Attributes:
        tiers: the resolved tier table (``data.budgets.resolve_tiers``).
        think_end_id: token id of ``</think>``; thinking lengths count tokens up to and including it.
    """

    tiers: Mapping[str, Tier] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    think_end_id: int | None = None


REGISTRY: dict[str, RewardFactory] = {}


def register(name: str) -> Callable[[RewardFactory], RewardFactory]:
    """Register a reward factory under ``name``."""

    def wrap(factory: RewardFactory) -> RewardFactory:
        if name in REGISTRY:
            raise ValueError(f"reward {name!r} is registered twice")
        REGISTRY[name] = factory
        return factory

    return wrap


def _params_of(factory: RewardFactory) -> list[str]:
    return [p for p in inspect.signature(factory).parameters if p != "ctx"]


def build_rewards(
    specs: Sequence[Mapping[str, Any]], ctx: RewardContext | None = None
) -> tuple[list[RewardFunc], list[float]]:
    """Reward functions and weights for a recipe's ``rewards:`` list; raises ``ValueError`` on bad specs."""
    ctx = ctx or RewardContext()
    if not specs:
        raise ValueError(f"the rewards list is empty; pick from: {', '.join(sorted(REGISTRY))}")
    funcs, weights = [], []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"rewards[{i}] must be a mapping with a 'name' (and optional 'weight'), got {spec!r}")
        params = dict(spec)
        name = params.pop("name")
        weight = float(params.pop("weight", 1.0))
        if name not in REGISTRY:
            raise ValueError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REGISTRY))}")
        factory = REGISTRY[name]
        allowed = _params_of(factory)
        bad = sorted(set(params) - set(allowed))
        if bad:
            raise ValueError(
                f"unknown parameter(s) {bad} for reward {name!r}; allowed: {', '.join(['weight', *allowed])}"
            )
        func = factory(ctx, **params)
        func.__name__ = name  # TRL logs rewards under their function name
        funcs.append(func)
        weights.append(weight)
    return funcs, weights
