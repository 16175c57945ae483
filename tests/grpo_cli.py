"""A few GRPO steps of the tiny model through the command line, and the scripted graders the GRPO hook tests share.

The tests of GRPO's hooks (budget rollouts, dynamic sampling, the pool refresh, resuming) each run ``train.main``
with the same small layout: 2 prompts x 4 completions a step, short completions, no W&B and in-process grading.
"""

from __future__ import annotations

from pathlib import Path


def tiny_grpo_argv(base: Path, out: Path, *extra: str, num_train: int, max_steps: int, save_steps: int | None = None,
                   completion_tokens: int = 12, logging_steps: int = 1) -> list[str]:
    """``train.py`` arguments of a GRPO run from ``base`` into ``out``; ``extra`` flags come last."""
    return ["--stage", "grpo", "--model_name_or_path", str(base), "--output_dir", str(out),
            "--num_train", str(num_train), "--max_steps", str(max_steps), "--save_steps", str(save_steps or max_steps),
            "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_completion_length", str(completion_tokens), "--logging_steps", str(logging_steps),
            "--report_to", "none", "--grading", "{workers: 0}", *extra]


def mixed_by_gold(completions: list, solutions: list[str], config=None, *_, **__) -> list[float]:
    """Gold 0 mod 3: always solved; 1 mod 3: never (both zero-variance groups); else correct on an even text length."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [1.0 if int(s) % 3 == 0 else 0.0 if int(s) % 3 == 1 else float(len(t) % 2 == 0)
            for t, s in zip(texts, solutions)]
