"""bench/bench_sampling.py on fake finished runs (``--reuse``): which logged figure is the share in the loss per
arm, the generation per step, the eval rows read, the results files. No training."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BATCH = 32


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sampling", REPO / "bench" / "bench_sampling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_log(step: int, zero: float, dynamic: tuple[float, float, float] | None = None) -> dict:
    """One log_history entry; ``dynamic``: (extra rounds, zero-variance share generated, in the loss)."""
    h = {"step": step, "frac_reward_zero_std": zero, "rewards/correctness/mean": 0.5, "reward": 0.5}
    if dynamic:
        extra, generated, in_loss = dynamic
        h |= {"dynamic_sampling/rounds": extra + 1, "dynamic_sampling/extra_rounds": extra,
              "dynamic_sampling/zero_variance_generated": generated, "dynamic_sampling/zero_variance_in_loss": in_loss}
    return h


def test_plain_arm_reads_trl_share_and_generates_one_batch(bench):
    run = {"steps": [step_log(1, 0.5), step_log(2, 0.25)], "seconds": 10.0, "batch": BATCH}
    s = bench.arm_summary(run, first_refresh=1)
    assert s["zero_variance_in_loss"] == s["zero_variance_generated"] == 0.375
    assert s["zero_variance_in_loss_after_first_refresh"] == 0.25
    assert s["generated_per_step"] == 1.0 and s["extra_rounds_per_step"] == 0.0 == s["extra_completions_per_step"]
    assert s["seconds_per_step"] == 5.0


def test_dynamic_arm_reads_the_merged_batch_not_trls_per_round_share(bench):
    # TRL's frac_reward_zero_std averages the rounds (generated groups): not what reaches the loss
    run = {"steps": [step_log(1, 0.5, (1.0, 0.5, 0.0)), step_log(2, 0.75, (2.0, 0.75, 0.25))], "seconds": None,
           "batch": BATCH}
    s = bench.arm_summary(run, first_refresh=0)
    assert s["zero_variance_in_loss"] == 0.125 and s["zero_variance_generated"] == 0.625
    assert s["generated_per_step"] == 2.5 and s["extra_completions_per_step"] == 1.5 * BATCH
    assert s["wall_seconds"] is None and s["extra_rounds_per_step_list"] == [1, 2]


def fake_run(out: Path, steps: int, logs: list[dict], seconds: float) -> None:
    (out / f"checkpoint-{steps}").mkdir(parents=True)
    state = {"log_history": logs, "train_batch_size": BATCH}
    (out / f"checkpoint-{steps}" / "trainer_state.json").write_text(json.dumps(state))
    (out / "bench_seconds.json").write_text(json.dumps({"seconds": seconds}))


def eval_row(model: str, accuracy: float, think: float, mode: str = "think") -> dict:
    return {"model": model, "benchmark": "synthetic", "tier": "medium", "mode": mode, "control": "none", "n": 300,
            "accuracy": accuracy, "think_tokens_mean": think, "truncated": 0.0}


def test_main_reuses_finished_runs_and_writes_the_table(bench, tmp_path):
    work, model = tmp_path / "work", tmp_path / "sft"
    model.mkdir()
    dynamic = (1.0, 0.5, 0.25)
    for arm in bench.ARMS:
        fake_run(work / f"{arm}-s0", 2, [step_log(s, 0.5, dynamic if arm == "dynamic" else None) for s in (1, 2)],
                 seconds=20.0)
    rows = [eval_row("off-s0", 0.4, 90.0), eval_row("off-s0", 0.1, 0.0, mode="no-think"),
            eval_row("on-s0", 0.5, 80.0), eval_row("dynamic-s0", 0.6, 70.0)]
    (work / "eval").mkdir()
    (work / "eval" / "results.json").write_text(json.dumps({"rows": rows}))
    output = tmp_path / "sampling.json"
    result = bench.main(["--model", str(model), "--steps", "2", "--work_dir", str(work), "--reuse",
                         "--output", str(output)])
    arms = result["arms"]
    assert arms["off"]["zero_variance_in_loss"] == 0.5 and arms["dynamic"]["zero_variance_in_loss"] == 0.25
    assert arms["dynamic"]["generated_per_step"] == 2.0 and arms["on"]["generated_per_step"] == 1.0
    assert (arms["dynamic"]["eval_accuracy"], arms["dynamic"]["eval_think_tokens"]) == (0.6, 70.0)
    assert arms["off"]["eval_accuracy"] == 0.4 and arms["on"]["wall_seconds"] == 20.0
    assert arms["dynamic"]["options"].endswith("--dynamic_sampling true --max_gen_rounds 3")
    saved = json.loads(output.read_text())
    assert saved["environment"]["cores"] and "trl" in saved["environment"]["versions"]
    table = output.with_suffix(".md").read_text()
    assert "| dynamic (" in table and "| 0.250 | 0.500 | 2.00x | 1.00 |" in table and "OMP_NUM_THREADS" in table
