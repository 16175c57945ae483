"""Inference-time length controls: stop-token temperature scaling and s1 budget forcing.

Stop-token temperature scaling (TS; Zhang et al. 2025, arXiv 2505.07961, section 3 of ``methods.md``).
While the thinking is open (no ``</think>`` anywhere in the sequence yet, prompt included), the logit ``z_e`` of
the end-of-thinking token ``e`` is shifted by a log-boost::

    z_e' = z_e + ln(1 / tau)          (all other logits unchanged)

Equivalently, the odds of stopping against every other token are multiplied by ``1 / tau``:
``p_e' = p_e / (p_e + tau * (1 - p_e))``. ``tau = 1`` is the identity, ``tau < 1`` stops earlier, ``tau > 1``
later; the map is monotone in ``tau`` and independent of the logits' sign or offset (softmax is
shift-invariant, so "divide the logit by tau" would depend on an arbitrary offset). With ``top_k > 0`` the boost
is applied only where ``e`` is already among the ``top_k`` largest logits (ties included). A logit of ``-inf``
stays ``-inf``. The paper's exact formula is not public; this one is our choice. The processor sees the raw
logits, before the sampling temperature ``T``: when sampling, the stop odds are multiplied by ``tau ** (-1/T)``;
when greedy, ``e`` is chosen iff ``z_e + ln(1/tau)`` is the largest logit.

Budget forcing (s1; Muennighoff et al. 2025, arXiv 2501.19393):

- thinking cap ``think_cap``: thinking tokens (counted up to and including ``</think>``, as everywhere in lcrl)
  never exceed the cap. When a completion reaches the cap with its thinking still open, its last token is
  replaced by ``</think>``, the answer cue is appended (s1: "Final Answer:"; default here: a blank line, the
  format the models are trained on) and the answer is decoded (the effective cap is
  ``min(think_cap, max_new_tokens)``);
- minimum ``min_think`` with ``max_waits`` = N: when the model closes its thinking before ``min_think`` tokens,
  the ``</think>`` is removed, ``wait_text`` ("Wait") appended and the thinking continues, at most N times.

It runs as rounds of the engine's ``generate_ids`` with ``</think>`` as an extra stop token, so it works the
same on every backend: think (up to the remaining cap) -> on an early ``</think>``, "Wait" and think again -> on
the cap, force the close -> decode the answers of all rows whose thinking is closed.

The close marker is read from the engine's ``CompletionFormat`` (``data.completion_format``). When it is one
token it is the stop token; when it is several BPE tokens (Qwen2.5, Llama-3, SmolLM2) no single id can stop the
round, so a thinking round runs to its limit (or EOS) and the thinking is then cut just past the first marker
found by decoding (robust to the marker merging with the next text); a forced close appends all the marker's
token ids, so the thinking (marker included) is exactly the cap. Stop-token temperature scaling needs one
token and refuses a multi-token marker with an error (``rl.engine.stop_token_of``).

This module sits above the engine interface (``rl.engine``) and below the backends, which apply
``StopTokenScaling`` (transformers) or its formula (``rl.vllm_logits``); ``Engine.generate`` runs the
``BudgetForcing`` of ``SamplingParams.budget`` through its ``generate`` (the engine's ``LengthControl``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from transformers import LogitsProcessor

from data.completion_format import CompletionFormat
from rl.engine import Engine, Generation, SamplingParams

logger = logging.getLogger(__name__)


def scale_stop_logits(
    scores: torch.Tensor, token_id: int, tau: float, top_k: int = 0, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """``scores[:, token_id] += ln(1/tau)`` on ``rows`` (bool mask; all when ``None``); with ``top_k``, only where
    ``token_id`` is among the row's ``top_k`` largest logits. Works in place on ``scores`` and returns it."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    squeeze = scores.dim() == 1
    if squeeze:
        scores = scores.unsqueeze(0)
    apply = torch.ones(scores.shape[0], dtype=torch.bool, device=scores.device) if rows is None else rows.clone()
    column = scores[:, token_id]
    if top_k > 0:
        kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[:, -1]
        apply &= column >= kth
    scores[:, token_id] = torch.where(apply, column + math.log(1.0 / tau), column)
    return scores.squeeze(0) if squeeze else scores


