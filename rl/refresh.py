"""On-policy data refresh for GRPO: a fixed pool of prompt slots whose contents follow the policy.

GRPO learns nothing from a prompt group whose rollouts all score the same (zero reward variance): a prompt the
policy always solves, or never does. Every ``refresh_every`` steps the pool is refreshed from the policy's own
rollouts since the last refresh:

- each pool prompt seen in that window gets its pass rate (share of correct rollouts);
- prompts with pass rate 1 (always solved) are retired; prompts with pass rate 0 (never solved) go back to the
  end of the reserve (``refresh_recycle``: they may become solvable later) or are retired too;
- their slots take fresh problems from the head of the reserve: the problems of the task's train split beyond the
  first ``refresh_pool`` (``num_train`` problems in all), held back from the initial pool;
- with ``refresh_targets``, each prompt's shortest correct rollout, when shorter than any written before for that
  problem, becomes a new pruned SFT target (``target_row``: the row schema of ``--stage prune``'s ``pruned.jsonl``).

The number of slots never changes, so TRL's ``RepeatSampler`` stays valid; the trainer resolves a slot to its
current problem when the generation batch is built (``rl.refresh_trainer``). Decisions are a deterministic
function of the gathered rollouts (no random numbers), so every rank makes the same one and a resumed run makes the
one an uninterrupted run would. ``RefreshPool.state_dict`` is what a checkpoint saves.

This module is pure Python (no torch): the options, the pool and its decisions, and the target rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from data.budgets import tier_instruction
from data.format import split_thinking
from data.traces import render_completion
from rl.config import ConfigError

STATE_VERSION = 1
TARGETS_LOG = "refresh_targets.jsonl"  # every improvement, append-only (crash-safe)
TARGETS_SFT = "refresh_sft.jsonl"  # one row per problem, its shortest correct rollout: usable as sft_data
POOL_FILE = "refresh_pool.json"  # the pool state, in every checkpoint folder


@dataclass
class RefreshArguments:
    """Options of the on-policy data refresh of ``--stage grpo`` (module docstring)."""

    refresh_every: int = field(default=0, metadata={"help": "Refresh the prompt pool every N steps (0: off)."})
    refresh_pool: int = field(
        default=64,
        metadata={"help": "Pool slots: the first N train problems; the rest of num_train is the reserve."},
    )
    refresh_targets: bool = field(
        default=False,
        metadata={"help": "Write each prompt's shortest correct rollout as a pruned SFT target "
                  f"({TARGETS_LOG}, and one row per problem in {TARGETS_SFT})."},
    )
    refresh_recycle: bool = field(
        default=True, metadata={"help": "Never-solved prompts go back to the end of the reserve (else retired)."}
    )

    def __post_init__(self) -> None:
        if self.refresh_every < 0:
            raise ConfigError(f"refresh_every must be >= 0 (0: off), got {self.refresh_every}")
        if self.refresh_pool < 1:
            raise ConfigError(f"refresh_pool must be >= 1 slot, got {self.refresh_pool}")

    @property
    def enabled(self) -> bool:
        return self.refresh_every > 0


def check_refresh(args: RefreshArguments, num_train: int, prompts_per_batch: int) -> None:
    """Cross-checks with the run's other options; ``ConfigError`` names the bad value and the allowed range."""
    if not args.enabled:
        return
    if args.refresh_pool >= num_train:
        raise ConfigError(f"refresh_pool ({args.refresh_pool}) must be < num_train ({num_train}): the problems "
                          "beyond the pool are the reserve that refreshes it")
    if args.refresh_pool < prompts_per_batch:
        raise ConfigError(f"refresh_pool ({args.refresh_pool}) must be >= the prompts of one generation batch "
                          f"({prompts_per_batch} = generation_batch_size / num_generations)")


@dataclass(frozen=True)
class Rollout:
    """One completion's outcome, as recorded by the trainer (JSON-able through ``as_list``)."""

    slot: int
    problem: int
    correct: float
    tokens: int
    thinking_tokens: int
    text: str | None = None

    def as_list(self) -> list:
        return [self.slot, self.problem, self.correct, self.tokens, self.thinking_tokens, self.text]

    @classmethod
    def from_list(cls, values: Sequence) -> Rollout:
        return cls(int(values[0]), int(values[1]), float(values[2]), int(values[3]), int(values[4]), values[5])


@dataclass
class Target:
    """A prompt's shortest correct rollout of one refresh window."""

    problem: int
    rollout: Rollout
    pass_rate: float


