"""bench/retention.py: teacher-forced step results, read at the right token for a real BPE tokenizer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from bench.retention import STEP_RESULT, main, step_results
from data.synthetic import SyntheticConfig, generate
from data.tasks import make_prompt


class NextToken:
    """A stand-in model whose most likely token is always the text's own next token, except that where the next
    token is ``swap[0]`` it predicts ``swap[1]``."""

    def __init__(self, vocab: int, swap: tuple[int, int] | None = None):
        self.vocab, self.swap = vocab, swap

    def __call__(self, ids: torch.Tensor) -> SimpleNamespace:
        nxt = ids[0, 1:].clone()
        if self.swap:
            nxt[nxt == self.swap[0]] = self.swap[1]
        logits = torch.zeros(1, ids.shape[1], self.vocab)
        logits[0, torch.arange(len(nxt)), nxt] = 1.0
        return SimpleNamespace(logits=logits)


def test_each_step_result_is_read_at_every_token_with_smollm2s_tokenizer(smollm2_tokenizer):
    """A model that predicts the text is right at every step; one that writes 0 for every 7 is wrong at exactly the
    steps whose result (``-3, which is 7`` in full) holds a 7, and writes that result with 0 for 7."""
    tok = smollm2_tokenizer
    seven, zero = (tok("7", add_special_tokens=False).input_ids[0], tok("0", add_special_tokens=False).input_ids[0])
    traces = generate("test", 12, seed=0, cfg=SyntheticConfig(max_ops=3, redundancy=2.0, show_wrap=True))
    vocab = len(tok)
    sevens = 0
    for trace in traces:
        prompt = make_prompt(trace.problem.question, "long")
        steps = [(m[1], m[2]) for m in STEP_RESULT.finditer(trace.oracle_text)]
        right = step_results(NextToken(vocab), tok, prompt, trace.oracle_text)
        # every token of the result, a wrapping fact's reduction included (a minus merges with the space before it)
        assert [(fact, want.strip()) for fact, want, _ in right] == steps
        assert all(want == got for _, want, got in right)
        swapped = step_results(NextToken(vocab, (seven, zero)), tok, prompt, trace.oracle_text)
        wrong = [(fact, got.strip()) for fact, want, got in swapped if want != got]
        assert wrong == [(f, r.replace("7", "0")) for f, r in steps if "7" in r]  # a digit is a token of its own
        sevens += len(wrong)
    assert sevens > 0  # the problems hold such steps


def test_the_command_writes_the_share_and_the_wrong_results(tiny_base, tmp_path):
    out = tmp_path / "retention.json"
    assert main(["--models", f"tiny={tiny_base}", "--num_test", "3", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    got = result["models"]["tiny"]
    assert result["num_test"] == 3 and got["steps"] >= 6 and 0 <= got["right"] <= got["steps"]
    assert got["share"] == got["right"] / got["steps"] and sum(got["wrong"].values()) == got["steps"] - got["right"]
    text = out.with_suffix(".md").read_text()
    assert "| tiny |" in text
    # a fast machine rounds a tiny model's run to 0.0 s (CI did): the time is recorded and written, not positive
    assert isinstance(result["wall_seconds"], float) and result["wall_seconds"] >= 0
    assert f"Wall time: {result['wall_seconds']:.0f} s" in text
