"""Every stage on two real processes (``torchrun --nproc_per_node 2``, gloo on the CPU), against the one-process run.

``accelerate launch --cpu --num_processes 2`` starts one process on a 2-core machine, so these tests use torchrun and
check inside the stage that the world size is 2 (the main process logs it). Each compares with one process: the
same eval rows, the same pruned lines (and every record exactly once after a kill), group rewards equal to those of
the whole groups, the same refresh decisions on every rank and as with one process, one writer and one W&B run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from data.prune_io import read_jsonl
from rl.refresh import POOL_FILE

REPO = Path(__file__).resolve().parents[1]
TIERS = "{short: {budget: 8}, medium: {budget: 12}, long: {budget: 24}}"

# Patches for the scripted runs (GRPO and prune), then train.main. DRIVER_* environment variables pick them.
DRIVER = """
import json, os, signal, sys
from pathlib import Path
rank = os.environ.get("RANK", "0")
out = Path(os.environ["DRIVER_OUT"])
if os.environ.get("DRIVER_GRPO"):
    import rl.refresh_trainer
    from rewards.group import Kimi

    def scripted(texts, solutions, config=None, *_, **__):  # gold 1 mod 3: never solved, else always: the pool moves
        return [0.0 if int(s) % 3 == 1 else 1.0 for s in solutions]

    rl.refresh_trainer.correctness_scores = scripted
    kimi_call = Kimi.__call__

    def recorded(self, prompts, completions, completion_ids=None, solution=None, **kw):
        rewards = kimi_call(self, prompts, completions, completion_ids=completion_ids, solution=solution, **kw)
        with (out / f"kimi-rank{rank}.jsonl").open("a") as f:
            f.write(json.dumps({"prompts": prompts, "completions": completions, "completion_ids": completion_ids,
                                "solution": solution, "id": kw.get("id"), "rewards": rewards}) + "\\n")
        return rewards

    Kimi.__call__ = recorded
    refresh = rl.refresh_trainer.RefreshGRPOTrainer.refresh_pool

    def logged(self):
        report = refresh(self)
        with (out / f"pool-rank{rank}.jsonl").open("a") as f:
            f.write(json.dumps({"step": report.step, "slots": self.pool.slots, "added": report.added}) + "\\n")
        return report

    rl.refresh_trainer.RefreshGRPOTrainer.refresh_pool = logged
    kill_at = int(os.environ.get("DRIVER_KILL_AT", "0"))
    import transformers.trainer as hf
    step_end = hf.Trainer._maybe_log_save_evaluate

    def maybe_kill(self, *args, **kwargs):  # SIGKILL at the end of step kill_at, after any checkpoint of that step
        step_end(self, *args, **kwargs)
        if self.state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    hf.Trainer._maybe_log_save_evaluate = maybe_kill
if os.environ.get("DRIVER_PRUNE"):
    import rl.generation
    from transformers import AutoTokenizer
    from tests.prune_fakes import LastValueEngine
    tok = AutoTokenizer.from_pretrained(os.environ["DRIVER_PRUNE"])
    rl.generation.make_engine = lambda *a, **k: LastValueEngine(tok, delay=float(os.environ.get("DRIVER_DELAY", 0)))
if os.environ.get("DRIVER_COUNT"):  # prompts each process generates for
    import rl.engine
    generate = rl.engine.Engine.generate

    def counted(self, prompts, params, desc="generate"):
        with (out / f"prompts-rank{rank}.txt").open("a") as f:
            f.write(f"{len(prompts)}\\n")
        return generate(self, prompts, params, desc=desc)

    rl.engine.Engine.generate = counted
