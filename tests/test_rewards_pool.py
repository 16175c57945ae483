"""The grading pool: a hung or crashing worker is killed and replaced, the item scores 0, the batch completes."""

from __future__ import annotations

import os
import time

import pytest

from rewards import pool as pool_module
from rewards.pool import GraderPool

# A worker that behaves like rewards/verify.py except on two answers: HANG blocks with signals masked (as C code
# that never returns to the interpreter would: math-verify's alarm cannot stop it), CRASH kills the process.
FAKE_WORKER = """
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("fake_verify", {verify!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
real = mod.score_candidate
def fake(kind, candidate, gold, *args):
    if "HANG" in candidate:
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM, signal.SIGINT, signal.SIGTERM}})
        time.sleep(3600)
    if "CRASH" in candidate:
        os._exit(3)
    return real(kind, candidate, gold, *args)
mod.score_candidate = fake
mod.serve(int(sys.argv[1]))
"""


@pytest.fixture()
def fake_pool(tmp_path):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER.format(verify=pool_module._VERIFY_PY))
    pool = GraderPool(2, script=str(script))
    yield pool
    pool.close()


def jobs(*answers: str) -> list[tuple[str, str, str]]:
    return [("boxed", "\\boxed{" + a + "}", "x+1") for a in answers]


def test_hung_worker_is_killed_and_the_batch_completes(fake_pool):
    batch = jobs("x+1", "HANG", "1+x", "x+2", "HANG", "x + 1")
    start = time.monotonic()
    scores = fake_pool.score(batch, timeout=1.0, soft_timeout=1, workers=2, prefetch=3)
    elapsed = time.monotonic() - start
    assert scores == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert fake_pool.killed == 2
    assert elapsed < 10  # two deadlines, worker start-ups included
    # the replacements work, sequentially too
    assert fake_pool.score(jobs("1+x", "y"), timeout=2.0, soft_timeout=1, workers=1) == [1.0, 0.0]


def test_crashed_worker_scores_zero_and_is_replaced(fake_pool):
    scores = fake_pool.score(jobs("x+1", "CRASH", "1+x", "CRASH", "x+1"), timeout=5.0, soft_timeout=1, workers=2)
    assert scores == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert fake_pool.killed == 0 and len(fake_pool.pids) == 2


def test_close_stops_the_workers_and_the_pool_restarts_on_demand():
    pool = GraderPool(2)
    assert pool.score(jobs("x+1", "2"), timeout=5.0, soft_timeout=1) == [1.0, 0.0]
    pids = pool.pids
    assert len(pids) == 2
    pool_module.close_all()  # what atexit runs
    assert pool.pids == []
    for pid in pids:
        with pytest.raises(OSError):  # reaped: no such process
            os.kill(pid, 0)
    assert pool.score(jobs("1+x"), timeout=5.0, soft_timeout=1) == [1.0]
    pool.close()


def test_empty_batch_starts_nothing():
    pool = GraderPool(2)
    assert pool.score([], timeout=1.0, soft_timeout=1) == [] and pool.pids == []
    with pytest.raises(ValueError, match="at least one worker"):
        GraderPool(0)
