"""Reward functions and weights built from a recipe's ``rewards:`` list (``build_rewards``).

Each entry names a reward of the registry (``rewards.registry``) with its weight and parameters. The recipe's
first reward is wrapped in ``rewards.metrics.TierMetrics`` so the per-tier metrics are logged once per batch
(``RewardContext.tier_metrics``). The reward modules register themselves when the ``rewards`` package is imported
(``rewards/__init__.py``); this module only reads the registry, so it sits above them and the metrics.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from rewards.metrics import TierMetrics
from rewards.registry import REGISTRY, RewardContext, RewardFactory, RewardFunc


def _params_of(factory: RewardFactory) -> tuple[list[str], list[str]]:
    """(all parameters, required parameters) of a factory, without ``ctx``."""
    params = [p for name, p in inspect.signature(factory).parameters.items() if name != "ctx"]
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names, [p.name for p in params if p.name in names and p.default is p.empty]


def build_rewards(
    specs: Sequence[Mapping[str, Any]], ctx: RewardContext | None = None
) -> tuple[list[RewardFunc], list[float]]:
    """Reward functions and weights for a recipe's ``rewards:`` list; raises ``ValueError`` on bad specs.

    Every problem is reported at start-up: an unknown name (with the known ones), an unknown or missing
    parameter (with the allowed ones), a bad value (the factory's own check, naming the allowed values).
    With ``ctx.tier_metrics`` the first reward also logs the per-tier metrics (``rewards.metrics``).
    """
    ctx = ctx or RewardContext()
    if not specs:
        raise ValueError(f"the rewards list is empty; pick from: {', '.join(sorted(REGISTRY))}")
    funcs, weights = [], []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"rewards[{i}] must be a mapping with a 'name' (and optional 'weight'), got {spec!r}")
        params = dict(spec)
        name = params.pop("name")
        try:
            weight = float(params.pop("weight", 1.0))
        except (TypeError, ValueError):
            raise ValueError(f"rewards[{i}] ({name!r}): weight must be a number, got {spec['weight']!r}") from None
        if name not in REGISTRY:
            raise ValueError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REGISTRY))}")
        factory = REGISTRY[name]
        allowed, required = _params_of(factory)
        bad = sorted(set(params) - set(allowed))
        if bad:
            raise ValueError(
                f"unknown parameter(s) {bad} for reward {name!r}; allowed: {', '.join(['weight', *allowed])}"
            )
        missing = [p for p in required if p not in params]
        if missing:
            known = ", ".join(["weight", *allowed])
            raise ValueError(f"reward {name!r} needs parameter(s) {missing}; allowed: {known}")
        func = factory(ctx, **params)
        func.__name__ = name  # TRL logs rewards under their function name
        funcs.append(func)
        weights.append(weight)
    if ctx.tier_metrics:
        funcs[0] = TierMetrics(funcs[0], ctx)
    return funcs, weights
