"""Trace ingestion: both R1 schemas of ../shared/traces, Hub-style field paths, skipped records with reasons."""

from __future__ import annotations

import json

import pytest

from data.format import THINK_CLOSE
from data.sources import read_rows
from data.synthetic import generate
from data.traces import (
    SCHEMAS,
    FieldMap,
    field_map,
    get_field,
    ingest,
    load_traces,
    render_completion,
)
from data.tasks import synthetic_records


def test_closing_tag_only_schema_loads(shared_dir):
    path = shared_dir / "traces" / "r1_sat_38.json"
    result = load_traces(str(path))  # detected: r1_response
    rows = json.loads(path.read_text())
    assert len(result.records) == len(rows) == 38 and result.skipped == []
    for rec, row in zip(result.records, rows):
        head, _, tail = row["deepseek-reasoner (response)"].partition(THINK_CLOSE)
        assert rec.thinking == head.strip() and rec.conclusion == tail.strip()
        assert rec.id == row["Question ID"] and rec.question == row["Instruction"].strip()
        assert THINK_CLOSE not in rec.thinking and len(rec.thinking) > 1000
    by_id = {r.id: r for r in result.records}
    multi = [r for r in result.records if len(r.gold) > 1]  # ".2,  1/5": several accepted forms
    assert multi and all(len(r.gold) == 2 for r in multi)
    assert by_id[rows[0]["Question ID"]].gold == ["A"]


def test_separate_fields_schema_loads(shared_dir):
    result = load_traces(str(shared_dir / "traces" / "r1_math_5.json"), "thinking_answer")
    assert len(result.records) == 5 and result.counts == {}
    assert [r.gold for r in result.records] == [["0"], ["98"], ["4"], ["17"], ["6"]]
    for r in result.records:
        assert "\\boxed" in r.conclusion and len(r.thinking) > 1000
    assert len({r.id for r in result.records}) == 5  # ids: content hashes of the questions


def test_both_schemas_through_jsonl_and_an_explicit_mapping(shared_dir, tmp_path):
    rows = json.loads((shared_dir / "traces" / "r1_math_5.json").read_text())
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = {"question": "problem", "thinking": "message_thinking", "answer": "message_content",
               "gold": "gtruth_answer"}
    result = load_traces(str(path), mapping)
    assert len(result.records) == 5
    assert read_rows(str(path)) == rows
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "t.parquet"  # a local copy of a Hub dataset's file
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    assert list(read_rows(str(parquet))) == rows and len(load_traces(str(parquet), mapping).records) == 5
    with pytest.raises(FileNotFoundError, match="not found"):
        read_rows(str(tmp_path / "absent.parquet"))


def test_opening_tag_and_dotted_paths():
    rows = [{"q": "1+1?", "gen": [{"text": "<think>\none plus one\n</think>\n\n\\boxed{2}"}], "ans": "2"}]
    fmap = FieldMap(question="q", response="gen.0.text", gold="ans")
    (rec,) = ingest(rows, fmap).records
    assert rec.thinking == "one plus one" and rec.conclusion == "\\boxed{2}"
    assert get_field(rows[0], "gen.5.text") is None and get_field(rows[0], "nope") is None


def test_unusable_records_are_skipped_with_reasons():
    fmap = FieldMap(id="id", question="q", response="r", gold="g")
    rows = [
        {"id": "a", "q": "Q?", "r": "think</think>\\boxed{1}", "g": "1"},  # fine
        {"id": "b", "q": "", "r": "think</think>\\boxed{1}", "g": "1"},
        {"id": "c", "q": "Q?", "r": "no tags at all \\boxed{1}", "g": "1"},
        {"id": "d", "q": "Q?", "r": "<think>never closed", "g": "1"},
        {"id": "e", "q": "Q?", "r": "think</think>   ", "g": "1"},
        {"id": "f", "q": "Q?", "r": "think</think>\\boxed{1}", "g": ""},
        {"id": "a", "q": "Q?", "r": "think</think>\\boxed{1}", "g": "1"},
        {"id": "g", "q": "Q?", "r": "   </think>\\boxed{1}", "g": "1"},
    ]
    result = ingest(rows, fmap)
    assert [r.id for r in result.records] == ["a"]
    assert [(s.id, s.reason) for s in result.skipped] == [
        ("b", "missing_question"), ("c", "no_thinking"), ("d", "unclosed_thinking"), ("e", "no_conclusion"),
        ("f", "missing_gold"), ("a", "duplicate_id"), ("g", "no_thinking")]
    assert result.counts["no_thinking"] == 2 and sum(result.counts.values()) == 7
    assert result.skipped[0].to_dict()["detail"]


def test_field_mapping_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown trace field preset 'nope'; allowed: auto, r1_response"):
        field_map("nope")
    with pytest.raises(ValueError, match="unknown trace field key"):
        field_map({"question": "q", "gold": "g", "response": "r", "extra": 1})
    with pytest.raises(ValueError, match="no trace field preset fits"):
        field_map("auto", {"x": 1})
    with pytest.raises(ValueError, match="either 'response' or both"):
        FieldMap(question="q", gold="g")
    assert set(SCHEMAS) >= {"r1_response", "thinking_answer"}
    with pytest.raises(FileNotFoundError):
        read_rows("missing/traces.jsonl")


def test_boxed_gold_and_synthetic_records():
    fmap = FieldMap(question="q", thinking="t", answer="a", gold="s", gold_boxed=True)
    (rec,) = ingest([{"q": "Q", "t": "x", "a": "y", "s": "so \\boxed{\\frac{1}{2}}."}], fmap).records
    assert rec.gold == ["\\frac{1}{2}"]
    traces = generate("train", 5, seed=0)
    for rec, trace in zip(synthetic_records(traces), traces):
        assert render_completion(rec.thinking, rec.conclusion) == trace.text
        assert rec.gold == [str(trace.problem.answer)] and rec.meta["kinds"][0] in ("restate", "step", "mistake")
