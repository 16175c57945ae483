"""The ``dataset`` task on an OpenR1-Math-shaped file (data/dataset_task.py, data/traces.py): SFT imitates only a
generation that ``correctness_math_verify`` marks correct, and GRPO drops prompts whose gold the grader cannot
parse (issue 12, defect 3). The shape: ``problem``, ``answer``, ``uuid``, ``generations`` (R1's traces) and
``correctness_math_verify`` (one flag per generation)."""

from __future__ import annotations

import json
import logging

import pytest

from data.dataset_task import DatasetSpec, prompt_rows, sft_rows
from data.traces import FieldMap, verified_response
from rl.config import LcrlArguments
from rl.stages.common import task_dataset


def trace(answer: str) -> str:
    return f"<think>\nwork it out\n</think>\n\nSo the answer is \\boxed{{{answer}}}."


def record(uuid: str, gold: str, generations: list[str], flags: list[bool] | None) -> dict:
    row = {"uuid": uuid, "problem": f"Problem {uuid}?", "answer": gold, "generations": generations}
    if flags is not None:
        row["correctness_math_verify"] = flags
    return row


ROWS = [
    record("wrong-first", "2", [trace("3"), trace("2")], [False, True]),   # the second generation is the right one
    record("none-right", "5", [trace("4"), trace("6")], [False, False]),   # unverified: no SFT target
    record("unclosed", "7", ["<think> cut off", trace("7")], [True, True]),  # the first flagged one has no answer
    record("no-flags", "9", [trace("9")], None),                           # unverified: no flags at all
    record("cut-gold", "\\frac{1}{2", [trace("\\frac{1}{2}")], [True]),  # the grader cannot read the gold
    record("fine", "Answer: 43", [trace("43")], [True]),  # parses (math-verify reads words as symbols)
]


@pytest.fixture
def openr1_file(tmp_path):
    path = tmp_path / "openr1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_sft_takes_the_first_generation_marked_correct_and_skips_rows_with_none(openr1_file, caplog):
    caplog.set_level(logging.INFO)
    result = sft_rows(DatasetSpec.from_value({"path": str(openr1_file), "fields": "openr1"}))
    got = {r["id"]: r["completion"] for r in result.rows}
    assert list(got) == ["wrong-first", "unclosed", "cut-gold", "fine"]
    assert got["wrong-first"].endswith("\\boxed{2}.")  # not generations.0, which boxed 3
    assert got["unclosed"].endswith("\\boxed{7}.")
    assert result.counts == {"unverified": 2}
    assert "'unverified': 2" in caplog.text  # counted in the log line of the read


def test_auto_fields_pick_openr1_only_with_its_correctness_flags(openr1_file):
    spec = DatasetSpec.from_value({"path": str(openr1_file), "fields": "auto"})
    assert [r["id"] for r in sft_rows(spec).rows] == ["wrong-first", "unclosed", "cut-gold", "fine"]
    with pytest.raises(ValueError, match="needs 'response'"):
        FieldMap(question="q", gold="g", thinking="t", answer="a", verified="flags")
    assert verified_response([trace("1")], [None])[2] == "unverified"  # no verdict is not a true flag
    assert verified_response(["no tags"], [True])[2] == "no_thinking"  # the flagged trace's own problem


def test_grpo_prompts_drop_golds_the_grader_cannot_parse(openr1_file, caplog):
    caplog.set_level(logging.INFO)
    spec = {"path": str(openr1_file), "fields": "openr1"}
    ds = task_dataset(LcrlArguments(task="dataset", dataset=spec, budget="short"), "train", target=None)
    assert ds["id"] == ["wrong-first", "none-right", "unclosed", "no-flags", "fine"]  # a prompt needs no trace
    assert "'unparsable_gold': 1" in caplog.text
    # the data layer keeps it unless told how the grader reads golds (data never imports the grader)
    plain = prompt_rows(DatasetSpec.from_value(spec))
    assert "cut-gold" in [r["id"] for r in plain.rows] and plain.counts == {}
    # under the full normalisation too: an unclosed brace is no mathematical object
    full = LcrlArguments(task="dataset", dataset=spec, budget="short", grading={"normalization": "full"})
    assert "cut-gold" not in task_dataset(full, "train", target=None)["id"]


def test_a_missing_local_dataset_file_is_named_not_looked_up_on_the_hub(tmp_path):
    missing = tmp_path / "absent.parquet"
    with pytest.raises(FileNotFoundError, match=f"file '{missing}' not found"):
        prompt_rows(DatasetSpec.from_value({"path": str(missing), "fields": "openr1"}))
