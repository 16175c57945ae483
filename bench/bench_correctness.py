"""Correctness-reward throughput: the project's grader against TRL's ``accuracy_reward`` called sequentially.

Run from the repository root:  .venv/bin/python bench/bench_correctness.py
Builds 1,024 R1-style completions (``<think> reasoning </think> ... \\boxed{answer}``) from the real gold answers
of MATH500, GSM8K, AMC23 and OlympiadBench (``../shared/benchmarks``), half with the gold answer and half with a
perturbed one, grades them with ``trl.rewards.accuracy_reward`` (math-verify, one completion after another, as
TRL does) and with the project's ``correctness`` reward (answer extraction, then math-verify in worker processes
with a hard per-item deadline), checks that both give the same rewards, and writes bench/results/correctness.json.

Both graders are warmed up first (imports, math-verify's parser caches; for ours, the worker processes, which a
training run starts once), then each grades the same 1,024 completions with a cold result cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trl.rewards import accuracy_reward  # noqa: E402

from rewards.correctness import Grader  # noqa: E402
from rewards.gold import as_boxed, gold_answer, perturbed  # noqa: E402
from rewards.registry import GradingConfig  # noqa: E402

BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
RESULTS = ROOT / "bench" / "results" / "correctness.json"
FILES = {"math500": "math500.jsonl", "olympiadbench": "olympiadbench.jsonl", "gsm8k": "gsm8k_test.jsonl",
         "amc23": "amc23.jsonl", "aime24": "aime24.jsonl"}  # fmt: skip
# (benchmark, first record, last record): the timed set, 1,024 completions in all ...
MIX = [("math500", 0, 500), ("olympiadbench", 0, 300), ("gsm8k", 0, 184), ("amc23", 0, 40)]
# ... and a disjoint warm-up set, so both graders start with warm parser caches (as in a long training run)
WARMUP_MIX = [("olympiadbench", 300, 500), ("aime24", 0, 30), ("gsm8k", 184, 210)]
FILLERS = [
    "Wait, let me double-check that step.",
    "Hmm, let me verify this another way.",
    "Alternatively, I could approach this differently, but the computation above looks right.",
    "Let me re-read the problem to make sure I have not missed a condition.",
]


def _reasoning(benchmark: str, record: dict) -> str:
    """The record's worked solution, with any \\boxed removed (R1 thinking rarely boxes)."""
    if benchmark in ("math500", "aime24"):
        text = record["solution"]
    elif benchmark == "olympiadbench":
        text = "\n\n".join(record.get("solution") or [])
    elif benchmark == "gsm8k":
        text = re.sub(r"<<[^>]*>>", "", record["answer"].rsplit("####", 1)[0])
    else:
        text = f"We need to solve: {record['problem']} Let me set up the equations carefully and compute."
    return text.replace("\\boxed{", "{").replace("\\boxed ", "")


def build_completions(mix=MIX) -> tuple[list[list[dict]], list[str], list[str]]:
    """(completions, solutions, sources): R1-style completions, correct and perturbed answers alternating."""
    completions, solutions, sources = [], [], []
    for benchmark, first, last in mix:
        lines = (BENCHMARKS / FILES[benchmark]).read_text().splitlines()
        for record in [json.loads(line) for line in lines if line.strip()][first:last]:
            i = len(completions)
            gold = gold_answer(benchmark, record)
            answer = gold if i % 2 == 0 else perturbed(gold)
            question = record.get("problem") or record.get("question") or ""
            thinking = (
                f"Okay, let's see. The problem says: {question.strip()[:400]}\n\n{_reasoning(benchmark, record)}\n\n"
                f"{FILLERS[i % len(FILLERS)]} Yes, that is consistent.\n"
            )
            text = f"<think>\n{thinking}</think>\n\nSo the final answer is ${as_boxed(answer)}$."
            completions.append([{"role": "assistant", "content": text}])
            solutions.append(f"${gold}$")  # the $...$ form TRL's accuracy_reward can parse as LaTeX
            sources.append(benchmark)
    return completions, solutions, sources


