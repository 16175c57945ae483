"""Task datasets for every stage, in TRL's conversational formats.

Columns: ``prompt`` (a list of chat messages ending with the user turn), ``completion`` (the assistant
turn, SFT only), ``solution`` (the gold answer as a string, the column TRL's math rewards read), ``tier``
(the reasoning-length tier named in the prompt) and ``id``. The tier instruction comes from
``data.budgets``, the single definition of the tiers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset

from data.budgets import Tier, assign_tiers, budget_tiers, tier_instruction
from data.format import THINK_CLOSE, THINK_OPEN
from data.synthetic import REDUNDANCY_RATES, SyntheticConfig, Trace, generate, make_trace
from data.traces import TraceRecord

TARGETS = ("full", "oracle", "tiered")
# sft_target tiered: the redundant paragraphs of each tier's trace (kind -> probability; short is the oracle).
# Each tier's extra paragraphs are certain, not likely, and the tier shows early in the thinking: a tier that only
# scales the full trace's rates (all <= 0.5) leaves greedy decoding at the oracle on every tier, and its traces
# overlap so much that the tiny model never learned to read the instruction (measured: identical samples on every
# tier after 900 steps). A choice made only at the end of the thinking (a closing verification) was not learned
# either: the model reads the instruction a few tokens after it, not a hundred. So medium opens by restating the
# problem (its first thinking token differs from short's), and long checks every step from Op 1 on (each check
# then follows the previous one) and closes with the verification, with the full trace's other redundancy.
# Thinking tokens of the embedded tokenizer for 2 / 3 / 4 operations: short 22 / 32 / 42, medium 43 / 53 / 63,
# long at least 93 / 124 / 155.
TIERED_RATES: dict[str, dict[str, float]] = {
    "short": {},
    "medium": {"restate": 1.0},
    "long": {**REDUNDANCY_RATES, "restate": 0.0, "recheck": 1.0, "verify": 1.0},
}


def make_prompt(question: str, tier: str, tiers: Mapping[str, Tier] | None = None) -> list[dict[str, str]]:
    """The chat prompt: the question followed by the tier's length instruction."""
    return [{"role": "user", "content": f"{question}\n{tier_instruction(tier, tiers)}"}]


def synthetic_config(knobs: Mapping[str, Any] | None) -> SyntheticConfig:
    """``SyntheticConfig`` from a recipe's ``synthetic:`` mapping; unknown knobs are an error naming the known ones."""
    known = set(SyntheticConfig.__dataclass_fields__)
    bad = sorted(set(knobs or {}) - known)
    if bad:
        raise ValueError(f"unknown synthetic task knob(s) {bad}; allowed: {', '.join(sorted(known))}")
    return SyntheticConfig(**(knobs or {}))


def synthetic_traces(split: str, n: int, seed: int, knobs: Mapping[str, Any] | None) -> list[Trace]:
    if n <= 0:
        raise ValueError(f"the {split} split needs at least one example, got n={n}")
    return generate(split, n, seed=seed, cfg=synthetic_config(knobs))


def traces_to_dataset(
    traces: Sequence[Trace],
    budget: str,
    tiers: Mapping[str, Tier],
    seed: int = 0,
    target: str | None = "full",
) -> Dataset:
    """A dataset of prompts (and, when ``target`` is set, SFT completions) for the traces.

    ``target``: ``full`` (the long trace), ``oracle`` (essential steps only), ``tiered`` (each prompt's trace as
    long as its tier asks: the oracle for short, the problem restated for medium, every step checked and the result
    verified for long; ``TIERED_RATES``) or ``None`` (prompts only: RL, eval). ``tiered`` teaches what the tier instructions
    mean before GRPO sharpens them (``budget: mixed``).
    """
    if target is not None and target not in TARGETS:
        raise ValueError(f"unknown SFT target {target!r}; allowed: {', '.join(TARGETS)}")
    names = assign_tiers(len(traces), budget, seed=seed)
    rows: dict[str, list] = {"id": [], "prompt": [], "solution": [], "tier": []}
    if target is not None:
        rows["completion"] = []
    for trace, tier in zip(traces, names):
        rows["id"].append(trace.problem.id)
        rows["prompt"].append(make_prompt(trace.problem.question, tier, tiers))
        rows["solution"].append(str(trace.problem.answer))
        rows["tier"].append(tier)
        if target is not None:
            rows["completion"].append([{"role": "assistant", "content": _target_text(trace, tier, target)}])
    return Dataset.from_dict(rows)


