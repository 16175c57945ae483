"""``--stage eval`` end to end on a tiny random model: the default table, a tau + budget-forcing sweep in one
command (rows, caps respected, Pareto PNG, samples), real benchmarks from local files, and bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import train
from data.benchmarks import SOURCES
from rl.config import InitArguments
from rl.plots import pareto_front
from rl.report import markdown_table
from rl.tiny_model import build_model
from tests.vllm_fakes import stub_vllm

TIERS = "{short: {budget: 8}, medium: {budget: 12}, long: {budget: 24}}"
BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    args = InitArguments(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2)
    build_model(args, tiny_tokenizer).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def run_eval(model_dir: Path, out: Path, *extra: str) -> list[dict]:
    argv = ["--stage", "eval", "--models", f"tiny={model_dir}", "--output_dir", str(out), "--num_test", "6",
            "--max_new_tokens", "16", "--tiers", TIERS, "--batch_size", "8", *extra]
    assert train.main(argv) == 0
    return json.loads((out / "results.json").read_text())["rows"]


def test_default_recipe_columns_and_rows(model_dir, tmp_path):
    rows = run_eval(model_dir, tmp_path)
    assert [(r["model"], r["mode"]) for r in rows] == [
        ("tiny", "think"), ("tiny", "no-think"), ("oracle", "data"), ("full traces", "data")]
    header = (tmp_path / "results.md").read_text().splitlines()[0]
    for title in ("model", "benchmark", "tier", "mode", "control", "n", "accuracy", "think tok (mean)",
                  "think tok (median)", "answer tok (mean)", "total tok (mean)", "within budget", "truncated",
                  "acc / 1k think tok", "OTB acc", "AES (vs tiny; w 1, b 5, g 10)"):
        assert f"| {title} |" in header
    think = rows[0]
    assert think["benchmark"] == "synthetic" and think["control"] == "none" and think["n"] == 6
    assert rows[1]["think_tokens_mean"] == 0
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "length_hist.png").stat().st_size > 1000  # beside pareto.png
    assert not (tmp_path / "budget_curve.png").exists()  # no budget-forcing sweep
    assert len(think["think_lengths_correct"]) + len(think["think_lengths_wrong"]) == 6
    assert think["otb_accuracy"] <= think["accuracy"]
    assert json.loads((tmp_path / "samples.json").read_text())[0]["model"] == "tiny"


def test_tau_and_budget_forcing_sweep_in_one_command(model_dir, tmp_path):
    rows = run_eval(model_dir, tmp_path, "--stop_tau", "1.0", "0.4", "1e-6", "--think_caps", "3", "6",
                    "--cap_at_tier_budget", "--eval_tiers", "short", "long", "--no_thinking", "false")
    think = [r for r in rows if r["mode"] == "think"]
    assert len(think) == 2 * 6  # two tiers x (3 taus + 2 caps + tier cap)
    for tier, budget in (("short", 8), ("long", 24)):
        mine = {r["control"]: r for r in think if r["tier"] == tier}
        assert set(mine) == {"none", "tau=0.4", "tau=1e-06", "cap=3", "cap=6", f"cap={budget}"}
        assert mine["tau=1e-06"]["think_tokens_mean"] <= mine["tau=0.4"]["think_tokens_mean"] <= mine["none"][
            "think_tokens_mean"]
        for cap in (3, 6, budget):
            r = mine[f"cap={cap}"]
            assert r["think_tokens_mean"] <= cap and r["think_cap"] == cap
        assert mine[f"cap={budget}"]["within_budget"] == 1.0  # capped at the tier budget: always compliant
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "budget_curve.png").stat().st_size > 1000
    curves = json.loads((tmp_path / "results.json").read_text())["budget_curves"]
    assert [(c["tier"], [p["cap"] for p in c["points"]]) for c in curves] == [("short", [3, 6]), ("long", [3, 6])]
    assert "tau=1e-06" in markdown_table(rows)


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason=f"real benchmark files {BENCHMARKS} are absent")
def test_real_benchmarks_from_local_files_with_sampling(model_dir, tmp_path):
    files = "{" + ", ".join(f"{n}: {BENCHMARKS / SOURCES[n].file}" for n in ("gsm8k", "amc23")) + "}"
    rows = run_eval(model_dir, tmp_path, "--benchmarks", "gsm8k", "amc23", "--benchmark_files", files,
                    "--max_examples", "3", "--num_samples", "2", "--temperature", "1.0", "--no_thinking", "false",
                    "--max_new_tokens", "8")
    assert [(r["benchmark"], r["n"], r["num_samples"]) for r in rows] == [("gsm8k", 3, 2), ("amc23", 3, 2)]
    assert all("pass_at_k" in r for r in rows)  # no oracle rows without the synthetic benchmark


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--benchmarks", "mmlu"], "unknown benchmark 'mmlu' in benchmarks; allowed: synthetic, math500"),
        (["--benchmark_files", "{mmlu: x.jsonl}"], "unknown benchmark 'mmlu' in benchmark_files"),
        (["--stop_tau", "0"], "stop_tau must be a list of values > 0"),
        (["--num_samples", "4"], "num_samples must be 1, or > 1 with temperature > 0"),
        (["--top_p", "0"], "top_p must be in (0, 1] (1 = off), got 0.0"),
        (["--think_caps", "16", "--min_think", "32"], "min_think (32) must not exceed any thinking cap"),
    ],
)
def test_bad_options_fail_naming_the_allowed_values(model_dir, tmp_path, capsys, flags, message):
    argv = ["--stage", "eval", "--models", str(model_dir), "--output_dir", str(tmp_path / "x"), *flags]
    assert train.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_each_models_vllm_engine_is_shut_down_before_the_next_and_top_p_reaches_it(
    model_dir, tmp_path, monkeypatch, tiny_tokenizer
):
    """Two models on the vLLM backend (a stand-in ``LLM``): the first engine's core is shut down before the second
    is created (one model's weights and KV cache on the GPU at a time), and ``--top_p`` reaches every request."""
    import shutil

    from trl import GRPOConfig, SFTConfig  # noqa: F401

    import rl.generation as generation

    # (imported above) TRL's trainers look vllm up with find_spec, which the stand-in (no spec) breaks: import first
    events: list = []
    calls = stub_vllm(monkeypatch, tiny_tokenizer, events)
    monkeypatch.setattr(generation, "vllm_available", lambda: True)  # as on a GPU machine with vllm installed
    second = tmp_path / "second"
    shutil.copytree(model_dir, second)
    rows = run_eval(model_dir, tmp_path / "out", "--models", f"a={model_dir}", f"b={second}", "--backend", "vllm",
                    "--temperature", "0.6", "--top_p", "0.95", "--no_thinking", "false")
    assert [r["model"] for r in rows if r["mode"] == "think"] == ["a", "b"]
    assert events == [("create", str(model_dir)), ("shutdown", str(model_dir)), ("create", str(second)),
                      ("shutdown", str(second))]
    assert {(s.temperature, s.top_p) for s in calls["all_sampling"]} == {(0.6, 0.95)}


def test_top_p_in_both_modes_and_in_the_r1_recipe():
    import yaml

    from rl.eval_config import EvalArguments
    from rl.stages.evaluation import sampling_params

    args = EvalArguments(models=["m"], temperature=0.6, top_p=0.95)
    assert sampling_params(args, 0.5, 8).top_p == sampling_params(args, controls=False).top_p == 0.95
    assert EvalArguments(models=["m"]).top_p == 1.0
    recipe = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/r1_distill_1p5b/eval.yaml").read_text())
    assert (recipe["temperature"], recipe["top_p"]) == (0.6, 0.95)  # DeepSeek-R1's recommended sampling


def test_pareto_front():
    pts = [(10, 0.5), (20, 0.7), (15, 0.4), (30, 0.7), (5, 0.1), (25, 0.9)]
    assert pareto_front(pts) == [4, 0, 1, 5]


def test_wandb_gets_metrics_plot_and_samples(model_dir, tmp_path):
    """The W&B payload (with a stand-in run object): results table, per-run summary, the plot, sample completions."""
    import wandb

    from rl.plots import pareto_plot
    from rl.stages.evaluation import log_to_wandb

    rows = run_eval(model_dir, tmp_path, "--stop_tau", "1.0", "0.3", "--no_thinking", "false")
    samples = json.loads((tmp_path / "samples.json").read_text())

    class Run:
        def __init__(self):
            self.logged, self.summary, self.finished = {}, {}, False

        def log(self, payload):
            self.logged.update(payload)

        def finish(self):
            self.finished = True

    run = Run()
    log_to_wandb(run, rows, samples, {"pareto": pareto_plot(rows, tmp_path / "p.png")})
    assert isinstance(run.logged["eval/results"], wandb.Table) and isinstance(run.logged["eval/pareto"], wandb.Image)
    assert len(run.logged["eval/samples"].data) == len(samples) == 2 * 4
    assert "completion" in run.logged["eval/samples"].columns
    assert run.summary["tiny/synthetic/medium/think/tau=0.3/accuracy"] == rows[1]["accuracy"]
    assert run.summary["tiny/synthetic/medium/think/tau=0.3/otb_accuracy"] == rows[1]["otb_accuracy"]
    assert "think_lengths_correct" not in run.logged["eval/results"].columns  # per-item lists: results.json only
    assert run.finished
