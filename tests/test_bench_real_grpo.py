"""bench/real_grpo.py (make real-grpo): the commands of a seed, resuming, and the mean and range over seeds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import bench.real as real
import bench.real_grpo as study
from bench.real import FINAL, SAMPLED
from tests.test_bench_real import row, write_rows


def fake_seed(folder: Path, lengths: tuple[float, float, float], medium_acc: float) -> None:
    for name in ("eval", "eval_sampled"):
        write_rows(folder, name, [row(FINAL, t, medium_acc if t == "medium" else 1.0, n)
                                  for t, n in zip(("short", "medium", "long"), lengths)])


@pytest.fixture
def out(tmp_path, monkeypatch) -> Path:
    """make real's folder with its SFT baseline (accuracy 1.0 at 200 thinking tokens); the study inside it."""
    write_rows(tmp_path, "eval_sft", [row("sft", "long", 1.0, 200.0), row("sft", "long", 0.0, 0.0, "no-think")])
    for module in (real, study):
        monkeypatch.setattr(module, "OUT", tmp_path)
    monkeypatch.setattr(study, "STUDY", tmp_path / "grpo_study")
    return tmp_path


def test_a_seed_trains_the_recipe_with_the_variant_and_seed_then_evaluates_that_model_both_ways(out):
    steps = study.commands("lr1e4_t06", 3)
    folder = Path(os.path.relpath(out / "grpo_study/lr1e4_t06/seed3", real.REPO))  # train.py runs in the repo
    grpo, done = steps["grpo"]
    assert grpo[:4] == ["--stage", "grpo", "--config", "configs/smollm2/real/grpo_mixed.yaml"]
    assert grpo[4:] == ["--learning_rate", "1e-4", "--temperature", "0.6", "--seed", "3", "--output_dir",
                        str(folder / "grpo")]
    assert done == "grpo/lcrl_config.json"
    greedy, sampled = steps["eval"][0], steps["eval_sampled"][0]
    assert greedy[greedy.index("--models") + 1] == f"{FINAL}={folder / 'grpo'}"
    assert SAMPLED[0] not in greedy and greedy[-1] == str(folder / "eval")
    assert sampled[sampled.index(SAMPLED[0]) + 1] == SAMPLED[1] and sampled[-1] == str(folder / "eval_sampled")


def test_finished_steps_are_skipped_and_a_folder_made_otherwise_is_refused(out, monkeypatch):
    ran = []

    def fake_run(args):
        ran.append(args[1])
        target = Path(args[args.index("--output_dir") + 1])
        target.mkdir(parents=True)
        (target / ("lcrl_config.json" if args[1] == "grpo" else "results.json")).write_text("{}")
        return 1.0, 10

    monkeypatch.setattr(study, "run_stage", fake_run)
    assert study.run_seed("lr3e5", 0) == {"grpo": 1.0, "eval": 1.0, "eval_sampled": 1.0}
    assert study.run_seed("lr3e5", 0) == {"grpo": 1.0, "eval": 1.0, "eval_sampled": 1.0}  # kept, nothing ran
    assert ran == ["grpo", "eval", "eval"]
    made = out / "grpo_study/lr3e5/seed0/made.json"
    original = made.read_text()
    made.write_text(json.dumps({**json.loads(original), "grpo": ["--stage", "grpo", "--other"]}))
    with pytest.raises(SystemExit, match="seed0 was made by other commands or recipes"):
        study.run_seed("lr3e5", 0)
    made.write_text(original)
    (out / "recipes.json").write_text(json.dumps({"sft": "another stage 1"}))  # make real retrained its models
    with pytest.raises(SystemExit, match="or from another tier SFT model"):
        study.run_seed("lr3e5", 0)
    assert ran == ["grpo", "eval", "eval"]


