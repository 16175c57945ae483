"""``--stage dpo``: tier preference optimisation on pruned traces with TRL's ``DPOTrainer``.

Tiered SFT (``--stage sft`` with ``sft_completion: tiered``) teaches each tier's target under its sentence, but the
targets of one problem share most of their tokens: with ``tiered`` medium and long part only where the validated prefix
stops and the full trace goes on to check. That choice is all the sentence has to decide there, and on SmolLM2 SFT moved
it by about 0.1 nats (make real, fourth run: ``bench/results/tier_conditioning_fourth_run.md``). This stage trains it
directly: pairs of neighbouring tiers' targets under each tier's sentence (``data.tier_targets.tier_pairs``, the tiers
of ``preference_tiers``); DPO's log-ratio cancels the prefix a pair shares and trains the diverging suffixes. It is the
optional DPO step of Wang et al. 2025 (arXiv 2505.18440: pruned chosen over full, with an SFT term weighted 0.3: TRL's
``loss_type: [sigmoid, sft]`` with ``loss_weights: [1.0, 0.3]``), once under each tier's sentence.

The targets are those of ``sft_completion`` (``tiered`` or ``tiered_early``; another value is refused). Tried once,
with a scratch script before this stage existed: on make real's fourth-run tier SFT model (``tiered``), 9 steps of 8
medium/long pairs (LoRA r 32, lr 1e-4, beta 0.5) moved the reward margin from 0 to between -0.15 and -0.03 (the
scratch log is not kept), so make real does not use it; whether more steps or a larger model help is untested.

The reference model is the starting model: with LoRA (``use_peft``) TRL scores it with the adapter disabled, so no
second copy is loaded; in full fine-tuning a second copy is loaded as the policy was (a GGUF file too). Data:
``sft_data`` (the pruned JSONL of ``--stage prune`` with ``skip_chunks: true`` when short is paired), its first
``num_train`` rows. Re-running the command resumes from the last checkpoint.
"""

from __future__ import annotations

import logging

from trl import DPOTrainer, get_peft_config

from data.budgets import resolve_tiers
from data.tier_targets import TIERED, tier_pairs, tier_rows
from rl.config import ConfigError
from rl.distributed import log_world
from rl.recipes import ParsedRun
from rl.stages.common import load_policy, pruned_rows, start_training, train_and_save
from rl.tracking import lcrl_config_callback

logger = logging.getLogger(__name__)


def run(run: ParsedRun) -> None:
    lcrl = run.lcrl
    dpo_args, model_args = run.stage_args
    log_world("dpo")
    if not lcrl.sft_data:
        raise ConfigError("--stage dpo needs sft_data: a pruned JSONL from --stage prune (its rows hold every tier's "
                          "target)")
    if lcrl.sft_completion not in TIERED:
        raise ConfigError(f"--stage dpo pairs the targets of tiered SFT: sft_completion {lcrl.sft_completion!r}; "
                          f"allowed: {', '.join(TIERED)}")
    names, fields = lcrl.pair_tiers(), TIERED[lcrl.sft_completion]
    rows = pruned_rows(lcrl)
    try:
        train = tier_pairs(tier_rows(rows, fields, lcrl.drop_retracted), names, resolve_tiers(lcrl.tiers), fields)
    except ValueError as exc:
        raise ConfigError(f"sft_data {lcrl.sft_data!r}: {exc}") from exc
    if not len(train):
        raise ConfigError(f"sft_data {lcrl.sft_data!r}: no pair, every row's targets of {names} are equal")
    logger.info("DPO on %d tier pairs (%s, %s targets) from %s, loss %s", len(train), " / ".join(names),
                lcrl.sft_completion, lcrl.sft_data,
                dict(zip(dpo_args.loss_type, dpo_args.loss_weights or [1.0] * len(dpo_args.loss_type))))
    started = start_training(run)
    if started is None:  # a dry run
        return
    model, tokenizer, resume = started
    # LoRA: TRL's reference is the policy with its adapter disabled. Full fine-tuning: TRL would reload the reference
    # from model.config's name, which a GGUF file or a revision does not survive; load it as the policy was.
    ref = None if model_args.use_peft else load_policy(model_args, dpo_args.trust_remote_code)[0]
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=dpo_args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[lcrl_config_callback(run)],
    )
    train_and_save(trainer, run, resume)
