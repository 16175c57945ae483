"""``--stage grpo --budget short|medium|long|mixed``: GRPO with length-regularised rewards (TRL ``GRPOTrainer``).

The tier reaches the model through the prompt (``data.budgets``) and the rewards through the ``tier`` column,
so with ``mixed`` one batch trains all tiers. Rewards and weights come from the recipe's ``rewards:`` list and
are validated before anything is loaded or written. Re-running the command resumes from the last checkpoint.
"""

from __future__ import annotations

import logging

from trl import GRPOTrainer, get_peft_config

from data.budgets import resolve_tiers
from rewards import RewardContext, build_rewards
from rl.recipes import ParsedRun
from rl.stages.common import load_policy, prepare_training, task_dataset, train_and_save
from rl.tracking import lcrl_config_callback

logger = logging.getLogger(__name__)

DEFAULT_REWARDS = [{"name": "tldr", "weight": 1.0}]


def run(run: ParsedRun) -> None:
    lcrl = run.lcrl
    grpo_args, model_args = run.stage_args
    tiers = resolve_tiers(lcrl.tiers)
    specs = lcrl.rewards or DEFAULT_REWARDS
    grading = lcrl.grading_config()
    build_rewards(specs, RewardContext(tiers=tiers, grading=grading))  # fail fast on unknown names or parameters
    train = task_dataset(lcrl, "train", target=None)
    logger.info("GRPO on %d prompts, budget %s, rewards %s", len(train), lcrl.budget, [s["name"] for s in specs])
    if lcrl.dry_run:
        return
    resume = prepare_training(run, grpo_args)
    model, tokenizer = load_policy(model_args, grpo_args.trust_remote_code)
    think_end = tokenizer.convert_tokens_to_ids("</think>")
    think_end_id = think_end if think_end != tokenizer.unk_token_id and isinstance(think_end, int) else None
    funcs, weights = build_rewards(specs, RewardContext(tiers=tiers, think_end_id=think_end_id, grading=grading))
    grpo_args.reward_weights = weights
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=grpo_args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[lcrl_config_callback(run)],
    )
    train_and_save(trainer, run, resume)
