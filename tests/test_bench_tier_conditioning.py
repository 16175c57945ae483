"""bench/tier_conditioning.py: the log-likelihood of each tier's target under each tier's sentence."""

from __future__ import annotations

import json

import pytest

from bench.tier_conditioning import TIERS, main, margins, summary, target_logprob


def pruned_rows(n: int) -> list[dict]:
    """Rows as --stage prune writes them: short the oracle, medium the trace without its verification, long the
    whole trace (the embedded task's traces at high redundancy); the paragraphs of medium's thinking are its chunks,
    every one that is not an essential step skippable."""
    from data.synthetic import SyntheticConfig, generate
    from data.traces import render_completion

    rows = []
    for trace in generate("train", n, seed=0, cfg=SyntheticConfig(redundancy=5.0)):
        kept = trace.paragraphs[:-1] if trace.paragraphs[-1].kind == "verify" else trace.paragraphs
        chunks = [p.text + "\n\n" for p in kept]
        rows.append({"question": trace.problem.question, "skip_completion": trace.oracle_text,
                     "completion": render_completion("".join(chunks), trace.conclusion), "full_completion": trace.text,
                     "chunks": chunks, "skippable": [j for j, p in enumerate(kept) if not p.essential],
                     "conclusion": trace.conclusion})
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


@pytest.mark.parametrize("completions", ["tiered", "tiered_early"])
def test_the_command_scores_every_target_under_every_sentence_and_writes_its_table(completions, tiny_base, tmp_path):
    rows = tmp_path / "pruned.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in pruned_rows(3)))
    out = tmp_path / "cond.json"
    assert main(["--models", f"tiny={tiny_base}", "--rows", str(rows), "--n", "2", "--output", str(out),
                 "--completions", completions]) == 0
    result = json.loads(out.read_text())
    table = result["models"]["tiny"]
    assert result["n_rows"] == 2 and set(table) == set(TIERS) and result["completions"] == completions
    assert all(len(table[t][s]) == 2 for t in TIERS for s in TIERS)
    # a longer target has more tokens, so a lower summed log-probability, under every sentence and on every row
    assert all(a > b for s in TIERS for a, b in zip(table["short"][s], table["long"][s]))
    assert set(result["summary"]["tiny"]["long"]) == {*TIERS, "margin", "positive"}
    close = result["close"]["tiny"]  # one probability a row pruning cut (both here), under each sentence
    assert set(close) == set(TIERS) and all(len(v) == 2 and all(0 < p < 1 for p in v) for v in close.values())
    parts = result["parting"]  # the targets part after "<think>", within the shorter one
    assert set(parts) == {"short/medium", "medium/long"} and all(len(v) == 2 for v in parts.values())
    assert all(1 <= i for v in parts.values() for i in v if i is not None)
    text = out.with_suffix(".md").read_text()
    assert "| tiny | long |" in text and f"targets {completions}" in text and "| tiny | 2 | 0." in text
    assert "| medium/long |" in text
    # a fast machine rounds a tiny model's run to 0.0 s (CI did): the time is recorded and written, not positive
    assert isinstance(result["wall_seconds"], float) and result["wall_seconds"] >= 0
    assert f"Wall time: {result['wall_seconds']:.0f} s" in text


def test_tiered_early_scores_medium_on_the_skip_prefix_with_its_opening(tiny_base, tmp_path):
    """Only medium's target changes: the validated prefix without its re-checks, shorter, so likelier under every
    sentence; short's and long's scores are the same numbers; and medium now parts from long earlier."""
    rows = tmp_path / "pruned.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in pruned_rows(3)))
    got = {}
    for completions in ("tiered", "tiered_early"):
        out = tmp_path / f"{completions}.json"
        assert main(["--models", f"tiny={tiny_base}", "--rows", str(rows), "--n", "2", "--output", str(out),
                     "--completions", completions]) == 0
        got[completions] = json.loads(out.read_text())
    before, after = (got[c]["models"]["tiny"] for c in ("tiered", "tiered_early"))
    assert before["short"] == after["short"] and before["long"] == after["long"]
    assert all(a > b for s in TIERS for a, b in zip(after["medium"][s], before["medium"][s]))
    early, late = got["tiered_early"]["parting"]["medium/long"], got["tiered"]["parting"]["medium/long"]
    assert all(e < lt for e, lt in zip(early, late))


def test_the_close_probability_is_the_models_next_token_probability_of_the_close_marker(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.tier_conditioning import close_probability
    from data.tasks import make_prompt

    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    row = pruned_rows(1)[0]
    prompt = make_prompt(row["question"], "medium")
    got = close_probability(model, tokenizer, prompt, row["completion"])
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    thinking = row["completion"].split("</think>")[0]
    ids = tokenizer(head + thinking, add_special_tokens=False).input_ids
    close = tokenizer(head + thinking + "</think>", add_special_tokens=False).input_ids[len(ids)]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0, -1].softmax(-1)[close].item()
    assert got == pytest.approx(want) and 0 < got < 1


