"""On-policy data refresh: the pool's decisions, its state, the SFT target rows, the options, the sampler, and a
tiny GRPO run through train.main whose correctness is scripted (rl.refresh, rl.refresh_trainer)."""

from __future__ import annotations

import json
import random

import pytest
from trl.trainer.utils import RepeatSampler

import rl.refresh_trainer
import train
from tests.grpo_cli import mixed_by_gold, tiny_grpo_argv
from data.budgets import resolve_tiers
from data.prune_io import read_jsonl
from data.synthetic import generate
from data.tasks import rows_dataset, traces_to_dataset
from rl.config import ConfigError
from rl.refresh import (POOL_FILE, TARGETS_LOG, TARGETS_SFT, RefreshArguments, RefreshPool, Rollout, check_refresh,
                        latest_targets, question_of, target_row)
from rl.refresh_trainer import EpochSeededSampler


def rollouts(slot: int, problem: int, correct: list[int], tokens: list[int] | None = None) -> list[Rollout]:
    tokens = tokens or [10 + i for i in range(len(correct))]
    return [Rollout(slot, problem, float(c), n, n - 2, f"<think>\nt{problem}-{n}\n</think>\n\n\\boxed{{{problem}}}")
            for c, n in zip(correct, tokens)]


def test_refresh_swaps_always_and_never_solved_prompts_for_reserve_ones():
    pool = RefreshPool(num_slots=4, num_problems=10)
    window = (rollouts(0, 0, [1, 1, 1, 1]) + rollouts(1, 1, [0, 0, 0, 0]) + rollouts(2, 2, [1, 0, 0, 1]))
    report = pool.refresh(window, step=5)  # slot 3 (problem 3) was not seen: it stays
    assert pool.slots == [4, 5, 2, 3]
    assert report.retired == [0] and report.recycled == [1] and report.added == [4, 5]
    assert pool.reserve == [6, 7, 8, 9, 1] and pool.retired == [0]  # the never-solved prompt waits at the end
    assert report.pass_rates == {0: 1.0, 1: 0.0, 2: 0.5}
    m = report.metrics
    assert m["pool/size"] == 4 and m["pool/seen"] == 3 and m["pool/replaced"] == 2 and m["pool/reserve"] == 5
    assert m["pool/zero_variance_share"] == pytest.approx(2 / 3) and m["pool/solved_all_share"] == pytest.approx(1 / 3)
    assert m["pool/pass_rate_mean"] == pytest.approx(0.5) and m["pool/pass_rate_std"] == pytest.approx((1 / 6) ** 0.5)
    assert pool.refreshes == 1 and pool.last_step == 5


def test_survivor_and_newcomer_shares_tell_whether_the_selection_works():
    pool = RefreshPool(num_slots=4, num_problems=10)
    first = pool.refresh(rollouts(0, 0, [1, 0]) + rollouts(1, 1, [0, 0]) + rollouts(2, 2, [0, 1])
                         + rollouts(3, 3, [1, 0]), step=1)
    assert "pool/survivor_zero_variance_share" not in first.metrics  # nothing has survived a refresh yet
    assert first.metrics["pool/newcomer_zero_variance_share"] == 0.25 and pool.survivors == {0, 2, 3}
    second = pool.refresh(rollouts(0, 0, [1, 0]) + rollouts(2, 2, [0, 0]) + rollouts(1, 4, [0, 1]), step=2)
    assert second.metrics["pool/survivor_zero_variance_share"] == 0.5  # problems 0 (mixed again) and 2 (not)
    assert second.metrics["pool/newcomer_zero_variance_share"] == 0.0  # problem 4, new in slot 1
    assert pool.survivors == {0, 3, 4}  # 2 left the pool; 3 was not seen and keeps its standing


def test_without_recycling_never_solved_prompts_are_retired_and_an_empty_reserve_keeps_stale_prompts():
    pool = RefreshPool(num_slots=2, num_problems=3, recycle=False)
    report = pool.refresh(rollouts(0, 0, [0, 0]) + rollouts(1, 1, [0, 0]), step=1)
    assert pool.slots == [2, 1] and report.retired == [0] and report.kept_stale == [1] and pool.reserve == []
    recycling = RefreshPool(num_slots=1, num_problems=2)
    recycling.refresh(rollouts(0, 0, [0, 0]), step=1)  # the recycled prompt does not come straight back
    assert recycling.slots == [1] and recycling.reserve == [0]


