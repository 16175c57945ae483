"""data.writer_lock: one live writer per output folder; a dead holder (SIGKILL included) never leaves it locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from data.writer_lock import LOCK_FILE, OutputInUse, WriterLock, released_on_exit

REPO = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from data.writer_lock import WriterLock; "
        "WriterLock(sys.argv[1]); print('held', flush=True); time.sleep(60)")


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that takes the lock on ``folder`` and keeps it (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_holders_pid_until_the_first_releases(tmp_path):
    first = WriterLock(tmp_path / "out")  # creates the folder
    with pytest.raises(OutputInUse) as err:
        WriterLock(tmp_path / "out")
    assert f"pid {os.getpid()}" in str(err.value) and f"kill {os.getpid()}" in str(err.value)
    assert "being written by another live process" in str(err.value)
    first.release()
    with WriterLock(tmp_path / "out"):  # free again
        assert (tmp_path / "out" / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_a_live_holder_in_another_process_refuses_and_its_sigkill_frees_the_folder(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(OutputInUse, match=f"pid {proc.pid}"):
            WriterLock(tmp_path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with WriterLock(tmp_path):  # the kernel dropped the dead process's lock: nothing stale to clean up
        pass


def test_other_folders_do_not_share_a_lock(tmp_path):
    with WriterLock(tmp_path / "a"), WriterLock(tmp_path / "b"):
        assert (tmp_path / "a" / LOCK_FILE).exists() and (tmp_path / "b" / LOCK_FILE).exists()


def test_a_block_gives_up_only_the_locks_taken_inside_it(tmp_path):
    outer = WriterLock(tmp_path / "outer")  # say, a caller's lock around train.main
    with released_on_exit():
        WriterLock(tmp_path / "inner")
    WriterLock(tmp_path / "inner").release()  # free again
    with pytest.raises(OutputInUse):
        WriterLock(tmp_path / "outer")  # still held
    outer.release()


FORK = """
import os, signal, sys, time
from data.writer_lock import WriterLock
lock = WriterLock(sys.argv[1])
ready, started = os.pipe()
pid = os.fork()
if pid == 0:  # a worker forked by datasets.map or a DataLoader, living on
    os.write(started, b"x")  # Python runs in the child: the after-fork hooks have run
    time.sleep(30)
    os._exit(0)
os.read(ready, 1)  # without this wait the parent can re-lock before the child has closed its copy
lock.release()
try:
    WriterLock(sys.argv[1]).release()
    print("free")
except Exception as exc:
    print(f"held: {exc}")
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
"""


def test_a_forked_child_does_not_keep_the_lock_of_its_parent(tmp_path):
    """In a fresh interpreter (pytest's own process holds other libraries' fork handlers and threads)."""
    proc = subprocess.run([sys.executable, "-c", FORK, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.stdout.strip() == "free", proc.stdout + proc.stderr
