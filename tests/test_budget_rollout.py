"""Budget-constrained rollouts (``rl.budget_rollout``): the thinking never exceeds the tier's budget, the forced
close marker is there once and masked (``env_mask`` 0 exactly on it and its cue), the answer follows, rows that
closed on their own are untouched; none-tier groups sample half without thinking; TRL's loss leaves the masked
tokens out; a two-step GRPO run with the rollout function."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

import rewards.correctness
import train
from tests.grpo_cli import tiny_grpo_argv
from data.budgets import resolve_tiers
from data.completion_format import CompletionFormat
from data.synthetic import generate
from data.tasks import make_prompt, traces_to_dataset
from rl.budget_rollout import SKIP, BudgetRollout, BudgetRolloutArguments, budget_rollout, plan_rows
from rl.config import ConfigError, InitArguments
from rl.engine import Engine, SamplingParams
from rl.generation import TransformersEngine
from rl.tiny_model import build_model

TIERS = resolve_tiers("synthetic")  # short <= 36, medium 36-48, long 64-128 thinking tokens
ARGS = BudgetRolloutArguments(budget_rollouts=True, rollout_answer_tokens=8)
LONG, SHORT = "Think at length.", "Think briefly."


class ScriptEngine(Engine):
    """A deterministic model: from a prompt saying ``LONG`` it thinks ``" step"`` forever, from any other it thinks
    ``" one step"``, closes and answers; a continuation follows the same script (so a row generated in two rounds
    is the script), and once the script was left (a forced close) it answers ``" \\boxed{42}"`` and ends."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.eos_ids = tokenizer, {tokenizer.eos_token_id}
        self.fmt = CompletionFormat.from_tokenizer(tokenizer)
        enc = self.encode_text
        self.forever = enc("<think>\n" + " step" * 300)
        self.closing = enc("<think>\n one step") + list(self.fmt.close_ids) + enc("\n\nSo \\boxed{7}.")
        self.bases: list[list[int]] = []  # the prompts as given to the rollout

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def continuation(self, ids: list[int]) -> list[int]:
        base = max((b for b in self.bases if ids[: len(b)] == b), key=len)
        done = ids[len(base) :]
        text = self.tokenizer.decode(base, skip_special_tokens=False)
        script = self.forever if LONG in text else self.closing + [self.tokenizer.eos_token_id]
        if script[: len(done)] == done:
            return script[len(done) :]
        return self.encode_text(" \\boxed{42}") + [self.tokenizer.eos_token_id]

    def generate_ids(self, prompt_ids, params, stop_ids=(), limits=None, desc=""):
        return [self.to_generation(self.continuation(list(p)), stop_ids, limits[i] if limits else params.max_new_tokens)
                for i, p in enumerate(prompt_ids)]


def prompt_of(tok, question: str, tier: str) -> str:
    return tok.apply_chat_template(make_prompt(question, tier, TIERS), tokenize=False, add_generation_prompt=True)


def scripted_rollout(tok, tiers: list[str], questions: list[str], args: BudgetRolloutArguments = ARGS):
    engine = ScriptEngine(tok)
    texts = [prompt_of(tok, q, t) for q, t in zip(questions, tiers)]
    prompt_ids = [engine.encode_text(t) for t in texts]
    engine.bases = prompt_ids
    plan = plan_rows(tiers, texts, TIERS, args)
    params = SamplingParams(max_new_tokens=200, temperature=1.0)
    return engine, plan, budget_rollout(engine, prompt_ids, plan, texts, params, args, engine.fmt)


@pytest.fixture(params=["tiny", "smollm2"])
def tok(request, tiny_tokenizer):
    """The embedded tokenizer (``</think>`` one added token) and SmolLM2's (three BPE tokens)."""
    return tiny_tokenizer if request.param == "tiny" else request.getfixturevalue("smollm2_tokenizer")


def test_thinking_is_cut_at_the_budget_and_the_forced_marker_masked(tok):
    engine, plan, rows = scripted_rollout(tok, ["short", "medium", "long"], [LONG] * 3)
    fmt, cue = engine.fmt, engine.encode_text(ARGS.rollout_answer_cue)
    assert plan == [36, 48, 128]
    for cap, row in zip(plan, rows):
        ids, mask = row.completion_ids, row.env_mask
        assert row.forced_close and len(mask) == len(ids)
        assert fmt.thinking_tokens(ids) == cap and fmt.closes(ids) == 1  # never over, the marker once
        forced = [j for j, m in enumerate(mask) if m == 0]
        assert forced == list(range(cap - len(fmt.close_ids), cap + len(cue)))  # exactly the marker and its cue
        assert ids[forced[0] : forced[-1] + 1] == list(fmt.close_ids) + cue
        assert "\\boxed{42}" in tok.decode(ids[cap:]) and ids[-1] == tok.eos_token_id  # the answer follows, ends


def test_rows_that_close_on_their_own_are_untouched(tok):
    engine, _, (row,) = scripted_rollout(tok, ["long"], [SHORT])
    assert row.completion_ids == engine.closing + [tok.eos_token_id]
    assert row.env_mask == [1] * len(row.completion_ids) and not row.forced_close


