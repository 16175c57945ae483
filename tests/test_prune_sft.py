"""SFT on pruned data: the chunk-wise and skip-thinking loss masks on TRL's own tokenised examples, and the modes
through train.main."""

from __future__ import annotations

import json

import pytest
from trl import SFTConfig, SFTTrainer

import train
from data.budgets import resolve_tiers
from data.synthetic import generate
from data.tasks import chunked_dataset, rows_dataset, trace_rows
from data.tier_targets import TIERED_COMPLETIONS, TIERED_EARLY_COMPLETIONS, add_opening_skip, equal_targets
from rl.config import InitArguments
from rl.tiny_model import build_model

CHUNKS = ["Op 1: + 5, so 6 + 5 = 1.\n\n", "Wait, let me double-check that. 6 + 5 = 1. Yes.\n\n", "Op 2: * 4, so 1 * 4 = 4."]
CONCLUSION = "The final value is \\boxed{4}."
ROW = {"id": "r0", "question": "Start with 6. Apply these operations in order, working modulo 10:\nOp 1: + 5.\n"
       "Op 2: * 4.\nWhat is the final value?", "solution": "4", "chunks": CHUNKS, "skippable": [1],
       "conclusion": CONCLUSION, "completion": "<think>\n" + "".join(CHUNKS) + "\n</think>\n\n" + CONCLUSION}


def prepared(tokenizer, dataset, tmp_path):
    """The examples exactly as TRL's SFTTrainer prepares them for training (input_ids, labels)."""
    model = build_model(InitArguments(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2), tokenizer)
    args = SFTConfig(output_dir=str(tmp_path / "sft"), report_to=[], bf16=False, use_cpu=True, max_length=512,
                     completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    return trainer, [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]


def split_by_mask(tokenizer, example):
    ids, labels = example["input_ids"], example["labels"]
    first = next(i for i, x in enumerate(labels) if x != -100)
    assert all(x == -100 for x in labels[:first])  # everything before the target is masked context
    assert labels[first:] == ids[first:]  # the target: real token ids up to the end of the example
    return tokenizer.decode(ids[:first]), tokenizer.decode(ids[first:])


def test_chunkwise_loss_is_on_one_chunk_with_earlier_chunks_masked(tiny_tokenizer, tmp_path):
    data = chunked_dataset([ROW], tiny_tokenizer, "chunkwise", "medium", resolve_tiers(None))
    trainer, examples = prepared(tiny_tokenizer, data, tmp_path)
    assert len(examples) == 3
    targets = [split_by_mask(tiny_tokenizer, ex) for ex in examples]
    assert targets[0][1] == "<think>\n" + CHUNKS[0]
    assert targets[1] == (targets[0][0] + targets[0][1], CHUNKS[1])
    assert targets[2][1] == CHUNKS[2] + "\n</think>\n\n" + CONCLUSION + "<|im_end|>\n"  # the last one ends the turn
    assert targets[2][0].endswith("assistant\n<think>\n" + CHUNKS[0] + CHUNKS[1])
    assert "Reasoning length: medium." in targets[0][0]
    batch = trainer.data_collator(examples)  # the collator keeps the mask
    assert (batch["labels"] != -100).sum(1).tolist() == [sum(x != -100 for x in ex["labels"]) for ex in examples]


def test_skip_examples_jump_over_skippable_chunks(tiny_tokenizer, tmp_path):
    data = chunked_dataset([ROW], tiny_tokenizer, "skip", "medium", resolve_tiers(None))
    _, examples = prepared(tiny_tokenizer, data, tmp_path)
    assert len(examples) == 2
    context, target = split_by_mask(tiny_tokenizer, examples[1])
    assert context.endswith("<think>\n" + CHUNKS[0]) and target.startswith(CHUNKS[2])
    for ex in examples:
        assert "double-check" not in tiny_tokenizer.decode(ex["input_ids"])
    with pytest.raises(ValueError, match="skippable"):
        chunked_dataset([{k: v for k, v in ROW.items() if k != "skippable"}], tiny_tokenizer, "skip", "medium",
                        resolve_tiers(None))


def test_rows_of_the_task_and_full_mode_rows(tiny_tokenizer):
    traces = generate("train", 5, seed=0)
    rows = trace_rows(traces, tiny_tokenizer)
    for row, trace in zip(rows, traces):
        assert "".join(row["chunks"]) == trace.thinking.strip() and row["skippable"] == []
    data = rows_dataset([ROW], "mixed", resolve_tiers(None))
    assert data[0]["completion"][0]["content"] == ROW["completion"] and data[0]["solution"] == "4"



@pytest.mark.parametrize("mode", ["full", "chunkwise", "skip"])
def test_sft_modes_through_train_main(mode, tiny_base, tmp_path):
    data = tmp_path / "pruned.jsonl"
    data.write_text("".join(json.dumps({**ROW, "id": f"r{i}"}) + "\n" for i in range(4)))
    out = tmp_path / "sft"
    args = ["--stage", "sft", "--model_name_or_path", str(tiny_base), "--output_dir", str(out), "--sft_mode", mode,
            "--sft_data", str(data), "--max_steps", "1", "--per_device_train_batch_size", "4", "--report_to", "none",
            "--save_strategy", "no"]
    assert train.main(args) == 0
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "lcrl_config.json").read_text())["sft_mode"] == mode


