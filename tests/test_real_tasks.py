"""The ``dataset`` task (data/dataset_task.py) on the real files of ../shared, its recipe checks, the GPU recipes'
dry runs, and where model files are found (rl/model_files.py)."""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import pytest

import train
from data.benchmarks import BOXED_INSTRUCTION, SOURCES, load_benchmark
from data.budgets import TIER_NAMES, resolve_tiers, tier_instruction
from data.dataset_fields import resolve_fields
from data.dataset_task import DatasetSpec, prompt_rows, sft_rows
from data.format import THINK_CLOSE, THINK_OPEN
from data.gold import latex_gold
from rl.config import ConfigError, LcrlArguments
from rl.model_files import ModelSource, resolve_model
from rl.stages.common import task_dataset

REPO = Path(__file__).resolve().parents[1]
R1 = REPO / "configs" / "r1_distill_1p5b"


def spec(path, fields, **kw) -> DatasetSpec:
    return DatasetSpec.from_value({"path": str(path), "fields": fields, **kw})


# --- prompts and gold answers from the benchmark files -------------------------------------------------------

@pytest.mark.parametrize("name", list(SOURCES))
def test_benchmark_files_give_prompts_with_evaluations_gold(shared_dir, name):
    path = shared_dir / "benchmarks" / SOURCES[name].file
    result = prompt_rows(spec(path, name))
    problems = load_benchmark(name, file=path)  # evaluation's own reading of the same file
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert len(result.rows) == len(lines) == len(problems) and result.counts == {}
    assert [r["solution"] for r in result.rows] == [p.solution for p in problems]
    for row, problem in zip(result.rows, problems):
        assert row["question"] == f"{problem.question}\n{BOXED_INSTRUCTION}"  # as evaluation prompts it
    assert len({r["id"] for r in result.rows}) == len(result.rows)


def test_gsm8k_gold_is_the_number_after_the_hashes(shared_dir):
    rows = prompt_rows(spec(shared_dir / "benchmarks" / "gsm8k_test.jsonl", "gsm8k"), n=3).rows
    raw = [json.loads(line) for line in (shared_dir / "benchmarks" / "gsm8k_test.jsonl").read_text().splitlines()[:3]]
    assert [r["solution"] for r in rows] == [a["answer"].rsplit("####", 1)[1].strip().replace(",", "") for a in raw]
    assert rows[0]["solution"] == "18"


def test_first_n_records_and_a_parquet_copy(shared_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in (shared_dir / "benchmarks" / "math500.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(records[:300]), tmp_path / "math.parquet")
    from_parquet = prompt_rows(spec(tmp_path / "math.parquet", "math500"), n=260).rows  # crosses a read batch
    from_jsonl = prompt_rows(spec(shared_dir / "benchmarks" / "math500.jsonl", "math500"), n=260).rows
    assert len(from_parquet) == 260 and from_parquet == from_jsonl
    assert from_parquet[0]["solution"] == latex_gold(records[0]["answer"])
    shuffled = prompt_rows(spec(tmp_path / "math.parquet", "math500", shuffle=True), n=20, seed=3).rows
    again = prompt_rows(spec(tmp_path / "math.parquet", "math500", shuffle=True), n=20, seed=3).rows
    assert shuffled == again and shuffled != from_parquet[:20]
    assert {r["id"] for r in shuffled} <= {r["id"] for r in prompt_rows(spec(tmp_path / "math.parquet", "math500")).rows}


# --- traces (SFT) from the R1 trace files ---------------------------------------------------------------------

@pytest.mark.parametrize("file, fields, n", [("r1_sat_38.json", "r1_response", 38), ("r1_math_5.json", "auto", 5)])
def test_trace_files_give_sft_rows(shared_dir, file, fields, n):
    path = shared_dir / "traces" / file
    result = sft_rows(spec(path, fields))
    assert len(result.rows) == n and result.counts == {}
    for row in result.rows:
        assert row["completion"].startswith(f"{THINK_OPEN}\n") and THINK_CLOSE in row["completion"]
        thinking, _, conclusion = row["completion"].partition(THINK_CLOSE)
        assert len(thinking) > 1000 and conclusion.strip()
        assert row["question"].endswith(BOXED_INSTRUCTION) and row["solution"]
    prompts = prompt_rows(spec(path, fields)).rows
    assert [(p["id"], p["question"], p["solution"]) for p in prompts] == [
        (r["id"], r["question"], r["solution"]) for r in result.rows]


def test_gold_with_several_forms_uses_the_first(shared_dir):
    rows = json.loads((shared_dir / "traces" / "r1_sat_38.json").read_text())
    multi = next(r for r in rows if "," in str(r["Correct Answer"]))
    got = {r["id"]: r for r in prompt_rows(spec(shared_dir / "traces" / "r1_sat_38.json", "r1_response")).rows}
    first = str(multi["Correct Answer"]).split(",")[0].strip()
    assert got[multi["Question ID"]]["solution"] == latex_gold(first)


def test_records_without_question_gold_or_trace_are_skipped_and_counted(tmp_path):
    good = {"uuid": "a", "problem": "1+1?", "answer": "$2$", "generations": ["<think>\nadd\n</think>\n\n\\boxed{2}"],
            "correctness_math_verify": [True]}
    rows = [
        good,
        {**good, "uuid": "b", "problem": "  "},                                  # missing_question
        {**good, "uuid": "c", "answer": ""},                                     # missing_gold
        {**good, "uuid": "d", "generations": ["no tags at all"]},                # no_thinking (SFT only)
        {**good, "uuid": "e", "generations": ["<think> never closed"]},          # unclosed_thinking (SFT only)
        {**good},                                                                 # duplicate_id
        {**good, "uuid": "f", "problem": "2+2?", "answer": "4"},
    ]
    path = tmp_path / "openr1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = prompt_rows(spec(path, "openr1", question_suffix=None))
    assert [r["id"] for r in prompts.rows] == ["a", "d", "e", "f"]
    assert prompts.rows[0] == {"id": "a", "question": "1+1?", "solution": "2"}  # $...$ removed, no suffix
    assert prompts.counts == {"missing_question": 1, "missing_gold": 1, "duplicate_id": 1}
    traces = sft_rows(spec(path, "openr1"))
    assert [r["id"] for r in traces.rows] == ["a", "f"]
    assert traces.counts == {"missing_question": 1, "missing_gold": 1, "no_thinking": 1, "unclosed_thinking": 1,
                             "duplicate_id": 1}
    assert {s.index for s in traces.skipped} == {1, 2, 3, 4, 5}


def test_a_field_mapping_with_context_and_a_gold_format(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"data": [{"q": "How many?", "ctx": "Ten apples.", "sol": "so #### 1,000"}]}))
    fields = {"question": "q", "context": "ctx", "gold": "sol", "gold_format": "gsm8k"}
    (row,) = prompt_rows(spec(path, fields, question_suffix="Box it.")).rows
    assert row["question"] == "Ten apples.\n\nHow many?\nBox it." and row["solution"] == "1000"
    prompt, trace = resolve_fields(fields)
    assert prompt.gold_format == "gsm8k" and trace is None