def test_none_groups_sample_half_without_thinking(tok):
    questions = [SHORT] * 4 + [LONG] * 2
    engine, plan, rows = scripted_rollout(tok, ["none"] * 4 + ["short"] * 2, questions)
    assert plan == [SKIP, SKIP, 128, 128, 36, 36]  # the none group: half skip, half think (cap: the long budget)
    prefix = engine.encode_text(engine.fmt.thinking_prefill(prompt_of(tok, SHORT, "none")))
    for row in rows[:2]:
        assert row.forced_skip and row.completion_ids[: len(prefix)] == prefix
        assert engine.fmt.skips_thinking(row.completion_ids) and row.env_mask == [1] * len(row.env_mask)
    assert not any(engine.fmt.skips_thinking(r.completion_ids) for r in rows[2:])
    _, _, masked = scripted_rollout(tok, ["none", "none"], [SHORT] * 2,
                                    BudgetRolloutArguments(rollout_answer_tokens=8, skip_prefix_in_loss=False))
    assert masked[0].env_mask[: len(prefix)] == [0] * len(prefix) and masked[0].env_mask[len(prefix):][0] == 1
    assert masked[1].env_mask == [1] * len(masked[1].env_mask)


def test_options_and_prompts_without_a_tier_are_refused(tiny_tokenizer):
    with pytest.raises(ConfigError, match="skip_share must be in"):
        BudgetRolloutArguments(skip_share=1.5)
    with pytest.raises(ConfigError, match="rollout_answer_tokens must be positive"):
        BudgetRolloutArguments(rollout_answer_tokens=0)
    rollout = BudgetRollout(ARGS, TIERS, CompletionFormat.from_tokenizer(tiny_tokenizer))
    with pytest.raises(ValueError, match="Reasoning length: none."):
        rollout.tiers_of([[{"role": "user", "content": "What is 1 + 1?"}]])


def test_sampled_rows_of_a_real_model_respect_the_budget(tiny_tokenizer):
    """The embedded (random) model, sampled: thinking within the cap, masks only on forced closes."""
    args = InitArguments(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2)
    engine = TransformersEngine(build_model(args, tiny_tokenizer), tiny_tokenizer)
    fmt = engine.completion_format
    texts = [prompt_of(tiny_tokenizer, f"Start with {i}. Op 1: + 3.", "short") for i in range(6)]
    prompt_ids = engine.encode(texts)
    rows = budget_rollout(engine, prompt_ids, [12] * 6, texts, SamplingParams(max_new_tokens=40, temperature=1.0),
                          ARGS, fmt)
    for row in rows:
        assert fmt.thinking_tokens(row.completion_ids) <= 12
        assert (0 in row.env_mask) == row.forced_close
        if row.forced_close:
            assert row.env_mask.count(0) == len(fmt.close_ids) + len(tiny_tokenizer.encode("\n\n"))


# ------------------------------------------------------------------------------------------------ in TRL


def _trainer(tiny_base, tmp_path, reward):
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    data = traces_to_dataset(generate("train", 8, seed=3), "mixed_none", TIERS, target=None)
    config = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4,
                        max_completion_length=48, temperature=1.0, beta=0.0, loss_type="dapo", use_cpu=True,
                        bf16=False, report_to="none", max_steps=1, seed=0)
    fmt = CompletionFormat.from_tokenizer(tok, eos_ids=[tok.eos_token_id])
    return GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=data, processing_class=tok,
                       rollout_func=BudgetRollout(ARGS, TIERS, fmt)), data, fmt


def test_trl_loss_leaves_the_forced_tokens_out(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")

    def by_length(completions, completion_ids, **kwargs):
        return [float(len(ids) % 5) for ids in completion_ids]

    trainer, data, fmt = _trainer(tiny_base, tmp_path, by_length)
    short = next(r for r in data if r["tier"] == "short")
    none = next(r for r in data if r["tier"] == "none")
    batch = [dict(short) for _ in range(4)] + [dict(none) for _ in range(4)]
    trainer.model.eval()  # the loss's eval normaliser: num_items_in_batch, no accumulation
    out = trainer._generate_and_score_completions(batch)
    completion_mask, tool_mask, adv = out["completion_mask"], out["tool_mask"], out["advantages"]
    forced = [bool((tool_mask[i][completion_mask[i].bool()] == 0).any()) for i in range(4)]
    assert any(forced)  # the random model seldom closes its thinking in 36 tokens
    for i in range(4):
        ids = out["completion_ids"][i][completion_mask[i].bool()].tolist()
        think = fmt.thinking_tokens(ids)
        assert think == TIERS["short"].budget if forced[i] else think <= TIERS["short"].budget
    assert adv.abs().sum() > 0
    loss_mask = completion_mask * tool_mask
    assert out["num_items_in_batch"] == loss_mask.sum()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, out)
        unmasked = trainer.compute_loss(trainer.model, {k: v for k, v in out.items() if k != "tool_mask"})
    # beta 0, ratio 1 at the sampling policy: dapo's loss is -sum_i A_i * (tokens of i in the loss) / tokens in the loss
    expected = -(adv * loss_mask.sum(1)).sum() / loss_mask.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    full = -(adv * completion_mask.sum(1)).sum() / loss_mask.sum()
    assert unmasked.item() == pytest.approx(full.item(), rel=1e-5, abs=1e-6) and full.item() != expected.item()


def scripted_correctness(completions, solutions, config=None, *_):
    return [float(i % 2) for i in range(len(completions))]


def test_two_step_grpo_with_budget_rollouts(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setattr(rewards.correctness, "correctness_scores", scripted_correctness)
    out = tmp_path / "grpo"
    assert train.main(tiny_grpo_argv(
        tiny_base, out, "--budget", "mixed_none", "--tiers", "synthetic", "--rewards", "[{name: tldr}, {name: adaptthink}]",
        "--budget_rollouts", "true", "--rollout_answer_tokens", "8", num_train=16, max_steps=2, completion_tokens=48,
    )) == 0
    logged = [h for h in json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
              if "budget_rollout/forced_close" in h]
    assert len(logged) == 2 and all(0 < h["budget_rollout/forced_close"] <= 1 for h in logged)
