"""Scripted generation engines for the prune-stage tests (no model): they answer from the prefilled thinking."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from data.format import last_boxed


@dataclass
class FakeGeneration:
    text: str


class LastValueEngine:
    """Answers with the last ``\\boxed{}`` in the prefilled thinking, else the last value it states (``= N``).

    A stand-in for a model that reads its answer off its reasoning: a prefix is valid when its last stated
    value is the gold answer. ``fail_after``: raise on that many-plus-one-th call (a simulated crash);
    ``delay``: seconds per call (to kill a subprocess mid-run).
    """

    def __init__(self, tokenizer, fail_after: int | None = None, delay: float = 0.0):
        self.tokenizer = tokenizer
        self.fail_after = fail_after
        self.delay = delay
        self.calls: list[int] = []  # batch sizes, one per generate call

    @staticmethod
    def answer(prompt: str) -> str:
        thinking = prompt.rsplit("<think>", 1)[-1].split("</think>")[0]
        boxed = last_boxed(thinking)
        if boxed is not None:
            return boxed
        values = re.findall(r"= (\d+)", thinking)
        return values[-1] if values else "none"

    def generate(self, prompts, params, desc: str = "") -> list[FakeGeneration]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls.append(len(prompts))
        time.sleep(self.delay)
        return [FakeGeneration(self.answer(p) + "}.") for p in prompts]
