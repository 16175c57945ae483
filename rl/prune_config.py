"""Options of ``--stage prune`` (``PruneArguments``): the validating model, the traces, the search and its outputs.
Filled from a recipe like every stage's dataclasses (``rl.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rl.config import ConfigError, yaml_value

PRUNE_CONCLUSIONS = ("original", "model")


@dataclass
class PruneArguments:
    """Options of ``--stage prune``: binary cutting of long traces, validated on-policy by the target model."""

    model_name_or_path: str = field(
        default="outputs/tiny/sft", metadata={"help": "The small model that validates (and will learn) the traces."}
    )
    output_dir: str = field(default="outputs/tiny/prune", metadata={"help": "pruned.jsonl, pairs.jsonl, report."})
    traces: str | None = field(
        default=None,
        metadata={"help": "Trace file (.json/.jsonl) or Hub dataset; default: the synthetic train split traces."},
    )
    trace_split: str = field(default="train", metadata={"help": "Split of a Hub trace dataset."})
    trace_fields: dict | str | None = field(
        default="auto",
        metadata={"help": "Field mapping: a preset (r1_response, thinking_answer, openr1, s1k), auto, or a mapping."},
    )
    max_traces: int | None = field(default=None, metadata={"help": "Prune at most this many traces."})
    answer_cue: str = field(
        default="**Final Answer**\n\\boxed{",
        metadata={"help": "Text after </think> that asks for the answer during validation."},
    )
    conclusion: str = field(
        default="original",
        metadata={"help": "Conclusion of a pruned trace: the original one or the model's validated answer.",
                  "choices": list(PRUNE_CONCLUSIONS)},
    )
    min_steps: int = field(
        default=1, metadata={"help": "Fewest thinking steps a pruned trace keeps (lo of the search)."}
    )
    skip_chunks: bool = field(
        default=False, metadata={"help": "Also find skippable chunks (skip-thinking data), validated on-policy."}
    )
    skip_first: bool = field(
        default=True,
        metadata={"help": "With skip_chunks: the opening chunk (the restated question of R1 traces) may be skipped "
                          "too; false keeps the paper's middle chunks only."},
    )
    plain_prompt: bool = field(
        default=False, metadata={"help": "Validate with the bare question (no tier instruction), for outside models."}
    )
    batch_size: int = field(default=64, metadata={"help": "Prompts per generation batch."})
    shard_size: int = field(default=512, metadata={"help": "Traces searched together; results are written per trace."})
    max_new_tokens: int = field(default=16, metadata={"help": "Answer tokens generated per validation."})
    backend: str = field(
        default="auto", metadata={"help": "Generation backend (auto: vllm if installed and a GPU is present).",
                                  "choices": ["auto", "transformers", "vllm"]}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})

    def __post_init__(self) -> None:
        self.trace_fields = yaml_value(self.trace_fields, "trace_fields")
        if self.min_steps < 0 or self.batch_size <= 0 or self.shard_size <= 0 or self.max_new_tokens <= 0:
            raise ConfigError("min_steps must be >= 0; batch_size, shard_size and max_new_tokens must be positive")
        if self.max_traces is not None and self.max_traces <= 0:
            raise ConfigError(f"max_traces must be positive, got {self.max_traces}")