import train
sys.exit(train.main(sys.argv[1:]))
"""


def launch(tmp: Path, nproc: int, args: list[str], wandb: str = "disabled", env: dict | None = None,
           background: bool = False):
    """``train.py`` through the driver on ``nproc`` processes (torchrun for 2, plain python for 1)."""
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "driver.py"
    script.write_text(DRIVER)
    out = tmp / "driver_out"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": wandb,
           "WANDB_DIR": str(tmp / "wb"), "DRIVER_OUT": str(out), **(env or {})}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, str(script), *args]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *cmd[1:]]
    if background:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc


def ok(proc, stage: str, world: int) -> str:
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"stage {stage}: world size {world} (" in proc.stderr, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def wandb_runs(tmp: Path) -> list[Path]:
    return sorted((tmp / "wb" / "wandb").glob("offline-run-*"))


# --- eval ---
def test_eval_on_two_processes_gives_the_one_process_rows(tiny_base, tmp_path):
    common = ["--stage", "eval", "--models", f"tiny={tiny_base}", "--num_test", "7", "--max_new_tokens", "12",
              "--tiers", TIERS, "--batch_size", "4", "--stop_tau", "1.0", "0.3", "--think_caps", "4",
              "--num_samples", "2", "--temperature", "1.0"]
    one, two = tmp_path / "one", tmp_path / "two"
    count = {"DRIVER_COUNT": "1"}
    ok(launch(one, 1, [*common, "--output_dir", str(one / "eval")], env=count), "eval", 1)
    log = ok(launch(two, 2, [*common, "--output_dir", str(two / "eval")], wandb="offline", env=count), "eval", 2)
    prompts = [sum(map(int, (d / "driver_out" / f"prompts-rank{r}.txt").read_text().split()))
               for d, r in ((one, 0), (two, 0), (two, 1))]
    assert prompts[1] > 0 and prompts[2] > 0 and prompts[1] + prompts[2] == prompts[0]  # split, each once
    rows = [json.loads((d / "eval" / "results.json").read_text())["rows"] for d in (one, two)]
    drop = {"seconds", "tokens_per_s", "path"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[0]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rows[1]]
    assert [r["n"] for r in rows[1] if r["mode"] != "data"] == [7] * 4  # every problem once, sampled twice
    samples = [json.loads((d / "eval" / "samples.json").read_text()) for d in (one, two)]
    assert samples[0] == samples[1]
    assert log.count("results written to") == 1 and log.count("| model | benchmark |") == 1  # one writer
    assert len(wandb_runs(two)) == 1


# --- prune ---
PRUNE = ["--stage", "prune", "--budget", "mixed", "--task_seed", "0", "--num_train", "14", "--shard_size", "2"]


def _prune_outputs(out: Path) -> tuple[list, list, dict]:
    pruned = sorted(read_jsonl(out / "pruned.jsonl"), key=lambda r: r["id"])
    dropped = sorted(read_jsonl(out / "dropped.jsonl"), key=lambda r: r["key"])
    report = json.loads((out / "report.json").read_text())
    report.pop("last_run")
    return pruned, dropped, report


@pytest.fixture(scope="module")
def prune_reference(tiny_tokenizer, tmp_path_factory) -> tuple[Path, tuple]:
    tmp = tmp_path_factory.mktemp("prune1")
    tok = tmp / "tok"
    tiny_tokenizer.save_pretrained(tok)
    ok(launch(tmp, 1, [*PRUNE, "--output_dir", str(tmp / "out")], env={"DRIVER_PRUNE": str(tok)}), "prune", 1)
    return tok, _prune_outputs(tmp / "out")


def test_prune_on_two_processes_writes_the_one_process_lines(prune_reference, tmp_path):
    tok, reference = prune_reference
    log = ok(launch(tmp_path, 2, [*PRUNE, "--output_dir", str(tmp_path / "out")], wandb="offline",
                    env={"DRIVER_PRUNE": str(tok)}), "prune", 2)
    assert _prune_outputs(tmp_path / "out") == reference
    ids = [r["id"] for r in read_jsonl(tmp_path / "out" / "pruned.jsonl")]
    assert len(ids) == len(set(ids))  # one writer: no line twice
    assert log.count("| records |") <= 1 and len(wandb_runs(tmp_path)) == 1


@pytest.mark.slow
def test_prune_killed_on_two_processes_resumes_every_record_exactly_once(prune_reference, tmp_path):
    tok, reference = prune_reference
    out = tmp_path / "out"
    slow = {"DRIVER_PRUNE": str(tok), "DRIVER_DELAY": "0.4"}
    proc = launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env=slow, background=True)
    log = out / "pruned.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
    proc.wait()
    written = len(read_jsonl(log)) + len(read_jsonl(out / "dropped.jsonl"))
    assert 2 <= written < 14
    ok(launch(tmp_path, 2, [*PRUNE, "--output_dir", str(out)], env={"DRIVER_PRUNE": str(tok)}), "prune", 2)
    assert _prune_outputs(out) == reference  # every record exactly once, the same lines


# --- sft ---
SFT = ["--stage", "sft", "--num_train", "8", "--max_steps", "2", "--learning_rate", "1e-3", "--save_steps", "1",
       "--logging_steps", "1", "--max_length", "96", "--use_cpu", "true", "--seed", "0", "--data_seed", "0"]


@pytest.mark.slow
def test_sft_on_two_processes_matches_one(tiny_base, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    ok(launch(one, 1, [*SFT, "--model_name_or_path", str(tiny_base), "--output_dir", str(one / "sft"),
                       "--per_device_train_batch_size", "4", "--report_to", "none"]), "sft", 1)
    ok(launch(two, 2, [*SFT, "--model_name_or_path", str(tiny_base), "--output_dir", str(two / "sft"),
                       "--per_device_train_batch_size", "2", "--report_to", "wandb"], wandb="offline"), "sft", 2)
    a, b = (load_file(d / "sft" / "model.safetensors") for d in (one, two))
    assert a.keys() == b.keys()
    # the same 4 examples per step, split over two processes and averaged by DDP: the same update up to rounding
    assert all((a[k] - b[k]).abs().max() < 1e-4 for k in a)
    assert (two / "sft" / "lcrl_config.json").is_file() and (two / "sft" / "run_settings.json").is_file()
    assert len(wandb_runs(two)) == 1


# --- grpo ---
GRPO = ["--stage", "grpo", "--num_train", "12", "--max_steps", "4", "--save_steps", "2", "--num_generations", "4",
        "--max_completion_length", "12", "--logging_steps", "1", "--use_cpu", "true", "--grading", "{workers: 0}",
        "--rewards", "[{name: correctness, weight: 1.0}, {name: kimi, weight: 0.5}]",
        "--refresh_every", "1", "--refresh_pool", "4", "--temperature", "1.0"]


def test_grpo_layout_that_splits_groups_is_refused(tiny_base, tmp_path):
    args = [*GRPO, "--model_name_or_path", str(tiny_base), "--output_dir", str(tmp_path / "g"), "--dry_run", "true"]
    bad = launch(tmp_path, 2, [*args, "--per_device_train_batch_size", "6"])
    assert bad.returncode != 0
    assert "per_device_train_batch_size x steps_per_generation = 6 x 1 = 6" in bad.stderr
    assert "set per_device_train_batch_size to a multiple of 4" in bad.stderr
    assert "stage grpo: world size 2 (" in bad.stderr  # (per_device_train_batch_size 4 runs: grpo_pair below)


SCRIPTED = {"DRIVER_GRPO": "1"}  # scripted correctness for the pool, kimi's rewards and the refreshes recorded


def _kimi_calls(out: Path, rank: int) -> list[dict]:
    return read_jsonl(out / f"kimi-rank{rank}.jsonl")


def grpo_run(tmp: Path, nproc: int, tiny_base: Path, kill_at: int = 0, wandb: bool = False):
    per_device = "8" if nproc == 1 else "4"  # the same 2 prompts x 4 completions per step
    args = [*GRPO, "--model_name_or_path", str(tiny_base), "--output_dir", str(tmp / "g"),
            "--per_device_train_batch_size", per_device, "--report_to", "wandb" if wandb else "none"]
    return launch(tmp, nproc, args, wandb="offline" if wandb else "disabled",
                  env={**SCRIPTED, "DRIVER_KILL_AT": str(kill_at)})


@pytest.fixture(scope="module")
def grpo_pair(tiny_base, tmp_path_factory) -> tuple[Path, Path]:
    """GRPO with kimi and refresh, 4 steps (checkpoints at 2 and 4), on one process and on two."""
    one, two = tmp_path_factory.mktemp("grpo1"), tmp_path_factory.mktemp("grpo2")
    ok(grpo_run(one, 1, tiny_base), "grpo", 1)
    ok(grpo_run(two, 2, tiny_base, wandb=True), "grpo", 2)
    return one, two


def _pool(run: Path, step: int, window: bool = False) -> dict:
    pool = json.loads((run / "g" / f"checkpoint-{step}" / POOL_FILE).read_text())
    if not window:
        pool.pop("window")
    return pool


@pytest.mark.slow
def test_grpo_with_kimi_and_refresh_on_two_processes(grpo_pair):
    from rewards.group import Kimi, group_indices
    from rewards.registry import GradingConfig, RewardContext

    one, two = grpo_pair
    # group rewards: every call holds whole groups, and the rewards equal those of one call over both ranks
    calls = [_kimi_calls(two / "driver_out", r) for r in (0, 1)]
    assert len(calls[0]) == len(calls[1]) == 4
    kimi = Kimi(RewardContext(grading=GradingConfig(workers=0)))  # one process, one call over whole groups
    for c0, c1 in zip(*calls):
        for c in (c0, c1):
            assert [len(g) for g in group_indices(c["prompts"], c["id"])] == [4]
        both = {k: c0[k] + c1[k] for k in ("prompts", "completions", "completion_ids", "solution", "id")}
        whole = kimi(both["prompts"], both["completions"], completion_ids=both["completion_ids"],
                     solution=both["solution"], id=both["id"])
        assert whole == c0["rewards"] + c1["rewards"]
    # refresh: the same decisions on both ranks, and as with one process (correctness is scripted)
    pools = [read_jsonl(two / "driver_out" / f"pool-rank{r}.jsonl") for r in (0, 1)]
    assert pools[0] == pools[1] == read_jsonl(one / "driver_out" / "pool-rank0.jsonl")
    assert len(pools[0]) == 4 and any(p["added"] for p in pools[0])
    assert _pool(one, 4) == _pool(two, 4)
    assert (two / "g" / "model.safetensors").is_file() and len(wandb_runs(two)) == 1  # one writer, one W&B run


@pytest.mark.slow
def test_grpo_killed_on_two_processes_resumes_to_the_uninterrupted_run(grpo_pair, tiny_base, tmp_path):
    _, whole = grpo_pair
    killed = grpo_run(tmp_path, 2, tiny_base, kill_at=3)
    assert killed.returncode != 0 and "stage grpo: world size 2 (" in killed.stderr
    assert (tmp_path / "g" / "checkpoint-2").is_dir() and not (tmp_path / "g" / "checkpoint-4").exists()
    ok(grpo_run(tmp_path, 2, tiny_base), "grpo", 2)  # the same command again: resumes from checkpoint-2
    assert _pool(tmp_path, 2, window=True) == _pool(whole, 2, window=True)
    assert _pool(tmp_path, 4, window=True) == _pool(whole, 4, window=True)
    mine, theirs = load_file(tmp_path / "g" / "model.safetensors"), load_file(whole / "g" / "model.safetensors")
    assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)
    # the resume guard on two processes: another learning rate into the same output_dir is refused by every rank
    other = launch(tmp_path, 2, [*GRPO, "--model_name_or_path", str(tiny_base), "--output_dir", str(tmp_path / "g"),
                                 "--per_device_train_batch_size", "4", "--report_to", "none", "--learning_rate", "0.5"])
    assert other.returncode != 0 and "other settings (learning_rate:" in other.stderr