def test_sft_data_errors_are_named(tmp_path, capsys):
    assert train.main(["--stage", "sft", "--sft_data", str(tmp_path / "none.jsonl"), "--dry_run"]) == 2
    assert "not found (run --stage prune first" in capsys.readouterr().err
    assert train.main(["--stage", "sft", "--sft_mode", "skip", "--dry_run"]) == 2
    assert "sft_mode skip needs sft_data" in capsys.readouterr().err


def test_sft_completion_picks_the_trace_of_a_pruned_row(tmp_path, capsys):
    data = tmp_path / "pruned.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    argv = ["--stage", "sft", "--sft_data", str(data), "--dry_run", "--sft_completion"]
    assert train.main([*argv, "pruned"]) == 0
    assert train.main([*argv, "skip"]) == 2
    err = capsys.readouterr().err
    assert "row 'r0' has no 'skip_completion'" in err and "needs --stage prune with skip_chunks: true" in err
    assert train.main([*argv, "tiered", "--budget", "mixed_none"]) == 2  # no trace for the no-thinking tier
    err = capsys.readouterr().err
    assert "no SFT completion for tier(s) ['none']" in err and "skip_chunks" not in err


def test_tiered_completions_give_each_tier_the_pruned_trace_of_its_length():
    """sft_completion tiered: short learns the skip-thinking trace, medium the validated prefix, long the original."""
    row = {**ROW, "skip_completion": "<think>\nshort\n</think>\n\nA", "full_completion": "<think>\nlong\n</think>"}
    rows = [{**row, "id": f"r{i}"} for i in range(30)]
    data = rows_dataset(rows, "mixed", resolve_tiers(None), field=TIERED_COMPLETIONS)
    assert len(data) == 90  # every row once per tier: the tier sentence is all that tells the three apart
    assert {(ex["id"], ex["tier"]) for ex in data} == {(r["id"], t) for r in rows for t in ("short", "medium", "long")}
    assert len(rows_dataset(rows, "long", resolve_tiers(None), field=TIERED_COMPLETIONS)) == 30
    by_tier = {t: {ex["completion"][0]["content"] for ex in data if ex["tier"] == t} for t in ("short", "medium", "long")}
    assert by_tier == {"short": {row["skip_completion"]}, "medium": {ROW["completion"]},
                       "long": {row["full_completion"]}}
    assert all(f"Reasoning length: {ex['tier']}." in ex["prompt"][0]["content"] for ex in data)
    with pytest.raises(ValueError, match=r"no SFT completion for tier\(s\) \['none'\]"):
        rows_dataset(rows, "mixed_none", resolve_tiers(None), field=TIERED_COMPLETIONS)