@dataclass
class RefreshReport:
    """What one refresh saw and did; ``metrics`` are logged under ``pool/``."""

    step: int
    pass_rates: dict[int, float]
    retired: list[int]
    recycled: list[int]
    added: list[int]
    kept_stale: list[int]  # stale problems that stayed because the reserve was empty
    targets: list[Target]
    metrics: dict[str, float]


class RefreshPool:
    """Slots, reserve and the rollouts of the current window; see the module docstring.

    Problems are indices into the run's train split (``0 .. num_problems - 1``); slot ``i`` starts with problem
    ``i`` and the reserve with problems ``num_slots ..`` in order.
    """

    def __init__(self, num_slots: int, num_problems: int, recycle: bool = True) -> None:
        if not 0 < num_slots < num_problems:
            raise ValueError(f"need 0 < num_slots < num_problems, got {num_slots} and {num_problems}")
        self.num_slots, self.num_problems, self.recycle = num_slots, num_problems, recycle
        self.slots: list[int] = list(range(num_slots))
        self.reserve: list[int] = list(range(num_slots, num_problems))
        self.retired: list[int] = []
        self.window: list[Rollout] = []  # this rank's rollouts since the last refresh
        self.best: dict[int, int] = {}  # problem -> tokens of the shortest correct rollout written as a target
        self.survivors: set[int] = set()  # problems seen with mixed results and kept at the last refresh
        self.refreshes = 0
        self.last_step = 0

    def problem_of(self, slot: int) -> int:
        return self.slots[slot]

    def record(self, rollouts: Iterable[Rollout]) -> None:
        self.window.extend(rollouts)

    def take_window(self) -> list[Rollout]:
        """This rank's window, emptied (the caller gathers it from every rank and passes it to ``refresh``)."""
        window, self.window = self.window, []
        return window

    def refresh(self, rollouts: Sequence[Rollout], step: int, want_targets: bool = False) -> RefreshReport:
        """Swap stale prompts for reserve ones, given every rank's rollouts of the window (order-independent)."""
        by_problem: dict[int, list[Rollout]] = {}
        for r in sorted(rollouts, key=lambda r: (r.problem, r.slot, r.tokens, r.text or "", r.correct)):
            by_problem.setdefault(r.problem, []).append(r)
        pass_rates = {p: statistics.fmean(r.correct for r in rs) for p, rs in by_problem.items()}
        current = {p: slot for slot, p in enumerate(self.slots)}
        stale = [(current[p], p) for p, rate in sorted(pass_rates.items()) if p in current and rate in (0.0, 1.0)]
        retired, recycled, added, kept = [], [], [], []
        for slot, problem in sorted(stale):
            if not self.reserve:
                kept.append(problem)
                continue
            self.slots[slot] = self.reserve.pop(0)
            added.append(self.slots[slot])
            (recycled if pass_rates[problem] == 0.0 and self.recycle else retired).append(problem)
        self.reserve.extend(recycled)  # after the replacements: a recycled prompt never returns in the same refresh
        self.retired.extend(retired)
        targets = self._targets(by_problem, pass_rates) if want_targets else []
        metrics = self._metrics(pass_rates, len(added))
        mixed = {p for p, rate in pass_rates.items() if rate not in (0.0, 1.0)}
        self.survivors = ((self.survivors | mixed) - (set(pass_rates) - mixed)) & set(self.slots)
        self.refreshes += 1
        self.last_step = step
        return RefreshReport(step, pass_rates, retired, recycled, added, kept, targets, metrics)

    def _targets(self, by_problem: Mapping[int, list[Rollout]], pass_rates: Mapping[int, float]) -> list[Target]:
        out = []
        for problem, rollouts in sorted(by_problem.items()):
            correct = [r for r in rollouts if r.correct >= 1.0 and r.text is not None]
            if not correct:
                continue
            shortest = min(correct, key=lambda r: (r.tokens, r.text))
            if shortest.tokens < self.best.get(problem, 1 << 62):
                self.best[problem] = shortest.tokens
                out.append(Target(problem, shortest, pass_rates[problem]))
        return out

    def _metrics(self, pass_rates: Mapping[int, float], replaced: int) -> dict[str, float]:
        """``pool/*``. ``survivor_zero_variance_share`` (over the prompts whose previous window had mixed results: the
        ones a refresh kept) against ``newcomer_zero_variance_share`` (prompts seen for the first time since they
        entered the pool) says whether the selection works: when they are equal, the policy's pass rate does not
        differ between prompts (zero-variance groups are sampling luck) and no refresh can lower their share."""
        rates = list(pass_rates.values())
        seen = len(rates)
        share = (lambda n: n / seen) if seen else (lambda n: 0.0)
        split = {"survivor": [r for p, r in pass_rates.items() if p in self.survivors],
                 "newcomer": [r for p, r in pass_rates.items() if p not in self.survivors]}
        groups = {f"pool/{name}_zero_variance_share": sum(r in (0.0, 1.0) for r in rs) / len(rs)
                  for name, rs in split.items() if rs}
        return {
            "pool/size": float(self.num_slots),
            "pool/seen": float(seen),
            "pool/zero_variance_share": share(sum(r in (0.0, 1.0) for r in rates)),
            "pool/solved_all_share": share(sum(r == 1.0 for r in rates)),
            "pool/solved_none_share": share(sum(r == 0.0 for r in rates)),
            "pool/pass_rate_mean": statistics.fmean(rates) if rates else 0.0,
            "pool/pass_rate_std": statistics.pstdev(rates) if rates else 0.0,
            "pool/replaced": float(replaced),
            "pool/reserve": float(len(self.reserve)),
            "pool/retired": float(len(self.retired)),
            **groups,
        }

    def state_dict(self, window: Sequence[Rollout] | None = None) -> dict[str, Any]:
        """JSON-able state; ``window``: every rank's window (gathered), else this rank's."""
        return {
            "version": STATE_VERSION,
            "num_slots": self.num_slots,
            "num_problems": self.num_problems,
            "recycle": self.recycle,
            "slots": list(self.slots),
            "reserve": list(self.reserve),
            "retired": list(self.retired),
            "window": [r.as_list() for r in (self.window if window is None else window)],
            "best": {str(k): v for k, v in sorted(self.best.items())},
            "survivors": sorted(self.survivors),
            "refreshes": self.refreshes,
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: Mapping[str, Any], keep_window: bool = True) -> None:
        """Restore a saved state; ``keep_window`` on one rank only (the saved window is every rank's)."""
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"refresh pool state version {state.get('version')!r}; this lcrl reads {STATE_VERSION}")
        for key, mine in (("num_slots", self.num_slots), ("num_problems", self.num_problems)):
            if state[key] != mine:
                what = "refresh_pool" if key == "num_slots" else "num_train"
                raise ConfigError(f"the checkpoint's refresh pool has {key} {state[key]}, this run {mine}: resume "
                                  f"with the same {what}, or use another output_dir")
        self.slots = [int(p) for p in state["slots"]]
        self.reserve = [int(p) for p in state["reserve"]]
        self.retired = [int(p) for p in state["retired"]]
        self.window = [Rollout.from_list(v) for v in state["window"]] if keep_window else []
        self.best = {int(k): int(v) for k, v in state["best"].items()}
        self.survivors = {int(p) for p in state["survivors"]}
        self.refreshes, self.last_step = int(state["refreshes"]), int(state["last_step"])