def _target_text(trace: Trace, tier: str, target: str) -> str:
    if target == "full":
        return trace.text
    if target == "oracle":
        return trace.oracle_text
    if tier not in TIERED_RATES:
        raise ValueError(f"sft_target tiered has no trace for the {tier!r} tier (the no-thinking choice is learned in "
                         f"GRPO, rewards.adaptive); tiered SFT takes: {', '.join(TIERED_RATES)}")
    rng = random.Random(f"tiered-{trace.problem.id}")
    return make_trace(trace.problem, rng, rates=TIERED_RATES[tier], show_wrap=trace.show_wrap).text


# --- SFT on pruned traces, and chunk-wise / skip-thinking examples (Chen et al. 2025, arXiv 2505.18642) ---

def rows_dataset(
    rows: Sequence[Mapping[str, Any]],
    budget: str,
    tiers: Mapping[str, Tier],
    seed: int = 0,
    field: str | Mapping[str, str] | None = "completion",
) -> Dataset:
    """Prompt/completion SFT data from rows with ``id``, ``question`` and ``solution`` (e.g. ``pruned.jsonl``, or a
    real dataset's rows from ``data.dataset_task``): the task prompt with its tier, and the row's ``field``
    (``completion``: the pruned or real trace; ``skip_completion``; ``full_completion``) as the answer.
    ``field`` may map each tier to a field (``data.tier_targets.TIERED_COMPLETIONS``: as long as each prompt's tier
    asks); a tier it does not map or a row without the field is a ``ValueError`` naming them. ``field=None``: prompts
    only (GRPO, evaluation).

    With a per-tier ``field`` every row comes once per tier of the budget (``mixed``: three examples): the same
    question under each tier's sentence with the trace of that length, so the sentence is all that tells the lengths
    apart. One tier drawn per row left SmolLM2 writing one length on every tier (``make real``, greedy and sampled).
    """
    if isinstance(field, Mapping):
        pool = budget_tiers(budget)
        rows, names = [r for r in rows for _ in pool], [t for _ in rows for t in pool]
    else:
        names = assign_tiers(len(rows), budget, seed=seed)
    columns: dict[str, list] = {
        "id": [r["id"] for r in rows],
        "prompt": [make_prompt(r["question"], t, tiers) for r, t in zip(rows, names)],
        "solution": [r["solution"] for r in rows],
        "tier": names,
    }
    if field is not None:
        per_tier = field if isinstance(field, Mapping) else dict.fromkeys(names, field)
        missing = sorted(set(names) - set(per_tier))
        if missing:
            raise ValueError(f"no SFT completion for tier(s) {missing}; tiers with one: {', '.join(per_tier)}")
        for r, t in zip(rows, names):
            if per_tier[t] not in r:
                raise ValueError(f"row {r.get('id')!r} has no {per_tier[t]!r} (the {t} tier's completion)")
        columns["completion"] = [[{"role": "assistant", "content": r[per_tier[t]]}] for r, t in zip(rows, names)]
    return Dataset.from_dict(columns)


