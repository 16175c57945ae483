"""The R1 completion format: ``<think> thinking </think> conclusion with \\boxed{answer}``.

Parsing helpers shared by data building, rewards and evaluation. Parsing never raises on malformed text:
a missing part comes back as ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ParsedCompletion:
    thinking: str | None  # None when the thinking was never closed
    answer: str  # the text after </think> (or the whole text when there is no </think>)
    boxed: str | None  # content of the last \boxed{...} in the answer part

    @property
    def closed(self) -> bool:
        return self.thinking is not None


def split_thinking(text: str) -> tuple[str | None, str]:
    """``(thinking, answer)``: thinking is the text before the first ``</think>`` (without ``<think>``).

    Accepts both R1 shapes: ``<think>...</think>answer`` and a bare closing tag (``...</think>answer``).
    Returns ``(None, text)`` when the thinking is never closed.
    """
    head, sep, tail = text.partition(THINK_CLOSE)
    if not sep:
        return None, text
    head = head.lstrip()
    if head.startswith(THINK_OPEN):
        head = head[len(THINK_OPEN) :]
    return head, tail


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces; ``None`` if there is none."""
    for marker in ("\\boxed{", "\\fbox{"):
        start = text.rfind(marker)
        if start < 0:
            continue
        i, depth = start + len(marker), 1
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i:j]
        return None  # unbalanced: no usable answer
    return None


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every balanced ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, in order (nested ones
    are inside their outer box and not listed); an unbalanced box ends the search."""
    spans, i = [], 0
    while True:
        starts = [(text.find(m, i), m) for m in ("\\boxed{", "\\fbox{")]
        starts = [(s, m) for s, m in starts if s >= 0]
        if not starts:
            return spans
        start, marker = min(starts)
        depth, j = 1, start + len(marker)
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            return spans
        spans.append((start, j))
        i = j


def parse_completion(text: str) -> ParsedCompletion:
    thinking, answer = split_thinking(text)
    return ParsedCompletion(thinking=thinking, answer=answer, boxed=last_boxed(answer))


def completion_text(completion: str | Sequence[dict] | dict) -> str:
    """The text of a completion in any of TRL's shapes: a string, a message, or a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return "".join(str(m.get("content", "")) for m in completion)
