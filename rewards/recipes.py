"""Named reward recipes: ``configs/rewards/<name>.yaml``, selected with ``rewards: <name>`` or ``--rewards <name>``.

A reward recipe is a YAML file with one key, ``rewards:``, holding the list ``build_rewards`` reads::

    rewards:
      - {name: correctness, weight: 1.0}
      - {name: kimi, weight: 1.0, length_of: thinking}

A recipe may also hold ``trainer:``, GRPOConfig values the method needs (DLER: ``scale_rewards: batch``,
``epsilon_high: 0.28``, a short ``max_completion_length``). ``rl.recipes.parse_args`` applies them over the stage
recipe's values; command-line flags still override both. Their names are checked against the stage's options.

The ``rewards`` key of a stage recipe (``LcrlArguments.rewards``) takes such a list inline, the name of a file
under ``configs/rewards/`` (``kimi``), or the path of a reward-recipe file anywhere (``my/rewards.yaml``).
``resolve_rewards`` turns any of the three into the list and the recipe's name, which W&B uses to tag and
compare runs (``rl.tracking``). Tiers are not part of a reward recipe: they come from the stage recipe
(``tiers:``, ``--budget``), so one reward recipe serves every task and tier.

Length constants are checked against the tiers (``check_length_constants``): they stay in the papers' own units,
so published values can be used as they are, and a recipe sized for one task is refused on tiers of another scale
instead of being silently rescaled (the message says the value that fits).

Errors are ``ValueError`` naming the bad value and the allowed ones (``rl.config`` re-raises them as
``ConfigError``). Reward names and parameters are checked by ``rewards.build.build_rewards`` at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data.budgets import Tier

REWARD_RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs" / "rewards"
INLINE = "custom"  # the recipe name of an inline ``rewards:`` list
RECIPE_KEYS = ("rewards", "trainer")


@dataclass(frozen=True)
class RewardRecipe:
    """A resolved reward recipe.

    Attributes:
        name: the recipe's name (file stem), or ``custom`` for an inline list.
        rewards: the ``rewards:`` list, one ``{name, weight, params...}`` mapping per reward.
        path: the YAML file it came from (``None`` for an inline list).
        trainer: trainer (GRPOConfig) values the recipe sets, e.g. ``{scale_rewards: batch}``; empty for most.
    """

    name: str
    rewards: list[dict[str, Any]]
    path: Path | None = None
    trainer: dict[str, Any] = field(default_factory=dict)

    def weights(self) -> dict[str, float]:
        """Weight of each reward by name (default 1.0), in recipe order."""
        return {str(spec["name"]): float(spec.get("weight", 1.0)) for spec in self.rewards}


def reward_recipes_available(directory: Path = REWARD_RECIPE_DIR) -> list[str]:
    """Names of the reward recipes under ``configs/rewards/`` (file stems), sorted."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def _check_specs(specs: Any, where: str) -> list[dict[str, Any]]:
    """The ``rewards:`` list, checked for shape only (names and parameters: ``build_rewards``)."""
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"{where}: 'rewards' must be a non-empty list of {{name, weight, params...}}, got {specs!r}")
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"{where}: rewards[{i}] must be a mapping with a 'name' (and optional 'weight'), "
                             f"got {spec!r}")
    return [dict(spec) for spec in specs]


def _is_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref


def load_reward_recipe(ref: str, directory: Path = REWARD_RECIPE_DIR) -> RewardRecipe:
    """The reward recipe named ``ref`` (``configs/rewards/<ref>.yaml``) or stored at the path ``ref``.

    Raises ``ValueError`` for an unknown name (listing the available ones), a missing file, bad YAML, or a file
    that is not a mapping with exactly the key ``rewards``.
    """
    available = reward_recipes_available(directory)
    if _is_path(ref):
        path = Path(ref)
        if not path.is_file() and not path.is_absolute() and (directory.parents[1] / path).is_file():
            path = directory.parents[1] / path  # a repo-relative path, run from elsewhere
        if not path.is_file():
            raise ValueError(f"reward recipe file {ref!r} not found; named recipes: {', '.join(available)}")
    else:
        if ref not in available:
            raise ValueError(f"unknown reward recipe {ref!r}; available: {', '.join(available)} "
                             f"(or a path to a YAML file, or an inline list)")
        path = directory / f"{ref}.yaml"
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"reward recipe {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"reward recipe {str(path)!r} must be a YAML mapping with the key 'rewards'")
    bad = sorted(set(values) - set(RECIPE_KEYS))
    if bad or "rewards" not in values:
        raise ValueError(f"reward recipe {str(path)!r}: unknown or missing keys {bad or ['rewards']}; "
                         f"allowed: {', '.join(RECIPE_KEYS)} (tiers come from the stage recipe)")
    trainer = values.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise ValueError(f"reward recipe {str(path)!r}: 'trainer' must be a mapping of GRPOConfig keys, got {trainer!r}")
    return RewardRecipe(path.stem, _check_specs(values["rewards"], str(path)), path, dict(trainer))


