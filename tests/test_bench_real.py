"""bench/real.py (make real): the figures it reads from the eval stages' results and the targets it checks."""

from __future__ import annotations

import json
from pathlib import Path

from bench.real import FINAL, REPO, STAGES, closest_tiers, figures, markdown, misses


def write_rows(out: Path, name: str, rows: list[dict]) -> None:
    (out / name).mkdir(parents=True)
    (out / name / "results.json").write_text(json.dumps({"rows": rows}))


def row(model: str, tier: str, acc: float, think: float, mode: str = "think") -> dict:
    return {"model": model, "tier": tier, "mode": mode, "control": "none", "accuracy": acc,
            "think_tokens_mean": think, "within_band": 0.5}


def results(tmp_path: Path, lengths: tuple[float, float, float], medium_acc: float = 0.95) -> dict:
    write_rows(tmp_path, "eval_sft", [row("sft", "long", 0.96, 130.0), row("sft", "long", 0.1, 0.0, "no-think")])
    for folder in ("eval", "eval_sampled"):
        tiers = [row("grpo-mixed", t, medium_acc if t == "medium" else 0.95, n)
                 for t, n in zip(("short", "medium", "long"), lengths)]
        write_rows(tmp_path, folder, [*tiers, row("grpo-mixed", "medium", 0.0, 40.0, "no-think")])
    return figures(tmp_path)


def test_a_run_meeting_every_target_has_no_misses(tmp_path):
    fig = results(tmp_path, (60.0, 85.0, 140.0))
    assert fig["sft"] == {"accuracy": 0.96, "think_tokens": 130.0, "no_think_accuracy": 0.1, "tier": "long"}
    assert len(fig["tiers"]) == 6  # 3 tiers x (greedy, sampled); the no-think rows are left out
    assert misses(fig) == []
    text = markdown({"environment": {"date": "d", "cores": 2, "cpu": "c", "versions": {"trl": "1"}},
                     "figures": fig, "wall_seconds": {"sft": 60.0, "prune": 30.0}, "misses": []})
    assert "| total | 90 (1.5 min) |" in text and "Targets missed by grpo-mixed (the final model): none" in text
    assert "greedy: short/medium +25.0 tokens; sampled t=0.6: short/medium +25.0 tokens" in text
    assert "SFT on long traces (long sentence, greedy): accuracy 0.960" in text


def test_unordered_tiers_and_a_medium_too_long_or_too_wrong_are_missed(tmp_path):
    got = misses(results(tmp_path, (60.0, 100.0, 95.0), medium_acc=0.90))
    assert any("greedy: tiers not ordered" in m for m in got)
    assert any("sampled t=0.6: tiers not ordered" in m for m in got)
    assert any(m.startswith("medium 23.1% shorter than SFT at +0.060 accuracy loss") for m in got)
    fig = results(tmp_path / "inverted", (60.0, 100.0, 95.0))
    assert closest_tiers(fig)["greedy"] == ("medium/long", -5.0)  # an inversion is the smallest difference
    text = markdown({"environment": {"date": "d", "cores": 2, "cpu": "c", "versions": {}}, "figures": fig,
                     "wall_seconds": {}, "misses": []})
    assert "greedy: medium/long -5.0 tokens (inverted)" in text


