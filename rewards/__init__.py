"""Reward functions registered by name (see ``rewards.registry``)."""

from rewards import correctness, length  # noqa: F401  (registers the rewards)
from rewards.registry import REGISTRY, RewardContext, build_rewards, register

__all__ = ["REGISTRY", "RewardContext", "build_rewards", "register"]
