"""Eval, SFT and GRPO on two real processes (``torchrun --nproc_per_node 2``, gloo on the CPU; ``tests.launch``),
against the one-process run: the same eval rows, group rewards equal to those of the whole groups, the same refresh
decisions on every rank and as with one process, one writer and one W&B run. Pruning: ``test_multiprocess_prune``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from data.prune_io import read_jsonl
from rl.refresh import POOL_FILE
from tests.launch import TIERS, launch, ok, wandb_runs


# --- eval ---
def test_eval_on_two_processes_gives_the_one_process_rows(tiny_base, tmp_path):
    common = ["--stage", "eval", "--models", f"tiny={tiny_base}", "--num_test", "7", "--max_new_tokens", "12",
              "--tiers", TIERS, "--batch_size", "4", "--stop_tau", "1.0", "0.3", "--think_caps", "4",
              "--num_samples", "2", "--temperature", "1.0"]
    one, two = tmp_path / "one", tmp_path / "two"
    count = {"DRIVER_COUNT": "1"}
    ok(launch(one, 1, [*common, "--output_dir", str(one / "eval")], env=count), "eval", 1)
    log = ok(launch(two, 2, [*common, "--output_dir", str(two / "eval")], wandb="offline", env=count), "eval", 2)
    prompts = [sum(map(int, (d / "driver_out" / f"prompts-rank{r}.txt").read_text().split()))
               for d, r in ((one, 0), (two, 0), (two, 1))]
    assert prompts[1] > 0 and prompts[2] > 0 and prompts[1] + prompts[2] == prompts[0]  # split, each once
    rows = [json.loads((d / "eval" / "results.json").read_text())["rows"] for d in (one, two)]
    drop = {"seconds", "tokens_per_s", "path"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[0]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rows[1]]
    assert [r["n"] for r in rows[1] if r["mode"] != "data"] == [7] * 4  # every problem once, sampled twice
    samples = [json.loads((d / "eval" / "samples.json").read_text()) for d in (one, two)]
    assert samples[0] == samples[1]
    assert log.count("results written to") == 1 and log.count("| model | benchmark |") == 1  # one writer
    assert len(wandb_runs(two)) == 1


# --- sft ---
SFT = ["--stage", "sft", "--num_train", "8", "--max_steps", "2", "--learning_rate", "1e-3", "--save_steps", "1",
       "--logging_steps", "1", "--max_length", "96", "--use_cpu", "true", "--seed", "0", "--data_seed", "0"]


@pytest.mark.slow
def test_sft_on_two_processes_matches_one(tiny_base, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    ok(launch(one, 1, [*SFT, "--model_name_or_path", str(tiny_base), "--output_dir", str(one / "sft"),
                       "--per_device_train_batch_size", "4", "--report_to", "none"]), "sft", 1)
    ok(launch(two, 2, [*SFT, "--model_name_or_path", str(tiny_base), "--output_dir", str(two / "sft"),
                       "--per_device_train_batch_size", "2", "--report_to", "wandb"], wandb="offline"), "sft", 2)
    a, b = (load_file(d / "sft" / "model.safetensors") for d in (one, two))
    assert a.keys() == b.keys()
    # the same 4 examples per step, split over two processes and averaged by DDP: the same update up to rounding
    assert all((a[k] - b[k]).abs().max() < 1e-4 for k in a)
    assert (two / "sft" / "lcrl_config.json").is_file() and (two / "sft" / "run_settings.json").is_file()
    assert len(wandb_runs(two)) == 1


# --- grpo ---
GRPO = ["--stage", "grpo", "--num_train", "12", "--max_steps", "4", "--save_steps", "2", "--num_generations", "4",
        "--max_completion_length", "12", "--logging_steps", "1", "--use_cpu", "true", "--grading", "{workers: 0}",
        "--rewards", "[{name: correctness, weight: 1.0}, {name: kimi, weight: 0.5}]",
        "--refresh_every", "1", "--refresh_pool", "4", "--temperature", "1.0"]


def test_grpo_layout_that_splits_groups_is_refused(tiny_base, tmp_path):
    args = [*GRPO, "--model_name_or_path", str(tiny_base), "--output_dir", str(tmp_path / "g"), "--dry_run", "true"]
    bad = launch(tmp_path, 2, [*args, "--per_device_train_batch_size", "6"])
    assert bad.returncode != 0
    assert "per_device_train_batch_size x steps_per_generation = 6 x 1 = 6" in bad.stderr
    assert "set per_device_train_batch_size to a multiple of 4" in bad.stderr
    assert "stage grpo: world size 2 (" in bad.stderr  # (per_device_train_batch_size 4 runs: grpo_pair below)


SCRIPTED = {"DRIVER_GRPO": "1"}  # scripted correctness for the pool, kimi's rewards and the refreshes recorded


def _kimi_calls(out: Path, rank: int) -> list[dict]:
    return read_jsonl(out / f"kimi-rank{rank}.jsonl")


def grpo_run(tmp: Path, nproc: int, tiny_base: Path, kill_at: int = 0, wandb: bool = False):
    per_device = "8" if nproc == 1 else "4"  # the same 2 prompts x 4 completions per step
    args = [*GRPO, "--model_name_or_path", str(tiny_base), "--output_dir", str(tmp / "g"),
            "--per_device_train_batch_size", per_device, "--report_to", "wandb" if wandb else "none"]
    return launch(tmp, nproc, args, wandb="offline" if wandb else "disabled",
                  env={**SCRIPTED, "DRIVER_KILL_AT": str(kill_at)})


@pytest.fixture(scope="module")
def grpo_pair(tiny_base, tmp_path_factory) -> tuple[Path, Path]:
    """GRPO with kimi and refresh, 4 steps (checkpoints at 2 and 4), on one process and on two."""
    one, two = tmp_path_factory.mktemp("grpo1"), tmp_path_factory.mktemp("grpo2")
    ok(grpo_run(one, 1, tiny_base), "grpo", 1)
    ok(grpo_run(two, 2, tiny_base, wandb=True), "grpo", 2)
    return one, two


def _pool(run: Path, step: int, window: bool = False) -> dict:
    pool = json.loads((run / "g" / f"checkpoint-{step}" / POOL_FILE).read_text())
    if not window:
        pool.pop("window")
    return pool


@pytest.mark.slow
def test_grpo_with_kimi_and_refresh_on_two_processes(grpo_pair):
    from rewards.group import Kimi, group_indices
    from rewards.registry import GradingConfig, RewardContext

    one, two = grpo_pair
    # group rewards: every call holds whole groups, and the rewards equal those of one call over both ranks
    calls = [_kimi_calls(two / "driver_out", r) for r in (0, 1)]
    assert len(calls[0]) == len(calls[1]) == 4
    kimi = Kimi(RewardContext(grading=GradingConfig(workers=0)))  # one process, one call over whole groups
    for c0, c1 in zip(*calls):
        for c in (c0, c1):
            assert [len(g) for g in group_indices(c["prompts"], c["id"])] == [4]
        both = {k: c0[k] + c1[k] for k in ("prompts", "completions", "completion_ids", "solution", "id")}
        whole = kimi(both["prompts"], both["completions"], completion_ids=both["completion_ids"],
                     solution=both["solution"], id=both["id"])
        assert whole == c0["rewards"] + c1["rewards"]
    # refresh: the same decisions on both ranks, and as with one process (correctness is scripted)
    pools = [read_jsonl(two / "driver_out" / f"pool-rank{r}.jsonl") for r in (0, 1)]
    assert pools[0] == pools[1] == read_jsonl(one / "driver_out" / "pool-rank0.jsonl")
    assert len(pools[0]) == 4 and any(p["added"] for p in pools[0])
    assert _pool(one, 4) == _pool(two, 4)
    assert (two / "g" / "model.safetensors").is_file() and len(wandb_runs(two)) == 1  # one writer, one W&B run


@pytest.mark.slow
def test_grpo_killed_on_two_processes_resumes_to_the_uninterrupted_run(grpo_pair, tiny_base, tmp_path):
    _, whole = grpo_pair
    killed = grpo_run(tmp_path, 2, tiny_base, kill_at=3)
    assert killed.returncode != 0 and "stage grpo: world size 2 (" in killed.stderr
    assert (tmp_path / "g" / "checkpoint-2").is_dir() and not (tmp_path / "g" / "checkpoint-4").exists()
    ok(grpo_run(tmp_path, 2, tiny_base), "grpo", 2)  # the same command again: resumes from checkpoint-2
    assert _pool(tmp_path, 2, window=True) == _pool(whole, 2, window=True)
    assert _pool(tmp_path, 4, window=True) == _pool(whole, 4, window=True)
    mine, theirs = load_file(tmp_path / "g" / "model.safetensors"), load_file(whole / "g" / "model.safetensors")
    assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)
    # the resume guard on two processes: another learning rate into the same output_dir is refused by every rank
    other = launch(tmp_path, 2, [*GRPO, "--model_name_or_path", str(tiny_base), "--output_dir", str(tmp_path / "g"),
                                 "--per_device_train_batch_size", "4", "--report_to", "none", "--learning_rate", "0.5"])
    assert other.returncode != 0 and "other settings (learning_rate:" in other.stderr