def test_the_tier_sft_model_is_checked_greedy_only_and_a_model_without_rows_misses(tmp_path):
    fig = results(tmp_path, (60.0, 85.0, 140.0))
    assert misses(fig, "sft-tiers") == ["greedy: no short/medium/long rows of sft-tiers"]
    fig["tiers"] += [dict(r, model="sft-tiers") for r in fig["tiers"] if r["decoding"] == "greedy"]
    assert misses(fig) == [] and misses(fig, "sft-tiers") == []  # make real samples the final model only
    sampled = [dict(r, model="sft-tiers", think_tokens=1.0) for r in fig["tiers"] if r["decoding"] != "greedy"]
    assert misses({**fig, "tiers": fig["tiers"] + sampled}, "sft-tiers") == []  # rows of an older run: not checked
    assert set(closest_tiers({**fig, "tiers": fig["tiers"] + sampled}, "sft-tiers")) == {"greedy"}
    fig["tiers"] = [r for r in fig["tiers"] if not (r["model"] == "grpo-mixed" and r["decoding"] != "greedy")]
    assert misses(fig) == ["sampled t=0.6: no short/medium/long rows of grpo-mixed"]
    for r in fig["tiers"]:
        if r["model"] == "sft-tiers" and r["tier"] == "long":
            r["think_tokens"] = 80.0
    text = markdown({"environment": {"date": "d", "cores": 2, "cpu": "c", "versions": {}}, "figures": fig,
                     "wall_seconds": {}, "misses": [], "misses_before": {"sft-tiers": misses(fig, "sft-tiers")}})
    assert "Targets missed by sft-tiers (before GRPO; greedy): greedy: tiers not ordered short < medium < long " \
           "(60.0, 85.0, 80.0)" in text
    assert "Closest neighbouring tiers of sft-tiers (a strict order can be a tie in substance): greedy: " \
           "medium/long -5.0 tokens (inverted)" in text


def test_make_real_probes_evaluates_the_tier_sft_model_and_its_rows_join_the_report_while_current(
        tmp_path, monkeypatch, caplog):
    import logging

    import bench.real as real

    caplog.set_level(logging.INFO, logger="real")
    monkeypatch.setattr(real, "OUT", tmp_path)
    results(tmp_path, (60.0, 85.0, 140.0))  # the baseline's and the final model's evaluations
    for name in ("sft", "prune", "sft_tiers", "grpo_mixed"):  # make real's models, done
        (tmp_path / STAGES[name][1]).parent.mkdir()
        (tmp_path / STAGES[name][1]).write_text("{}")
    (tmp_path / real.MADE).write_text(json.dumps({name: real.recipe_digest(name) for name in STAGES}))
    ran: list[list[str]] = []

    def run_stage(args: list[str]) -> tuple[float, int]:  # writes what the stage's train.py command would
        ran.append(args)
        done = tmp_path / next(d for a, d in real.EVERY_STAGE.values() if a == args)
        done.parent.mkdir(exist_ok=True)
        model = real.TIER_SFT if done.parent.name == real.BEFORE_GRPO else FINAL
        lengths = (60.0, 90.0, 80.0) if model == real.TIER_SFT else (60.0, 85.0, 140.0)
        done.write_text(json.dumps({"rows": [row(model, t, 0.95, n) for t, n in zip(("short", "medium", "long"),
                                                                                     lengths)]}))
        return 30.0, 1

    monkeypatch.setattr(real, "run_stage", run_stage)
    out = tmp_path / "real.json"
    assert real.main(["--output", str(out)]) == 0 and ran == []  # make real runs no probe
    assert "sft-tiers (before GRPO): not evaluated by make real; make real-probes evaluates it." in \
        out.with_suffix(".md").read_text()
    assert real.main(["--probe", "--output", str(out)]) == 0 and ran == [real.PROBES[real.BEFORE_GRPO][0]]
    result, text = json.loads(out.read_text()), out.with_suffix(".md").read_text()
    assert [(r["decoding"], r["tier"]) for r in result["figures"]["tiers"] if r["model"] == real.TIER_SFT] == \
        [("greedy", "short"), ("greedy", "medium"), ("greedy", "long")]
    assert result["misses_before"] == {"sft-tiers": ["greedy: tiers not ordered short < medium < long "
                                                     "(60.0, 90.0, 80.0)"]}
    assert result["misses"] == [] and "| eval_tier_sft (make real-probes, not in the total) | 30 |" in text
    assert "| total | 0 (0.0 min) |" in text  # make real's stages ran before this test: no time of theirs
    # --report and a second --probe run nothing: the probe is done and current
    assert real.main(["--report", "--output", str(out)]) == 0 and real.main(["--probe", "--output", str(out)]) == 0
    assert len(ran) == 1 and json.loads(out.read_text())["misses_before"] == result["misses_before"]
    # make real trains the tier SFT model again (its folder and the later ones deleted): the probe's rows are left
    # out until make real-probes runs it again
    for name in ("sft_tiers", "grpo_mixed", "eval_greedy", "eval_sampled"):
        (tmp_path / STAGES[name][1]).unlink()
    assert real.main(["--output", str(out)]) == 0 and len(ran) == 5
    assert json.loads((tmp_path / real.MADE).read_text())[real.BEFORE_GRPO] == "input sft_tiers ran again"
    assert json.loads(out.read_text())["misses_before"] == {}
    assert "eval_tier_sft: made from another tier SFT model or recipe: left out" in caplog.text
    assert real.main(["--probe", "--output", str(out)]) == 0 and ran[-1] == real.PROBES[real.BEFORE_GRPO][0]
    assert "eval_tier_sft: done, but its input sft_tiers ran again; running it again" in caplog.text
    assert json.loads(out.read_text())["misses_before"] == result["misses_before"]