def test_decisions_do_not_depend_on_the_order_of_the_gathered_rollouts():
    window = rollouts(0, 0, [1, 0, 1]) + rollouts(1, 1, [0, 0, 0]) + rollouts(2, 2, [1, 1], [7, 7])
    results = []
    for seed in range(5):
        shuffled = list(window)
        random.Random(seed).shuffle(shuffled)
        pool = RefreshPool(num_slots=3, num_problems=6)
        report = pool.refresh(shuffled, step=2, want_targets=True)
        results.append((pool.state_dict(), [(t.problem, t.rollout) for t in report.targets]))
    assert all(r == results[0] for r in results)


def test_rollouts_of_a_problem_no_longer_in_the_pool_count_in_the_metrics_only():
    pool = RefreshPool(num_slots=2, num_problems=5)
    pool.slots = [3, 1]  # problem 0 left slot 0 after these rollouts were generated
    report = pool.refresh(rollouts(0, 0, [0, 0]) + rollouts(1, 1, [1, 0]), step=1)
    assert pool.slots == [3, 1] and report.added == [] and report.metrics["pool/seen"] == 2


def test_targets_are_each_prompts_shortest_correct_rollout_and_only_improvements():
    pool = RefreshPool(num_slots=2, num_problems=4)
    first = pool.refresh(rollouts(0, 0, [1, 0, 1], [30, 5, 20]) + rollouts(1, 1, [0, 0]), step=2, want_targets=True)
    assert [(t.problem, t.rollout.tokens, t.pass_rate) for t in first.targets] == [(0, 20, pytest.approx(2 / 3))]
    again = pool.refresh(rollouts(0, 0, [1, 1], [25, 20]), step=4, want_targets=True)
    assert again.targets == []  # 20 tokens is not shorter than the target already written
    better = pool.refresh(rollouts(0, 0, [1, 0], [12, 9]), step=6, want_targets=True)
    assert [t.rollout.tokens for t in better.targets] == [12] and pool.best == {0: 12}


def test_state_round_trips_through_json_and_a_changed_pool_is_refused():
    pool = RefreshPool(num_slots=3, num_problems=8)
    pool.refresh(rollouts(0, 0, [1, 1]) + rollouts(1, 1, [1, 0]), step=3, want_targets=True)
    pool.record(rollouts(2, 2, [0, 1]))
    state = json.loads(json.dumps(pool.state_dict()))
    restored = RefreshPool(num_slots=3, num_problems=8)
    restored.load_state_dict(state)
    assert restored.state_dict() == pool.state_dict() and restored.window == pool.window
    other_rank = RefreshPool(num_slots=3, num_problems=8)
    other_rank.load_state_dict(state, keep_window=False)
    assert other_rank.window == [] and other_rank.slots == pool.slots
    with pytest.raises(ConfigError, match="num_slots 3, this run 4: resume with the same refresh_pool"):
        RefreshPool(num_slots=4, num_problems=8).load_state_dict(state)
    with pytest.raises(ConfigError, match="num_problems 8, this run 9: resume with the same num_train"):
        RefreshPool(num_slots=3, num_problems=9).load_state_dict(state)


def test_target_rows_have_the_pruned_sft_schema_and_feed_the_sft_dataset():
    tiers = resolve_tiers("synthetic")
    traces = generate("train", 3, seed=1)
    problems = traces_to_dataset(traces, "medium", tiers, target=None).to_list()
    questions = [question_of(p, tiers) for p in problems]
    assert questions == [t.problem.question for t in traces]
    pool = RefreshPool(num_slots=2, num_problems=3)
    report = pool.refresh(rollouts(0, 0, [1, 0], [9, 4]) + rollouts(1, 1, [1, 1], [6, 8]), step=4, want_targets=True)
    rows = [target_row(problems[t.problem], questions[t.problem], t, 4) for t in report.targets]
    assert [r["key"] for r in rows] == [f"{problems[0]['id']}@4", f"{problems[1]['id']}@4"]
    first = rows[0]
    assert first["thinking"] == "t0-9" and first["conclusion"] == "\\boxed{0}" and first["chunks"] == ["t0-9"]
    assert first["completion"] == "<think>\nt0-9\n</think>\n\n\\boxed{0}" and first["skippable"] == []
    assert first["solution"] == problems[0]["solution"] and first["pruned_tokens"] == 7 and first["pass_rate"] == 0.5
    data = rows_dataset(rows, "medium", tiers)  # what --stage sft builds from sft_data
    assert data[0]["prompt"] == problems[0]["prompt"] and data[0]["completion"][0]["content"] == first["completion"]
    later = dict(first, key="x@8", completion_tokens=3)
    latest = latest_targets([first, rows[1], later])  # one row per problem, the last written, first-seen order
    assert [r["completion_tokens"] for r in latest] == [3, rows[1]["completion_tokens"]]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"refresh_every": -1}, "refresh_every must be >= 0"), ({"refresh_pool": 0}, "refresh_pool must be >= 1")],
)
def test_bad_options_raise_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RefreshArguments(**kwargs)


