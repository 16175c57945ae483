"""Configuration dataclasses: what a YAML recipe under ``configs/`` (plus command-line overrides) fills.

Parsing and validation of recipes live in ``rl.recipes``; ``--stage eval``'s options in ``rl.eval_config``,
``--stage prune``'s in ``rl.prune_config``.

Every stage reads a flat YAML recipe whose keys are fields of the stage's dataclasses: ours
(``LcrlArguments`` plus a stage's own) and TRL's (``SFTConfig``, ``GRPOConfig``, ``ModelConfig``). Any field can
be overridden on the command line (``--learning_rate 1e-4``). Without ``--config`` a stage reads the embedded
default recipe ``configs/tiny/<stage>.yaml``.

The dataclasses validate their own values (``ConfigError`` naming the allowed ones); ``rl.recipes`` checks keys
and flags. Both run before any stage does, so bad input never leaves a half-written output dir.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data.budgets import BUDGET_CHOICES, resolve_tiers
from data.tier_targets import TIERED, TIERED_COMPLETIONS, pair_order

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_RECIPE_DIR = CONFIG_DIR / "tiny"
TASKS = ("synthetic", "dataset")
SFT_TARGETS = ("full", "oracle", "tiered")
SFT_MODES = ("full", "chunkwise", "skip")
# sft_completion -> the pruned row's field (tiered: one per tier, data.tier_targets.TIERED_COMPLETIONS)
SFT_COMPLETIONS = {"pruned": "completion", "skip": "skip_completion", "full": "full_completion",
                   **TIERED}


class ConfigError(ValueError):
    """A bad stage, recipe, key or value; the message names the allowed values."""


def yaml_value(value: Any, name: str) -> Any:
    """Fields typed ``dict | str`` or ``list | str`` arrive as strings from the command line: parse them."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--{name} must be YAML or JSON, got {value!r}: {exc}") from exc


