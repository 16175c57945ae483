"""Reward functions registered by name (see ``rewards.registry``), built from a recipe by ``rewards.build``.

A recipe selects and weights them in YAML (``rewards: [{name: correctness, weight: 1.0}, ...]``) and
``build_rewards`` turns that list into TRL reward functions. Registered rewards:

- ``correctness`` (``rewards.correctness``): math-verify on the answer after ``</think>``, hard time limit, parallel.
- ``format``, ``cosine``, ``overlong`` (``rewards.trl_wrappers``): TRL's implementations, wrapped.
- ``tldr``, ``l1_exact``, ``l1_max``, ``thinkprune`` (``rewards.length``): tier- or target-length penalties.
- ``kimi``, ``efficiency`` (``rewards.group``): relative to each prompt's group of generations.
- ``shorter_better``, ``smartthinker``, ``alp``, ``laser`` (``rewards.group_length``): group-relative length
  rewards of 2025-26.
- ``adaptthink`` (``rewards.adaptive``): AdaptThink's reward of the no-thinking tier ``none``.

Per-tier metrics (``rewards.metrics``) are logged through TRL's ``log_metric``; gold answers of the standard
benchmarks are normalised by ``data.gold``.
"""

from rewards import adaptive, correctness, group, group_length, length, trl_wrappers  # noqa: F401  (registers the rewards)
from rewards.build import build_rewards
from rewards.registry import REGISTRY, GradingConfig, RewardContext, register

__all__ = ["REGISTRY", "GradingConfig", "RewardContext", "build_rewards", "register"]
