"""Step segmentation of a long chain of thought: paragraphs and discourse markers, with an exact round trip.

A *step* is a contiguous span of the thinking; ``"".join(segment(text))`` is always ``text`` itself, byte for
byte, because every rule below only chooses cut positions and never edits the text. The rules, in order:

1. Paragraphs: a cut after every blank line (a run of two or more newlines); the newlines stay at the end of the
   step they close.
2. Discourse markers: inside a paragraph, a cut before a marker ("Wait", "Alternatively", "Let me check", ...)
   that starts a sentence: at the start of a line, or after ``.``, ``!``, ``?`` or ``:`` and white space
   (the white space stays with the previous step). Markers match case-sensitively on a word boundary, so
   "Waiting" or "wait" mid-sentence never cut.
3. Short steps (fewer than ``min_chars`` non-blank characters) are merged into the next step (a heading such as
   "Looking at the options:" belongs with what follows); a short last step is merged into the previous one.
4. Long steps (more than ``max_chars`` characters) are cut at sentence ends or line breaks into pieces of at most
   ``max_chars`` where such a cut exists; a step without one stays whole.

Markers as natural step boundaries follow Wang et al. 2025 (arXiv 2505.18440) and the R1 trace literature; the
marker list and the size limits are our choice and configurable (``SegmentConfig``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MARKERS: tuple[str, ...] = (
    "Wait",
    "But wait",
    "Hmm",
    "Hold on",
    "Alternatively",
    "Another way",
    "On second thought",
    "Let me check",
    "Let me double-check",
    "Let me double check",
    "Let me verify",
    "Let me confirm",
    "Let me recheck",
    "Let me re-examine",
    "Let me think again",
    "Double-check",
    "To verify",
    "Actually",
)

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")  # a blank line and any white space after it
_SENTENCE_END = re.compile(r"(?<=[.!?])[ \t]+(?=\S)|\n(?=\S)")


@dataclass(frozen=True)
class SegmentConfig:
    """Knobs of ``segment``: paragraph cuts, marker cuts and the step size limits (characters)."""

    paragraphs: bool = True
    markers: tuple[str, ...] = DEFAULT_MARKERS
    min_chars: int = 40
    max_chars: int | None = 1500

    def __post_init__(self) -> None:
        object.__setattr__(self, "markers", tuple(self.markers))
        if self.min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, got {self.min_chars}")
        if self.max_chars is not None and self.max_chars <= max(self.min_chars, 1):
            raise ValueError(f"max_chars must exceed min_chars, got {self.max_chars} <= {self.min_chars}")

    @classmethod
    def from_dict(cls, knobs: Mapping[str, Any] | None) -> SegmentConfig:
        """From a recipe's ``segment:`` mapping; unknown knobs are an error naming the known ones."""
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(knobs or {}) - known)
        if bad:
            raise ValueError(f"unknown segment knob(s) {bad}; allowed: {', '.join(sorted(known))}")
        return cls(**(knobs or {}))

    @property
    def marker_pattern(self) -> re.Pattern | None:
        return _marker_pattern(self.markers)


_PATTERNS: dict[tuple[str, ...], re.Pattern | None] = {}


def _marker_pattern(markers: Sequence[str]) -> re.Pattern | None:
    key = tuple(markers)
    if key not in _PATTERNS:
        if not key:
            _PATTERNS[key] = None
        else:
            words = "|".join(re.escape(m) for m in sorted(key, key=len, reverse=True))
            # a marker at a line start, or after sentence punctuation and blanks (the blanks stay behind)
            _PATTERNS[key] = re.compile(rf"(?:(?<=\n)|(?<=[.!?:][ \t])|(?<=[.!?:][ \t]{{2}}))(?:{words})\b")
    return _PATTERNS[key]


def _cut(text: str, cuts: Sequence[int]) -> list[str]:
    points = [0, *sorted(c for c in set(cuts) if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in zip(points, points[1:]) if b > a]


def _paragraph_cuts(text: str) -> list[int]:
    return [m.end() for m in _PARAGRAPH.finditer(text)]


def _marker_cuts(text: str, pattern: re.Pattern | None) -> list[int]:
    return [] if pattern is None else [m.start() for m in pattern.finditer(text)]


def _merge_short(steps: list[str], min_chars: int) -> list[str]:
    if min_chars <= 0 or len(steps) < 2:
        return steps
    out: list[str] = []
    carry = ""
    for step in steps:
        carry += step
        if len(carry.strip()) >= min_chars:
            out.append(carry)
            carry = ""
    if carry:
        if out:
            out[-1] += carry
        else:
            out.append(carry)
    return out


def _split_long(step: str, max_chars: int) -> list[str]:
    """Greedy: extend a piece to the last sentence end or line break that keeps it within ``max_chars``."""
    if len(step) <= max_chars:
        return [step]
    ends = [m.end() for m in _SENTENCE_END.finditer(step)]
    cuts, start = [], 0
    while len(step) - start > max_chars:
        fitting = [e for e in ends if start < e <= start + max_chars]
        if not fitting:
            later = [e for e in ends if e > start]
            if not later:
                break
            fitting = [later[0]]  # no cut within the limit: take the nearest one after it
        cuts.append(fitting[-1])
        start = fitting[-1]
    return _cut(step, cuts)


def segment(text: str, config: SegmentConfig | None = None) -> list[str]:
    """Split ``text`` (the thinking) into steps; ``"".join(segment(text)) == text`` always holds."""
    config = config or SegmentConfig()
    if not text:
        return []
    cuts = _paragraph_cuts(text) if config.paragraphs else []
    cuts += _marker_cuts(text, config.marker_pattern)
    steps = _merge_short(_cut(text, cuts), config.min_chars)
    if config.max_chars is not None:
        steps = [piece for step in steps for piece in _split_long(step, config.max_chars)]
    return steps


def join_steps(steps: Sequence[str], keep: Sequence[int] | None = None) -> str:
    """The steps (or the ones at the indices ``keep``, in order) joined back into thinking text."""
    if keep is None:
        return "".join(steps)
    return "".join(steps[i] for i in keep)

