"""Run the embedded demo (init -> sft -> grpo medium -> eval) and measure it.

Runs the four README commands as they are written (``accelerate launch train.py --stage ...``), then prints
the evaluation table, each stage's wall time and the peak resident memory of any stage, and writes
``bench/results/demo.json`` with the measured figures and the eval rows. ``make demo`` calls this.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = [str(Path(sys.executable).with_name("accelerate")), "launch", "--num_processes", "1"]
STAGES = [
    ["--stage", "init"],
    ["--stage", "sft"],
    ["--stage", "grpo", "--budget", "medium"],
    ["--stage", "eval"],
]


def main() -> int:
    timings = {}
    start = time.perf_counter()
    for args in STAGES:
        name = " ".join(args[1:])
        print(f"\n=== accelerate launch train.py {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([*ACCELERATE, "train.py", *args], cwd=REPO)
        timings[name] = round(time.perf_counter() - t0, 1)
        if proc.returncode != 0:
            print(f"stage {name} failed with exit code {proc.returncode}", file=sys.stderr)
            return proc.returncode
    total = round(time.perf_counter() - start, 1)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    results = json.loads((REPO / "outputs/tiny/eval/results.json").read_text())
    summary = {"wall_seconds": timings, "total_wall_seconds": total, "peak_rss_mb": round(peak_mb),
               "rows": results["rows"]}
    out = REPO / "bench/results/demo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print("\n" + (REPO / "outputs/tiny/eval/results.md").read_text())
    print("wall time per stage (s):", timings)
    print(f"total {total / 60:.1f} min, peak memory of a stage {peak_mb:.0f} MB; written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
