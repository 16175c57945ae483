"""DAPO dynamic sampling (``rl.dynamic_sampling``): group selection, merging of TRL's per-round outputs, fresh
batches, options, and a tiny GRPO run that drops zero-variance groups."""

from __future__ import annotations

import json

import pytest
import torch

import rewards.correctness
import train
from tests.grpo_cli import mixed_by_gold, tiny_grpo_argv
from rl.config import ConfigError
from rl.dynamic_sampling import (
    DynamicSamplingArguments,
    choose_groups,
    fresh_batches,
    merge_groups,
    zero_variance_groups,
)


def test_zero_variance_groups():
    assert zero_variance_groups([1, 1, 0, 1, 0, 0, 0.5, 0.5], 2) == [True, False, True, True]
    with pytest.raises(ValueError, match="not whole groups of 3"):
        zero_variance_groups([1, 0], 3)


def test_choose_groups_takes_varied_groups_first_then_tops_up():
    flags = [[True, False], [False, True]]  # round 0: group 1 varied; round 1: group 0 varied
    assert choose_groups(flags, 2) == [(0, 1), (1, 0)]
    assert choose_groups(flags, 3) == [(0, 1), (1, 0), (0, 0)]  # cap reached: a zero-variance group fills in
    with pytest.raises(ValueError, match="4 groups generated, 5 needed"):
        choose_groups(flags, 5)


def test_merge_groups_repads_prompts_left_and_completions_right():
    r0 = {"prompt_ids": torch.tensor([[0, 1, 2], [0, 1, 3], [4, 5, 6], [0, 4, 7]]),
          "prompt_mask": torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1]]),
          "completion_ids": torch.tensor([[8, 9], [8, 0], [9, 9], [7, 0]]),
          "completion_mask": torch.tensor([[1, 1], [1, 0], [1, 1], [1, 0]]),
          "advantages": torch.tensor([0.0, 0.0, 1.0, -1.0]), "num_items_in_batch": torch.tensor(6)}
    r1 = {"prompt_ids": torch.tensor([[1, 2], [1, 2], [3, 3], [3, 3]]),
          "prompt_mask": torch.ones(4, 2, dtype=torch.long),
          "completion_ids": torch.tensor([[5, 5, 5], [6, 0, 0], [5, 0, 0], [5, 0, 0]]),
          "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0]]),
          "advantages": torch.tensor([0.5, -0.5, 0.0, 0.0]), "num_items_in_batch": torch.tensor(6)}
    out = merge_groups([r0, r1], [(0, 1), (1, 0)], group_size=2, pad_token_id=0)
    assert out["prompt_ids"].tolist() == [[4, 5, 6], [0, 4, 7], [0, 1, 2], [0, 1, 2]]
    assert out["prompt_mask"].tolist() == [[1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert out["completion_ids"].tolist() == [[9, 9, 0], [7, 0, 0], [5, 5, 5], [6, 0, 0]]
    assert out["completion_mask"].tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]]
    assert out["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    assert "num_items_in_batch" not in out  # recounted by the trainer over every process
    with pytest.raises(ValueError, match="cannot merge the output key 'pixel_values'"):
        merge_groups([{**r0, "pixel_values": torch.zeros(7, 3)}], [(0, 0)], group_size=2)


def test_fresh_batches_repeat_each_prompt_and_split_ranks():
    it0, it1 = fresh_batches(6, 1, 3, seed=5, rank=0, world=2), fresh_batches(6, 1, 3, seed=5, rank=1, world=2)
    a, b = next(it0), next(it1)
    assert len(a) == len(b) == 3 and len(set(a)) == len(set(b)) == 1 and a[0] != b[0]
    two_passes = [x for _, x in zip(range(6), fresh_batches(6, 2, 1, seed=5))]
    for one_pass in (two_passes[:3], two_passes[3:]):  # every prompt once per pass, then a new shuffle
        assert sorted(i for batch in one_pass for i in batch) == list(range(6))


def test_options_are_checked():
    with pytest.raises(ConfigError, match="max_gen_rounds must be >= 0"):
        DynamicSamplingArguments(dynamic_sampling=True, max_gen_rounds=-1)


def test_grpo_drops_zero_variance_groups_and_logs_the_rounds(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setattr(rewards.correctness, "correctness_scores", mixed_by_gold)
    out = tmp_path / "grpo"
    assert train.main(tiny_grpo_argv(tiny_base, out, "--rewards", "[{name: correctness}]", "--dynamic_sampling", "true",
                                     "--max_gen_rounds", "4", num_train=24, max_steps=3)) == 0
    logged = [h for h in json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
              if "dynamic_sampling/rounds" in h]
    assert len(logged) == 3
    for h in logged:
        assert 1 <= h["dynamic_sampling/rounds"] <= 4
        assert h["dynamic_sampling/extra_rounds"] == h["dynamic_sampling/rounds"] - 1
        assert h["dynamic_sampling/zero_variance_in_loss"] <= h["dynamic_sampling/zero_variance_generated"]
    assert any(h["dynamic_sampling/extra_rounds"] > 0 for h in logged)  # 2 of 3 prompts give no variance


def test_dynamic_sampling_and_refresh_are_alternatives(tmp_path, capsys):
    assert train.main(["--stage", "grpo", "--dynamic_sampling", "true", "--refresh_every", "2", "--num_train", "200",
                       "--refresh_pool", "8", "--dry_run", "true", "--output_dir", str(tmp_path / "x")]) == 2
    assert "alternatives" in capsys.readouterr().err
