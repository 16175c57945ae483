"""One writer per output folder: a run that appends records holds an exclusive lock on the folder while it writes.

A resumable run skips the records its logs already hold, so two live writers in one folder each do the records the
other has not written yet, and the logs end with records twice. That happens without anyone starting two runs:
``torchrun`` starts its workers in sessions of their own, so a ``SIGKILL`` to torchrun (the OOM killer, ``kill -9``
of the launcher, ``os.killpg`` of its group) leaves the workers running and writing; a relaunch then races them.

``WriterLock`` takes ``flock(LOCK_EX | LOCK_NB)`` on ``<folder>/_writer.lock`` and writes its pid there. The kernel
drops the lock when its holder ends, however it ends (``SIGKILL`` included), so a dead run never leaves a stale lock
to clean up; a live one makes the second writer fail at once, before it writes anything, with the holder's pid.
A forked child (a ``datasets.map`` or DataLoader worker) closes its copy of the file in Python's after-fork hook, so
the lock does not outlive the process that took it (until the child has run that hook, right after the fork, it
still holds a copy). The leading
underscore keeps the file out of a Hub upload (transformers' Trainer ignores ``_*``). ``released_on_exit`` gives up
the locks taken inside a block (``rl.stages.run_stage`` wraps each stage in it, so one process can run stage after
stage into the same folder).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "_writer.lock"
_held: list[WriterLock] = []  # this process's locks, in the order taken


class OutputInUse(RuntimeError):
    """Another live process holds the output folder's writer lock."""


class WriterLock:
    """The exclusive writer lock of ``folder`` (created if missing), held until ``release`` or the process ends."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:  # any failure closes the file: a lock not taken leaves nothing open
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                raise OutputInUse(
                    f"{folder} is being written by another live process (pid {holder}); two writers would do records "
                    f"twice. Wait for it to end or stop it (kill {holder}), then run again. A torchrun killed with "
                    "SIGKILL leaves its workers running: look for them with `pgrep -f train.py`"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        _held.append(self)

    def release(self) -> None:
        """Give the lock up (closing the file drops it); the lock file stays, holding the last writer's pid."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            _held.remove(self)

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def released_on_exit() -> Iterator[None]:
    """Give up, when the block ends (however it ends), every writer lock taken inside it; older ones stay held."""
    before = len(_held)
    try:
        yield
    finally:
        for lock in reversed(_held[before:]):
            lock.release()


def _forget_in_child() -> None:
    """After a fork: the child closes its copies of the lock files (the parent's lock stays, and dies with it)."""
    for lock in _held:
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:  # one bad descriptor must not leave the others open
                pass
            lock._fd = None
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