def target_row(problem: Mapping[str, Any], question: str, target: Target, step: int) -> dict[str, Any]:
    """A pruned-SFT row (``--stage prune``'s schema, as ``rl.stages.sft`` reads it) from a correct rollout.

    ``problem`` is the train-split row (``id``, ``prompt``, ``solution``); the thinking is the rollout's own,
    so ``chunks`` holds it as one chunk and nothing is skippable.
    """
    thinking, conclusion = split_thinking(target.rollout.text or "")
    thinking = (thinking or "").strip()
    return {
        "key": f"{problem['id']}@{step}",
        "id": problem["id"],
        "question": question,
        "prompt": problem["prompt"],
        "solution": problem["solution"],
        "gold": [problem["solution"]],
        "completion": render_completion(thinking, conclusion),
        "thinking": thinking,
        "conclusion": conclusion.strip(),
        "chunks": [thinking],
        "skippable": [],
        "pruned_tokens": target.rollout.thinking_tokens,
        "completion_tokens": target.rollout.tokens,
        "pass_rate": target.pass_rate,
        "step": step,
        "source": "grpo_refresh",
    }


def question_of(problem: Mapping[str, Any], tiers: Mapping[str, Any] | None = None) -> str:
    """The bare question of a task row: its user turn without the tier instruction ``data.tasks.make_prompt`` adds."""
    content = problem["prompt"][-1]["content"]
    suffix = "\n" + tier_instruction(problem["tier"], tiers) if problem.get("tier") else None
    return content[: -len(suffix)] if suffix and content.endswith(suffix) else content


def latest_targets(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per problem id, the last written (targets are written only when shorter), in first-seen order."""
    out: dict[Any, dict[str, Any]] = {}
    for row in rows:
        out[row["id"]] = dict(row)
    return list(out.values())