class StopTokenScaling(LogitsProcessor):
    """transformers logits processor: ``z_e' = z_e + ln(1/tau)`` for ``e = </think>`` while the thinking is open.

    A row's thinking is open while ``token_id`` does not occur in its ``input_ids`` (prompt and generated so far),
    so a prompt that closes the thinking (no-thinking prefill, budget forcing's answer round) is left unchanged.
    """

    def __init__(self, token_id: int, tau: float, top_k: int = 0) -> None:
        if tau <= 0:
            raise ValueError(f"stop-token temperature tau must be > 0, got {tau}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = always), got {top_k}")
        self.token_id, self.tau, self.top_k = token_id, float(tau), int(top_k)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.tau == 1.0:
            return scores
        open_rows = ~(input_ids == self.token_id).any(dim=-1)
        return scale_stop_logits(scores, self.token_id, self.tau, self.top_k, open_rows.to(scores.device))


@dataclass(frozen=True)
class BudgetForcing:
    """s1 budget forcing: a thinking cap and/or a minimum with up to ``max_waits`` "Wait" extensions.

    ``answer_tokens``: the answer after a forced close may use ``answer_tokens`` tokens (so a capped completion has
    at most ``think_cap + len(answer_cue) + answer_tokens``); after the model's own close, what is left of
    ``max_new_tokens``, at least ``answer_tokens``.
    """

    think_cap: int | None = None
    min_think: int = 0
    max_waits: int = 0
    answer_cue: str = "\n\n"
    wait_text: str = "Wait"
    answer_tokens: int = 64

    def __post_init__(self) -> None:
        if self.think_cap is not None and self.think_cap < 2:
            raise ValueError(f"think_cap must be >= 2 tokens (room for </think>), got {self.think_cap}")
        if self.min_think < 0 or self.max_waits < 0:
            raise ValueError(f"min_think and max_waits must be >= 0, got {self.min_think}, {self.max_waits}")
        if self.think_cap is not None and self.min_think > self.think_cap:
            raise ValueError(f"min_think ({self.min_think}) must not exceed think_cap ({self.think_cap})")
        if self.answer_tokens <= 0:
            raise ValueError(f"answer_tokens must be positive, got {self.answer_tokens}")

    @property
    def extends(self) -> bool:
        return self.min_think > 0 and self.max_waits > 0

    @property
    def active(self) -> bool:
        return self.think_cap is not None or self.extends

    def generate(
        self, engine: Engine, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate"
    ) -> list[Generation]:
        """Completions under this budget (``budget_forced_generate``); ``Engine.generate`` calls it for
        ``SamplingParams.budget``."""
        return budget_forced_generate(engine, prompt_ids, replace(params, budget=self), desc=desc)


@dataclass
class _Row:
    ids: list[int]
    waits: int = 0
    forced: bool = False
    state: str = "think"  # think -> answer -> done
    finished: bool = False
    stop_reason: str = ""
    forced_span: tuple[int, int] | None = None
    end_id: int | None = None


