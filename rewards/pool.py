"""Grading worker processes with a hard per-item deadline.

math-verify limits its own work with ``signal.alarm``, which only works in the main thread and cannot interrupt
long C-level computations (huge integer powers in sympy, for example). So correctness is graded in worker
processes: each worker is a plain ``python`` subprocess running ``rewards/verify.py`` (it imports math-verify
only, never the training script, so it starts in about half a second), fed jobs over a pipe.
When a job overruns its deadline the worker is killed (SIGKILL), the item scores 0, and a fresh worker replaces
it; a worker that dies (a crash, or its memory limit) is handled the same way. Each worker holds a short queue
of jobs in its pipe (``prefetch``), so it never idles waiting for the parent to be scheduled.

A pool runs ``size`` workers at most and starts them lazily; a call may use fewer (``score(..., workers=1)``
grades sequentially in one worker). Workers that are not grading block on their pipe and use no CPU. Pools are
closed at interpreter exit (``atexit``); a worker also exits by itself when its parent's pipe closes.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<I")
_VERIFY_PY = str(Path(__file__).with_name("verify.py"))
# -c keeps the worker free of the parent's __main__ (which multiprocessing's spawn would re-import);
# the worker gets the parent's sys.path so it finds math-verify wherever the parent does.
_BOOT = (
    "import json, runpy, sys; sys.path[:] = json.loads(sys.argv[1]); sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)

Job = tuple[str, str, str]  # (kind, candidate, gold)


class _Worker:
    """One grading subprocess and its read buffer."""

    def __init__(self, memory_limit_mb: int, script: str = _VERIFY_PY) -> None:
        cmd = [sys.executable, "-c", _BOOT, json.dumps(sys.path), script, str(memory_limit_mb)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True)
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = bytearray()
        self.ready = False
        self.started = time.monotonic()
        self.queue: deque[int] = deque()  # jobs sent and not answered yet, in order; the head is running
        self.head_since = 0.0  # when the head job started

    def send(self, batch: Sequence[tuple[int, Job]], soft_timeout: int, normalization: str) -> None:
        frames = bytearray()
        for seq, job in batch:
            data = pickle.dumps((seq, *job, soft_timeout, normalization), protocol=pickle.HIGHEST_PROTOCOL)
            frames += _HEADER.pack(len(data)) + data
        view = memoryview(frames)
        while view:  # an unbuffered pipe write may be partial
            view = view[self.proc.stdin.write(view) :]

    def read(self) -> list | None:
        """Complete messages now available; ``None`` once the worker has exited (end of file)."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        if not chunk:
            return None
        self.buf += chunk
        messages = []
        while len(self.buf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(self.buf)
            if len(self.buf) < _HEADER.size + n:
                break
            messages.append(pickle.loads(bytes(self.buf[_HEADER.size : _HEADER.size + n])))
            del self.buf[: _HEADER.size + n]
        return messages

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self, grace: float = 1.0) -> None:
        try:
            self.proc.stdin.close()  # end of input: the worker returns from its loop
            self.proc.wait(timeout=grace)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class GraderPool:
    """Up to ``size`` grading workers; ``score`` grades jobs with a hard per-item deadline."""

    def __init__(
        self, size: int, memory_limit_mb: int = 4096, start_timeout: float = 120.0, script: str | None = None
    ) -> None:
        """``script``: the worker program (default ``rewards/verify.py``; tests substitute one that misbehaves)."""
        if size < 1:
            raise ValueError(f"a grading pool needs at least one worker, got size={size}")
        self.size = size
        self.script = script or _VERIFY_PY
        self.memory_limit_mb = memory_limit_mb
        self.start_timeout = start_timeout
        self._workers: list[_Worker | None] = [None] * size
        self.killed = 0  # workers killed for overrunning their deadline (for logs and tests)
        _POOLS.add(self)

    def _slot(self, i: int) -> _Worker:
        w = self._workers[i]
        if w is None or w.proc.poll() is not None:
            w = self._workers[i] = _Worker(self.memory_limit_mb, self.script)
        return w

    def _replace(self, i: int) -> None:
        old = self._workers[i]
        if old is not None:
            old.kill()
        self._workers[i] = _Worker(self.memory_limit_mb, self.script)

    def score(
        self,
        jobs: Sequence[Job],
        timeout: float,
        soft_timeout: int,
        workers: int | None = None,
        normalization: str = "trl",
        prefetch: int = 8,
        slots: Sequence[int] | None = None,
    ) -> list[float]:
        """Scores of ``jobs`` in order, each graded within ``timeout`` seconds (wall clock) or scored 0.

        ``workers``: how many processes to use for this call (at most ``size``); results do not depend on it.
        ``prefetch``: jobs queued in each worker's pipe, so a worker never waits for the parent to be scheduled
        (this matters on a busy machine). A worker grades its queue in order and answers each job as it finishes,
        so the job at the head of its queue is the running one: its deadline runs from the moment the previous
        answer was read (or from sending, for a worker that was idle). On an overrun the head job scores 0, the
        worker is replaced, and the rest of its queue goes back to the pending jobs.
        ``soft_timeout`` and ``normalization`` are passed to ``rewards.verify.score_candidate``.
        ``slots``: which workers to use (indices below ``size``), instead of the first ``workers``.
        """
        n = len(jobs)
        results = [0.0] * n
        if n == 0:
            return results
        if slots is None:
            slots = list(range(max(1, min(workers or self.size, self.size, n))))
        for i in slots:
            self._slot(i)
        pending = deque(range(n))
        done = 0

        def fail_head(i: int, why: str) -> None:
            nonlocal done
            w = self._workers[i]
            if w.queue:
                head = w.queue.popleft()
                results[head] = 0.0
                done += 1
                logger.warning("grading item %d %s: its worker is replaced and the item scores 0", head, why)
                pending.extendleft(reversed(w.queue))
            self._replace(i)

        try:
            while done < n:
                now = time.monotonic()
                for i in slots:  # top up the queue of every ready worker
                    w = self._workers[i]
                    if not w.ready or not pending or len(w.queue) >= prefetch:
                        continue
                    batch = [pending.popleft() for _ in range(min(prefetch - len(w.queue), len(pending)))]
                    try:
                        w.send([(j, jobs[j]) for j in batch], soft_timeout, normalization)
                    except OSError:  # it died between answers: the unsent batch and its queue go back
                        pending.extendleft(reversed(batch))
                        fail_head(i, "was running when its worker died")
                        continue
                    if not w.queue:
                        w.head_since = now
                    w.queue.extend(batch)
                waits = []
                for i in slots:
                    w = self._workers[i]
                    if w.queue:
                        waits.append(w.head_since + timeout - now)
                    elif not w.ready:
                        waits.append(w.started + self.start_timeout - now)
                readable, _, _ = select.select(
                    [self._workers[i].fd for i in slots], [], [], max(0.0, min(waits, default=1.0))
                )
                now = time.monotonic()
                for i in slots:
                    w = self._workers[i]
                    if w.fd not in readable:
                        continue
                    messages = w.read()
                    if messages is None:  # the worker died: a crash or its memory limit
                        if not w.ready:
                            code = w.proc.wait()
                            raise RuntimeError(f"a grading worker exited on start-up (code {code}); see its stderr")
                        fail_head(i, "killed its worker")
                        continue
                    for msg in messages:
                        if msg == ("ready",):
                            w.ready = True
                        elif w.queue and msg[0] == w.queue[0]:
                            results[w.queue.popleft()] = float(msg[1])
                            w.head_since = now
                            done += 1
                for i in slots:
                    w = self._workers[i]
                    if w.queue and now > w.head_since + timeout:
                        self.killed += 1
                        fail_head(i, f"ran past {timeout:.1f}s")
                    elif not w.ready and now > w.started + self.start_timeout:
                        raise RuntimeError(f"a grading worker did not start within {self.start_timeout:.0f}s")
        except BaseException:
            # jobs may still be in flight: kill busy workers so no stale answer reaches a later call
            for i in slots:
                w = self._workers[i]
                if w is not None and w.queue:
                    w.kill()
                    self._workers[i] = None
            raise
        return results

    def warm_up(self, jobs: Sequence[Job], timeout: float, soft_timeout: int, normalization: str = "trl") -> None:
        """Start every worker and have each grade all of ``jobs`` (math-verify's parser gets faster as it sees
        more answers; a long training run reaches that state by itself, a benchmark should start from it)."""
        for i in range(self.size):
            self.score(jobs, timeout, soft_timeout, normalization=normalization, slots=[i])

    def close(self) -> None:
        """Stop all workers (the pool can be used again: workers restart on demand)."""
        for i, w in enumerate(self._workers):
            if w is not None:
                w.close()
                self._workers[i] = None

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w is not None and w.proc.poll() is None]


_POOLS: weakref.WeakSet[GraderPool] = weakref.WeakSet()


@atexit.register
def close_all() -> None:
    """Close every pool (registered with ``atexit``)."""
    for pool in list(_POOLS):
        pool.close()
