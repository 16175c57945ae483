"""``--stage prune`` through train.main with a scripted engine: outputs, report, real traces, ingestion skips,
resume after a crash, a torn line and a SIGKILL, a folder another live run writes; and a real tiny model end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rl.generation
import train
from data.prune import validation_bound
from data.prune_io import read_jsonl
from data.writer_lock import LOCK_FILE, WriterLock
from tests.prune_fakes import LastValueEngine

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--budget", "mixed", "--task_seed", "0"]


@pytest.fixture
def engine(tiny_tokenizer, monkeypatch):
    eng = LastValueEngine(tiny_tokenizer)
    monkeypatch.setattr(rl.generation, "make_engine", lambda *a, **k: eng)
    return eng


def prune(out: Path, *extra: str) -> int:
    return train.main(["--stage", "prune", "--output_dir", str(out), *COMMON, *extra])


def _last_value(thinking: str) -> str:
    return re.findall(r"= (\d+)", thinking)[-1]


def test_synthetic_prune_writes_pruned_data_pairs_and_report(tmp_path, engine):
    out = tmp_path / "prune"
    assert prune(out, "--num_train", "30", "--shard_size", "8") == 0
    rows = read_jsonl(out / "pruned.jsonl")
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    for r in rows:
        assert _last_value(r["thinking"]) == r["solution"]  # the pruned prefix is valid for the scripted model
        assert r["kept_steps"] <= r["n_steps"] and r["pruned_tokens"] <= r["original_tokens"]
        assert r["validation_calls"] <= r["call_bound"] == validation_bound(r["n_steps"])
        assert "".join(r["chunks"]) == r["thinking"] and r["completion"].endswith(r["conclusion"])
        assert r["full_completion"].startswith("<think>\n") and r["conclusion_source"] == "original"
        assert r["skip_tokens"] <= r["pruned_tokens"] and r["skip_calls"] >= len(r["skippable"])
        assert r["oracle_tokens"] <= r["original_tokens"]
    assert any(r["kept_steps"] < r["n_steps"] for r in rows) and any(r["skippable"] for r in rows)
    # level-synchronous: every generate call holds the requests of one level of one shard (at most 8 traces)
    assert max(engine.calls) <= 8 and engine.calls[0] == 8
    assert len(engine.calls) < sum(r["validation_calls"] + r["skip_calls"] for r in rows) / 4

    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 30 and report["dropped"] == {}
    assert report["tokens"]["pruned_mean"] == pytest.approx(sum(r["pruned_tokens"] for r in rows) / 30)
    assert report["validation"]["calls_mean"] <= report["validation"]["bound_mean"]
    assert report["validation"]["within_bound"] == 1.0
    assert "| kept token fraction |" in (out / "report.md").read_text()

    from datasets import load_dataset

    pruned = load_dataset("json", data_files=str(out / "pruned.jsonl"), split="train")
    pairs = load_dataset("json", data_files=str(out / "pairs.jsonl"), split="train")
    assert len(pruned) == 30 and len(pairs) == sum(r["completion"] != r["full_completion"] for r in rows)
    assert pairs[0]["chosen"][0]["content"] != pairs[0]["rejected"][0]["content"]


def test_model_conclusion_option(tmp_path, engine):
    out = tmp_path / "prune"
    assert prune(out, "--num_train", "6", "--conclusion", "model", "--skip_chunks", "false") == 0
    for r in read_jsonl(out / "pruned.jsonl"):
        assert r["conclusion"] == f"The final value is \\boxed{{{r['solution']}}}." and r["conclusion_source"] == "model"
        assert r["skippable"] == [] and r["skip_calls"] == 0


def test_real_r1_traces_and_ingestion_skips(tmp_path, engine, shared_dir):
    rows = json.loads((shared_dir / "traces" / "r1_sat_38.json").read_text())[:5]
    bad = [{**rows[0], "Question ID": "bad-1", "deepseek-reasoner (response)": "no closing tag"},
           {**rows[1], "Question ID": "bad-2", "Correct Answer": ""}]
    src = tmp_path / "traces.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows + bad))
    out = tmp_path / "prune"
    assert prune(out, "--traces", str(src), "--trace_fields", "r1_response", "--plain_prompt", "true") == 0
    dropped = {d["id"]: d["reason"] for d in read_jsonl(out / "dropped.jsonl")}
    assert dropped == {"bad-1": "no_thinking", "bad-2": "missing_gold"}
    kept = read_jsonl(out / "pruned.jsonl")
    assert len(kept) == 5
    for r in kept:  # R1 thinking ends with its own boxed answer; the prefix must keep the first step holding it
        assert "\\boxed{" in r["thinking"] and r["prompt"] == [{"role": "user", "content": r["question"]}]
        assert r["completion"].startswith("<think>\n") and r["validation_calls"] <= r["call_bound"]
    report = json.loads((out / "report.json").read_text())
    assert report["records"] == 7 and report["dropped"] == {"no_thinking": 1, "missing_gold": 1}


def _reference(tmp_path, tiny_tokenizer, monkeypatch, n):
    eng = LastValueEngine(tiny_tokenizer)
    monkeypatch.setattr(rl.generation, "make_engine", lambda *a, **k: eng)
    ref = tmp_path / "ref"
    assert prune(ref, "--num_train", str(n), "--shard_size", "4") == 0
    return {r["id"]: r for r in read_jsonl(ref / "pruned.jsonl")}


def _same_as_reference(out, ref):
    rows = read_jsonl(out / "pruned.jsonl")
    ids = [r["id"] for r in rows] + [d["id"] for d in read_jsonl(out / "dropped.jsonl")]
    assert sorted(ids) == sorted(ref) and len(ids) == len(set(ids))  # every record exactly once
    for r in rows:
        assert {k: r[k] for k in ("completion", "skippable", "kept_steps")} == {
            k: ref[r["id"]][k] for k in ("completion", "skippable", "kept_steps")}


def test_resume_after_a_crash_and_a_torn_line(tmp_path, tiny_tokenizer, monkeypatch):
    ref = _reference(tmp_path, tiny_tokenizer, monkeypatch, 20)
    out = tmp_path / "prune"
    crashing = LastValueEngine(tiny_tokenizer, fail_after=9)
    monkeypatch.setattr(rl.generation, "make_engine", lambda *a, **k: crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prune(out, "--num_train", "20", "--shard_size", "4")
    first = read_jsonl(out / "pruned.jsonl")
    assert 0 < len(first) < 20
    with (out / "pruned.jsonl").open("a") as f:  # a kill in the middle of a write leaves a torn line
        f.write('{"key": "torn", "id": "torn", "comple')
    fresh = LastValueEngine(tiny_tokenizer)
    monkeypatch.setattr(rl.generation, "make_engine", lambda *a, **k: fresh)
    assert prune(out, "--num_train", "20", "--shard_size", "4") == 0
    _same_as_reference(out, ref)
    assert sum(fresh.calls) < sum(r["validation_calls"] + r["skip_calls"] for r in ref.values())  # done ones skipped
    assert prune(out, "--num_train", "20", "--shard_size", "4") == 0  # finished: nothing left to do
    assert fresh.calls and len(read_jsonl(out / "pruned.jsonl")) == 20


KILL_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
import rl.generation
from transformers import AutoTokenizer
from tests.prune_fakes import LastValueEngine
engine = LastValueEngine(AutoTokenizer.from_pretrained({tok!r}), delay=0.3)
rl.generation.make_engine = lambda *a, **k: engine
import train
train.main(["--stage", "prune", "--output_dir", {out!r}, "--num_train", "20", "--shard_size", "2", *{common!r}])
"""


