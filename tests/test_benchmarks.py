"""Benchmark loaders: every record of the five real files loads with a gold answer that grades correct against
itself; Hub-copy field mapping, local-file formats and bad names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.benchmarks import (
    BENCHMARK_NAMES, BOXED_INSTRUCTION, SOURCES, Problem, benchmark_question, load_benchmark, read_records,
    resolve_source,
)  # fmt: skip
from rewards.correctness import Grader
from data.gold import as_boxed
from rewards.registry import GradingConfig

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
COUNTS = {"math500": 500, "aime24": 30, "amc23": 40, "olympiadbench": 675, "gsm8k": 1319}  # SOURCES.md


def real_file(name: str) -> Path:
    path = BENCHMARKS / SOURCES[name].file
    if not path.is_file():
        pytest.skip(f"real benchmark file {path} is absent (../shared/benchmarks sits beside the checkout)")
    return path


@pytest.fixture(scope="module")
def grader():
    g = Grader(GradingConfig(timeout=10.0, workers=1))
    yield g
    g.close()


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_real_record_loads_and_its_gold_grades_correct(name, grader):
    problems = load_benchmark(name, file=real_file(name))
    assert len(problems) == COUNTS[name]
    assert len({p.id for p in problems}) == len(problems)
    for p in problems:
        assert p.question and p.solution, p
        assert not p.solution.startswith("$") and not p.solution.endswith("$") and "####" not in p.solution
    completions = [f"<think>\nLet me solve it.\n</think>\n\nThe answer is ${as_boxed(p.solution)}$." for p in problems]
    scores = grader.grade(completions, [p.solution for p in problems])
    wrong = [(p.id, p.solution) for p, s in zip(problems, scores) if s != 1.0]
    assert not wrong, f"{len(wrong)} golds not graded correct against themselves: {wrong[:5]}"


def test_per_benchmark_normalisation():
    amc = load_benchmark("amc23", file=real_file("amc23"))
    assert amc[0].solution == "27"  # JSON float 27.0
    gsm = load_benchmark("gsm8k", file=real_file("gsm8k"), max_examples=1)
    assert gsm[0].solution == "18"  # after ####
    oly = load_benchmark("olympiadbench", file=real_file("olympiadbench"))
    assert any(", " in p.solution for p in oly)  # multiple answers joined into one set


def test_hub_field_mapping_and_local_formats(tmp_path):
    records = [{"Problem": "What is 1+1?", "Answer": 2.0, "ID": "a"}, {"Problem": "2+2?", "Answer": "4", "ID": "b"}]
    (tmp_path / "x.json").write_text(json.dumps(records))
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    mapping = {"question": "Problem", "answer": "Answer"}
    for path in (tmp_path / "x.json", tmp_path / "x.jsonl"):
        problems = load_benchmark("amc23", file=path, source=mapping)
        assert [p.solution for p in problems] == ["2", "4"] and problems[0].question == "What is 1+1?"
    assert len(read_records(tmp_path / "x.jsonl")) == 2
    with pytest.raises(ValueError, match="has no 'question' field"):
        load_benchmark("amc23", file=tmp_path / "x.json")
    assert resolve_source("aime24", {"hub_id": "math-ai/aime24"}).hub_id == "math-ai/aime24"


def test_olympiad_context_is_prepended(tmp_path):
    rec = {"id": 1, "context": "Let f be a function.", "question": "Find f(0).", "final_answer": ["$0$"]}
    (tmp_path / "o.jsonl").write_text(json.dumps(rec) + "\n")
    (p,) = load_benchmark("olympiadbench", file=tmp_path / "o.jsonl")
    assert p.question == "Let f be a function.\n\nFind f(0)." and p.solution == "0"


def test_synthetic_is_a_benchmark():
    problems = load_benchmark("synthetic", synthetic={"n": 7, "seed": 0})
    assert len(problems) == 7 and all(p.solution.isdigit() for p in problems)
    assert load_benchmark("synthetic", synthetic={"n": 7, "seed": 0}, max_examples=3) == problems[:3]
    assert benchmark_question(problems[0], "synthetic") == problems[0].question
    q = benchmark_question(Problem("1", "What is 2+2?", "4"), "gsm8k")
    assert q.endswith(BOXED_INSTRUCTION)


def test_bad_names_name_the_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'; allowed: synthetic, math500"):
        load_benchmark("mmlu")
    with pytest.raises(ValueError, match="allowed: hub_id"):
        resolve_source("math500", {"repo": "x"})
    with pytest.raises(FileNotFoundError, match="not found"):
        load_benchmark("math500", file=tmp_path / "missing.jsonl")
    assert BENCHMARK_NAMES[0] == "synthetic"