def budget_forced_generate(
    engine: Engine, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate"
) -> list[Generation]:
    """Completions under ``params.budget`` (see the module docstring); other params apply to every round."""
    bf = params.budget
    assert bf is not None
    fmt = engine.completion_format
    if not fmt.close_ids:
        raise ValueError(f"budget forcing needs the close marker {fmt.close_text!r}; this tokenizer cannot encode it")
    if bf.think_cap is not None and bf.think_cap <= len(fmt.close_ids):
        raise ValueError(f"think_cap {bf.think_cap} leaves no room before {fmt.close_text!r} "
                         f"({len(fmt.close_ids)} tokens)")
    stop_ids = [] if fmt.close_id is None else [fmt.close_id]
    tok = engine.tokenizer
    cue = tok.encode(bf.answer_cue, add_special_tokens=False) if bf.answer_cue else []
    wait = tok.encode(bf.wait_text, add_special_tokens=False)
    if bf.extends and not wait:
        raise ValueError("wait_text must not be empty when min_think and max_waits are set")
    think_limit = min(bf.think_cap, params.max_new_tokens) if bf.think_cap is not None else params.max_new_tokens
    rows = [_Row([]) for _ in prompt_ids]
    think_params = replace(params, budget=None)
    for round_ in range(bf.max_waits + 1):
        todo = [i for i, r in enumerate(rows) if r.state == "think"]
        if not todo:
            break
        gens = engine.generate_ids(
            [list(prompt_ids[i]) + rows[i].ids for i in todo],
            replace(think_params, seed=params.seed + round_),
            stop_ids=stop_ids,
            limits=[think_limit - len(rows[i].ids) for i in todo],
            desc=f"{desc}/think{round_}",
        )
        for i, g in zip(todo, gens):
            _after_think(rows[i], g, bf, fmt, cue, wait, think_limit, last_round=round_ == bf.max_waits)
    todo = [i for i, r in enumerate(rows) if r.state == "answer"]
    if todo:
        gens = engine.generate_ids(
            [list(prompt_ids[i]) + rows[i].ids for i in todo],
            replace(think_params, seed=params.seed + bf.max_waits + 1),
            limits=[_answer_limit(rows[i], params.max_new_tokens, bf.answer_tokens) for i in todo],
            desc=f"{desc}/answer",
        )
        for i, g in zip(todo, gens):
            rows[i].ids += g.token_ids
            rows[i].finished, rows[i].stop_reason, rows[i].end_id = g.finished, g.stop_reason, g.end_id
    return [
        Generation(engine.decode(r.ids), r.ids, r.finished, r.stop_reason, forced_stop=r.forced, waits=r.waits,
                   forced_span=r.forced_span, end_id=r.end_id)
        for r in rows
    ]


def _answer_limit(row: _Row, max_new_tokens: int, answer_tokens: int) -> int:
    """After a forced close: ``answer_tokens``; after the model's own close: what is left of ``max_new_tokens``,
    at least ``answer_tokens``."""
    return answer_tokens if row.forced else max(max_new_tokens - len(row.ids), answer_tokens)


def _close_end(row: _Row, g: Generation, fmt: CompletionFormat) -> int | None:
    """Index just past the first close marker in the row's ids after a round, or ``None`` if it is still open."""
    if fmt.close_id is not None:
        return len(row.ids) if g.stop_reason == "stop" else None
    ends = fmt.close_ends(row.ids)
    return ends[0] if ends else None


def _after_think(
    row: _Row, g: Generation, bf: BudgetForcing, fmt: CompletionFormat, cue: list[int], wait: list[int], limit: int,
    last_round: bool,
) -> None:
    """Update one row after a thinking round: extend with "Wait", force the close, or move on to the answer."""
    row.ids += g.token_ids
    end = _close_end(row, g, fmt)
    if end is not None:  # the model closed its thinking
        can_wait = bf.extends and row.waits < bf.max_waits and not last_round
        start = fmt.close_start(row.ids, end)
        if can_wait and end < bf.min_think and start + len(wait) < limit:
            row.ids = row.ids[:start] + wait
            row.waits += 1
            return  # think again
        if g.stop_reason == "eos" and end < len(row.ids):  # a multi-token marker: the answer came in this round
            row.state, row.finished, row.stop_reason, row.end_id = "done", True, "eos", g.end_id
            return
        row.ids = row.ids[:end]
        row.state = "answer"
    elif g.stop_reason == "eos":  # ended without closing the thinking: nothing more to decode
        row.state, row.finished, row.stop_reason, row.end_id = "done", True, "eos", g.end_id
    elif bf.think_cap is not None and len(row.ids) >= limit:  # reached the cap: force the end of thinking
        start = limit - len(fmt.close_ids)
        row.ids = row.ids[:start] + list(fmt.close_ids) + cue
        row.forced, row.state, row.forced_span = True, "answer", (start, len(row.ids))
    else:  # no cap: truncated at max_new_tokens like a plain generate
        row.state, row.finished, row.stop_reason = "done", False, "length"