def test_resume_after_sigkill(tmp_path, tiny_tokenizer, monkeypatch):
    ref = _reference(tmp_path, tiny_tokenizer, monkeypatch, 20)
    tok_dir, out = tmp_path / "tok", tmp_path / "prune"
    tiny_tokenizer.save_pretrained(tok_dir)
    script = KILL_SCRIPT.format(repo=str(REPO), tok=str(tok_dir), out=str(out), common=COMMON)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "pruned.jsonl"
    deadline = time.time() + 120  # generous: start-up on a loaded machine
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= len(read_jsonl(log)) < 20
    fresh = LastValueEngine(tiny_tokenizer)
    monkeypatch.setattr(rl.generation, "make_engine", lambda *a, **k: fresh)
    assert prune(out, "--num_train", "20", "--shard_size", "2") == 0
    _same_as_reference(out, ref)


def test_resume_with_other_settings_is_refused(tmp_path, engine, capsys):
    out = tmp_path / "prune"
    assert prune(out, "--num_train", "4") == 0
    assert prune(out, "--num_train", "4", "--min_steps", "2") == 2
    assert "other settings (min_steps: 1 -> 2)" in capsys.readouterr().err


def test_a_folder_another_live_run_writes_is_refused_before_anything_is_written(tmp_path, engine, capsys):
    out = tmp_path / "prune"
    with WriterLock(out):  # an earlier run still writing (say, the workers of a torchrun killed with SIGKILL)
        assert prune(out, "--num_train", "4") == 2
        assert f"being written by another live process (pid {os.getpid()})" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [LOCK_FILE] and not engine.calls
    assert prune(out, "--num_train", "4") == 0  # once it has ended, the same command runs
    assert len(read_jsonl(out / "pruned.jsonl")) + len(read_jsonl(out / "dropped.jsonl")) == 4
    (tmp_path / "a_file").write_text("")
    assert prune(tmp_path / "a_file", "--num_train", "4") == 2  # an output_dir that cannot hold the lock: named
    assert "output_dir '" in (err := capsys.readouterr().err) and "cannot hold the run's writer lock" in err