def test_pool_must_leave_a_reserve_and_hold_a_generation_batch():
    check_refresh(RefreshArguments(refresh_every=0, refresh_pool=5000), num_train=10, prompts_per_batch=4)  # off
    with pytest.raises(ConfigError, match=r"refresh_pool \(10\) must be < num_train \(10\)"):
        check_refresh(RefreshArguments(refresh_every=2, refresh_pool=10), num_train=10, prompts_per_batch=4)
    with pytest.raises(ConfigError, match=r"refresh_pool \(2\) must be >= the prompts of one generation batch \(4"):
        check_refresh(RefreshArguments(refresh_every=2, refresh_pool=2), num_train=10, prompts_per_batch=4)


def test_cli_rejects_a_pool_without_reserve_before_writing(tmp_path):
    out = tmp_path / "grpo"
    code = train.main(["--stage", "grpo", "--num_train", "8", "--refresh_every", "2", "--refresh_pool", "8",
                       "--output_dir", str(out)])
    assert code == 2 and not out.exists()


def test_epoch_seeded_sampler_repeats_trls_first_epoch_and_restarts_at_any_epoch():
    def make():
        return EpochSeededSampler(RepeatSampler(range(8), mini_repeat_count=2, batch_size=4, shuffle=True, seed=3))

    trl = RepeatSampler(range(8), mini_repeat_count=2, batch_size=4, shuffle=True, seed=3)
    sampler = make()
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    assert epochs[0] == list(trl) and len(sampler) == 16
    assert epochs[1] != epochs[0] and sorted(epochs[1]) == sorted(epochs[0])
    restarted = make()  # a resumed run builds a fresh sampler and starts at epoch 2
    restarted.set_epoch(2)
    assert list(restarted) == epochs[2]



def test_grpo_refreshes_the_pool_logs_it_and_writes_sft_targets(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setattr(rl.refresh_trainer, "correctness_scores", mixed_by_gold)
    out = tmp_path / "grpo"
    assert train.main(tiny_grpo_argv(tiny_base, out, "--refresh_every", "2", "--refresh_pool", "4",
                                     "--refresh_targets", "true", num_train=24, max_steps=6, logging_steps=2)) == 0
    ckpt = out / "checkpoint-6"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    logged = [h for h in state["log_history"] if "pool/size" in h]
    assert [h["step"] for h in logged] == [2, 4, 6] and all(h["pool/size"] == 4 for h in logged)
    assert all(0 <= h["pool/zero_variance_share"] <= 1 and h["pool/pass_rate_std"] >= 0 for h in logged)

    pool = json.loads((ckpt / POOL_FILE).read_text())
    assert pool["global_step"] == 6 and pool["refreshes"] == 3 and pool["window"] == []
    slots, reserve, retired = pool["slots"], pool["reserve"], pool["retired"]
    assert sorted(slots + reserve + retired) == list(range(24))  # every problem is in exactly one place
    problems = traces_to_dataset(generate("train", 24, seed=1), "medium", resolve_tiers("synthetic"),
                                 seed=1, target=None).to_list()
    gold = [int(p["solution"]) % 3 for p in problems]
    gold_of = {p["id"]: g for p, g in zip(problems, gold)}
    assert retired and all(gold[p] != 1 for p in retired)  # all-correct groups retire, never-solved ones do not
    assert any(gold[p] == 1 for p in reserve[-4:])  # never-solved prompts went back to the reserve's end

    log = read_jsonl(out / TARGETS_LOG)
    assert log and all(gold_of[r["id"]] != 1 for r in log)  # never-solved prompts give no target
    assert all(r["step"] in (2, 4, 6) and r["completion"].startswith("<think>\n") for r in log)
    sft = read_jsonl(out / TARGETS_SFT)
    assert len(sft) == len({r["id"] for r in log})
    for row in sft:
        assert row["completion_tokens"] == min(r["completion_tokens"] for r in log if r["id"] == row["id"])
    assert len(rows_dataset(sft, "medium", resolve_tiers("synthetic"))) == len(sft)