def test_dataset_spec_errors_name_the_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset key.*allowed: path"):
        DatasetSpec.from_value({"path": "x/y", "colums": 1})
    with pytest.raises(ValueError, match="unknown dataset fields preset 'opnr1'.*openr1.*math500"):
        DatasetSpec.from_value({"path": "x/y", "fields": "opnr1"})
    with pytest.raises(ValueError, match="unknown dataset field key.*allowed"):
        DatasetSpec.from_value({"path": "x/y", "fields": {"question": "q", "gold": "g", "anser": "a"}})
    with pytest.raises(ValueError, match="unknown gold_format 'latx'; allowed: latex, math500"):
        DatasetSpec.from_value({"path": "x/y", "fields": {"question": "q", "gold": "g", "gold_format": "latx"}})
    with pytest.raises(ValueError, match="dataset.path"):
        DatasetSpec.from_value({"fields": "openr1"})
    assert DatasetSpec.from_value("open-r1/OpenR1-Math-220k").path == "open-r1/OpenR1-Math-220k"
    assert not DatasetSpec.from_value("open-r1/OpenR1-Math-220k").is_local
    assert DatasetSpec.from_value(str(tmp_path / "missing.parquet")).is_local  # a missing file is no Hub id
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        prompt_rows(DatasetSpec.from_value(str(tmp_path / "missing.parquet")))


# --- the task in a recipe: LcrlArguments and task_dataset -------------------------------------------------------

def lcrl_args(**kw) -> LcrlArguments:
    return LcrlArguments(**{"task": "dataset", **kw})


def test_task_dataset_adds_the_tier_instruction_and_the_reward_columns(shared_dir):
    lcrl = lcrl_args(dataset={"path": str(shared_dir / "benchmarks" / "math500.jsonl"), "fields": "math500"},
                     budget="mixed", num_train=30, task_seed=2)
    ds = task_dataset(lcrl, "train", target=None)
    assert len(ds) == 30 and set(ds.column_names) == {"id", "prompt", "solution", "tier"}
    assert set(ds["tier"]) == set(TIER_NAMES)
    tiers = resolve_tiers(None)
    for prompt, tier in zip(ds["prompt"], ds["tier"]):
        assert prompt[0]["role"] == "user"
        assert prompt[0]["content"].endswith(f"{BOXED_INSTRUCTION}\n{tier_instruction(tier, tiers)}")
    sft = task_dataset(lcrl_args(dataset={"path": str(shared_dir / "traces" / "r1_math_5.json")}, budget="short"),
                       "train", target="full")
    assert len(sft) == 5 and set(sft["tier"]) == {"short"}
    assert sft["completion"][0][0]["role"] == "assistant" and sft["completion"][0][0]["content"].startswith(THINK_OPEN)


