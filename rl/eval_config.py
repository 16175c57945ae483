"""Options of ``--stage eval`` (``EvalArguments``): models, benchmarks, decoding, inference-time length controls and
their sweeps, the report. Filled from a recipe like every stage's dataclasses (``rl.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from data.budgets import ALL_TIERS
from rl.config import ConfigError, yaml_value


@dataclass
class EvalArguments:
    """Options of ``--stage eval``: models, benchmarks, decoding, length controls and their sweeps, report."""

    models: list[str] = field(
        default_factory=list, metadata={"help": "Models to evaluate, as path or label=path (a Hub id works too)."}
    )
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where results.json and the table go."})
    eval_tiers: list[str] | None = field(default=None, metadata={"help": "Tiers to evaluate (default: --budget)."})
    batch_size: int = field(default=64, metadata={"help": "Prompts per generation batch."})
    max_new_tokens: int = field(default=512, metadata={"help": "Generation cap per completion."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy (pass@1)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling (temperature > 0); DeepSeek-R1: 0.95."})
    no_thinking: bool = field(default=True, metadata={"help": "Also evaluate with the thinking skipped."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})
    # benchmarks
    benchmarks: list[str] = field(
        default_factory=lambda: ["synthetic"],
        metadata={"help": "Benchmarks: synthetic, math500, aime24, amc23, olympiadbench, gsm8k."},
    )
    benchmark_files: dict | str | None = field(
        default=None,
        metadata={"help": "Local copies instead of the Hub, e.g. {math500: ../shared/benchmarks/math500.jsonl}."},
    )
    benchmark_sources: dict | str | None = field(
        default=None,
        metadata={"help": "Per-benchmark overrides of hub_id, config, split, question, answer (data/benchmarks.py)."},
    )
    question_suffix: str | None = field(
        default=None, metadata={"help": "Instruction after a real benchmark's question (default: reason, \\boxed{})."}
    )
    max_examples: int | None = field(default=None, metadata={"help": "Evaluate the first N problems per benchmark."})
    num_samples: int = field(default=1, metadata={"help": "Samples per problem: accuracy is avg@k (temperature > 0)."})
    backend: str = field(
        default="auto",
        metadata={"help": "Generation backend (auto: vllm if installed and a GPU is present).",
                  "choices": ["auto", "transformers", "vllm"]},
    )
    # inference-time length controls (rl/controls.py); every value of a sweep list is one more row per model/tier
    stop_tau: list[float] = field(
        default_factory=lambda: [1.0],
        metadata={"help": "Stop-token temperature(s) tau: z(</think>) += ln(1/tau) while thinking; 1 = off."},
    )
    stop_top_k: int = field(default=0, metadata={"help": "Scale only when </think> is in the top-k (0: always)."})
    think_cap: int | None = field(default=None, metadata={"help": "Budget forcing: thinking-token cap for every run."})
    think_caps: list[int] | None = field(default=None, metadata={"help": "Budget-forcing sweep: one run per cap."})
    cap_at_tier_budget: bool = field(default=False, metadata={"help": "Also run capped at each tier's budget."})
    min_think: int = field(default=0, metadata={"help": "Budget forcing: minimum thinking tokens (with max_waits)."})
    max_waits: int = field(default=0, metadata={"help": "Budget forcing: at most N 'Wait' extensions."})
    answer_cue: str = field(default="\n\n", metadata={"help": "Appended after a forced </think> (s1: Final Answer:)."})
    wait_text: str = field(default="Wait", metadata={"help": "Appended instead of an early </think>."})
    answer_tokens: int = field(default=64, metadata={"help": "Minimum token allowance of the answer after thinking."})
    # report
    plot: bool = field(default=True, metadata={"help": "Write the accuracy-vs-tokens Pareto plot (pareto.png)."})
    plot_tokens: str = field(
        default="think",
        metadata={"help": "x axis of the plot: mean thinking or total tokens.", "choices": ["think", "total"]},
    )
    log_samples: int = field(default=4, metadata={"help": "Sample completions kept per run (samples.json, W&B)."})
    # efficiency metrics (rl/efficiency.py)
    otb_t_max: int = field(
        default=1000, metadata={"help": "OptimalThinkingBench t_max: otb_accuracy = mean c*max(0, t_max - T)/t_max."}
    )
    aes_base: str | None = field(
        default=None, metadata={"help": "Model label the AES is measured against (default: the first model)."}
    )
    aes_weights: list[float] = field(
        default_factory=lambda: [1.0, 5.0, 10.0],
        metadata={"help": "AES weights w, b, g (O1-Pruner, arXiv 2501.12570: 1, 5, 10); printed with the score."},
    )

    def __post_init__(self) -> None:
        from data.benchmarks import BENCHMARK_NAMES, SOURCES

        if not self.models:
            raise ConfigError("eval needs at least one model: set models: [label=path, ...] in the recipe or --models")
        for tier in self.eval_tiers or []:
            if tier not in ALL_TIERS:
                raise ConfigError(f"unknown tier {tier!r} in eval_tiers; allowed: {', '.join(ALL_TIERS)}")
        self.benchmark_files = yaml_value(self.benchmark_files, "benchmark_files") or {}
        self.benchmark_sources = yaml_value(self.benchmark_sources, "benchmark_sources") or {}
        if not self.benchmarks:
            raise ConfigError(f"benchmarks must name at least one of: {', '.join(BENCHMARK_NAMES)}")
        for name in self.benchmarks:
            if name not in BENCHMARK_NAMES:
                raise ConfigError(f"unknown benchmark {name!r} in benchmarks; allowed: {', '.join(BENCHMARK_NAMES)}")
        for key, table in (("benchmark_files", self.benchmark_files), ("benchmark_sources", self.benchmark_sources)):
            if not isinstance(table, dict):
                raise ConfigError(f"{key} must be a mapping of benchmark name to value, got {table!r}")
            for name in table:
                if name not in SOURCES:
                    raise ConfigError(f"unknown benchmark {name!r} in {key}; allowed: {', '.join(SOURCES)}")
        if self.backend not in ("auto", "transformers", "vllm"):
            raise ConfigError(f"unknown backend {self.backend!r}; allowed: auto, transformers, vllm")
        if self.plot_tokens not in ("think", "total"):
            raise ConfigError(f"unknown plot_tokens {self.plot_tokens!r}; allowed: think, total")
        if self.otb_t_max <= 0 or len(self.aes_weights) != 3:
            raise ConfigError(f"otb_t_max must be > 0 and aes_weights three numbers (w, b, g), got "
                              f"{self.otb_t_max}, {self.aes_weights}")
        if self.aes_base is not None and self.aes_base not in [label for label, _ in self.labelled_models()]:
            raise ConfigError(f"aes_base {self.aes_base!r} is not a model label; labels: "
                              f"{', '.join(label for label, _ in self.labelled_models())}")
        if self.max_examples is not None and self.max_examples <= 0:
            raise ConfigError(f"max_examples must be positive, got {self.max_examples}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.num_samples < 1 or (self.num_samples > 1 and self.temperature <= 0):
            raise ConfigError(f"num_samples must be 1, or > 1 with temperature > 0; got {self.num_samples}, "
                              f"temperature {self.temperature}")
        if not self.stop_tau or any(t <= 0 for t in self.stop_tau):
            raise ConfigError(f"stop_tau must be a list of values > 0 (1 = off), got {self.stop_tau}")
        caps = [c for c in [self.think_cap, *(self.think_caps or [])] if c is not None]
        if any(c < 2 for c in caps):
            raise ConfigError(f"thinking caps must be >= 2 tokens, got {caps}")
        if self.min_think < 0 or self.max_waits < 0 or self.stop_top_k < 0 or self.answer_tokens <= 0:
            raise ConfigError("min_think, max_waits and stop_top_k must be >= 0 and answer_tokens > 0")
        if self.min_think and any(self.min_think > c for c in caps):
            raise ConfigError(f"min_think ({self.min_think}) must not exceed any thinking cap ({caps})")

    def labelled_models(self) -> list[tuple[str, str]]:
        """``(label, path)`` pairs; a bare path is labelled by its last folder name."""
        pairs = []
        for entry in self.models:
            label, sep, path = entry.partition("=")
            pairs.append((label, path) if sep else (Path(entry).name, entry))
        return pairs
