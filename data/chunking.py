"""Chunking of a segmented rationale for chunk-wise and skip-thinking training, and the skip-candidate text rule.

Source: Chen et al. 2025, "Chunk-wise training and skip-thinking" (arXiv 2505.18642). The paper compares average
chunking with a search-based chunker but does not publish the search objective; the objective below is ours.

Steps (``data.segment``) are grouped into consecutive chunks; every chunk is a list of step indices.

- ``average``: ``m`` chunks of (nearly) equal length: step ``i`` goes to chunk ``floor(c_i * m / L)``, where ``c_i`` is
  the length before the middle of step ``i`` and ``L`` the total length (empty chunks vanish).
- ``search``: a dynamic program over boundary positions. With ``v_i`` the bag-of-words vector of step ``i`` and
  ``s_g = cos(V_left(g), V_right(g))`` the cohesion of gap ``g`` (between steps ``g`` and ``g+1``; ``V_left``/``V_right``
  sum the vectors of the ``window`` steps on each side), it picks the boundary set ``B`` (``m - 1`` gaps) maximising

      J(B) = sum_{g not in B} s_g  -  sum_{g in B} s_g

  (within-chunk cohesion minus cross-boundary similarity) subject to ``min_len <= len(chunk) <= max_len`` for every
  chunk of two or more steps (a single step longer than ``max_len`` is a chunk of its own). Since
  ``sum_g s_g`` is fixed, this is ``min sum_{g in B} s_g``, solved exactly by ``O(m n W)`` dynamic programming
  (``W``: most steps a chunk may hold). ``m = num_chunks`` or ``round(L / target_len)``; when no partition into
  ``m`` chunks meets the limits, the nearest feasible ``m`` is used, and without any, average chunking.

Lengths are whatever the caller passes (token counts in the stages, characters in tests).

Skip candidates (``novel_content``): a chunk is *non-reasoning* when it states nothing new: every content unit in
it (numbers, with thousands separators dropped, and equations ``a op b = c`` with white space removed) already
occurs in the question or the thinking before it. Re-checks, summaries, restatements, transitions and final
verifications pass this rule; a step that derives a new value does not. ``rl.stages.prune`` then keeps only the
candidates whose removal the small model validates (``data.prune.skip_search``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

METHODS = ("search", "average")
_WORD = re.compile(r"[a-z]+|\d+")
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_OPERAND = r"\w+(?:\.\d+)?"
_EQUATION = re.compile(rf"(?:{_OPERAND}\s*[-+*/×·^]\s*)+{_OPERAND}\s*=\s*-?{_OPERAND}")


@dataclass(frozen=True)
class ChunkConfig:
    """Knobs of the chunkers; lengths in the caller's units (tokens in the stages)."""

    method: str = "search"
    target_len: int = 64
    num_chunks: int | None = None
    min_len: int = 8
    max_len: int = 256
    window: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown chunking method {self.method!r}; allowed: {', '.join(METHODS)}")
        if self.target_len <= 0 or self.window <= 0 or (self.num_chunks is not None and self.num_chunks <= 0):
            raise ValueError("target_len, window and num_chunks must be positive")
        if not 0 <= self.min_len <= self.max_len:
            raise ValueError(f"need 0 <= min_len <= max_len, got {self.min_len}, {self.max_len}")

    @classmethod
    def from_dict(cls, knobs: Mapping[str, Any] | None) -> ChunkConfig:
        """From a recipe's ``chunking:`` mapping; unknown knobs are an error naming the known ones."""
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(knobs or {}) - known)
        if bad:
            raise ValueError(f"unknown chunking knob(s) {bad}; allowed: {', '.join(sorted(known))}")
        return cls(**(knobs or {}))

    def chunk_count(self, lengths: Sequence[int]) -> int:
        m = self.num_chunks or round(sum(lengths) / self.target_len)
        return max(1, min(len(lengths), m))


