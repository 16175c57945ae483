"""Pruning validation throughput: level-synchronous batched binary cutting against one trace at a time.

Run from the repository root:  .venv/bin/python bench/bench_prune.py

Both modes run ``data.prune.binary_cut`` with the same on-policy validator (``rl.stages.prune.EngineValidator``:
the engine writes the answer after the prefilled prefix and the answer cue, the correctness reward grades it)
on the same traces, model and settings (those of ``configs/tiny/prune.yaml``):

- batched: all traces searched together; each search level is one ``engine.generate`` call holding every
  pending trace's request (the engine splits it into batches of ``--batch_size``);
- one at a time: trace after trace, each level of each trace its own ``engine.generate`` call with one prompt.

Throughput is traces (and validations) per second; the ratio is batched / one-at-a-time. The kept step counts of
the two modes are compared (greedy decoding: they agree up to floating-point differences of padding and batch
shape). Model: ``outputs/tiny/sft`` when it exists, else the random tiny Llama of ``configs/tiny/init.yaml``
(``bench_generation.load_engine``). With the trained model the verdicts are the model's own (``--verdicts
model``); a random model fails every full trace, so there the searches are driven by a scripted rule (a prefix is
valid when the last value it states is the answer) while generation and grading still run for every request
(``--verdicts scripted``, the default without a trained model). Writes ``bench/results/prune.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
import yaml  # noqa: E402

from bench_generation import SFT, load_engine  # noqa: E402
from data.prune import binary_cut  # noqa: E402
from data.segment import SegmentConfig, join_steps, segment  # noqa: E402
from data.tasks import make_prompt, synthetic_traces  # noqa: E402
from data.tasks import synthetic_records  # noqa: E402
from rewards.correctness import get_grader  # noqa: E402
from rl.engine import SamplingParams  # noqa: E402
from rl.stages.prune import EngineValidator  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "prune.json"
RECIPE = yaml.safe_load((ROOT / "configs" / "tiny" / "prune.yaml").read_text())


class ScriptedVerdicts:
    """Runs the real validator (generation and grading) but returns the scripted verdicts."""

    def __init__(self, validator: EngineValidator):
        self.validator = validator

    def __call__(self, requests):
        self.validator(requests)
        out = []
        for i, kept in requests:
            values = re.findall(r"= (\d+)", join_steps(self.validator.steps[i], kept))
            out.append(bool(values) and values[-1] in self.validator.golds[i])
        return out


def run_mode(validate, counts: list[int], batched: bool) -> tuple[list, float]:
    start = time.perf_counter()
    if batched:
        results = binary_cut(counts, validate)
    else:
        results = []
        for i, n in enumerate(counts):
            (r,) = binary_cut([n], lambda reqs, i=i: validate([(i, kept) for _, kept in reqs]), desc="")
            results.append(r)
    return results, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=128)
    ap.add_argument("--batch_size", type=int, default=RECIPE["batch_size"])
    ap.add_argument("--verdicts", choices=["auto", "model", "scripted"], default="auto")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    engine, model_name = load_engine(args.batch_size)
    verdicts = args.verdicts
    if verdicts == "auto":
        verdicts = "model" if (SFT / "model.safetensors").is_file() else "scripted"
    records = synthetic_records(synthetic_traces("train", args.traces, RECIPE["task_seed"], None))
    seg = SegmentConfig.from_dict(RECIPE["segment"])
    steps = [segment(r.thinking, seg) for r in records]
    tok = engine.tokenizer
    prompts = [tok.apply_chat_template(make_prompt(r.question, "medium"), tokenize=False, add_generation_prompt=True)
               for r in records]
    validator = EngineValidator(engine, SamplingParams(max_new_tokens=RECIPE["max_new_tokens"]),
                                RECIPE["answer_cue"], get_grader())
    validator.bind(prompts, steps, [r.gold for r in records])
    validate = validator if verdicts == "model" else ScriptedVerdicts(validator)
    validate([(0, tuple(range(len(steps[0]))))])  # warm-up (allocations, grader)

    counts = [len(s) for s in steps]
    out = {}
    for mode, batched in (("batched", True), ("one_at_a_time", False)):
        calls_before, batches_before = validator.calls, validator.batches
        results, seconds = run_mode(validate, counts, batched)
        out[mode] = {
            "seconds": round(seconds, 3),
            "traces_per_s": round(len(records) / seconds, 2),
            "validations": validator.calls - calls_before,
            "validations_per_s": round((validator.calls - calls_before) / seconds, 1),
            "generate_calls": validator.batches - batches_before,
            "kept": [r.kept for r in results],
        }
    agree = sum(a == b for a, b in zip(out["batched"].pop("kept"), out["one_at_a_time"].pop("kept")))
    result = {
        "command": f".venv/bin/python bench/bench_prune.py --traces {args.traces} --batch_size {args.batch_size} "
                   f"--verdicts {args.verdicts}",
        "model": model_name,
        "verdicts": verdicts,
        "traces": len(records),
        "steps_mean": round(sum(counts) / len(counts), 2),
        "batch_size": args.batch_size,
        "max_new_tokens": RECIPE["max_new_tokens"],
        "device": str(engine.model.device),
        **out,
        "throughput_ratio_batched_over_one_at_a_time": round(out["batched"]["traces_per_s"]
                                                             / out["one_at_a_time"]["traces_per_s"], 2),
        "same_kept_steps": f"{agree}/{len(records)}",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg_1m_before": round(load_before, 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