def chunk_examples(
    tokenizer, prompt: Sequence[Mapping[str, str]], chunks: Sequence[str], keep: Sequence[int], conclusion: str
) -> list[dict[str, list[int]]]:
    """Chunk-wise examples of one trace: one per kept chunk, the loss on that chunk only.

    The assistant turn is ``<think>\\n`` + the kept chunks + ``\\n</think>\\n\\n`` + conclusion. Example ``j`` is the
    conversation cut at the end of kept chunk ``j``; its labels are the token ids of chunk ``j`` (the first also
    holds ``<think>\\n``, the last the end of the thinking, the conclusion and the end of the turn) and -100 on
    everything before it (the prompt and the earlier kept chunks: masked context). Skipped chunks are simply
    absent, so the model learns to go from the chunk before a skipped one straight to the chunk after it.
    """
    if not keep:
        return []
    thinking = "".join(chunks[j] for j in keep)
    content = f"{THINK_OPEN}\n{thinking}\n{THINK_CLOSE}\n\n{conclusion}"
    head = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": content}], tokenize=False)
    if not full.startswith(head + content):
        raise ValueError("the chat template does not render the assistant turn verbatim after the generation "
                         "prompt; chunk-wise SFT needs it (TRL's prompt/completion format has the same need)")
    bounds, pos = [], len(head) + len(THINK_OPEN) + 1
    for j in keep:
        bounds.append([pos, pos + len(chunks[j])])
        pos += len(chunks[j])
    bounds[0][0], bounds[-1][1] = len(head), len(full)
    examples = []
    for start, end in bounds:
        enc = tokenizer(full[:end], add_special_tokens=False, return_offsets_mapping=True)
        labels = [t if e > start else -100 for t, (_, e) in zip(enc["input_ids"], enc["offset_mapping"])]
        examples.append({"input_ids": enc["input_ids"], "labels": labels})
    return examples


def chunked_dataset(
    rows: Sequence[Mapping[str, Any]], tokenizer, mode: str, budget: str, tiers: Mapping[str, Tier], seed: int = 0
) -> Dataset:
    """Tokenised chunk-wise (``chunkwise``) or skip-thinking (``skip``) examples (``input_ids``, ``labels``).

    Rows need ``question``, ``chunks`` (texts joining to the thinking), ``conclusion`` and, for ``skip``,
    ``skippable`` (chunk indices, from ``--stage prune`` with ``skip_chunks: true``).
    """
    if mode not in ("chunkwise", "skip"):
        raise ValueError(f"unknown chunked SFT mode {mode!r}; allowed: chunkwise, skip")
    if mode == "skip" and rows and "skippable" not in rows[0]:
        raise ValueError("sft_mode skip needs rows with 'skippable' chunks: run --stage prune with skip_chunks: true")
    names = assign_tiers(len(rows), budget, seed=seed)
    out: dict[str, list] = {"input_ids": [], "labels": []}
    for row, tier in zip(rows, names):
        skipped = set(row.get("skippable") or []) if mode == "skip" else set()
        keep = [j for j in range(len(row["chunks"])) if j not in skipped]
        prompt = make_prompt(row["question"], tier, tiers)
        for ex in chunk_examples(tokenizer, prompt, row["chunks"], keep, row["conclusion"]):
            out["input_ids"].append(ex["input_ids"])
            out["labels"].append(ex["labels"])
    return Dataset.from_dict(out)


def trace_rows(traces: Sequence[Trace], tokenizer, segment_config=None, chunk_config=None) -> list[dict[str, Any]]:
    """Rows for chunk-wise SFT on the task's own (full) traces: segmented and chunked, nothing skippable."""
    from data.chunking import chunk_steps, token_counts
    from data.segment import segment

    rows = []
    for t in traces:
        steps = segment(t.thinking.strip(), segment_config)
        bounds = chunk_steps(steps, token_counts(tokenizer, steps), chunk_config)
        chunks = ["".join(steps[i] for i in c) for c in bounds]
        rows.append({"id": t.problem.id, "question": t.problem.question, "solution": str(t.problem.answer),
                     "chunks": chunks, "skippable": [], "conclusion": t.conclusion})
    return rows


def synthetic_records(traces: Sequence[Trace]) -> list[TraceRecord]:
    """The embedded task's traces as records; ``meta`` keeps the oracle thinking and the paragraph kinds."""
    return [
        TraceRecord(
            id=t.problem.id,
            question=t.problem.question,
            thinking=t.thinking.strip(),
            conclusion=t.conclusion,
            gold=[str(t.problem.answer)],
            meta={"oracle_thinking": t.oracle_thinking.strip(), "kinds": [p.kind for p in t.paragraphs]},
        )
        for t in traces
    ]