def token_counts(tokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens of each text under ``tokenizer`` (no special tokens): the step lengths ``chunk_steps`` takes."""
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []


def bag_of_words(text: str) -> Counter:
    return Counter(_WORD.findall(text.lower()))


def cosine(a: Counter, b: Counter) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    return dot / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))


def gap_cohesion(steps: Sequence[str], window: int = 1) -> list[float]:
    """``s_g`` for the ``n - 1`` gaps: cosine of the summed bags of ``window`` steps left and right of the gap."""
    bags = [bag_of_words(s) for s in steps]
    out = []
    for g in range(len(steps) - 1):
        left = sum(bags[max(0, g - window + 1): g + 1], Counter())
        right = sum(bags[g + 1: g + 1 + window], Counter())
        out.append(cosine(left, right))
    return out


def average_chunks(lengths: Sequence[int], num_chunks: int) -> list[list[int]]:
    """Equal-length chunking: step ``i`` goes to chunk ``floor(c_i * m / L)`` (module docstring)."""
    if not lengths:
        return []
    total = sum(lengths) or len(lengths)
    sizes = lengths if sum(lengths) else [1] * len(lengths)
    chunks: dict[int, list[int]] = {}
    before = 0.0
    for i, n in enumerate(sizes):
        c = min(num_chunks - 1, int((before + n / 2) * num_chunks / total))
        chunks.setdefault(c, []).append(i)
        before += n
    return [chunks[c] for c in sorted(chunks)]


def _search(lengths: Sequence[int], cohesion: Sequence[float], m: int, lo: int, hi: int) -> list[list[int]] | None:
    n = len(lengths)
    prefix = [0]
    for x in lengths:
        prefix.append(prefix[-1] + x)

    def ok(i: int, j: int) -> bool:  # chunk of steps i..j-1
        size = prefix[j] - prefix[i]
        return j - i == 1 or lo <= size <= hi

    inf = math.inf
    cost = [[inf] * (n + 1) for _ in range(m + 1)]
    back = [[-1] * (n + 1) for _ in range(m + 1)]
    cost[0][0] = 0.0
    for c in range(1, m + 1):
        for j in range(c, n + 1):
            for i in range(j - 1, c - 2, -1):
                if j - i > 1 and prefix[j] - prefix[i] > hi:
                    break  # longer chunks only grow
                if cost[c - 1][i] == inf or not ok(i, j):
                    continue
                value = cost[c - 1][i] + (cohesion[i - 1] if i > 0 else 0.0)
                if value < cost[c][j]:
                    cost[c][j], back[c][j] = value, i
    if cost[m][n] == inf:
        return None
    bounds, j = [], n
    for c in range(m, 0, -1):
        i = back[c][j]
        bounds.append((i, j))
        j = i
    return [list(range(i, j)) for i, j in reversed(bounds)]


def search_chunks(steps: Sequence[str], lengths: Sequence[int], config: ChunkConfig) -> list[list[int]]:
    """The boundary set maximising ``J`` under the size limits (module docstring)."""
    if not steps:
        return []
    cohesion = gap_cohesion(steps, config.window)
    m = config.chunk_count(lengths)
    for delta in range(len(steps)):
        for cand in (m - delta, m + delta) if delta else (m,):
            if 1 <= cand <= len(steps):
                found = _search(lengths, cohesion, cand, config.min_len, config.max_len)
                if found is not None:
                    return found
    return average_chunks(lengths, m)


def objective(chunks: Sequence[Sequence[int]], cohesion: Sequence[float]) -> float:
    """``J``: cohesion of the gaps inside chunks minus cohesion of the boundary gaps."""
    boundaries = {chunk[0] - 1 for chunk in chunks[1:]}
    return sum(-s if g in boundaries else s for g, s in enumerate(cohesion))


def chunk_steps(steps: Sequence[str], lengths: Sequence[int], config: ChunkConfig | None = None) -> list[list[int]]:
    """Chunks of ``steps`` (lists of step indices, in order, covering every step once) by ``config.method``."""
    config = config or ChunkConfig()
    if len(steps) != len(lengths):
        raise ValueError(f"{len(steps)} steps but {len(lengths)} lengths")
    if config.method == "average":
        return average_chunks(lengths, config.chunk_count(lengths))
    return search_chunks(steps, lengths, config)


def content_units(text: str) -> set[str]:
    """Numbers (thousands separators dropped) and equations (white space removed) stated in ``text``."""
    units = {n.replace(",", "") for n in _NUMBER.findall(text)}
    units |= {re.sub(r"\s+", "", e) for e in _EQUATION.findall(text)}
    return units


def novel_content(chunk: str, context: str) -> set[str]:
    """Content units of ``chunk`` absent from ``context``; empty means the chunk is a skip candidate."""
    return content_units(chunk) - content_units(context)


def skip_candidates(
    question: str, steps: Sequence[str], chunks: Sequence[Sequence[int]], first: bool = False
) -> list[int]:
    """Chunks that state nothing new given the question and what precedes them, never the last one.

    Chen et al. skip *middle* chunks; ``first=True`` also offers the opening chunk. R1 traces open by restating
    the question ("Okay, so I need to find ..."), which states nothing new by this rule either, and binary cutting
    (which keeps a prefix) can never remove it. The last chunk, which reaches the answer, is always kept.
    The context of chunk ``c`` is the question plus all steps before it, skipped or not, so a re-check of a fact
    stated in an earlier (even skippable) chunk still counts as repeated.
    """
    out = []
    for c in range(0 if first else 1, len(chunks) - 1):
        context = question + "".join(steps[i] for chunk in chunks[:c] for i in chunk)
        text = "".join(steps[i] for i in chunks[c])
        if not novel_content(text, context):
            out.append(c)
    return out