def test_a_rerun_resumes_only_a_run_with_the_same_settings(tiny_base, tmp_path, capsys):
    """The same command resumes from the last checkpoint; other data-defining settings into the same output_dir are
    refused with the changed keys named (they would silently continue, or keep, the other run's model)."""
    data = tmp_path / "pruned.jsonl"
    data.write_text("".join(json.dumps({**ROW, "id": f"r{i}"}) + "\n" for i in range(4)))
    out = tmp_path / "sft"
    argv = ["--stage", "sft", "--model_name_or_path", str(tiny_base), "--output_dir", str(out), "--sft_data",
            str(data), "--per_device_train_batch_size", "4", "--report_to", "none", "--save_steps", "1"]
    assert train.main([*argv, "--max_steps", "1"]) == 0
    recorded = json.loads((out / "run_settings.json").read_text())
    assert recorded["sft_mode"] == "full"
    assert "sft_replay" not in recorded  # at its default (rl.stages.common.LATER_SETTINGS): older records resume
    assert train.main([*argv, "--max_steps", "2"]) == 0  # same settings: resumes checkpoint-1, ends at step 2
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    assert train.main([*argv, "--max_steps", "3", "--sft_mode", "chunkwise", "--learning_rate", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert ("holds checkpoints of a run with other settings (learning_rate: 0.003 -> 0.001; sft_mode: 'full' -> "
            "'chunkwise'); use another output_dir, delete it, or pass --resume_from_checkpoint") in err
    assert not (out / "checkpoint-3").exists()
    fresh = tmp_path / "fresh"  # a new output_dir is always fine
    assert train.main([*argv, "--output_dir", str(fresh), "--max_steps", "1", "--sft_mode", "chunkwise"]) == 0


def test_tiered_early_gives_medium_the_skip_prefix_with_its_opening_kept(tmp_path, capsys):
    """sft_completion tiered_early: short the skip prefix, medium the same with its opening chunk kept, long the
    original trace; so short and medium part at the first thinking token and medium and long at the first re-check."""
    opening = "Okay, so I start with 6 and apply 2 operations.\n\n"
    row = {**ROW, "chunks": [opening, *CHUNKS], "skippable": [0, 2],
           "skip_completion": "<think>\n" + CHUNKS[0] + CHUNKS[2] + "\n</think>\n\n" + CONCLUSION,
           "full_completion": "<think>\n" + opening + "".join(CHUNKS) + "\n\nLet me verify.\n</think>\n\n" + CONCLUSION}
    [got] = add_opening_skip([row])
    medium = got["opening_skip_completion"]
    assert medium == "<think>\n" + opening + CHUNKS[0] + CHUNKS[2] + "\n</think>\n\n" + CONCLUSION
    data = rows_dataset([got], "mixed", resolve_tiers(None), field=TIERED_EARLY_COMPLETIONS)
    by_tier = {ex["tier"]: ex["completion"][0]["content"] for ex in data}
    assert by_tier == {"short": row["skip_completion"], "medium": medium, "long": row["full_completion"]}
    first = {t: text.removeprefix("<think>\n")[:4] for t, text in by_tier.items()}
    assert first["short"] != first["medium"] == first["long"]  # short parts at the first token
    assert CHUNKS[1] not in medium and CHUNKS[1] in by_tier["long"]  # medium and long part at the re-check
    kept_opening = {**row, "skippable": [2], "skip_completion": medium}  # an opening that is not skippable
    assert equal_targets(add_opening_skip([row, kept_opening]), TIERED_EARLY_COMPLETIONS) == {
        "short/medium": 1, "medium/long": 0}
    with pytest.raises(ValueError, match=r"row 'r0' has no \['chunks', 'skippable'\]: written by an older"):
        add_opening_skip([{"id": "r0", "conclusion": "c"}])
    path = tmp_path / "pruned.jsonl"
    path.write_text(json.dumps(row) + "\n")
    argv = ["--stage", "sft", "--dry_run", "--budget", "mixed", "--sft_completion", "tiered_early", "--sft_data"]
    assert train.main([*argv, str(path)]) == 0
    bare = tmp_path / "bare.jsonl"  # a pruned file without chunks (an older --stage prune)
    bare.write_text(json.dumps({k: v for k, v in row.items() if k not in ("chunks", "skippable")}) + "\n")
    assert train.main([*argv, str(bare)]) == 2
    assert "has no ['chunks', 'skippable']: written by an older --stage prune, run it again" in capsys.readouterr().err


RETRACTED = "Hmm, wait, that is not right."


def test_drop_retracted_leaves_out_exactly_the_steps_a_trace_takes_back(tmp_path, capsys):
    """drop_retracted: on the task's own traces (make real's knobs: mistakes at twice the default rate), every
    paragraph of kind ``mistake`` goes and nothing else, wherever it stands (first after <think> too, as in a skip
    prefix without its opening); a trace without one is unchanged; only the named fields change."""
    from data.synthetic import SyntheticConfig, Trace
    from data.tier_targets import drop_retracted, tier_rows, without_retracted

    traces = generate("train", 200, seed=5, cfg=SyntheticConfig(max_ops=3, redundancy=2.0, show_wrap=True))
    taken_back = [t for t in traces if any(p.kind == "mistake" for p in t.paragraphs)]
    assert 20 < len(taken_back) < 200  # realistic data has both kinds of trace
    for t in traces:
        kept = [p for p in t.paragraphs if p.kind != "mistake"]
        want = Trace._render("\n\n".join(p.text for p in kept) + "\n", t.conclusion)
        assert without_retracted(t.text, RETRACTED) == want
        assert (want == t.text) == (t not in taken_back)
        # without its opening (a skip prefix), a mistake may be the first paragraph after <think>
        text = Trace._render("\n\n".join(p.text for p in t.paragraphs[1:]) + "\n", t.conclusion)
        assert RETRACTED not in without_retracted(text, RETRACTED)
        assert without_retracted(text, RETRACTED).startswith("<think>\n") and text.endswith(t.conclusion)
    row = {**ROW, "full_completion": taken_back[0].text, "completion": taken_back[0].text}
    [got] = drop_retracted([row], ["full_completion"], RETRACTED)
    assert RETRACTED not in got["full_completion"] and got["completion"] == row["completion"]  # only the named fields
    with pytest.raises(ValueError, match="non-empty phrase"):
        drop_retracted([row], ["completion"], "")
    assert tier_rows([row], "full_completion", RETRACTED) == [got]  # what sft and dpo call
    assert tier_rows([row], "full_completion") == [row]  # no phrase: the rows as they are
    path = tmp_path / "pruned.jsonl"
    path.write_text(json.dumps(row) + "\n")
    argv = ["--stage", "sft", "--dry_run", "--sft_completion", "full", "--sft_data", str(path)]
    assert train.main([*argv, "--drop_retracted", RETRACTED]) == 0
    assert train.main(["--stage", "sft", "--dry_run", "--drop_retracted", RETRACTED]) == 2  # no sft_data: refused
    assert "drop_retracted 'Hmm, wait, that is not right.' applies to SFT targets read from sft_data" in \
        capsys.readouterr().err
    assert train.main([*argv, "--drop_retracted", ""]) == 2


def test_without_retracted_leaves_a_completion_without_a_close_marker_as_it_is():
    from data.tier_targets import without_retracted

    text = "<think>\nOp 1: + 2, so 3 + 2 = 6. Hmm, wait, that is not right.\n\nThe final value is 6."  # truncated
    assert without_retracted(text, RETRACTED) == text


def test_sft_replay_adds_full_traces_of_new_draws_under_the_long_sentence_and_refuses_where_it_cannot_apply(
        tmp_path, caplog, capsys):
    """sft_replay (make real's tier SFT): N fresh task traces, full and without their retracted steps, join the
    tiered examples under the sentence of the tier whose target is the full trace; a set-up where no tier learns the
    full trace, or with no pruned data, is refused before anything runs."""
    import logging

    from data.synthetic import SyntheticConfig
    from data.tier_targets import replay_rows, tier_rows

    cfg = SyntheticConfig(max_ops=3, redundancy=2.0, show_wrap=True)
    traces = generate("train", 40, seed=4, cfg=cfg)
    rows = tier_rows(replay_rows(traces), "full_completion", RETRACTED)
    assert [r["id"] for r in rows] == [t.problem.id for t in traces]
    assert [r["solution"] for r in rows] == [str(t.problem.answer) for t in traces]
    assert all(r["full_completion"].endswith(t.conclusion) for r, t in zip(rows, traces))
    assert sum(r["full_completion"] != t.text for r, t in zip(rows, traces)) > 0  # some steps were taken back
    assert not any(RETRACTED in r["full_completion"] for r in rows)
    data = rows_dataset(rows, "long", resolve_tiers("synthetic_smollm2"), field="full_completion")
    assert set(data["tier"]) == {"long"}
    row = {**ROW, "skip_completion": ROW["completion"], "full_completion": ROW["completion"]}
    path = tmp_path / "pruned.jsonl"
    path.write_text(json.dumps(row) + "\n")
    argv = ["--stage", "sft", "--dry_run", "--sft_data", str(path), "--budget", "mixed", "--sft_replay", "5",
            "--synthetic", "{max_ops: 3, redundancy: 2.0, show_wrap: true}"]
    with caplog.at_level(logging.INFO):
        assert train.main([*argv, "--sft_completion", "tiered_early", "--drop_retracted", RETRACTED]) == 0
    assert "sft_replay: 5 full traces of new train problems under the long sentence (0 repeat a pruned row's" \
        in caplog.text
    assert "SFT on 8 examples: 3 tiered_early pruned-data, 5 replayed (budget mixed)" in caplog.text
    capsys.readouterr()
    allowed = "sft_completion one of: tiered, tiered_early"
    assert train.main([*argv, "--sft_completion", "pruned"]) == 2  # no tier learns the full trace
    assert f"sft_replay 5 needs a positive count, task synthetic, sft_data, sft_mode full and {allowed}" in \
        capsys.readouterr().err
    assert train.main(["--stage", "sft", "--dry_run", "--sft_replay", "5"]) == 2  # no pruned data
    assert "(got task 'synthetic', sft_data None, sft_mode 'full', sft_completion 'pruned')" in capsys.readouterr().err
    assert train.main([*argv, "--sft_completion", "tiered", "--sft_replay", "-1"]) == 2
    assert "sft_replay -1 needs a positive count" in capsys.readouterr().err
    capsys.readouterr()
    assert train.main([*argv, "--sft_completion", "tiered", "--budget", "short"]) == 2  # long is not trained
    assert "sft_replay's traces are learned under the long sentence, which budget 'short' does not train" in \
        capsys.readouterr().err
