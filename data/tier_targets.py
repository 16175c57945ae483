"""Tier targets from pruned traces: which trace each tier learns in tiered SFT, and tier preference pairs for DPO.

A row of ``--stage prune``'s ``pruned.jsonl`` holds three traces of one problem: the original (``full_completion``),
the validated prefix (``completion``) and the prefix without its skippable chunks (``skip_completion``), with the
prefix's ``chunks``, the indices ``skippable`` and the ``conclusion``. Real traces have no oracle; these are the
lengths pruning found sufficient, on-policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset

from data.budgets import Tier
from data.format import THINK_CLOSE, THINK_OPEN
from data.synthetic import Trace
from data.tasks import make_prompt
from data.traces import render_completion

# sft_completion tiered: short the skip-thinking prefix, medium the validated prefix, long the original trace.
TIERED_COMPLETIONS: dict[str, str] = {"short": "skip_completion", "medium": "completion", "long": "full_completion"}
# sft_completion tiered_early: as tiered, but medium's target is the skip-thinking prefix with its opening chunk kept
# (``add_opening_skip``), so where the opening is skippable short and medium part at the first thinking token and,
# where the prefix re-checks a step, medium and long part at the first re-check, not only where the validated prefix
# stops (make real's rows: ``bench/tier_conditioning.py`` reports where the targets part). At that late point
# SmolLM2's tier SFT on tiered targets closed its thinking about as often under the long sentence as under medium
# (``bench/results/tier_conditioning_fourth_run.md``), as the embedded task's tiny model learned no late choice
# (``data.tasks.TIERED_RATES``). With tiered_early SmolLM2 learned the choice 4 tokens in (short) but still wrote
# medium's length under long (fifth run, ``bench/results/real_fifth_run.md``). Medium's target itself
# was not validated: the skip search validated the prefix without every skippable chunk, opening included.
OPENING_SKIP = "opening_skip_completion"
TIERED_EARLY_COMPLETIONS: dict[str, str] = {"short": "skip_completion", "medium": OPENING_SKIP,
                                            "long": "full_completion"}
TIERED = {"tiered": TIERED_COMPLETIONS, "tiered_early": TIERED_EARLY_COMPLETIONS}  # sft_completion -> tier fields
OPENING_FIELDS = ("chunks", "skippable", "conclusion")  # what add_opening_skip reads from a pruned row


def add_opening_skip(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``opening_skip_completion``: the validated prefix without the chunks ``--stage prune`` found
    skippable, except the first (the opening, which restates the problem), then the row's conclusion. Where the
    opening is not skippable it equals the skip prefix; where nothing but the opening is, the validated prefix. A row
    without ``chunks``, ``skippable`` or ``conclusion`` is a ``ValueError`` (``--stage prune`` writes them; an older
    file lacks them)."""
    out = []
    for r in rows:
        missing = [k for k in OPENING_FIELDS if k not in r]
        if missing:
            raise ValueError(f"row {r.get('id')!r} has no {missing}: written by an older --stage prune, run it again")
        skipped = set(r["skippable"]) - {0}
        thinking = "".join(c for j, c in enumerate(r["chunks"]) if j not in skipped)
        out.append({**r, OPENING_SKIP: render_completion(thinking, r["conclusion"])})
    return out


def tier_rows(rows: Sequence[Mapping[str, Any]], fields: Mapping[str, str] | str,
              retracted: str | None = None) -> list[dict[str, Any]]:
    """``rows`` ready for SFT on ``fields`` (one field, or one per tier): with every field named
    (``add_opening_skip`` when ``OPENING_SKIP`` is one), and with ``retracted`` (unless ``None``) the thinking
    paragraphs holding that phrase left out of those fields (``drop_retracted``)."""
    names = [fields] if isinstance(fields, str) else list(fields.values())
    out = add_opening_skip(rows) if OPENING_SKIP in names else list(rows)
    return out if retracted is None else drop_retracted(out, names, retracted)


def without_retracted(text: str, phrase: str) -> str:
    """``text`` (a completion) without the thinking paragraphs that contain ``phrase``: steps the trace itself takes
    back (the synthetic task's ``Hmm, wait, that is not right.``; its corrected step follows). Only the thinking is
    read (between ``<think>``, or the start where a template opened it, and ``</think>``); markers and the answer
    stay as they are."""
    before, close, after = text.partition(THINK_CLOSE)
    if not close:  # no thinking that ends: nothing to read as thinking
        return text
    head, opened, thinking = before.rpartition(THINK_OPEN)
    body = thinking.strip("\n")
    lead, trail = thinking[: len(thinking) - len(thinking.lstrip("\n"))], thinking[len(thinking.rstrip("\n")):]
    kept = [p for p in body.split("\n\n") if phrase not in p]
    return head + opened + lead + "\n\n".join(kept) + trail + close + after


