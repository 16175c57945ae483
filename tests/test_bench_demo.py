"""bench/demo.py (make demo, CI's demo check): the commands it runs, the figures it reads and the targets it checks."""

from pathlib import Path

import pytest

from bench.demo import figures, main, misses, stages


def row(model: str, mode: str, acc: float, think: float, control: str = "none") -> dict:
    return {"model": model, "mode": mode, "control": control, "accuracy": acc, "think_tokens_mean": think}


def test_seeded_stages_write_under_their_own_folder_and_take_the_sft_ablation_flags(tmp_path: Path):
    cmds = stages(3, tmp_path, ["--num_train", "14400"])
    assert [c[1] for c in cmds] == ["init", "sft", "grpo", "eval"]
    init, sft, grpo, ev = cmds
    assert init[init.index("--init_seed") + 1] == "3" and sft[sft.index("--seed") + 1] == "3"
    assert sft[-2:] == ["--num_train", "14400"] and "--num_train" not in grpo  # the SFT stage only
    assert sft[sft.index("--model_name_or_path") + 1] == str(tmp_path / "base")
    assert grpo[grpo.index("--model_name_or_path") + 1] == str(tmp_path / "sft")
    assert ev[ev.index("--models") + 1] == f"[sft={tmp_path / 'sft'}, grpo-medium={tmp_path / 'grpo'}]"
    assert stages(None, tmp_path)[1] == ["--stage", "sft"]  # the README's command, unchanged


def test_figures_and_misses_follow_the_demo_targets():
    rows = [row("sft", "think", 1.0, 72.0), row("sft", "no-think", 0.04, 0.0),
            row("sft", "think", 0.5, 40.0, control="budget"),  # a controlled run is not the headline
            row("grpo-medium", "think", 0.99, 32.0), row("oracle", "data", 1.0, 32.1, "-"),
            row("full traces", "data", 1.0, 87.7, "-")]
    fig = figures(rows)
    assert fig["sft_accuracy"] == 1.0 and fig["grpo_shorter"] == round(1 - 32 / 72, 4)
    assert misses(fig) == []
    rows[0] = row("sft", "think", 0.52, 74.4)  # the 900-step ablation of seed 1
    rows[3] = row("grpo-medium", "think", 0.40, 60.0)
    assert [m.split()[0:2] for m in misses(figures(rows))] == [["SFT", "accuracy"], ["GRPO", "medium"],
                                                                  ["GRPO", "medium"]]


def test_an_ablation_without_seeds_or_output_is_refused_before_anything_runs(capsys):
    for argv in (["--sft_args", "--num_train 14400"], ["--seeds", "1", "--sft_args", "--num_train 14400"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "--sft_args needs" in capsys.readouterr().err
