"""Launching ``train.py`` on one process or on two (``torchrun --nproc_per_node 2``, gloo on the CPU) for the
multi-process tests, through a driver script that applies the scripted patches a test picks by ``DRIVER_*``
environment variables (GRPO's recorded rewards and refreshes, a killed step; prune's scripted engine; counted
prompts).

``accelerate launch --cpu --num_processes 2`` starts one process on a 2-core machine, so the tests use torchrun and
``ok`` checks the world size the stage logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # fields after "(comm)": state, ppid, ...


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie has ended: its files, and so its locks, are closed)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children, theirs, ...), as ``/proc`` shows them now."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(int(p.name)) == parent]
        found += kids
        todo += kids
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL ``pids``; return once each is gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 60
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), f"processes {pids} still alive a minute after SIGKILL"


def kill_run(proc: subprocess.Popen) -> list[int]:
    """SIGKILL a background launch and every process under it, as a crash of the whole job would; returns their pids
    once each is gone. torchrun starts its workers in sessions of their own, so a kill of its process group alone
    leaves the workers running (and writing)."""
    pids = [proc.pid, *descendants(proc.pid)]
    kill_all(pids)
    proc.wait()
    return pids
