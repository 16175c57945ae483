"""Pruning on two real processes (``torchrun --nproc_per_node 2``, gloo on the CPU, a scripted engine) against one:
the same lines; every record exactly once after the whole run is killed and relaunched; and a relaunch into a folder
another live run still writes (the workers a killed torchrun leaves running) refused on every rank, before it writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from data.prune_io import read_jsonl
from data.writer_lock import LOCK_FILE, WriterLock
from tests.launch import alive, descendants, kill_all, kill_run, launch, ok, wandb_runs

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


def _started_and_writing(tmp_path: Path, tok: Path, delay: str) -> subprocess.Popen:
    """A two-process prune into ``tmp_path / "out"`` (``delay`` seconds per generate call), once 2 lines are written."""
    proc = launch(tmp_path, 2, [*PRUNE, "--output_dir", str(tmp_path / "out")],
                  env={"DRIVER_PRUNE": str(tok), "DRIVER_DELAY": delay}, background=True)
    log = tmp_path / "out" / "pruned.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    return proc


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
    proc = _started_and_writing(tmp_path, tok, delay="0.4")
    log = out / "pruned.jsonl"
    assert len(kill_run(proc)) >= 3  # torchrun and both workers: the whole job dies, as in a crash
    written = len(read_jsonl(log)) + len(read_jsonl(out / "dropped.jsonl"))
    assert 2 <= written < 14
    ok(launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)}), "prune", 2)
    assert _prune_outputs(out) == reference  # every record exactly once, the same lines


@pytest.mark.slow
def test_a_relaunch_beside_the_workers_of_a_killed_torchrun_is_refused_then_resumes_exactly_once(prune_reference,
                                                                                                  tmp_path):
    """The old failure: SIGKILL to torchrun's process group leaves its workers (own sessions) pruning; a relaunch
    beside them did their records again. Now it is refused, naming the worker that writes."""
    tok, reference = prune_reference
    out = tmp_path / "out"
    proc = _started_and_writing(tmp_path, tok, delay="1.0")  # ~1 min left: the workers outlive the relaunch start
    workers = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun alone
    proc.wait()
    assert len(workers) >= 2 and all(alive(w) for w in workers), "torchrun's workers died with it"
    busy = launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)})
    assert busy.returncode != 0 and busy.stderr.count("is being written by another live process (pid ") == 2
    holder = int(busy.stderr.split("another live process (pid ")[1].split(")")[0])
    assert holder in workers  # the orphaned main worker, still writing
    kill_all(workers)
    ok(launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)}), "prune", 2)
    assert _prune_outputs(out) == reference  # every record exactly once


def test_a_relaunch_while_another_run_writes_is_refused_on_every_rank_before_it_writes(prune_reference, tmp_path):
    tok, _ = prune_reference
    out = tmp_path / "out"
    with WriterLock(out):  # a live earlier run, say the workers a SIGKILL of torchrun left running
        busy = launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)})
    assert busy.returncode != 0 and "stage prune: world size 2 (" in busy.stderr
    assert busy.stderr.count("is being written by another live process") == 2  # both ranks stop, neither waits
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