def resolve_rewards(value: list | str | None, directory: Path = REWARD_RECIPE_DIR) -> RewardRecipe | None:
    """The reward recipe of a ``rewards:`` value: an inline list, a recipe name, a path, or ``None`` (unset)."""
    if value is None:
        return None
    if isinstance(value, str):
        return load_reward_recipe(value, directory)
    return RewardRecipe(INLINE, _check_specs(value, "rewards"))


# Reward constants in tokens, checked against the smallest tier budget B (``check_length_constants``).
# Per-token costs: (parameter, its default, the reward unit it is compared with: a number or another parameter).
# The cost of B tokens must stay within the unit, else one budget of length outweighs a correct answer.
PER_TOKEN_COSTS: dict[str, tuple[str, float, float | str]] = {
    "l1_exact": ("alpha", 0.0003, 1.0),      # only with target: tier (a prompt's own target sets its scale)
    "l1_max": ("alpha", 0.0003, 1.0),
    "alp": ("beta", 0.005, 1.0),             # the cost on an always-solved prompt
    "shorter_better": ("beta", 0.001, "alpha"),
}
# Lengths: (parameter, its default, what it does below B: the reward treats every tier's completions alike).
LENGTHS: dict[str, tuple[str, int | None, str]] = {
    "cosine": ("max_len", 0, "every completion gets the long-end value: plain correctness"),
    "thinkprune": ("limit", None, "a cutoff under every tier"),  # None: each tier's own budget
    "laser": ("target", 64, "a bonus no tier reaches"),  # only with adaptive: false (adaptive ones follow the policy)
}


def check_length_constants(specs: list[Mapping[str, Any]], tiers: Mapping[str, Tier]) -> str:
    """Refuse a reward length constant sized below the smallest tier budget B; returns what was checked.

    Per-token costs (``PER_TOKEN_COSTS``): ``l1_exact`` / ``l1_max`` (``target: tier``) alpha, ``alp`` beta,
    ``shorter_better`` beta (against its alpha). With cost * B above the reward unit, missing by one budget costs
    more than a correct answer is worth: L1's alpha 0.01 (sized for the synthetic task) on the 1024-token short tier
    gives -19.8 at 3000 tokens, and ``l1_max`` becomes a hard cutoff. Allowed: cost <= unit / B.
    Lengths (``LENGTHS``): ``cosine`` max_len (below B: the long-end value for every completion, plain
    correctness), a fixed ``thinkprune`` limit (a cutoff under every tier), a fixed ``laser`` target (a bonus no
    tier reaches). Allowed: >= B.
    """
    smallest = min((t for t in tiers.values() if t.thinks), key=lambda t: t.budget)  # the none tier thinks 0
    budget, where = smallest.budget, f"the smallest tier budget ({smallest.budget}, tier {smallest.name})"
    checked = []
    for i, spec in enumerate(specs):
        name = spec.get("name")
        if name in PER_TOKEN_COSTS and not (name.startswith("l1_") and spec.get("target", "prompt") != "tier"):
            param, default, unit = PER_TOKEN_COSTS[name]
            cost = float(spec.get(param, default))
            worth = float(spec.get(unit, 2.0)) if isinstance(unit, str) else unit  # shorter_better's alpha: 2
            if cost * budget > worth:
                raise ValueError(
                    f"rewards[{i}] {name}: {param} {cost:g} per token makes {where} cost {cost * budget:.2f}, "
                    f"more than a correct answer ({worth:g}): the constant is sized for shorter completions. Set "
                    f"{param} <= {worth:g}/{budget} = {worth / budget:.6f}"
                )
            checked.append(f"{name} {param} {cost:g}")
        elif name in LENGTHS and not (name == "laser" and spec.get("adaptive", True)):
            param, default, effect = LENGTHS[name]
            value = spec.get(param, default)
            if value is not None and int(value) < budget:
                raise ValueError(
                    f"rewards[{i}] {name}: {param} {value} is below {where}, so every tier is treated alike "
                    f"({effect}): the constant is sized for shorter completions. Set {param} >= {budget} (e.g. the "
                    f"long tier's budget, "
                    f"{max(t.budget for t in tiers.values())})"
                )
            checked.append(f"{name} {param} {value}")
    what = ", ".join(checked) if checked else "none in the rewards"
    return f"reward length constants (against the smallest tier budget {budget}): {what}"
