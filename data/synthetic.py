"""The embedded synthetic long-CoT task: multi-step modular arithmetic with R1-style redundant traces.

A problem is a start value and a chain of operations applied in order modulo ``modulus``::

    Start with 7. Apply these operations in order, working modulo 10:
    Op 1: + 5.
    Op 2: * 3.
    Op 3: - 4.
    What is the final value?

Every intermediate value depends on the previous one, so a model that writes the steps out can answer reliably,
while answering with no thinking asks it to compose all operations in one forward pass: clearly less accurate
for a small model. Traces imitate DeepSeek-R1: the *essential* steps (one line per operation) interleaved with
the redundancy real traces carry, each kind with its own probability scaled by ``redundancy``:

- ``restate``: re-reading the problem; ``transition``: "Now the next operation.";
- ``recheck``: "Wait, let me double-check Op 2. ..." repeating a step;
- ``summary``: "After Op 2 the values are ...";
- ``mistake``: a wrong step followed by "Hmm, wait, that is not right." (the correct step then follows);
- ``verify``: restating where the chain ended before closing the thinking.

The generator knows which paragraphs are essential, so it also gives the *oracle* trace (essential steps only)
and its length. With the default knobs the essential steps are 35-50% of the thinking tokens, the share
pruning finds in real R1 traces. Problems are split into train and test by a hash of their content, so the
two splits never share a problem; a seed makes every draw reproducible.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

OPERATORS: dict[str, str] = {"+": "add", "-": "subtract", "*": "multiply"}
SPLITS = ("train", "test")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic task.

    Attributes:
        min_ops, max_ops: number of chained operations per problem (difficulty).
        modulus: values live in ``0 .. modulus-1``.
        max_arg: largest operand (``+``/``-`` take 1..max_arg, ``*`` takes 2..max_arg); it sets the size of the
            arithmetic table a model must learn (3 * modulus * max_arg facts or so), the slowest part for a tiny one.
        redundancy: multiplies the probability of every redundant paragraph; 0 gives oracle traces.
        show_wrap: a fact whose plain result leaves ``0 .. modulus-1`` writes it first (``9 * 3 = 27, which is 7``),
            as a person (and R1) reduces a number; off, the fact gives the reduced value only (``9 * 3 = 7``). For a
            pretrained model, which knows ``9 * 3 = 27`` and must otherwise learn a table of modular facts, and not
            for the embedded tokenizer, whose facts are one token each (``rl/tiny_model.py``).
        test_fraction: share of the problem space (by content hash) reserved for the test split.
    """

    min_ops: int = 2
    max_ops: int = 4
    modulus: int = 10
    max_arg: int = 4
    redundancy: float = 1.0
    test_fraction: float = 0.2
    show_wrap: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got min_ops={self.min_ops}, max_ops={self.max_ops}")
        if self.modulus < 2:
            raise ValueError(f"modulus must be >= 2, got {self.modulus}")
        if not 2 <= self.max_arg < self.modulus:
            raise ValueError(f"need 2 <= max_arg < modulus, got max_arg={self.max_arg}, modulus={self.modulus}")
        if self.redundancy < 0:
            raise ValueError(f"redundancy must be >= 0, got {self.redundancy}")
        if not isinstance(self.show_wrap, bool):
            raise ValueError(f"show_wrap must be true or false, got {self.show_wrap!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


# Base probability of each redundant paragraph kind at redundancy = 1.
REDUNDANCY_RATES: dict[str, float] = {
    "restate": 0.5,
    "transition": 0.2,
    "recheck": 0.3,
    "summary": 0.15,
    "mistake": 0.1,
    "verify": 0.5,
}


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]
    modulus: int

    @property
    def id(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        return f"{self.start}|{' '.join(f'{o}{a}' for o, a in self.ops)}|{self.modulus}"

    @property
    def question(self) -> str:
        ops = "".join(f"Op {i}: {op} {arg}.\n" for i, (op, arg) in enumerate(self.ops, start=1))
        return (
            f"Start with {self.start}. Apply these operations in order, working modulo {self.modulus}:\n"
            f"{ops}What is the final value?"
        )

    def values(self) -> list[int]:
        """The start value followed by the value after each operation."""
        values = [self.start]
        for op, arg in self.ops:
            values.append(apply_op(values[-1], op, arg, self.modulus))
        return values

    @property
    def answer(self) -> int:
        return self.values()[-1]


def plain_result(value: int, op: str, arg: int) -> int:
    """``value op arg`` before reducing it modulo anything."""
    if op == "+":
        return value + arg
    if op == "-":
        return value - arg
    if op == "*":
        return value * arg
    raise ValueError(f"unknown operator {op!r}; allowed: {', '.join(OPERATORS)}")


def apply_op(value: int, op: str, arg: int, modulus: int) -> int:
    return plain_result(value, op, arg) % modulus


@dataclass
class Paragraph:
    text: str
    kind: str  # "step" (essential) or one of REDUNDANCY_RATES

    @property
    def essential(self) -> bool:
        return self.kind == "step"


@dataclass
class Trace:
    """An R1-style trace: thinking paragraphs, then a short conclusion with the boxed answer."""

    problem: Problem
    paragraphs: list[Paragraph]
    conclusion: str = field(default="")
    show_wrap: bool = False  # how its facts were written (SyntheticConfig): a re-written trace writes them alike

    @property
    def thinking(self) -> str:
        return "\n\n".join(p.text for p in self.paragraphs) + "\n"

    @property
    def oracle_thinking(self) -> str:
        return "\n\n".join(p.text for p in self.paragraphs if p.essential) + "\n"

    @staticmethod
    def _render(thinking: str, conclusion: str) -> str:
        return f"{THINK_OPEN}\n{thinking}{THINK_CLOSE}\n\n{conclusion}"

    @property
    def text(self) -> str:
        return self._render(self.thinking, self.conclusion)

    @property
    def oracle_text(self) -> str:
        return self._render(self.oracle_thinking, self.conclusion)


def _fact(a: int, op: str, arg: int, result: int, show_wrap: bool) -> str:
    """``a op arg = result``; with ``show_wrap`` and a plain result other than ``result``, the plain one first."""
    plain = plain_result(a, op, arg)
    if show_wrap and plain != result:
        return f"{a} {op} {arg} = {plain}, which is {result}"
    return f"{a} {op} {arg} = {result}"


def _step(i: int, a: int, op: str, arg: int, result: int, show_wrap: bool = False) -> str:
    # The step repeats the question's own words ("Op 2: * 3"), as R1 quotes the problem it works on.
    return f"Op {i}: {op} {arg}, so {_fact(a, op, arg, result, show_wrap)}."


def make_trace(
    problem: Problem,
    rng: random.Random,
    redundancy: float = 1.0,
    rates: Mapping[str, float] | None = None,
    show_wrap: bool = False,
) -> Trace:
    """Write an R1-style trace for ``problem``; redundant paragraphs are drawn from ``rng``.

    ``show_wrap``: facts that wrap around the modulus write their plain result first (``SyntheticConfig``). A mistake
    writes a wrong reduced value only.

    ``rates`` replaces ``REDUNDANCY_RATES`` (a kind it leaves out is never drawn); the draws from ``rng`` are the
    same whatever the rates, so a trace differs from another rate's only where a probability does.
    """
    rates = REDUNDANCY_RATES if rates is None else rates

    def draw(kind: str) -> bool:
        return rng.random() < min(1.0, rates.get(kind, 0.0) * redundancy)

    m, values = problem.modulus, problem.values()
    paras: list[Paragraph] = []
    if draw("restate"):
        paras.append(
            Paragraph(
                f"Okay, so I start with {problem.start} and apply {len(problem.ops)} operations in order, "
                f"working modulo {m}.",
                "restate",
            )
        )
    for i, (op, arg) in enumerate(problem.ops, start=1):
        a, result = values[i - 1], values[i]
        if i > 1 and draw("transition"):
            paras.append(Paragraph(rng.choice(["Now the next operation.", "Okay, moving on."]), "transition"))
        if draw("mistake"):
            wrong = (result + rng.randrange(1, m)) % m
            paras.append(Paragraph(f"{_step(i, a, op, arg, wrong)} Hmm, wait, that is not right.", "mistake"))
        paras.append(Paragraph(_step(i, a, op, arg, result, show_wrap), "step"))
        if draw("recheck"):
            fact = _fact(a, op, arg, result, show_wrap)
            paras.append(Paragraph(f"Wait, let me double-check Op {i}. {fact}. Yes, that is right.", "recheck"))
        if i > 1 and draw("summary"):
            paras.append(Paragraph(f"After Op {i} the values are {', '.join(map(str, values[: i + 1]))}.", "summary"))
    if draw("verify"):
        # R1's closing check restates where the chain ended. Re-running steps here asks for values other than the
        # one just written, against the carry-forward rule of every other paragraph, and each seed failed at a
        # different re-run: the whole chain (begun from the last result, continued past the last operation, the
        # wrong operation where a value repeated) or the last step (its result taken as its input).
        paras.append(Paragraph(f"Let me verify the result once more. Op {len(problem.ops)} gave {values[-1]}, and "
                               f"that was the last operation. Good, the result is {values[-1]}.", "verify"))
    conclusion = f"The final value is \\boxed{{{problem.answer}}}."
    return Trace(problem=problem, paragraphs=paras, conclusion=conclusion, show_wrap=show_wrap)


def split_of(problem: Problem, test_fraction: float) -> str:
    """``train`` or ``test``, decided by a hash of the problem's content (never by draw order)."""
    bucket = int(hashlib.sha256(problem.key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def _random_problem(rng: random.Random, cfg: SyntheticConfig) -> Problem:
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    ops = []
    for _ in range(n_ops):
        op = rng.choice(list(OPERATORS))
        # Multiplying by 0 or 1, or adding 0, makes a step trivial: "*" draws from 2.., the others from 1..
        arg = rng.randint(2 if op == "*" else 1, cfg.max_arg)
        ops.append((op, arg))
    return Problem(start=rng.randrange(cfg.modulus), ops=tuple(ops), modulus=cfg.modulus)


def iter_problems(split: str, seed: int, cfg: SyntheticConfig) -> Iterator[Problem]:
    """Distinct problems of ``split`` in a reproducible order for ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    rng = random.Random(f"{seed}-{split}")
    seen: set[str] = set()
    misses = 0
    while True:
        p = _random_problem(rng, cfg)
        if p.key in seen or split_of(p, cfg.test_fraction) != split:
            misses += 1
            if misses > 100_000:
                raise ValueError(
                    f"the synthetic {split} split has only {len(seen)} distinct problems with min_ops={cfg.min_ops}, "
                    f"max_ops={cfg.max_ops}, modulus={cfg.modulus}, max_arg={cfg.max_arg}: ask for fewer (num_train / "
                    "num_test) or widen the task (max_ops, modulus, max_arg)"
                )
            continue
        misses = 0
        seen.add(p.key)
        yield p


def generate(split: str, n: int, seed: int = 0, cfg: SyntheticConfig | None = None) -> list[Trace]:
    """``n`` problems of ``split`` with one R1-style trace each, reproducible for ``seed``."""
    cfg = cfg or SyntheticConfig()
    trace_rng = random.Random(f"{seed}-{split}-traces")
    problems = iter_problems(split, seed, cfg)
    return [make_trace(next(problems), trace_rng, cfg.redundancy, show_wrap=cfg.show_wrap) for _ in range(n)]
