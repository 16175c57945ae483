"""Reading rows of records: a local ``.json`` / ``.jsonl`` / ``.parquet`` / ``.csv`` file, a folder or a Hub dataset.

One reader for every stage that takes records (traces for ``--stage prune``, a dataset task's prompts and traces).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Local files besides JSON, read by ``datasets`` (kept as a ``Dataset``: OpenR1's parquet is GBs as Python dicts)
DATASETS_KINDS = {".parquet": "parquet", ".csv": "csv"}
LOCAL_SUFFIXES = (".jsonl", ".json", *DATASETS_KINDS)


def read_rows(source: str, split: str = "train", name: str | None = None) -> Sequence[Mapping[str, Any]]:
    """Rows of a ``.json`` (a list, or a mapping holding one list) or ``.jsonl`` file (a list), a ``.parquet`` or
    ``.csv`` file, a folder or a Hub dataset ``split`` (config ``name``) (a ``datasets.Dataset``)."""
    path = Path(source)
    if path.is_file() and path.suffix in (".json", ".jsonl"):
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        data = json.loads(path.read_text())
        if isinstance(data, Mapping):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise ValueError(f"{source}: a JSON mapping must hold exactly one list of records")
            data = lists[0]
        if not isinstance(data, list):
            raise ValueError(f"{source}: expected a list of records")
        return data
    if path.suffix in LOCAL_SUFFIXES and not path.is_file():
        raise FileNotFoundError(f"file {source!r} not found")
    from datasets import load_dataset

    if path.is_file():
        if path.suffix not in DATASETS_KINDS:
            raise ValueError(f"cannot read {source!r}: use {', '.join(LOCAL_SUFFIXES)}, a folder or a Hub dataset")
        return load_dataset(DATASETS_KINDS[path.suffix], data_files=str(path), split="train")
    return load_dataset(source, name, split=split)  # a folder or a Hub id
