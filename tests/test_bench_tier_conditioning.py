"""bench/tier_conditioning.py: the log-likelihood of each tier's target under each tier's sentence."""

from __future__ import annotations

import json

import pytest

from bench.tier_conditioning import TIERS, main, margins, target_logprob


def pruned_rows(n: int) -> list[dict]:
    """Rows as --stage prune writes them: short the oracle, medium the trace without its verification, long the
    whole trace (the embedded task's traces at high redundancy)."""
    from data.synthetic import SyntheticConfig, generate

    rows = []
    for trace in generate("train", n, seed=0, cfg=SyntheticConfig(redundancy=5.0)):
        medium = trace.text.replace(trace.paragraphs[-1].text + "\n", "") if trace.paragraphs[-1].kind == "verify" \
            else trace.text
        rows.append({"question": trace.problem.question, "skip_completion": trace.oracle_text,
                     "completion": medium, "full_completion": trace.text})
    return rows


def test_the_margin_is_own_sentence_minus_the_best_other():
    table = {"short": {"short": -5.0, "medium": -6.0, "long": -5.5},
             "medium": {"short": -7.0, "medium": -7.2, "long": -7.1},  # read the wrong way: negative
             "long": {"short": -10.0, "medium": -10.0, "long": -8.0}}
    assert margins(table) == pytest.approx({"short": 0.5, "medium": -0.2, "long": 2.0})


def test_a_targets_log_probability_is_that_of_its_tokens_after_the_generation_prompt(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    prompt = [{"role": "user", "content": "Start with 3. Apply these operations in order, working modulo 10:\n"
                                          "Op 1: + 4.\nWhat is the final value?\nReasoning length: short."}]
    completion = "<think>\nOp 1: + 4, so 3 + 4 = 7.\n</think>\n\nThe final value is \\boxed{7}."
    got = target_logprob(model, tokenizer, prompt, completion)
    # the same sum through the model's own loss: mean negative log-likelihood over the unmasked labels
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    p_ids = tokenizer(head, add_special_tokens=False).input_ids
    c_ids = tokenizer(completion, add_special_tokens=False).input_ids
    ids = torch.tensor([p_ids + c_ids])
    labels = ids.clone()
    labels[0, : len(p_ids)] = -100
    with torch.no_grad():
        loss = model(ids, labels=labels).loss.item()
    assert got == pytest.approx(-loss * len(c_ids), rel=1e-4)
    assert got < target_logprob(model, tokenizer, prompt, completion[: len(completion) // 2])  # fewer tokens, more


def test_the_command_scores_every_target_under_every_sentence_and_writes_its_table(tiny_base, tmp_path):
    rows = tmp_path / "pruned.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in pruned_rows(3)))
    out = tmp_path / "cond.json"
    assert main(["--models", f"tiny={tiny_base}", "--rows", str(rows), "--tiers", "synthetic", "--n", "2",
                 "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    table = result["models"]["tiny"]
    assert result["n_rows"] == 2 and set(table) == set(TIERS) and all(set(v) == set(TIERS) for v in table.values())
    # a longer target has more tokens, so a lower summed log-probability, under every sentence
    assert all(table["short"][s] > table["long"][s] for s in TIERS)
    assert "| tiny | long |" in out.with_suffix(".md").read_text()


def test_rows_without_the_tier_fields_are_refused_naming_them(tmp_path, capsys):
    rows = tmp_path / "pruned.jsonl"
    rows.write_text(json.dumps({"question": "q", "completion": "c"}) + "\n")
    with pytest.raises(SystemExit):
        main(["--models", "m=x", "--rows", str(rows), "--output", str(tmp_path / "o.json")])
    assert "['full_completion', 'skip_completion']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--models", "no-name", "--rows", str(rows)])
    assert not (tmp_path / "o.json").exists()
