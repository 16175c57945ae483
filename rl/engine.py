"""The generation engine interface and its value types, shared by every backend and by the length controls.

Every engine takes prompts (text, or token ids) and ``SamplingParams`` and returns, per prompt, a ``Generation``:
the completion text, its token ids, their count, and how it ended (``eos``, an extra ``stop`` token, or
``length`` = truncated at the token limit). ``Engine`` is the interface: a backend implements the low-level
``generate_ids(prompt_ids, params, stop_ids, limits)`` and inherits the rest (``generate`` on text prompts,
encoding, decoding, cutting raw ids into a ``Generation``). The backends build on this module: the transformers
engine and the factory ``make_engine`` (``rl.generation``), the vLLM engine (``rl.vllm_engine``); so do the
inference-time length controls (``rl.controls``).

A length control that runs as rounds of ``generate_ids`` (budget forcing, ``rl.controls.BudgetForcing``) is
given in ``SamplingParams.budget`` and run by ``Engine.generate`` through the ``LengthControl`` interface, so
this module needs none of the controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from data.completion_format import CompletionFormat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

STOP_REASONS = ("eos", "stop", "length")


@dataclass
class Generation:
    """One completion. ``token_ids`` exclude the end-of-sequence token but include an extra stop token."""

    text: str
    token_ids: list[int]
    finished: bool  # False when cut at the token limit
    stop_reason: str = ""  # "eos", "stop" (an extra stop token, kept in token_ids) or "length"
    forced_stop: bool = False  # budget forcing closed the thinking at its cap
    waits: int = 0  # budget forcing replaced an early end of thinking by "Wait" this many times
    forced_span: tuple[int, int] | None = None  # budget forcing: [start, end) of the inserted close marker and cue
    end_id: int | None = None  # the end-of-sequence id that ended it (dropped from token_ids), when stop_reason is eos

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


class LengthControl(Protocol):
    """A length control that runs as rounds of ``Engine.generate_ids`` (``rl.controls.BudgetForcing``)."""

    @property
    def active(self) -> bool:
        """False when the control changes nothing (a plain ``generate_ids`` call is made instead)."""
        ...

    def generate(
        self, engine: Engine, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate"
    ) -> list[Generation]:
        """Completions of ``prompt_ids`` under this control; ``params`` are the other decoding options."""
        ...


@dataclass
class SamplingParams:
    """Decoding options shared by every backend.

    ``stop_tau`` / ``stop_top_k``: stop-token temperature scaling of ``</think>`` during the thinking
    (``rl.controls.StopTokenScaling``; ``stop_tau = 1`` is off). ``budget``: s1 budget forcing
    (``rl.controls.BudgetForcing``; ``None`` is off). ``logits_processors``: extra transformers processors
    (transformers backend only).
    """

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    logits_processors: list = field(default_factory=list)
    stop_tau: float = 1.0
    stop_top_k: int = 0
    budget: LengthControl | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.stop_tau <= 0:
            raise ValueError(f"stop_tau must be > 0 (1 = off, < 1 stops earlier), got {self.stop_tau}")
        if self.stop_top_k < 0:
            raise ValueError(f"stop_top_k must be >= 0 (0 = always), got {self.stop_top_k}")


def stop_token_of(fmt: CompletionFormat) -> int:
    """The one token stop-token temperature scaling boosts; a clear error when the close marker is several."""
    if fmt.close_id is None:
        pieces = [fmt.tokenizer.decode([i]) for i in fmt.close_ids] if fmt.tokenizer is not None else fmt.close_ids
        raise ValueError(
            f"stop_tau scales the logit of one end-of-thinking token, but this tokenizer writes {fmt.close_text!r} as "
            f"{len(fmt.close_ids)} tokens {pieces}: the first of them also starts other text, so no single logit "
            "means 'stop thinking'. Use a thinking cap (budget forcing) instead, or add the marker as a token."
        )
    return fmt.close_id


class Engine:
    """The engine interface: ``generate`` (text prompts) over the backend's ``generate_ids``."""

    tokenizer: PreTrainedTokenizerBase
    eos_ids: set[int]

    def generate_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        params: SamplingParams,
        stop_ids: Sequence[int] = (),
        limits: Sequence[int] | None = None,
        desc: str = "generate",
    ) -> list[Generation]:
        """One round of decoding from token-id prompts, no budget forcing.

        ``stop_ids``: extra tokens that end a completion (kept in its ``token_ids``, ``stop_reason="stop"``).
        ``limits``: a per-prompt token limit (default ``params.max_new_tokens`` for all).
        """
        raise NotImplementedError

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]

    @property
    def completion_format(self) -> CompletionFormat:
        """How this engine's completions read (markers, template, EOS ids), built once."""
        fmt = self.__dict__.get("_completion_format")
        if fmt is None:
            fmt = CompletionFormat.from_tokenizer(self.tokenizer, eos_ids=sorted(self.eos_ids))
            self.__dict__["_completion_format"] = fmt
        return fmt

    @property
    def think_end_id(self) -> int | None:
        """The close marker's id when it is one token (``completion_format.close_id``), else ``None``."""
        return self.completion_format.close_id

    def generate(self, prompts: Sequence[str], params: SamplingParams, desc: str = "generate") -> list[Generation]:
        """Completions of text prompts, with the length controls in ``params`` applied."""
        prompt_ids = self.encode(prompts)
        if params.budget is not None and params.budget.active:
            return params.budget.generate(self, prompt_ids, params, desc=desc)
        return self.generate_ids(prompt_ids, params, desc=desc)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def close(self) -> None:
        """Free the model and its device memory (the eval stage closes each model's engine before the next)."""

    def to_generation(
        self, new_ids: Sequence[int], stop_ids: Sequence[int] = (), limit: int | None = None
    ) -> Generation:
        """Cut raw decoded ids at the first end of sequence (dropped) or extra stop token (kept), then at ``limit``."""
        new_ids, stops = list(new_ids), set(stop_ids)
        for j, t in enumerate(new_ids):
            if limit is not None and j >= limit:
                break
            if t in self.eos_ids:
                ids = new_ids[:j]
                return Generation(self.decode(ids), ids, finished=True, stop_reason="eos", end_id=t)
            if t in stops:
                ids = new_ids[: j + 1]
                return Generation(self.decode(ids), ids, finished=True, stop_reason="stop")
        ids = new_ids[:limit] if limit is not None else new_ids
        return Generation(self.decode(ids), ids, finished=False, stop_reason="length")