def test_every_stage_runs_a_recipe_of_the_real_pipeline():
    for args, done in STAGES.values():
        assert args[0] == "--stage" and Path(args[3]).parent.as_posix() == "configs/smollm2/real"
        assert (REPO / args[3]).is_file() and done.endswith(".json")


def test_a_finished_stage_of_another_recipe_or_after_its_input_ran_again_stops_the_run(tmp_path, monkeypatch, caplog):
    import bench.real as real

    monkeypatch.setattr(real, "OUT", tmp_path)
    made = {name: real.recipe_digest(name) for name in STAGES}
    assert real.stale_reason("prune", made) is None
    after_sft, after_tiers = dict(made), dict(made)
    real.mark_readers(after_sft, "sft")  # sft ran again
    real.mark_readers(after_tiers, "sft_tiers")
    assert real.stale_reason("prune", after_sft) == "done, but its input sft ran again"
    assert real.stale_reason("eval_sft", after_tiers) is None  # it reads the sft model only
    assert real.stale_reason("prune", {**made, "prune": "0" * 16}) == \
        "made by another version of configs/smollm2/real/prune.yaml or of its arguments in bench/real.py (STAGES)"
    # through main: sft is not finished (it runs), prune is: the run stops there and names the folder to delete
    ran: list[str] = []
    monkeypatch.setattr(real, "run_stage", lambda args: (ran.append(args[3]), (1.0, 1))[1])
    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "report.json").write_text("{}")
    (tmp_path / real.MADE).write_text(json.dumps(made))
    assert real.main(["--output", str(tmp_path / "real.json")]) == 2
    assert ran == ["configs/smollm2/real/sft.yaml"]
    assert f"prune: done, but its input sft ran again; delete {tmp_path / 'prune'}" in caplog.text
    assert json.loads((tmp_path / "wall_seconds.json").read_text()) == {"sft": 1.0}
    # the next invocation, sft finished: prune is still out of date (recipes.json keeps the mark), not taken as done
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "lcrl_config.json").write_text("{}")
    caplog.clear()
    assert real.main(["--output", str(tmp_path / "real.json")]) == 2 and ran == ["configs/smollm2/real/sft.yaml"]
    assert f"prune: done, but its input sft ran again; delete {tmp_path / 'prune'}" in caplog.text
    # --report (make real-probes) runs no stage: the first one not done stops it
    (tmp_path / real.MADE).write_text(json.dumps(made))
    ran.clear()
    assert real.main(["--report", "--output", str(tmp_path / "real.json")]) == 2 and ran == []
    assert f"sft_tiers: not done (no {tmp_path / 'sft_tiers/lcrl_config.json'}); run make real first" in caplog.text