def test_an_empty_dataset_is_a_config_error_with_the_reasons(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem": "x", "answer": ""}) + "\n" + json.dumps({"problem": "", "answer": "1"}))
    with pytest.raises(ConfigError, match=r"no usable prompts.*'missing_gold': 1, 'missing_question': 1"):
        task_dataset(lcrl_args(dataset={"path": str(path), "fields": {"question": "problem", "gold": "answer"}}),
                     "train", target=None)
    with pytest.raises(ConfigError, match="name no trace"):
        task_dataset(lcrl_args(dataset={"path": str(path), "fields": "math500"}), "train", target="full")


@pytest.mark.parametrize("kw, message", [
    ({}, "task: dataset needs dataset"),
    ({"dataset": {"path": "a/b", "fields": "nope"}}, "unknown dataset fields preset 'nope'"),
    ({"dataset": "a/b", "sft_target": "oracle"}, "sft_target 'oracle' needs the synthetic task"),
    ({"dataset": "a/b", "sft_mode": "chunkwise"}, "sft_mode 'chunkwise' with task: dataset needs sft_data"),
    ({"task": "hub"}, "unknown task 'hub'; allowed: synthetic, dataset"),
])
def test_recipe_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        lcrl_args(**kw)


# --- the DeepSeek-R1-Distill-Qwen-1.5B recipes -----------------------------------------------------------------


@pytest.mark.parametrize("recipe, stage", [("sft", "sft"), ("grpo", "grpo"), ("grpo_server", "grpo"),
                                           ("eval", "eval")])
def test_gpu_recipes_pass_a_dry_run_here(no_hub, recipe, stage, caplog):
    caplog.set_level(logging.INFO)
    assert train.main(["--stage", stage, "--config", str(R1 / f"{recipe}.yaml"), "--dry_run", "true"]) == 0
    if stage != "eval":
        assert "Hub dataset open-r1/OpenR1-Math-220k (split train, fields openr1) not loaded" in caplog.text


def test_gpu_recipes_name_the_vllm_modes_and_the_benchmarks():
    import yaml

    colocate, server = (yaml.safe_load((R1 / f"{n}.yaml").read_text()) for n in ("grpo", "grpo_server"))
    assert colocate["use_vllm"] and colocate["vllm_mode"] == "colocate"
    assert server["use_vllm"] and server["vllm_mode"] == "server"
    assert "trl vllm-serve --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" in (R1 / "grpo_server.yaml").read_text()
    ev = yaml.safe_load((R1 / "eval.yaml").read_text())
    assert set(ev["benchmarks"]) == set(SOURCES) and ev["max_new_tokens"] >= 4096 and ev["tiers"] == "default"


def test_a_dry_run_reads_and_checks_a_local_dataset(shared_dir, caplog):
    caplog.set_level(logging.INFO)
    local = "{path: %s, fields: gsm8k}" % (shared_dir / "benchmarks" / "gsm8k_test.jsonl")
    argv = ["--stage", "grpo", "--config", str(R1 / "grpo.yaml"), "--dry_run", "true", "--dataset", local,
            "--num_train", "40"]
    assert train.main(argv) == 0
    assert "GRPO on 40 prompts, budget mixed" in caplog.text
    assert train.main([*argv[:-4], "--dataset", local.replace("gsm8k}", "openr1}")]) == 2  # no such fields there


def test_sft_chat_template_keeps_the_thinking(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = (R1 / "chat_template.jinja").read_text()
    tok.bos_token = "<|im_start|>"
    prompt = [{"role": "user", "content": "1+1?"}]
    answer = {"role": "assistant", "content": f"{THINK_OPEN}\nadd\n{THINK_CLOSE}\n\n\\boxed{{2}}"}
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template([*prompt, answer], tokenize=False)
    assert head == "<|im_start|><｜User｜>1+1?<｜Assistant｜>"
    assert full == head + answer["content"] + tok.eos_token  # thinking kept, completion right after the prompt


# --- where model files are (GGUF) ----------------------------------------------------------------------------

def test_resolve_model_paths(tmp_path, monkeypatch):
    assert resolve_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B") == ModelSource(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model(str(tmp_path / "m.gguf")) == ModelSource(str(tmp_path), "m.gguf")
    assert resolve_model("org/repo-GGUF/q4/m.gguf") == ModelSource("org/repo-GGUF", "q4/m.gguf")
    with pytest.raises(ValueError, match="not found"):
        resolve_model(str(tmp_path / "other.gguf"))
    # a package that must never be imported to find its file
    pkg = tmp_path / "site" / "lcrl_fake_weights"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (pkg / "tiny.Q4.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert resolve_model("package:lcrl_fake_weights") == ModelSource(str(pkg), "tiny.Q4.gguf")
    assert resolve_model("package:lcrl_fake_weights/tiny.Q4.gguf") == ModelSource(str(pkg), "tiny.Q4.gguf")
    assert "lcrl_fake_weights" not in sys.modules
    with pytest.raises(ValueError, match=r"no file 'x.gguf'.*\['tiny.Q4.gguf'\]"):
        resolve_model("package:lcrl_fake_weights/x.gguf")
    (pkg / "tiny.Q8.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="holds 2 GGUF files"):
        resolve_model("package:lcrl_fake_weights")
    with pytest.raises(ValueError, match="'lcrl_no_such_pkg' is not installed"):
        resolve_model("package:lcrl_no_such_pkg/m.gguf")