@pytest.mark.parametrize(("models", "rows", "message"), [
    (["no-name"], None, "--models takes name=path, got 'no-name'"),
    (["=path"], None, "--models takes name=path"),
    (["a={base}", "a={base}"], None, "--models names 'a' twice"),
    (["a={base}", "b=/nowhere/model"], None, "model 'b': no folder '/nowhere/model'"),
    (["a={base}"], [{"question": "q", "completion": "c"}],
     "lacks ['chunks', 'conclusion', 'full_completion', 'skip_completion', 'skippable']"),
    (["a={base}"], [{"skip_completion": "s", "completion": "c", "full_completion": "f", "chunks": ["c"],
                     "skippable": [], "conclusion": "x"}], "lacks ['question']"),
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


def test_targets_are_scored_as_tier_sft_learned_them_without_retracted_steps(tiny_base, tmp_path):
    """--drop_retracted (as the recipe's): the targets lose their mistake paragraphs, so each is likelier (fewer
    tokens) under every sentence, and the result names the phrase."""
    rows = tmp_path / "pruned.jsonl"
    mixed = [r for r in pruned_rows(12) if "that is not right" in r["full_completion"]][:2]
    assert len(mixed) == 2
    rows.write_text("".join(json.dumps(r) + "\n" for r in mixed))
    got = {}
    for extra in ([], ["--drop_retracted", "Hmm, wait, that is not right."]):
        out = tmp_path / f"cond{len(extra)}.json"
        assert main(["--models", f"tiny={tiny_base}", "--rows", str(rows), "--n", "2", "--output", str(out),
                     *extra]) == 0
        got[len(extra)] = json.loads(out.read_text())
    assert got[0]["drop_retracted"] is None and got[2]["drop_retracted"] == "Hmm, wait, that is not right."
    before, after = got[0]["models"]["tiny"]["long"], got[2]["models"]["tiny"]["long"]
    assert all(a > b for s in TIERS for a, b in zip(after[s], before[s]))
    assert "without the paragraphs holding 'Hmm, wait, that is not right.'" in (tmp_path / "cond2.md").read_text()
    # --recipe (as make real runs it): the tier SFT recipe's sft_data, sft_completion and phrase, no copy of them
    recipe = tmp_path / "sft_tiers.yaml"
    recipe.write_text(f"sft_data: {rows}\nsft_completion: tiered_early\n"
                      "drop_retracted: \"Hmm, wait, that is not right.\"\nlearning_rate: 1.0e-3\n")
    assert main(["--models", f"tiny={tiny_base}", "--recipe", str(recipe), "--n", "2", "--output",
                 str(tmp_path / "r.json")]) == 0
    from_recipe = json.loads((tmp_path / "r.json").read_text())
    measured = ("environment", "wall_seconds")  # where and how fast it ran, not what it scored
    assert {k: v for k, v in from_recipe.items() if k not in measured} == \
        {k: v for k, v in got[2].items() if k not in measured}
    # the command line overrides the recipe: another phrase (it matches nothing) scores the targets as they are
    assert main(["--models", f"tiny={tiny_base}", "--recipe", str(recipe), "--n", "2", "--drop_retracted",
                 "no such phrase", "--output", str(tmp_path / "o.json")]) == 0
    overridden = json.loads((tmp_path / "o.json").read_text())
    assert overridden["drop_retracted"] == "no such phrase"
    assert overridden["models"]["tiny"] == got[0]["models"]["tiny"]


@pytest.mark.parametrize(("text", "message"), [
    (None, "sft_tiers.yaml' not found; available recipes: "),
    ("- a list\n", "must hold a YAML mapping of keys to values"),
    ("sft_data: x.jsonl\nsft_completoin: tiered\n",  # train.py's refusal of an unknown key
     "unknown config key(s): 'sft_completoin' (did you mean sft_completion"),
    ("sft_completion: tiered\n", "--rows is required without a --recipe that names sft_data"),
    ("sft_data: x.jsonl\nsft_completion: skip\n", "sft_completion 'skip' is not tiered; allowed: tiered, "
     "tiered_early"),
    ("sft_data: x.jsonl\n", "sft_completion 'pruned' is not tiered"),  # train.py's default: not tiered
    ("sft_data: {rows}\nsft_completion: tiered\nnum_train: 4\n", "--n 12 is more than the 4 rows the recipe "
     "trains on"),
])
def test_a_bad_recipe_is_refused_by_name(text, message, tmp_path, capsys):
    (tmp_path / "base").mkdir()
    recipe = tmp_path / "sft_tiers.yaml"
    rows = tmp_path / "pruned.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in pruned_rows(1)))
    if text is not None:
        recipe.write_text(text.format(rows=rows))
    with pytest.raises(SystemExit):
        main(["--models", f"a={tmp_path / 'base'}", "--recipe", str(recipe), "--output", str(tmp_path / "o.json")])
    assert message in capsys.readouterr().err
