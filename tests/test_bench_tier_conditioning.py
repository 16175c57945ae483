"""bench/tier_conditioning.py: the log-likelihood of each tier's target under each tier's sentence."""

from __future__ import annotations

import json

import pytest

from bench.tier_conditioning import TIERS, main, margins, summary, target_logprob


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


def test_the_margin_is_own_sentence_minus_the_best_other_row_by_row():
    table = {"short": {"short": [-5.0, -4.0], "medium": [-6.0, -3.0], "long": [-5.5, -4.5]},
             "medium": {"short": [-7.0, -7.0], "medium": [-7.2, -6.0], "long": [-7.1, -8.0]},
             "long": {"short": [-10.0, -9.0], "medium": [-10.0, -9.0], "long": [-8.0, -9.5]}}
    assert margins(table) == {"short": pytest.approx([0.5, -1.0]), "medium": pytest.approx([-0.2, 1.0]),
                              "long": pytest.approx([2.0, -0.5])}
    got = summary(table)
    assert got["short"]["margin"] == pytest.approx(-0.25) and got["short"]["positive"] == 0.5
    assert got["long"]["long"] == pytest.approx(-8.75) and got["medium"]["positive"] == 0.5


def test_a_target_is_scored_as_sft_puts_it_in_the_loss(tiny_base):
    """Every token after the generation prompt, the end of turn included: TRL's completion mask, computed here
    through the template's own tokenisation (tokenize=True) rather than the text the bench tokenises."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    prompt = [{"role": "user", "content": "Start with 3. Apply these operations in order, working modulo 10:\n"
                                          "Op 1: + 4.\nWhat is the final value?\nReasoning length: short."}]
    completion = "<think>\nOp 1: + 4, so 3 + 4 = 7.\n</think>\n\nThe final value is \\boxed{7}."
    got = target_logprob(model, tokenizer, prompt, completion)
    conversation = [*prompt, {"role": "assistant", "content": completion}]
    ids = list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"])
    prompt_ids = list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)["input_ids"])
    assert ids[: len(prompt_ids)] == prompt_ids
    tail = tokenizer.decode(ids[len(prompt_ids):])
    assert tail.startswith("<think>") and not tail.endswith("\\boxed{7}.")  # the end of turn is scored too
    labels = torch.tensor([ids])
    labels[0, : len(prompt_ids)] = -100
    with torch.no_grad():
        loss = model(torch.tensor([ids]), labels=labels).loss.item()
    assert got == pytest.approx(-loss * (len(ids) - len(prompt_ids)), rel=1e-4)


def test_the_command_scores_every_target_under_every_sentence_and_writes_its_table(tiny_base, tmp_path):
    rows = tmp_path / "pruned.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in pruned_rows(3)))
    out = tmp_path / "cond.json"
    assert main(["--models", f"tiny={tiny_base}", "--rows", str(rows), "--n", "2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    table = result["models"]["tiny"]
    assert result["n_rows"] == 2 and set(table) == set(TIERS)
    assert all(len(table[t][s]) == 2 for t in TIERS for s in TIERS)
    # a longer target has more tokens, so a lower summed log-probability, under every sentence and on every row
    assert all(a > b for s in TIERS for a, b in zip(table["short"][s], table["long"][s]))
    assert set(result["summary"]["tiny"]["long"]) == {*TIERS, "margin", "positive"}
    assert "| tiny | long |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize(("models", "rows", "message"), [
    (["no-name"], None, "--models takes name=path, got 'no-name'"),
    (["=path"], None, "--models takes name=path"),
    (["a={base}", "a={base}"], None, "--models names 'a' twice"),
    (["a={base}", "b=/nowhere/model"], None, "model 'b': no folder '/nowhere/model'"),
    (["a={base}"], [{"question": "q", "completion": "c"}], "lacks ['full_completion', 'skip_completion']"),
    (["a={base}"], [{"skip_completion": "s", "completion": "c", "full_completion": "f"}], "lacks ['question']"),
    (["a={base}"], [], "holds no rows"),
])
def test_bad_input_is_refused_by_name_before_a_model_is_loaded(models, rows, message, tmp_path, capsys,
                                                              monkeypatch):
    import rl.model_files

    monkeypatch.setattr(rl.model_files, "load_pretrained", lambda *a, **k: pytest.fail("a model was loaded"))
    (tmp_path / "base").mkdir()
    path = tmp_path / "pruned.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (pruned_rows(1) if rows is None else rows)))
    out = tmp_path / "o.json"
    args = [m.format(base=tmp_path / "base") for m in models]
    with pytest.raises(SystemExit):
        main(["--models", *args, "--rows", str(path), "--output", str(out)])
    assert message in capsys.readouterr().err
    assert not out.exists()
