"""Budget control at rollout time: Elastic Reasoning's budget-constrained rollouts and AdaptThink's no-thinking
samples, on TRL's ``rollout_func`` hook (``budget_rollouts: true`` in a GRPO recipe).

Elastic Reasoning (Xu et al. 2025, arXiv 2505.05315, ``methods.md`` section 5): during GRPO the thinking of each
completion is generated up to its tier's budget t (``data.budgets``, read from the prompt's instruction); a row
whose thinking is still open there gets the close marker forced (its last generated tokens give way, so the
thinking, marker included, is exactly t tokens) and an answer cue (a blank line), then the answer is generated
with its own budget s (``rollout_answer_tokens``). Rows that closed on their own keep every token they sampled and
answer with what is left of ``max_completion_length`` (at least s). This is s1 budget forcing
(``rl.controls.budget_forced_generate``) run per tier: any close marker shape (one token, several BPE tokens)
reads through the policy's ``CompletionFormat``.

AdaptThink (Zhang et al. 2025, arXiv 2505.13417): for prompts of the ``none`` tier, a share ``skip_share`` (0.5)
of each group starts with the thinking closed at once (``CompletionFormat.thinking_prefill`` with no thinking,
e.g. ``<think>\\n</think>\\n\\n``) and answers in s tokens; the rest think (capped at ``none_think_cap``, default
the long tier's budget). The ``adaptthink`` reward (``rewards.adaptive``) then prefers skipping where accuracy holds.

The loss mask (TRL's ``env_mask``, which the trainer multiplies into ``completion_mask`` for the loss, the token
counts and ``num_items_in_batch``): 1 on every token the policy sampled, 0 on the forced close marker and cue.
Where this departs from the papers, stated:

1. Elastic Reasoning's forced tokens are not the policy's, so they are masked, as the paper does (its "budget
   constrained rollout" trains only on sampled tokens).
2. AdaptThink trains the first token of a forced no-thinking sample with an importance weight
   pi_theta / pi_IS (pi_IS = 0.5): that token is the choice being learned. TRL's ``rollout_func`` cannot supply
   per-token old log-probabilities to the loss, so with ``skip_prefix_in_loss: true`` (default) the forced prefix
   stays in the loss as if sampled (weight 1, a biased but usable gradient: without it nothing would teach the
   policy to close at once); ``false`` masks it like any forced token.
3. Generation runs on the trainer's own model with transformers ``generate`` (``rl.generation``), one call per
   tier budget: temperature and top_p are TRL's; top_k, min_p and repetition_penalty are not applied. The returned
   ``logprobs`` are ``None`` (TRL computes the old log-probabilities itself when it needs them), so vLLM's
   importance-sampling correction does not apply to these rollouts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from data.budgets import NO_THINKING, Tier, tier_of_prompt
from data.completion_format import CompletionFormat
from rl.config import ConfigError
from rl.controls import BudgetForcing, budget_forced_generate
from rl.engine import Engine, Generation, SamplingParams
from rl.generation import TransformersEngine

logger = logging.getLogger(__name__)

SKIP = -1  # the plan of a forced no-thinking row


@dataclass
class BudgetRolloutArguments:
    """Options of budget-constrained rollouts in ``--stage grpo`` (module docstring)."""

    budget_rollouts: bool = field(
        default=False, metadata={"help": "Cut the thinking at each prompt's tier budget during GRPO rollouts, force "
                                          "the close marker, generate the answer (Elastic Reasoning, arXiv "
                                          "2505.05315); none-tier groups sample half without thinking (AdaptThink)."}
    )
    rollout_answer_tokens: int = field(
        default=64, metadata={"help": "Answer budget s after a forced close or a forced no-thinking prefix."}
    )
    rollout_answer_cue: str = field(default="\n\n", metadata={"help": "Text after a forced close marker (masked)."})
    skip_share: float = field(
        default=0.5, metadata={"help": "Share of each none-tier group that starts with the thinking closed "
                                       "(AdaptThink's importance sampling: 0.5)."}
    )
    skip_prefix_in_loss: bool = field(
        default=True, metadata={"help": "Keep the forced no-thinking prefix in the loss (AdaptThink trains that "
                                        "choice); false masks it like a forced close."}
    )
    none_think_cap: int | None = field(
        default=None, metadata={"help": "Thinking cap of the none tier's thinking samples (default: the long tier's "
                                        "budget)."}
    )

    def __post_init__(self) -> None:
        if self.rollout_answer_tokens <= 0:
            raise ConfigError(f"rollout_answer_tokens must be positive, got {self.rollout_answer_tokens}")
        if not 0.0 <= self.skip_share <= 1.0:
            raise ConfigError(f"skip_share must be in [0, 1], got {self.skip_share}")
        if self.none_think_cap is not None and self.none_think_cap < 2:
            raise ConfigError(f"none_think_cap must be >= 2 tokens, got {self.none_think_cap}")


@dataclass
class RolloutRow:
    """One completion as TRL wants it: ids with the EOS that ended it (none when cut at the limit), the loss mask."""

    completion_ids: list[int]
    env_mask: list[int]
    forced_close: bool = False
    forced_skip: bool = False


def plan_rows(tiers_of_rows: Sequence[str], prompts: Sequence[Any], tiers: Mapping[str, Tier],
              args: BudgetRolloutArguments) -> list[int]:
    """Per row: its thinking cap, or ``SKIP`` for a forced no-thinking sample. A ``none``-tier prompt's k-th copy
    in the batch (TRL repeats each prompt ``num_generations`` times) skips when ``k < skip_share * copies``."""
    copies: dict[str, int] = {}
    for tier, prompt in zip(tiers_of_rows, prompts, strict=True):
        copies[repr(prompt)] = copies.get(repr(prompt), 0) + (tier == NO_THINKING)
    seen: dict[str, int] = {}
    think_cap = args.none_think_cap or tiers["long"].budget
    plan = []
    for tier, prompt in zip(tiers_of_rows, prompts, strict=True):
        if tier != NO_THINKING:
            plan.append(tiers[tier].budget)
            continue
        k = seen.get(repr(prompt), 0)
        seen[repr(prompt)] = k + 1
        plan.append(SKIP if k < round(args.skip_share * copies[repr(prompt)]) else think_cap)
    return plan


def to_row(gen: Generation, prefix: Sequence[int] = (), prefix_mask: int = 1) -> RolloutRow:
    """A rollout row from a generation (after a forced ``prefix`` with mask ``prefix_mask``, if any): the EOS that
    ended it appended (TRL's convention), ``env_mask`` 0 on the forced close span."""
    ids = list(prefix) + list(gen.token_ids)
    mask = [prefix_mask] * len(prefix) + [1] * len(gen.token_ids)
    if gen.forced_span is not None:
        start, end = gen.forced_span
        mask[len(prefix) + start : len(prefix) + end] = [0] * (end - start)
    if gen.stop_reason == "eos" and gen.end_id is not None:
        ids.append(gen.end_id)
        mask.append(1)
    return RolloutRow(ids, mask, forced_close=gen.forced_span is not None, forced_skip=bool(prefix))


def budget_rollout(engine: Engine, prompt_ids: Sequence[Sequence[int]], plan: Sequence[int],
                   prompt_texts: Sequence[str], params: SamplingParams, args: BudgetRolloutArguments,
                   fmt: CompletionFormat) -> list[RolloutRow]:
    """The completions of ``prompt_ids`` under ``plan`` (caps or ``SKIP``): one budget-forced generation per cap,
    one answer generation for the no-thinking rows (module docstring)."""
    if not fmt.close_ids:
        raise ValueError(f"budget rollouts need the close marker {fmt.close_text!r}; this tokenizer cannot encode it")
    rows: list[RolloutRow | None] = [None] * len(plan)
    for n, cap in enumerate(sorted(set(plan))):
        todo = [i for i, c in enumerate(plan) if c == cap]
        seed = params.seed + 7919 * n
        if cap == SKIP:
            prefixes = [engine.tokenizer.encode(fmt.thinking_prefill(prompt_texts[i]), add_special_tokens=False)
                        for i in todo]
            gens = engine.generate_ids([list(prompt_ids[i]) + p for i, p in zip(todo, prefixes)],
                                       SamplingParams(**{**vars(params), "seed": seed, "budget": None}),
                                       limits=[args.rollout_answer_tokens] * len(todo), desc="rollout/skip")
            for i, p, g in zip(todo, prefixes, gens):
                rows[i] = to_row(g, p, int(args.skip_prefix_in_loss))
            continue
        forcing = BudgetForcing(think_cap=cap, answer_cue=args.rollout_answer_cue,
                                answer_tokens=args.rollout_answer_tokens)
        gens = budget_forced_generate(engine, [prompt_ids[i] for i in todo],
                                      SamplingParams(**{**vars(params), "seed": seed, "budget": forcing}),
                                      desc=f"rollout/cap{cap}")
        for i, g in zip(todo, gens):
            rows[i] = to_row(g)
    return rows  # type: ignore[return-value]


def _last_user_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


class BudgetRollout:
    """TRL ``rollout_func``: ``(prompts, trainer) -> {prompt_ids, completion_ids, logprobs, env_mask}``."""

    def __init__(self, args: BudgetRolloutArguments, tiers: Mapping[str, Tier], fmt: CompletionFormat) -> None:
        if not fmt.close_ids:
            raise ConfigError(f"budget_rollouts needs the close marker {fmt.close_text!r} in the tokenizer")
        self.args, self.tiers, self.fmt = args, dict(tiers), fmt
        self.calls = 0

    def tiers_of(self, prompts: Sequence[Any]) -> list[str]:
        names = [tier_of_prompt(_last_user_text(p), self.tiers) for p in prompts]
        if None in names:
            allowed = "; ".join(f"{t.name}: {t.instruction!r}" for t in self.tiers.values())
            raise ValueError(f"budget_rollouts reads each prompt's tier from its instruction, and a prompt names none "
                             f"(its last user turn must end with one of {allowed})")
        return names  # type: ignore[return-value]

    def __call__(self, prompts: list, trainer: Any) -> dict[str, Any]:
        from trl.models import unwrap_model_for_generation

        tok, targs = trainer.processing_class, trainer.args
        if isinstance(prompts[0], str):
            texts = list(prompts)
            prompt_ids = tok(text=texts)["input_ids"]
        else:
            kwargs = dict(chat_template=trainer.chat_template, add_generation_prompt=True,
                          **(trainer.chat_template_kwargs or {}))
            texts = tok.apply_chat_template(conversation=prompts, tokenize=False, **kwargs)
            prompt_ids = tok.apply_chat_template(conversation=prompts, tokenize=True, return_dict=True,
                                                 **kwargs)["input_ids"]
        plan = plan_rows(self.tiers_of(prompts), prompts, self.tiers, self.args)
        params = SamplingParams(max_new_tokens=trainer.max_completion_length, temperature=trainer.temperature,
                                top_p=trainer.top_p, seed=targs.seed + 1_000_003 * self.calls)
        self.calls += 1
        device = trainer.accelerator.device
        with (unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                          gather_deepspeed3_params=targs.ds3_gather_for_generation) as model,
              torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])):
            was_training = model.training
            try:
                engine = TransformersEngine(model, tok, batch_size=len(prompt_ids))
                engine.eos_ids = set(trainer.eos_token_ids)
                rows = budget_rollout(engine, prompt_ids, plan, texts, params, self.args, self.fmt)
            finally:
                model.train(was_training)
        mode = "train" if trainer.model.training else "eval"
        metrics = trainer._metrics[mode]
        metrics["budget_rollout/forced_close"].append(sum(r.forced_close for r in rows) / len(rows))
        metrics["budget_rollout/forced_skip"].append(sum(r.forced_skip for r in rows) / len(rows))
        return {"prompt_ids": [list(p) for p in prompt_ids], "completion_ids": [r.completion_ids for r in rows],
                "logprobs": None, "env_mask": [r.env_mask for r in rows]}