def test_each_stage_declares_the_stages_whose_outputs_it_reads():
    """INPUTS decides which finished stages are stale once a stage runs again: a stage reading an output it does not
    declare (directly or through a declared input) would be reused after that output changed."""
    import yaml

    from bench.real import INPUTS, OUTPUTS

    folder = {Path(done).parts[0]: name for name, (_, done) in STAGES.items()}  # output folder -> stage

    def read(name: str) -> set[str]:
        args, recipe = STAGES[name][0], yaml.safe_load((REPO / STAGES[name][0][3]).read_text())
        keys = [i for i, a in enumerate(args) if a.startswith("--")] + [len(args)]
        recipe.update({args[i][2:]: args[i + 1:j] for i, j in zip(keys, keys[1:])})  # train.py's overrides
        values = recipe.values()
        paths = [p.split("=", 1)[-1] for v in values for p in (v if isinstance(v, list) else [v]) if isinstance(p, str)]
        used = {folder[Path(p).relative_to(OUTPUTS).parts[0]] for p in paths if p.startswith(f"{OUTPUTS}/")}
        return used - {name}

    def closure(names: tuple[str, ...]) -> set[str]:
        return set(names).union(*(closure(INPUTS.get(n, ())) for n in names))

    assert read("sft_tiers") == {"sft", "prune"} and read("eval_sampled") == {"grpo_mixed"}
    for name in STAGES:
        assert set(INPUTS.get(name, ())) <= read(name) <= closure(INPUTS.get(name, ())), name


def test_a_recipe_digest_follows_its_settings_not_its_comments(tmp_path, monkeypatch):
    import bench.real as real

    recipes = tmp_path / "configs/smollm2/real"
    recipes.mkdir(parents=True)
    source = (REPO / "configs/smollm2/real/sft.yaml").read_text()
    (recipes / "sft.yaml").write_text(source)
    monkeypatch.setattr(real, "REPO", tmp_path)
    before = real.recipe_digest("sft")
    (recipes / "sft.yaml").write_text("# a new comment\n" + source.replace("seed: 0", "seed: 0   # the same seed"))
    assert real.recipe_digest("sft") == before
    (recipes / "sft.yaml").write_text(source.replace("learning_rate: 1.0e-3", "learning_rate: 2.0e-3"))
    assert real.recipe_digest("sft") != before
    # a key the caller's own arguments override (make real-grpo's --output_dir) is dropped on request
    (recipes / "sft.yaml").write_text(source)
    dropped = real.recipe_digest("sft", drop=("output_dir",))
    (recipes / "sft.yaml").write_text(source.replace("output_dir: outputs/smollm2/real/sft", "output_dir: elsewhere"))
    assert real.recipe_digest("sft") != before and real.recipe_digest("sft", drop=("output_dir",)) == dropped


def test_every_recipe_of_make_real_writes_the_same_task_under_the_same_tiers():
    """Stage 1's traces, the pruned rows, the GRPO prompts and the eval problems are one task: a knob that differs
    between two recipes (say show_wrap in SFT only) would evaluate a model on traces it never saw. The sentence
    stage 1 trains under is long (a full trace), the one pruning validates with and the SFT baseline is read with."""
    import yaml

    recipes = {name: yaml.safe_load((REPO / args[3]).read_text()) for name, (args, _) in STAGES.items()}
    knobs = recipes["sft"]["synthetic"]
    assert knobs == {"max_ops": 3, "redundancy": 2.0, "show_wrap": True}
    for name, recipe in recipes.items():
        assert recipe["synthetic"] == knobs, name
        assert recipe["tiers"] == "synthetic_smollm2", name
    assert {recipes[n]["budget"] for n in ("sft", "prune", "eval_sft")} == {"long"}
    assert {recipes[n]["budget"] for n in ("sft_tiers", "grpo_mixed", "eval_greedy")} == {"mixed"}
    assert recipes["eval_greedy"]["eval_tiers"] == ["short", "medium", "long"]
    # make real evaluates the model GRPO writes, the final one, and no other (make real-probes the tier SFT model)
    assert recipes["eval_greedy"]["models"] == [f"{FINAL}={recipes['grpo_mixed']['output_dir']}"]
    assert recipes["eval_sft"]["models"] == [f"sft={recipes['sft']['output_dir']}"]
    sampled = STAGES["eval_sampled"][0]  # the sampled evaluation: the greedy one's recipe, on its final model
    assert sampled[sampled.index("--config") + 1] == STAGES["eval_greedy"][0][3]
    final = [m for m in recipes["eval_greedy"]["models"] if m.startswith(f"{FINAL}=")]
    assert sampled[sampled.index("--models") + 1:sampled.index("--output_dir")] == final
    assert final == [f"{FINAL}={recipes['grpo_mixed']['output_dir']}"]
