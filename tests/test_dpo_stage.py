"""Tier preference pairs (``data.tier_targets.tier_pairs``) and ``--stage dpo`` through train.main: which target is
chosen under which sentence, what TRL's DPOTrainer puts in the loss, bad input refused before anything is written, and a
real run that saves a full model and resumes only with the same settings."""

from __future__ import annotations

import copy
import json
import logging

import pytest

import train
from data.budgets import resolve_tiers
from data.tier_targets import tier_pairs

TIERS = resolve_tiers("synthetic_smollm2")
QUESTION = ("Start with 6. Apply these operations in order, working modulo 10:\nOp 1: + 5.\nOp 2: * 4.\n"
            "What is the final value?")
OPS = "Op 1: + 5, so 6 + 5 = 1.\n\nOp 2: * 4, so 1 * 4 = 4."
END = "\n</think>\n\nThe final value is \\boxed{4}."
ROW = {"id": "r0", "question": QUESTION, "solution": "4",
       "skip_completion": "<think>\n" + OPS + END,
       "completion": "<think>\nOkay, so I start with 6.\n\n" + OPS + END,
       "full_completion": ("<think>\nOkay, so I start with 6.\n\n" + OPS
                           + "\n\nWait, let me double-check Op 2. 1 * 4 = 4." + END)}


def write_rows(path, n: int = 4, **changes) -> str:
    path.write_text("".join(json.dumps({**ROW, **changes, "id": f"r{i}"}) + "\n" for i in range(n)))
    return str(path)


def test_each_tier_prefers_its_own_target_over_its_neighbours_under_its_sentence():
    pairs = tier_pairs([ROW], ["short", "medium", "long"], TIERS)
    got = [(p["tier"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs]
    s, m, l = ROW["skip_completion"], ROW["completion"], ROW["full_completion"]
    # neighbours only (short is never paired with long), both ways round, each under the chosen tier's sentence
    assert got == [("short", s, m), ("medium", m, s), ("medium", m, l), ("long", l, m)]
    for p in pairs:
        assert p["prompt"] == [{"role": "user", "content": f"{QUESTION}\n{TIERS[p['tier']].instruction}"}]
    assert len(tier_pairs([ROW], ["long", "medium"], TIERS)) == 2  # ordered by length whatever the list's order


def test_equal_targets_make_no_pair():
    row = {**ROW, "full_completion": ROW["completion"]}  # pruning kept the whole trace
    assert [p["tier"] for p in tier_pairs([row], ["short", "medium", "long"], TIERS)] == ["short", "medium"]


@pytest.mark.parametrize("names, problem", [
    (["medium"], "fewer than two tiers"), (["medium", "none"], r"tier\(s\) \['none'\] have no target"),
    (["long", "long"], "repeated tiers"),
])
def test_bad_tier_lists_are_named(names, problem):
    with pytest.raises(ValueError, match=f"{problem}.*allowed: short, medium, long"):
        tier_pairs([ROW], names, TIERS)


def test_a_row_without_a_target_is_named():
    row = {k: v for k, v in ROW.items() if k != "skip_completion"}
    with pytest.raises(ValueError, match=r"row 'r0' has no \['skip_completion'\].*skip_chunks: true"):
        tier_pairs([row], ["short", "medium"], TIERS)
    assert len(tier_pairs([row], ["medium", "long"], TIERS)) == 2  # short's target is not needed


def test_the_loss_sees_one_prompt_and_two_targets_that_part_where_medium_stops(smollm2_tokenizer, tmp_path):
    """As DPOTrainer tokenises a medium/long pair with SmolLM2's tokenizer and template: the medium sentence in one
    prompt for both, and the two targets' ids equal up to where medium closes its thinking and long goes on."""
    from trl import DPOConfig, DPOTrainer

    from rl.config import InitArguments
    from rl.tiny_model import build_model

    tok = smollm2_tokenizer
    model = build_model(InitArguments(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2), tok)
    args = DPOConfig(output_dir=str(tmp_path), report_to=[], bf16=False, use_cpu=True, max_length=512,
                     gradient_checkpointing=False)
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args, processing_class=tok,
                         train_dataset=tier_pairs([ROW], ["medium", "long"], TIERS))
    ex = trainer.train_dataset[0]
    assert tok.decode(ex["prompt_ids"]).endswith("Reasoning length: medium.<|im_end|>\n<|im_start|>assistant\n")
    chosen, rejected = ex["chosen_ids"], ex["rejected_ids"]
    shared = next(i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b)
    head, tail = tok.decode(chosen[:shared]), tok.decode(chosen[shared:])
    assert head.rstrip(".\n").endswith("1 * 4 = 4") and tail.lstrip(".\n").startswith("</think>")
    assert tok.decode(rejected[shared:]).lstrip(".\n").startswith("Wait, let me double-check Op 2.")


def test_dpo_stage_refuses_bad_input_before_writing(tmp_path, capsys, caplog):
    out = tmp_path / "dpo"
    base = ["--stage", "dpo", "--output_dir", str(out), "--dry_run"]
    assert train.main([*base, "--sft_data", ""]) == 2
    assert "--stage dpo needs sft_data" in capsys.readouterr().err
    data = write_rows(tmp_path / "pruned.jsonl")
    assert train.main([*base, "--sft_data", data, "--preference_tiers", "[medium, none]"]) == 2
    assert "preference_tiers must list two or more distinct tiers" in capsys.readouterr().err
    same = write_rows(tmp_path / "same.jsonl", full_completion=ROW["completion"])
    assert train.main([*base, "--sft_data", same, "--preference_tiers", "[medium, long]"]) == 2
    assert "no pair, every row's targets of ['medium', 'long'] are equal" in capsys.readouterr().err
    assert train.main([*base, "--sft_data", data, "--drop_retracted", ""]) == 2
    assert "drop_retracted needs a non-empty phrase" in capsys.readouterr().err
    assert train.main([*base, "--sft_data", data, "--sft_completion", "pruned"]) == 2
    assert "pairs the targets of tiered SFT: sft_completion 'pruned'; allowed: tiered, tiered_early" in \
        capsys.readouterr().err
    with caplog.at_level(logging.INFO):
        assert train.main([*base, "--sft_data", data]) == 0
    assert "DPO on 16 tier pairs (short / medium / long, tiered targets)" in caplog.text
    assert "start-up check: context: DPO max_length 512" in caplog.text
    assert not out.exists()


def test_dpo_trains_saves_a_full_model_and_resumes_with_the_same_settings(tiny_base, tmp_path, capsys):
    data = write_rows(tmp_path / "pruned.jsonl")
    out = tmp_path / "dpo"
    argv = ["--stage", "dpo", "--model_name_or_path", str(tiny_base), "--output_dir", str(out), "--sft_data", data,
            "--preference_tiers", "[medium, long]", "--per_device_train_batch_size", "4", "--report_to", "none",
            "--save_steps", "1", "--gradient_checkpointing", "false", "--use_peft", "true", "--lora_r", "4",
            "--lora_target_modules", "all-linear"]
    assert train.main([*argv, "--max_steps", "1"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "adapter" / "adapter_config.json").is_file()
    assert json.loads((out / "lcrl_config.json").read_text())["preference_tiers"] == ["medium", "long"]
    assert train.main([*argv, "--max_steps", "2"]) == 0  # resumes checkpoint-1
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    assert train.main([*argv, "--max_steps", "3", "--preference_tiers", "[short, medium, long]", "--beta", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "beta: 0.1 -> 0.5" in err and "preference_tiers: ['medium', 'long'] -> ['short', 'medium', 'long']" in err