def test_unreadable_traces_are_a_named_error_and_a_hub_source_is_not_read_in_a_dry_run(tmp_path, engine, capsys,
                                                                                        monkeypatch):
    out = tmp_path / "prune"
    assert prune(out, "--traces", str(tmp_path / "absent.jsonl")) == 2
    assert "traces '" in (err := capsys.readouterr().err) and "cannot be read" in err and "not found" in err
    assert not out.exists()
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'org/traces' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    assert prune(out, "--traces", "org/traces") == 2  # a run reads it: the network error is named
    assert "traces 'org/traces' cannot be read" in capsys.readouterr().err
    assert prune(out, "--traces", "org/traces", "--dry_run", "true") == 0  # a dry run does not read it
    assert not out.exists()


def test_a_run_that_wrote_nothing_is_no_resume(tmp_path, tiny_tokenizer, monkeypatch, capsys):
    """A mistyped model fails before any record is written; the corrected command then runs in the same dir."""
    def make_engine(path, *args, **kwargs):
        if "typo" in path:
            raise ValueError(f"model {path!r} cannot be loaded")
        return LastValueEngine(tiny_tokenizer)

    monkeypatch.setattr(rl.generation, "make_engine", make_engine)
    out = tmp_path / "prune"
    assert prune(out, "--num_train", "4", "--model_name_or_path", "outputs/typo") == 2
    assert "'outputs/typo' cannot be loaded" in capsys.readouterr().err
    assert prune(out, "--num_train", "4") == 0
    assert len(read_jsonl(out / "pruned.jsonl")) + len(read_jsonl(out / "dropped.jsonl")) == 4


def test_tiny_model_end_to_end(tiny_base, tmp_path):
    """The real engine and grader on a tiny random model: wiring only (a random model fails most traces)."""
    out = tmp_path / "prune"
    assert prune(out, "--model_name_or_path", str(tiny_base), "--num_train", "6", "--backend", "transformers") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["records"] == 6 and report["kept"] + sum(report["dropped"].values()) == 6
    assert set(report["dropped"]) <= {"full_trace_invalid"}
    assert report["validation"]["within_bound"] == 1.0 and report["last_run"]["generation_batches"] >= 1
    assert (out / "lcrl_config.json").is_file() and (out / "pairs.jsonl").is_file()


def test_jsonl_log_repairs_only_a_torn_tail(tmp_path):
    from data.prune_io import JsonlLog

    path = tmp_path / "log.jsonl"
    log = JsonlLog(path)
    log.append({"key": "a", "v": 1})
    with pytest.raises(ValueError, match="already written"):
        log.append({"key": "a", "v": 2})
    log.close()
    path.write_text(path.read_text() + '{"key": "b", "v"')
    assert read_jsonl(path) == [{"key": "a", "v": 1}] and path.read_text().endswith('"v"')  # reading: untouched
    assert JsonlLog(path).keys == {"a"} and path.read_text() == '{"key": "a", "v": 1}\n'  # opening: repaired
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        JsonlLog(path)
