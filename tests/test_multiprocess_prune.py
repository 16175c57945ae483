"""Pruning on two real processes (``torchrun --nproc_per_node 2``, gloo on the CPU, a scripted engine) against one:
the same lines; every record exactly once after the whole run is killed and relaunched; and a relaunch into a folder
another live run still writes (the workers a killed torchrun leaves running) refused on every rank, before it writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from data.prune_io import read_jsonl
from data.writer_lock import LOCK_FILE, WriterLock
from tests.launch import kill_run, launch, ok, wandb_runs

PRUNE = ["--stage", "prune", "--budget", "mixed", "--task_seed", "0", "--num_train", "14", "--shard_size", "2"]


def _prune_outputs(out: Path) -> tuple[list, list, dict]:
    pruned = sorted(read_jsonl(out / "pruned.jsonl"), key=lambda r: r["id"])
    dropped = sorted(read_jsonl(out / "dropped.jsonl"), key=lambda r: r["key"])
    report = json.loads((out / "report.json").read_text())
    report.pop("last_run")
    return pruned, dropped, report


@pytest.fixture(scope="module")
def prune_reference(tiny_tokenizer, tmp_path_factory) -> tuple[Path, tuple]:
    tmp = tmp_path_factory.mktemp("prune1")
    tok = tmp / "tok"
    tiny_tokenizer.save_pretrained(tok)
    ok(launch(tmp, 1, [*PRUNE, "--output_dir", str(tmp / "out")], env={"DRIVER_PRUNE": str(tok)}), "prune", 1)
    return tok, _prune_outputs(tmp / "out")


def test_prune_on_two_processes_writes_the_one_process_lines(prune_reference, tmp_path):
    tok, reference = prune_reference
    log = ok(launch(tmp_path, 2, [*PRUNE, "--output_dir", str(tmp_path / "out")], wandb="offline",
                    env={"DRIVER_PRUNE": str(tok)}), "prune", 2)
    assert _prune_outputs(tmp_path / "out") == reference
    ids = [r["id"] for r in read_jsonl(tmp_path / "out" / "pruned.jsonl")]
    assert len(ids) == len(set(ids))  # one writer: no line twice
    assert log.count("| records |") <= 1 and len(wandb_runs(tmp_path)) == 1


@pytest.mark.slow
def test_prune_killed_on_two_processes_resumes_every_record_exactly_once(prune_reference, tmp_path):
    tok, reference = prune_reference
    out = tmp_path / "out"
    slow = {"DRIVER_PRUNE": str(tok), "DRIVER_DELAY": "0.4"}
    proc = launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env=slow, background=True)
    log = out / "pruned.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    assert len(kill_run(proc)) >= 3  # torchrun and both workers: the whole job dies, as in a crash
    written = len(read_jsonl(log)) + len(read_jsonl(out / "dropped.jsonl"))
    assert 2 <= written < 14
    ok(launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)}), "prune", 2)
    assert _prune_outputs(out) == reference  # every record exactly once, the same lines


def test_a_relaunch_while_another_run_writes_is_refused_on_every_rank_before_it_writes(prune_reference, tmp_path):
    tok, _ = prune_reference
    out = tmp_path / "out"
    with WriterLock(out):  # a live earlier run, say the workers a SIGKILL of torchrun left running
        busy = launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)})
    assert busy.returncode != 0 and "stage prune: world size 2 (" in busy.stderr
    assert busy.stderr.count("is being written by another live process") == 2  # both ranks stop, neither waits
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