def drop_retracted(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], phrase: str) -> list[dict[str, Any]]:
    """``rows`` with ``without_retracted`` applied to each of ``fields`` (the targets SFT learns).

    Why (make real, seventh run): tier SFT learns each pruned row once per tier for 5 epochs, so a retracted step
    with its wrong result (``8 + 2 = 9. Hmm, wait, that is not right.``) is learned 15 times, and the model came to
    write those wrong facts as its first result (teacher-forced, its step results on the oracle traces of 120
    held-out problems were right 0.902 of the time, the stage-1 model's 0.993; ``bench/retention.py``). Stage 1 sees
    each trace once and keeps no such fact. An empty ``phrase`` is a ``ValueError``."""
    if not phrase:
        raise ValueError("drop_retracted needs a non-empty phrase (the words that mark a retracted step)")
    return [{**r, **{f: without_retracted(r[f], phrase) for f in fields if f in r}} for r in rows]


def replay_rows(traces: Sequence[Trace], field: str = "full_completion") -> list[dict[str, Any]]:
    """Rows (``id``, ``question``, ``solution`` and ``field``: the full trace) of new draws of the task's train
    problems, stage 1's kind of data, to learn beside the pruned rows under the tier whose target is the full trace
    (``sft_replay``). A draw may repeat a pruned row's problem (3 of make real's 96; ``--stage sft`` logs how many).

    Why (make real, eighth run): 5 epochs over 48 pruned rows, each once per tier, bent the arithmetic stage 1
    learned: tier SFT wrote a wrapping subtraction's plain result as -1 (``1 - 4 = -1, which is 9``) where the stage-1
    model, trained once over 960 traces, wrote -3, and lost 3 of 80 held-out problems on medium and 4 on long (stage
    1: none). The 48 rows hold 13 negative plain results, six of them -1 and none -3. Rehearsing the earlier stage's
    data is the usual remedy for such forgetting."""
    return [{"id": t.problem.id, "question": t.problem.question, "solution": str(t.problem.answer), field: t.text}
            for t in traces]


def equal_targets(rows: Sequence[Mapping[str, Any]], fields: Mapping[str, str]) -> dict[str, int]:
    """Per pair of neighbouring tiers (``"short/medium"``, ...), the rows whose two targets are the same text: there
    the sentence has nothing to choose (``tiered_early``: an opening that is not skippable makes medium short's)."""
    order = list(fields)
    return {f"{a}/{b}": sum(r[fields[a]] == r[fields[b]] for r in rows) for a, b in zip(order, order[1:])}


def pair_order(names: Sequence[str], fields: Mapping[str, str] = TIERED_COMPLETIONS) -> list[str]:
    """``names`` in length order (the order of ``fields``); a ``ValueError`` naming the problem and the allowed tiers
    unless they are two or more distinct tiers that have a target."""
    order = [t for t in fields if t in names]
    unknown = sorted(set(names) - set(fields))
    if unknown or len(order) != len(names) or len(order) < 2:
        problem = (f"tier(s) {unknown} have no target" if unknown else "repeated tiers" if len(order) != len(names)
                   else "fewer than two tiers")
        raise ValueError(f"preference pairs need two or more distinct tiers with a target; {problem} in "
                         f"{list(names)}; allowed: {', '.join(fields)}")
    return order


def tier_pairs(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    tiers: Mapping[str, Tier],
    fields: Mapping[str, str] = TIERED_COMPLETIONS,
) -> Dataset:
    """Preference pairs that teach the choice between neighbouring tiers (``--stage dpo``; TRL's conversational
    preference format: ``prompt``, ``chosen``, ``rejected``, with ``id`` and ``tier``).

    For each row and each neighbouring pair ``a < b`` of ``names`` (in ``short, medium, long`` order, each tier's target
    the row's ``fields[tier]``, as tiered SFT learns them): under a's sentence a's target is chosen over b's, and under
    b's sentence b's over a's. DPO's log-ratio cancels the prefix the two targets share (with ``tiered``, medium and
    long share all of the validated prefix) and trains their diverging suffixes. It is the pair of Wang et al. 2025
    (arXiv 2505.18440: pruned chosen over full), once under each tier's sentence and both ways round. Pairs with equal
    targets are left out. Fewer than two tiers, a tier without a field (the no-thinking tier has none), a repeated tier
    or a row without a field, ``id`` or ``question`` is a ``ValueError`` naming them.
    """
    order = pair_order(names, fields)
    columns: dict[str, list] = {"id": [], "prompt": [], "chosen": [], "rejected": [], "tier": []}
    for r in rows:
        missing = [f for f in ("id", "question", *(fields[t] for t in order)) if f not in r]
        if missing:
            raise ValueError(f"row {r.get('id')!r} has no {missing} (run --stage prune with skip_chunks: true for "
                             "skip_completion)")
        for a, b in zip(order, order[1:]):
            if r[fields[a]] == r[fields[b]]:
                continue
            for tier, chosen, rejected in ((a, r[fields[a]], r[fields[b]]), (b, r[fields[b]], r[fields[a]])):
                columns["id"].append(r["id"])
                columns["prompt"].append(make_prompt(r["question"], tier, tiers))
                columns["chosen"].append([{"role": "assistant", "content": chosen}])
                columns["rejected"].append([{"role": "assistant", "content": rejected}])
                columns["tier"].append(tier)
    return Dataset.from_dict(columns)