def test_the_summary_gives_mean_and_range_over_seeds_and_the_seeds_meeting_every_target(out):
    fake_seed(out / "grpo_study/lr1e4_t06/seed0", (70.0, 100.0, 130.0), medium_acc=1.0)
    fake_seed(out / "grpo_study/lr1e4_t06/seed1", (80.0, 110.0, 110.0), medium_acc=0.9)  # tie and 10 points lost
    seeds = [study.seed_figures("lr1e4_t06", s) for s in (0, 1)]
    summ = study.summary(seeds)
    assert summ["meet_all"] == [0]
    assert summ["greedy"]["long"]["think_tokens"] == {"mean": 120.0, "min": 110.0, "max": 130.0}
    assert summ["greedy"]["medium"]["accuracy"] == {"mean": 0.95, "min": 0.9, "max": 1.0}
    assert summ["greedy"]["closest_gap"] == {"mean": 15.0, "min": 0.0, "max": 30.0}
    assert summ["medium_shorter"] == {"mean": 0.475, "min": 0.45, "max": 0.5}
    assert summ["medium_accuracy_loss"]["max"] == pytest.approx(0.1)
    text = study.markdown({"environment": {"date": "d", "cores": 2, "cpu": "c", "versions": {}}, "num_test": 80,
                           "variants": {"lr1e4_t06": {"seeds": seeds, "summary": summ}}})
    assert "evaluated on make real's 80 held-out problems per tier" in text
    assert "| lr1e4_t06 | 0, 1 | greedy | 75.0 (70.0 to 80.0) | 105.0 (100.0 to 110.0) | 120.0 (110.0 to 130.0) |" \
        in text
    assert "medium 47.5 (45.0 to 50.0)% shorter than SFT at 5.0 (0.0 to 10.0) points" in text
    assert "every target met by seed(s): 0\n" in text
    assert "  - seed 1: greedy: tiers not ordered short < medium < long (80.0, 110.0, 110.0)" in text


def test_the_study_needs_make_reals_tier_sft_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(study, "OUT", tmp_path)
    with pytest.raises(SystemExit):
        study.main(["--variants", "lr3e5", "--seeds", "0"])
    assert "run make real first" in capsys.readouterr().err


def test_the_default_variant_is_what_make_reals_grpo_recipe_sets():
    recipe = yaml.safe_load((real.REPO / real.RECIPES / "grpo_mixed.yaml").read_text())
    overrides = study.VARIANTS[study.DEFAULT][0]
    assert float(overrides[overrides.index("--learning_rate") + 1]) == recipe["learning_rate"]
    assert "--temperature" not in overrides and recipe["temperature"] == 1.0


def test_a_report_runs_nothing_and_shows_a_decoding_not_evaluated_as_missed(out, monkeypatch, tmp_path):
    monkeypatch.setattr(study, "run_stage", lambda args: pytest.fail(f"ran {args}"))
    folder = out / "grpo_study/lr3e5/seed1"
    write_rows(folder, "eval", [row(FINAL, t, 1.0, n) for t, n in zip(("short", "medium", "long"), (70, 100, 130))])
    output = tmp_path / "report.json"
    (out / "sft_tiers").mkdir()
    (out / "sft_tiers/lcrl_config.json").write_text("{}")
    stale = out / "grpo_study/lr3e5/seed2"  # evaluated, but made by another command
    write_rows(stale, "eval", [row(FINAL, t, 1.0, 100) for t in ("short", "medium", "long")])
    (stale / "made.json").write_text(json.dumps({"grpo": ["--stage", "grpo", "--other"]}))
    assert study.main(["--report", "--seeds", "0", "1", "2", "--output", str(output)]) == 0
    result = json.loads(output.read_text())["variants"]["lr3e5"]
    assert [s["seed"] for s in result["seeds"]] == [1]  # seed 0 was never evaluated, seed 2 is stale
    assert result["seeds"][0]["misses"] == ["sampled t=0.6: no short/medium/long rows of grpo-mixed"]
    assert result["summary"]["greedy"]["seeds"] == [1] and "sampled t=0.6" not in result["summary"]


def test_a_seed_depends_on_the_eval_recipe_but_not_on_the_models_and_folder_its_commands_replace(out, tmp_path_factory,
                                                                                                 monkeypatch):
    repo = tmp_path_factory.mktemp("repo")
    recipes = repo / real.RECIPES
    recipes.mkdir(parents=True)
    for name in ("grpo_mixed.yaml", "eval.yaml"):
        (recipes / name).write_text((real.REPO / real.RECIPES / name).read_text())
    monkeypatch.setattr(real, "REPO", repo)
    before = study.made_by("lr3e5", 1)
    source = (recipes / "eval.yaml").read_text()
    more = source.replace("models: [", "models: [sft-tiers=outputs/smollm2/real/sft_tiers, ")
    (recipes / "eval.yaml").write_text(more.replace("output_dir: outputs/smollm2/real/eval", "output_dir: elsewhere"))
    assert yaml.safe_load((recipes / "eval.yaml").read_text())["output_dir"] == "elsewhere"
    assert study.made_by("lr3e5", 1) == before  # the seed's --models and --output_dir replace both
    (recipes / "eval.yaml").write_text(source.replace("max_new_tokens: 384", "max_new_tokens: 256"))
    assert study.made_by("lr3e5", 1) != before