def run_one(grader: str, workers: int) -> dict:
    """Warm up, then time one grader on the timed set (called in a fresh process for each grader)."""
    logging.basicConfig(level=logging.ERROR)
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warm, warm_solutions, _ = build_completions(WARMUP_MIX)
    completions, solutions, _ = build_completions(MIX)
    if grader == "trl":
        accuracy_reward(warm, warm_solutions)
        start = time.perf_counter()
        rewards = accuracy_reward(completions, solutions)
        seconds = time.perf_counter() - start
    else:
        lcrl = Grader(GradingConfig(workers=workers))
        lcrl.grade([c[0]["content"] for c in warm], warm_solutions)  # also starts the worker processes
        lcrl.clear_cache()
        start = time.perf_counter()
        rewards = lcrl.grade([c[0]["content"] for c in completions], solutions)
        seconds = time.perf_counter() - start
        lcrl.close()
    return {"seconds": seconds, "rewards": rewards}


def _child(grader: str, workers: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", grader, "--workers", str(workers)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="grading processes for the project's grader")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each measurement, keep the fastest")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["trl", "lcrl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not BENCHMARKS.is_dir():
        print(f"benchmark files not found at {BENCHMARKS}", file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(run_one(args.child, args.workers)))
        return 0

    _, solutions, sources = build_completions(MIX)
    n = len(solutions)
    runs: dict[str, list[dict]] = {"trl": [], "parallel": [], "one_worker": [], "in_process": []}
    for _ in range(args.rounds):  # each grader in a fresh process: no parser cache is shared between them
        runs["trl"].append(_child("trl", 0))
        runs["parallel"].append(_child("lcrl", args.workers))
        runs["one_worker"].append(_child("lcrl", 1))
        runs["in_process"].append(_child("lcrl", 0))
    best = {name: min(rs, key=lambda r: r["seconds"]) for name, rs in runs.items()}
    trl, ours = best["trl"]["rewards"], best["parallel"]["rewards"]
    identical = all(r["rewards"] == ours for name, rs in runs.items() if name != "trl" for r in rs)
    mismatches = [
        {"index": i, "source": sources[i], "solution": solutions[i], "trl": t, "ours": o}
        for i, (t, o) in enumerate(zip(trl, ours))
        if t is not None and float(t) != o
    ]
    undefined = sum(t is None for t in trl)

    def stats(name: str) -> dict:
        s = best[name]["seconds"]
        return {"seconds": round(s, 3), "completions_per_s": round(n / s, 1)}

    result = {
        "command": ".venv/bin/python bench/bench_correctness.py",
        "completions": n,
        "sources": {b: sources.count(b) for b, _, _ in MIX},
        "rounds": args.rounds,
        "graded_correct": {"trl": sum(t or 0 for t in trl), "ours": sum(ours)},
        "trl_accuracy_reward_sequential": stats("trl"),
        "lcrl_correctness": {"workers": args.workers, **stats("parallel")},
        "lcrl_correctness_one_worker": stats("one_worker"),
        "lcrl_correctness_in_process": stats("in_process"),
        "speedup_vs_trl": round(best["trl"]["seconds"] / best["parallel"]["seconds"], 2),
        "identical_across_worker_counts": identical,
        "trl_undefined": undefined,
        "mismatches_vs_trl": len(mismatches),
        "mismatch_examples": mismatches[:10],
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n} completions {result['sources']}, load average {result['machine']['load_avg_1m']}")
    print(f"TRL accuracy_reward, sequential  : {stats('trl')['completions_per_s']:8.1f} completions/s")
    print(f"lcrl correctness, {args.workers} workers     : {stats('parallel')['completions_per_s']:8.1f} completions/s")
    print(f"lcrl correctness, 1 worker       : {stats('one_worker')['completions_per_s']:8.1f} completions/s")
    print(f"lcrl correctness, in-process     : {stats('in_process')['completions_per_s']:8.1f} completions/s")
    print(f"speedup vs TRL: {result['speedup_vs_trl']}x")
    print(f"rewards: {len(mismatches)} mismatches vs TRL where TRL defines one ({undefined} undefined); "
          f"identical for every worker count: {identical}")  # fmt: skip
    print(f"wrote {args.out}")
    if not identical:
        print("ERROR: the rewards depend on the number of grading processes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
