"""The reward-recipe comparison report (rl/compare.py) and the driver's command lines (bench/compare.py),
on synthetic evaluation rows: no training."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from rl.compare import comparison_rows, markdown_comparison, write_comparison

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPES = ["tldr", "kimi", "l1_max", "shorter_better", "smartthinker", "alp", "laser", "dler"]


def eval_row(model: str, tier: str, accuracy: float, think: float, **extra) -> dict:
    """A row as ``--stage eval`` writes it (uncontrolled thinking run unless overridden)."""
    row = {"model": model, "benchmark": "synthetic", "tier": tier, "mode": "think", "control": "none",
           "path": f"outputs/compare/{model}", "stop_tau": 1.0, "think_cap": None, "sweep": "base", "n": 300,
           "accuracy": accuracy, "think_tokens_mean": think, "think_tokens_median": think,
           "answer_tokens_mean": 11.0, "total_tokens_mean": think + 11.0, "within_budget": 0.5, "within_band": 0.25, "truncated": 0.0}
    return {**row, **extra}


@pytest.fixture
def rows() -> list[dict]:
    return [
        eval_row("sft", "medium", 0.10, 95.0),
        eval_row("sft", "medium", 0.05, 0.0, mode="no-think"),  # not part of the comparison
        eval_row("tldr", "medium", 0.15, 41.0),
        eval_row("tldr", "medium", 0.12, 30.0, control="tau=0.5", sweep="tau", stop_tau=0.5),  # a control run
        eval_row("kimi", "medium", 0.08, 60.0),  # dominated by tldr (less accurate and longer)
        eval_row("l1_max", "medium", 0.12, 35.0),  # shorter than tldr, less accurate: on the front
        {"model": "oracle", "benchmark": "synthetic", "tier": "-", "mode": "data", "control": "-", "n": 300,
         "accuracy": 1.0, "think_tokens_mean": 41.1, "think_tokens_median": 41.0, "total_tokens_mean": 52.1},
        {"model": "full traces", "benchmark": "synthetic", "tier": "-", "mode": "data", "control": "-", "n": 300,
         "accuracy": 1.0, "think_tokens_mean": 100.4, "think_tokens_median": 99.0, "total_tokens_mean": 111.4},
    ]


RECIPES = {
    "tldr": {"rewards": "tldr", "wall_seconds": 180.4, "steps": 60},
    "kimi": {"rewards": "[{name: correctness}, {name: kimi}]", "wall_seconds": 200.0, "steps": 60},
    "l1_max": {"rewards": "l1_max", "wall_seconds": 190.0, "steps": 60},
}


def test_rows_pick_uncontrolled_runs_in_order_with_references(rows):
    out = comparison_rows(rows, RECIPES)
    assert [(r["recipe"], r["kind"]) for r in out] == [
        ("sft", "reference"), ("tldr", "recipe"), ("kimi", "recipe"), ("l1_max", "recipe"), ("oracle", "data")]
    tldr = out[1]
    assert tldr["accuracy"] == 0.15 and tldr["think_tokens_mean"] == 41.0 and tldr["total_tokens_mean"] == 52.0
    assert tldr["wall_seconds"] == 180.4 and tldr["steps"] == 60 and tldr["rewards"] == "tldr"
    assert out[0]["wall_seconds"] is None and out[-1]["tier"] == "-"


def test_pareto_marks_the_non_dominated_models(rows):
    out = {r["recipe"]: r["pareto"] for r in comparison_rows(rows, RECIPES)}
    assert out == {"sft": False, "tldr": True, "kimi": False, "l1_max": True, "oracle": None}


def test_pareto_is_per_tier():
    rows = [eval_row(m, t, a, k) for m, t, a, k in [
        ("sft", "short", 0.1, 60.0), ("a", "short", 0.2, 50.0), ("sft", "long", 0.3, 150.0), ("a", "long", 0.2, 160.0)]]
    out = comparison_rows(rows, {"a": {}})
    assert [(r["recipe"], r["tier"], r["pareto"]) for r in out] == [
        ("sft", "short", False), ("sft", "long", True), ("a", "short", True), ("a", "long", False)]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_plot_has_one_panel_per_tier(tmp_path):
    rows = [eval_row(m, t, a, k) for m in ("sft", "a", "b") for t, a, k in
            [("short", 0.1, 50.0), ("medium", 0.2, 70.0), ("long", 0.3, 120.0)]]
    rows.append({"model": "oracle", "benchmark": "synthetic", "tier": "-", "mode": "data", "control": "-",
                 "n": 300, "accuracy": 1.0, "think_tokens_mean": 41.0, "total_tokens_mean": 52.0})
    out = comparison_rows(rows, {"a": {}, "b": {}})
    one = write_comparison([r for r in out if r["tier"] in ("medium", "-")], tmp_path / "one", {})["png"]
    three = write_comparison(out, tmp_path / "three", {})["png"]
    assert _png_size(one)[0] == 9 * 120 and _png_size(three)[0] == round(3 * 6.5 * 120)  # rl.plots: figure width


def test_a_recipe_missing_from_the_evaluation_is_an_error(rows):
    with pytest.raises(ValueError, match="'efficiency'.*kimi"):
        comparison_rows(rows, {**RECIPES, "efficiency": {}})


def test_markdown_table_has_one_line_per_row(rows):
    out = comparison_rows(rows, RECIPES)
    table = markdown_comparison(out).splitlines()
    assert len(table) == 2 + len(out)
    assert table[0].startswith("| recipe | tier | n | accuracy | think tok (mean) | total tok (mean) |")
    assert table[3] == "| tldr | medium | 300 | 0.150 | 41.0 | 52.0 | 0.500 | 0.250 | 0.000 | - | - | - | 180 | yes |"
    assert table[-1].startswith("| oracle | - | 300 | 1.000 | 41.1 | 52.1 |") and table[-1].endswith("| - | - |")


def test_write_comparison_outputs(tmp_path, rows):
    out = comparison_rows(rows, RECIPES)
    meta = {"experiment": "compare-test", "budget": "medium", "steps": 60, "seed": 0, "sft": "outputs/tiny/sft"}
    paths = write_comparison(out, tmp_path / "compare", meta)
    saved = json.loads(paths["json"].read_text())
    assert saved["experiment"] == "compare-test" and saved["rows"] == out
    md = paths["md"].read_text()
    assert "budget medium, steps 60, seed 0, experiment compare-test" in md
    assert md.count("\n| ") == 1 + len(out)  # header and rows (the rule starts with '|-')
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _driver():
    spec = importlib.util.spec_from_file_location("bench_compare", REPO / "bench" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_driver_recipe_labels_and_commands():
    drv = _driver()
    assert drv.parse_recipe("kimi") == ("kimi", "kimi")
    assert drv.parse_recipe("short=[{name: tldr, weight: 1.0}]") == ("short", "[{name: tldr, weight: 1.0}]")
    with pytest.raises(ValueError, match="folder"):
        drv.parse_recipe("../x=tldr")
    args = argparse.Namespace(grpo_config="configs/tiny/grpo.yaml", eval_config="configs/tiny/eval.yaml",
                              sft="outputs/tiny/sft", out=Path("outputs/compare"), budget="mixed", steps=7, seed=3,
                              num_test=50, otb_t_max=200)
    grpo = drv.grpo_args(args, "kimi", "kimi", "compare-x")
    flags = dict(zip(grpo[::2], grpo[1::2]))
    assert flags["--rewards"] == "kimi" and flags["--output_dir"] == "outputs/compare/kimi"
    assert flags["--max_steps"] == "7" and flags["--seed"] == "3" and flags["--experiment"] == "compare-x"
    assert flags["--budget"] == "mixed" and flags["--model_name_or_path"] == "outputs/tiny/sft"
    ev = drv.eval_args(args, ["kimi", "tldr"], "compare-x")
    assert ev[ev.index("--models") + 1 : ev.index("--output_dir")] == [
        "sft=outputs/tiny/sft", "kimi=outputs/compare/kimi", "tldr=outputs/compare/tldr"]
    assert ev[ev.index("--eval_tiers") + 1 : ev.index("--num_test")] == ["short", "medium", "long"]


def test_driver_commands_parse_as_recipes():
    """The commands the driver launches are valid for train.py (explicit reward lists: no named recipe needed)."""
    from rl.recipes import parse_args
    from rl.stages import stage_types

    drv = _driver()
    args = argparse.Namespace(grpo_config="configs/tiny/grpo.yaml", eval_config="configs/tiny/eval.yaml",
                              sft="outputs/tiny/sft", out=Path("outputs/compare"), budget="medium", steps=5, seed=0,
                              num_test=20, otb_t_max=150)
    run = parse_args(drv.grpo_args(args, "k", "[{name: correctness}, {name: kimi}]", "compare-x"), stage_types())
    grpo = run.stage_args[0]
    assert [r["name"] for r in run.lcrl.rewards] == ["correctness", "kimi"]
    assert grpo.max_steps == 5 and grpo.run_name == "grpo-medium-k" and run.lcrl.experiment == "compare-x"
    run = parse_args(drv.eval_args(args, ["k"], "compare-x"), stage_types())
    (ev,) = run.stage_args
    assert ev.models == ["sft=outputs/tiny/sft", "k=outputs/compare/k"] and ev.no_thinking is False
    assert ev.plot is False and ev.eval_tiers == ["medium"] and run.lcrl.num_test == 20
    assert ev.aes_base == "sft" and ev.otb_t_max == 150


def test_driver_takes_every_default_recipe_with_its_trainer_values():
    """``make compare``'s default recipes (the 2025-26 group rewards and the DLER baseline among them) parse, and
    DLER's trainer values reach only its own run."""
    from rl.recipes import parse_args
    from rl.stages import stage_types

    drv = _driver()
    assert drv.DEFAULT_RECIPES == DEFAULT_RECIPES
    args = argparse.Namespace(grpo_config="configs/tiny/grpo.yaml", eval_config="configs/tiny/eval.yaml",
                              sft="outputs/tiny/sft", out=Path("outputs/compare"), budget="medium", steps=5, seed=0,
                              num_test=20, otb_t_max=200)
    for label in DEFAULT_RECIPES:
        run = parse_args(drv.grpo_args(args, label, label, "compare-x"), stage_types())
        grpo = run.stage_args[0]
        assert run.lcrl.reward_recipe == label
        assert (grpo.scale_rewards, grpo.epsilon_high) == (("batch", 0.28) if label == "dler" else ("group", None))


def test_efficiency_columns_and_length_histograms(tmp_path):
    lengths = {"think_lengths_correct": [30, 40], "think_lengths_wrong": [90]}
    rows = [eval_row("sft", "medium", 0.5, 100.0, accuracy_per_1k=5.0, otb_accuracy=0.3, aes=0.0, **lengths),
            eval_row("tldr", "medium", 0.5, 50.0, accuracy_per_1k=10.0, otb_accuracy=0.4, aes=0.5, **lengths)]
    for r in rows:
        r.update(aes_base="sft", aes_weights="w 1, b 5, g 10")
    out = comparison_rows(rows, {"tldr": {}})
    table = markdown_comparison(out).splitlines()
    assert "| acc / 1k think tok | OTB acc | AES (vs sft; w 1, b 5, g 10) | train wall (s) | Pareto |" in table[0]
    assert table[3] == "| tldr | medium | 300 | 0.500 | 50.0 | 61.0 | 0.500 | 0.250 | 0.000 | 10.0 | 0.400 | 0.500 | - | yes |"
    paths = write_comparison(out, tmp_path, {}, eval_rows=rows)
    assert _png_size(paths["hist"])[0] > 0 and paths["hist"].name == "length_hist.png"
