"""Score one extracted answer against a gold answer with math-verify; also the grading worker's main loop.

This module imports nothing from the project (only the standard library and math-verify), because it is also
run as a script: each grading worker process (``rewards.pool``) executes it with ``runpy`` and then serves
jobs read from its stdin. Keeping it self-contained keeps worker start-up at about half a second.

Wire protocol (worker side): every message is a 4-byte little-endian length followed by a pickle.
The worker first sends ``("ready",)``; then for each job
``(seq, kind, candidate, gold, soft_timeout, normalization)`` it answers ``(seq, score)``. It exits on end of
input (its parent closed the pipe or died).
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import struct
import sys
import threading

from latex2sympy2_extended import NormalizationConfig
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

logger = logging.getLogger(__name__)

BOXED, TAIL = "boxed", "tail"
KINDS = (BOXED, TAIL)
NORMALIZATIONS = ("trl", "full")

# Stage 1, the boxed answer. "trl": exactly the extraction TRL's ``accuracy_reward`` uses (boxed first, no
# anchor-less matches, unit normalisation only), so both graders give identical rewards. "full": math-verify's
# default normalisation on top (malformed operators such as ``\frac43``, ``\dfrac`` and other nits), which
# TRL's configuration leaves unparsed, so ``\frac43`` against a gold ``\frac{4}{3}`` is 0 under "trl".
BOXED_CONFIGS = {
    "trl": [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(units=True),
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ],
    "full": [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)],
}
BOXED_CONFIG = BOXED_CONFIGS["trl"]
# Stage 2, the fallback when there is no balanced \boxed{...}: any LaTeX or plain expression in the answer's tail.
TAIL_CONFIG = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

MAX_BRACE_DEPTH = 50  # deeper nesting is never a real answer and can blow the parser's recursion
MAX_POWER_DEPTH = 2  # deeper, a^{b^{c^{d}}}: a power tower sympy may try to evaluate for ever
_NUMERIC_TOWER = re.compile(r"\d\s*\*\*\s*\(?\s*\d+\s*\)?\s*\*\*")  # 9**9**9 in a plain-text answer
_MATH_DELIMITER = re.compile(r"(?<!\\)\$")  # an unescaped $ (\$ is a dollar sign inside an answer)
_HEADER = struct.Struct("<I")


def brace_depth(text: str) -> int:
    """Deepest ``{...}`` nesting in ``text`` (unbalanced closing braces are ignored)."""
    depth = deepest = 0
    for ch in text:
        if ch == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "}" and depth:
            depth -= 1
    return deepest


def power_depth(text: str) -> int:
    """Deepest chain of exponents, e.g. 2 for ``9^{9^{9}}``: each ``^`` opened inside an exponent adds one."""
    stack: list[int] = []  # power depth at each open brace
    depth = deepest = 0
    pending = False  # a ^ was just seen: the next brace opens an exponent
    for ch in text:
        if ch == "^":
            pending = True
            deepest = max(deepest, depth + 1)
            continue
        if ch == "{":
            stack.append(depth)
            if pending:
                depth += 1
        elif ch == "}" and stack:
            depth = stack.pop()
        if not ch.isspace():
            pending = False
    return deepest


def too_hard(candidate: str) -> bool:
    """Cheap guard: candidates that are never real answers and can make sympy hang or recurse too deep."""
    return (
        brace_depth(candidate) > MAX_BRACE_DEPTH
        or power_depth(candidate) > MAX_POWER_DEPTH
        or _NUMERIC_TOWER.search(candidate) is not None
    )


_INTEGER = re.compile(r"-?(?:[1-9][0-9]{0,99}|0)")


def quick_score(kind: str, candidate: str, gold: str) -> float | None:
    """The verdict without math-verify when both answers are plain integers (most math answers), else ``None``.

    Only canonical integers (no sign on zero, no leading zeros, no separators, at most 100 digits) take this
    path: math-verify parses them to sympy Integers and compares exactly, so the verdict is integer equality.
    """
    if kind != BOXED:
        return None
    pred = candidate[len("\\boxed{") : -1].strip()
    g = gold.strip()
    if len(g) > 2 and g[0] == "$" and g[-1] == "$" and g.count("$") == 2:
        g = g[1:-1].strip()
    if _INTEGER.fullmatch(pred) and _INTEGER.fullmatch(g):
        return float(pred == g)
    return None


def _timeouts_allowed() -> bool:
    # math-verify's own time limits use signal.alarm, which works only in the main thread
    return threading.current_thread() is threading.main_thread()


@functools.lru_cache(maxsize=4096)
def parse_gold(gold: str, soft_timeout: int | None = None, normalization: str = "trl") -> tuple:
    """math-verify's parse of a gold answer; cached per process (a batch holds each gold once per generation).

    A gold written with ``$...$`` or ``\\boxed{}`` is parsed as TRL parses solutions (math-verify's defaults).
    A bare answer (``3\\sqrt{13}``, ``1,-2``: what ``data.gold`` produces) is parsed as if boxed, with the
    same configuration as the prediction, so a gold answer written back as ``\\boxed{gold}`` always matches
    (parsed bare, math-verify would read ``3\\sqrt{13}`` as 3). When that leaves only a string (``\\frac12``
    under "trl"), the ``$gold$`` reading with math-verify's defaults is added, so ``0.5`` matches it too.
    """
    if _MATH_DELIMITER.search(gold) or "\\boxed" in gold:
        return tuple(parse(gold, parsing_timeout=soft_timeout))
    config = BOXED_CONFIGS[normalization]
    parsed = parse("\\boxed{" + gold + "}", config, extraction_mode="first_match", parsing_timeout=soft_timeout)
    if not any(not isinstance(p, str) for p in parsed):
        parsed += [p for p in parse(f"${gold}$", parsing_timeout=soft_timeout) if not isinstance(p, str)]
    return tuple(parsed)


def gold_parses(gold: str | None, normalization: str = "trl") -> bool:
    """Whether math-verify reads ``gold`` as a mathematical object: ``parse_gold`` (the grader's own reading of
    the gold) gives at least one non-string result; prose such as "Answer is forty three." gives only strings.
    TRL's ``accuracy_reward`` skips such a gold with ``None``; evaluation leaves it out of the accuracy and counts
    it. Plain integers always parse."""
    if gold is None or not str(gold).strip():
        return False
    if _INTEGER.fullmatch(str(gold).strip()):
        return True
    try:
        return any(not isinstance(p, str) for p in parse_gold(str(gold), None, normalization))
    except Exception:  # noqa: BLE001  math-verify's own failures: the gold cannot be read
        return False


def score_candidate(
    kind: str, candidate: str, gold: str, soft_timeout: int | None = 2, normalization: str = "trl"
) -> float:
    """1.0 if ``candidate`` (a ``\\boxed{...}`` answer, or the tail of an answer without one) equals ``gold``.

    ``soft_timeout``: math-verify's own per-step limit in whole seconds (signal based; ignored outside the main
    thread). It cannot stop C-level work: the hard per-item limit is the worker pool's (``rewards.pool``).
    ``normalization``: ``trl`` or ``full`` (see ``BOXED_CONFIGS``). Never raises: any failure scores 0.
    """
    try:
        quick = quick_score(kind, candidate, gold)
        if quick is not None:
            return quick
        if too_hard(candidate):
            return 0.0
        if not _timeouts_allowed():
            soft_timeout = None
        gold_parsed = list(parse_gold(str(gold), soft_timeout, normalization))
        if not gold_parsed:
            return 0.0
        if kind == BOXED:
            config = BOXED_CONFIGS[normalization]
            pred = parse(candidate, config, extraction_mode="first_match", parsing_timeout=soft_timeout)
        else:
            pred = parse(candidate, TAIL_CONFIG, parsing_timeout=soft_timeout)
        return float(bool(pred) and verify(gold_parsed, pred, timeout_seconds=soft_timeout))
    except BaseException as exc:  # noqa: BLE001  (MemoryError, RecursionError, math-verify's timeouts ...)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        logger.debug("grading failed: %r", exc)
        return 0.0


# ----------------------------------------------------------------------------------------------- worker side


def _read_exact(stream, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(fd: int, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _limit_memory(megabytes: int) -> None:
    if megabytes > 0:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(memory_limit_mb: int = 0) -> None:
    """Worker main loop: read jobs from stdin, write scores to the original stdout, until end of input."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills its workers
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints must not corrupt the protocol stream
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    score_candidate(BOXED, "\\boxed{\\frac{1}{2}}", "0.5")  # warm up the parsers before reporting ready
    _limit_memory(memory_limit_mb)
    _send(out_fd, ("ready",))
    stdin = sys.stdin.buffer
    while True:
        header = _read_exact(stdin, _HEADER.size)
        if header is None:
            return
        payload = _read_exact(stdin, _HEADER.unpack(header)[0])
        if payload is None:
            return
        seq, kind, candidate, gold, soft_timeout, normalization = pickle.loads(payload)
        _send(out_fd, (seq, score_candidate(kind, candidate, gold, soft_timeout, normalization)))


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
