"""Task datasets for every stage, in TRL's conversational formats.

Columns: ``prompt`` (a list of chat messages ending with the user turn), ``completion`` (the assistant
turn, SFT only), ``solution`` (the gold answer as a string, the column TRL's math rewards read), ``tier``
(the reasoning-length tier named in the prompt) and ``id``. The tier instruction comes from
``data.budgets``, the single definition of the tiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset

from data.budgets import Tier, assign_tiers, tier_instruction
from data.synthetic import SyntheticConfig, Trace, generate

TARGETS = ("full", "oracle")


def make_prompt(question: str, tier: str, tiers: Mapping[str, Tier] | None = None) -> list[dict[str, str]]:
    """The chat prompt: the question followed by the tier's length instruction."""
    return [{"role": "user", "content": f"{question}\n{tier_instruction(tier, tiers)}"}]


def synthetic_config(knobs: Mapping[str, Any] | None) -> SyntheticConfig:
    """``SyntheticConfig`` from a recipe's ``synthetic:`` mapping; unknown knobs are an error naming the known ones."""
    known = set(SyntheticConfig.__dataclass_fields__)
    bad = sorted(set(knobs or {}) - known)
    if bad:
        raise ValueError(f"unknown synthetic task knob(s) {bad}; allowed: {', '.join(sorted(known))}")
    return SyntheticConfig(**(knobs or {}))


def synthetic_traces(split: str, n: int, seed: int, knobs: Mapping[str, Any] | None) -> list[Trace]:
    if n <= 0:
        raise ValueError(f"the {split} split needs at least one example, got n={n}")
    return generate(split, n, seed=seed, cfg=synthetic_config(knobs))


def traces_to_dataset(
    traces: Sequence[Trace],
    budget: str,
    tiers: Mapping[str, Tier],
    seed: int = 0,
    target: str | None = "full",
) -> Dataset:
    """A dataset of prompts (and, when ``target`` is set, SFT completions) for the traces.

    ``target``: ``full`` (the long trace), ``oracle`` (essential steps only) or ``None`` (prompts only: RL, eval).
    """
    if target is not None and target not in TARGETS:
        raise ValueError(f"unknown SFT target {target!r}; allowed: {', '.join(TARGETS)}")
    names = assign_tiers(len(traces), budget, seed=seed)
    rows: dict[str, list] = {"id": [], "prompt": [], "solution": [], "tier": []}
    if target is not None:
        rows["completion"] = []
    for trace, tier in zip(traces, names):
        rows["id"].append(trace.problem.id)
        rows["prompt"].append(make_prompt(trace.problem.question, tier, tiers))
        rows["solution"].append(str(trace.problem.answer))
        rows["tier"].append(tier)
        if target is not None:
            text = trace.text if target == "full" else trace.oracle_text
            rows["completion"].append([{"role": "assistant", "content": text}])
    return Dataset.from_dict(rows)
