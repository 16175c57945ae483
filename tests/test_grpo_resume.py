"""A GRPO run killed (SIGKILL) mid-training resumes from its last checkpoint when the same command is re-run, ends at
max_steps, and with on-policy refresh ends exactly where an uninterrupted run does: same pool, same SFT targets,
same weights (the killed and the resumed runs are real processes; correctness is scripted so that the pool moves at
every refresh whatever the tiny random model writes, while the SFT targets and the weights depend on its rollouts).
A relaunch while the earlier run still writes is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from data.prune_io import read_jsonl
from rl.refresh import POOL_FILE, TARGETS_LOG, TARGETS_SFT
from tests.grpo_cli import tiny_grpo_argv

REPO = Path(__file__).resolve().parents[1]

# Runs train.main in a fresh process; SIGKILLs itself at the end of step KILL_AT (after any checkpoint of that step).
SCRIPT = """
import os, signal, sys
import transformers.trainer as hf
import rl.refresh_trainer

def scripted(texts, solutions, config=None, **kwargs):  # gold 1 mod 3: never solved; else always (every visit refreshes)
    return [0.0 if int(s) % 3 == 1 else 1.0 for s in solutions]

rl.refresh_trainer.correctness_scores = scripted
kill_at = int(os.environ.get("KILL_AT", "0"))
step_end = hf.Trainer._maybe_log_save_evaluate

def maybe_kill(self, *args, **kwargs):
    step_end(self, *args, **kwargs)
    if self.state.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

hf.Trainer._maybe_log_save_evaluate = maybe_kill
import train
sys.exit(train.main(sys.argv[1:]))
"""


def grpo(base: Path, out: Path, refresh: bool, kill_at: int = 0) -> int:
    """One GRPO run of 4 steps (checkpoints at 2 and 4) in its own process; its exit code."""
    args = tiny_grpo_argv(base, out, num_train=12, max_steps=4, save_steps=2)
    if refresh:  # a pool of 4 slots = 2 steps per epoch, refreshed every step: the pool and the epochs both move
        args += ["--refresh_every", "1", "--refresh_pool", "4", "--refresh_targets", "true"]
    env = {**os.environ, "KILL_AT": str(kill_at), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


def step_of(ckpt: Path) -> int:
    return json.loads((ckpt / "trainer_state.json").read_text())["global_step"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_base, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "whole"
    assert grpo(tiny_base, out, refresh=True) == 0
    return out


# one step past checkpoint-2 (its refresh and targets are lost and redone); right after checkpoint-2 is saved
@pytest.mark.parametrize("kill_at", [3, pytest.param(2, marks=pytest.mark.slow)])
def test_killed_refresh_run_resumes_to_the_uninterrupted_result(tiny_base, uninterrupted, tmp_path, kill_at):
    out = tmp_path / "grpo"
    assert grpo(tiny_base, out, refresh=True, kill_at=kill_at) == -signal.SIGKILL
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    assert not (out / "model.safetensors").exists()  # the final save never happened
    killed_steps = {r["step"] for r in read_jsonl(out / TARGETS_LOG)}
    assert max(killed_steps) == kill_at  # targets of step 3 were written before the kill: the resume must drop them
    assert json.loads((out / "checkpoint-2" / POOL_FILE).read_text()) == \
        json.loads((uninterrupted / "checkpoint-2" / POOL_FILE).read_text())

    assert grpo(tiny_base, out, refresh=True) == 0  # the same command again
    assert step_of(out / "checkpoint-4") == 4
    pool, whole = (json.loads((d / "checkpoint-4" / POOL_FILE).read_text()) for d in (out, uninterrupted))
    assert pool == whole and pool["refreshes"] == 4
    assert read_jsonl(out / TARGETS_LOG) == read_jsonl(uninterrupted / TARGETS_LOG)
    assert read_jsonl(out / TARGETS_SFT) == read_jsonl(uninterrupted / TARGETS_SFT)
    mine, theirs = load_file(out / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)


def test_killed_plain_run_resumes_to_max_steps(tiny_base, tmp_path):
    out = tmp_path / "grpo"
    assert grpo(tiny_base, out, refresh=False, kill_at=3) == -signal.SIGKILL
    assert step_of(out / "checkpoint-2") == 2 and not (out / "checkpoint-4").exists()
    assert grpo(tiny_base, out, refresh=False) == 0
    assert step_of(out / "checkpoint-4") == 4 and (out / "model.safetensors").is_file()
    assert not (out / "checkpoint-4" / POOL_FILE).exists()


def test_a_relaunch_while_the_killed_run_still_writes_is_refused_before_it_writes(tiny_base, tmp_path, capsys):
    import train
    from data.writer_lock import LOCK_FILE, WriterLock

    out = tmp_path / "grpo"
    argv = tiny_grpo_argv(tiny_base, out, num_train=12, max_steps=2)
    with WriterLock(out):  # the earlier run, alive (the workers of a torchrun killed with SIGKILL live on)
        assert train.main(argv) == 2
        assert f"being written by another live process (pid {os.getpid()})" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # no settings record, no checkpoint
    assert train.main(argv) == 0  # once it has ended, the same command runs (and frees the folder when done)
    assert (out / "model.safetensors").is_file()
    with WriterLock(out):
        pass