@dataclass
class LcrlArguments:
    """lcrl's own options, shared by every stage (TRL's configs hold the trainer options)."""

    stage: str = field(default="", metadata={"help": "Set by --stage."})
    budget: str = field(
        default="medium",
        metadata={"help": "Reasoning-length tier named in the prompts.", "choices": list(BUDGET_CHOICES)},
    )
    tiers: dict | str | None = field(
        default=None, metadata={"help": "Per-tier overrides of budget/penalty, e.g. {short: {budget: 64}}."}
    )
    task: str = field(
        default="synthetic",
        metadata={"help": "Task source: the embedded synthetic task, or dataset (a Hub dataset or a local file).",
                  "choices": list(TASKS)},
    )
    synthetic: dict | str | None = field(
        default=None, metadata={"help": "Knobs of the synthetic task (min_ops, max_ops, modulus, redundancy)."}
    )
    dataset: dict | str | None = field(
        default=None,
        metadata={"help": "With task: dataset, the source: {path (Hub id or local file), split, name, test_split, "
                  "fields (preset or mapping), shuffle}; see data/dataset_task.py."},
    )
    num_train: int = field(default=2000, metadata={"help": "Training problems."})
    num_test: int = field(default=300, metadata={"help": "Held-out test problems."})
    task_seed: int = field(default=0, metadata={"help": "Seed of the synthetic problems and traces."})
    sft_target: str = field(
        default="full",
        metadata={"help": "SFT completions: full long traces, oracle, or tiered (as long as each prompt's tier asks).",
                  "choices": list(SFT_TARGETS)},
    )
    rewards: list | str | None = field(
        default=None,
        metadata={"help": "GRPO rewards: a list of {name, weight, params...} (see rewards/), the name of a reward "
                  "recipe in configs/rewards/ (tldr, kimi, ...) or the path of such a YAML file."},
    )
    reward_recipe: str | None = field(
        default=None, init=False, metadata={"help": "Set from rewards: the recipe's name, 'custom' for a list."}
    )
    wandb_project: str = field(default="lcrl", metadata={"help": "W&B project."})
    experiment: str | None = field(default=None, metadata={"help": "W&B group; runs to compare share it."})
    dry_run: bool = field(default=False, metadata={"help": "Resolve and validate the recipe, load no model."})
    grading: dict | str | None = field(
        default=None, metadata={"help": "Correctness grading: {timeout, workers, parallel_threshold, ...}."}
    )
    sft_mode: str = field(
        default="full",
        metadata={
            "help": "SFT examples: full (loss on the whole completion), chunkwise (loss on one chunk per example, "
            "earlier chunks masked context) or skip (chunk-wise over the chunks not marked skippable by prune).",
            "choices": list(SFT_MODES),
        },
    )
    sft_data: str | None = field(
        default=None, metadata={"help": "SFT on this pruned JSONL (written by --stage prune) instead of the task."}
    )
    sft_completion: str = field(
        default="pruned",
        metadata={
            "help": "With sft_data and sft_mode full, the trace of each pruned row to learn: pruned (the validated "
            "prefix), skip (the prefix without its skippable chunks), full (the original trace), tiered (each row "
            "once per tier of the budget, as long as the tier asks: skip for short, pruned for medium, full for "
            "long) or tiered_early (as tiered, medium the skip prefix with its opening kept, so the tiers part "
            "earlier in the thinking; data/tier_targets.py).",
            "choices": list(SFT_COMPLETIONS),
        },
    )
    drop_retracted: str | None = field(
        default=None,
        metadata={"help": "With sft_data (--stage sft, dpo): leave out of every target the thinking paragraphs that "
                  "contain this phrase, steps the trace takes back (e.g. \"Hmm, wait, that is not right.\"), so "
                  "that epochs over few rows do not teach their wrong results (data/tier_targets.py)."},
    )
    sft_replay: int = field(
        default=0,
        metadata={"help": "With sft_data and a tiered sft_completion: the full traces of this many train problems "
                  "of the task, drawn with task_seed (stage 1's kind of data; a draw may repeat a pruned row's "
                  "problem, logged), added under the sentence of the tier that learns the full trace, so that epochs "
                  "over few pruned rows do not bend the arithmetic stage 1 learned (rehearsal; "
                  "data/tier_targets.py replay_rows). Synthetic task only."},
    )
    preference_tiers: list | str | None = field(
        default=None,
        metadata={"help": "--stage dpo: the tiers whose neighbouring targets (those of sft_completion: tiered or "
                  "tiered_early) make preference pairs, e.g. [medium, long]; default all three."},
    )
    segment: dict | str | None = field(
        default=None, metadata={"help": "Step segmentation knobs (paragraphs, markers, min_chars, max_chars)."}
    )
    chunking: dict | str | None = field(
        default=None,
        metadata={"help": "Chunker knobs (method: search|average, target_len, num_chunks, min_len, max_len, window)."},
    )

    def __post_init__(self) -> None:
        self.tiers = yaml_value(self.tiers, "tiers")
        self.synthetic = yaml_value(self.synthetic, "synthetic")
        self.dataset = yaml_value(self.dataset, "dataset")
        self.rewards = yaml_value(self.rewards, "rewards")
        self.resolve_reward_recipe()
        if self.num_train <= 0 or self.num_test <= 0:
            raise ConfigError(f"num_train and num_test must be positive, got {self.num_train}, {self.num_test}")
        resolve_tiers(self.tiers)  # raises on unknown tiers or fields
        self.grading = yaml_value(self.grading, "grading")
        self.grading_config()
        self.segment = yaml_value(self.segment, "segment")
        self.chunking = yaml_value(self.chunking, "chunking")
        self.segment_config()  # raises on unknown knobs
        self.chunk_config()
        self.check_task()
        self.preference_tiers = yaml_value(self.preference_tiers, "preference_tiers")
        self.pair_tiers()

    def pair_tiers(self) -> list[str]:
        """The tiers of ``--stage dpo``'s preference pairs: ``preference_tiers``, or all three."""
        names = self.preference_tiers if self.preference_tiers is not None else list(TIERED_COMPLETIONS)
        try:
            if not isinstance(names, list):
                raise ValueError(f"allowed: {', '.join(TIERED_COMPLETIONS)}")
            pair_order(names)
        except ValueError as exc:
            raise ConfigError(f"preference_tiers must list two or more distinct tiers, got {names!r}: {exc}") from exc
        return names

    def resolve_reward_recipe(self) -> None:
        """Turn ``rewards`` (a list, a recipe name or a YAML path) into its list; keep the name in ``reward_recipe``."""
        from rewards.recipes import resolve_rewards

        try:
            recipe = resolve_rewards(self.rewards)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.rewards = recipe.rewards if recipe else None
        self.reward_recipe = recipe.name if recipe else None

    def check_task(self) -> None:
        """``task`` is known; ``task: dataset`` has a valid ``dataset`` and an SFT set-up that real traces support."""
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}")
        if self.task != "dataset":
            return
        self.dataset_spec()
        if self.sft_target != "full":
            raise ConfigError(f"sft_target {self.sft_target!r} needs the synthetic task (it alone knows the essential "
                              "steps); allowed with task: dataset: full")
        if self.sft_mode != "full" and not self.sft_data:
            raise ConfigError(f"sft_mode {self.sft_mode!r} with task: dataset needs sft_data: run --stage prune with "
                              "traces: <the dataset> first; allowed without it: full")

    def dataset_spec(self):
        """``data.dataset_task.DatasetSpec`` of the ``dataset`` mapping (``task: dataset``)."""
        from data.dataset_task import DatasetSpec

        if self.dataset is None:
            raise ConfigError("task: dataset needs dataset: {path: <Hub id or local file>, fields: <preset or mapping>}")
        try:
            return DatasetSpec.from_value(self.dataset)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"dataset: {exc}") from exc

    def grading_config(self):
        """``rewards.registry.GradingConfig`` from the ``grading`` knobs; unknown knobs name the known ones."""
        from rewards.registry import GradingConfig

        known = sorted(GradingConfig.__dataclass_fields__)
        bad = sorted(set(self.grading or {}) - set(known))
        if bad:
            raise ConfigError(f"unknown grading knob(s) {bad}; allowed: {', '.join(known)}")
        try:
            return GradingConfig(**(self.grading or {}))
        except ValueError as exc:
            raise ConfigError(f"grading: {exc}") from exc

    def segment_config(self):
        """``data.segment.SegmentConfig`` from the ``segment`` knobs."""
        from data.segment import SegmentConfig

        try:
            return SegmentConfig.from_dict(self.segment)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"segment: {exc}") from exc

    def chunk_config(self):
        """``data.chunking.ChunkConfig`` from the ``chunking`` knobs."""
        from data.chunking import ChunkConfig

        try:
            return ChunkConfig.from_dict(self.chunking)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"chunking: {exc}") from exc


@dataclass
class InitArguments:
    """Size of the tiny model and its tokenizer (``--stage init``)."""

    output_dir: str = field(default="outputs/tiny/base", metadata={"help": "Where the model and tokenizer go."})
    vocab_size: int = field(default=768, metadata={"help": "BPE vocabulary size (bytes + merges + specials)."})
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = field(default=True, metadata={
        "help": "Share the input embeddings with the output layer. The embedded recipe unties them: tied, the "
                "question's operation tokens, never a target, are pushed down by every softmax and learn slowly."})
    tokenizer_corpus: int = field(default=2000, metadata={"help": "Synthetic traces used to train the tokenizer."})
    init_seed: int = 0
