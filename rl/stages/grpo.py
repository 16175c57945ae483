"""``--stage grpo --budget short|medium|long|mixed``: GRPO with length-regularised rewards (TRL ``GRPOTrainer``).

The tier reaches the model through the prompt (``data.budgets``) and the rewards through the ``tier`` column,
so with ``mixed`` one batch trains all tiers. Rewards and weights come from the recipe's ``rewards:`` list and
are validated before anything is loaded or written. Re-running the command resumes from the last checkpoint.

With ``refresh_every: N`` the prompts come from a pool refreshed on-policy every N steps (``rl.refresh``, trainer
in ``rl.refresh_trainer``): prompts the policy always or never solves make way for fresh ones from the reserve.
With ``dynamic_sampling: true`` (``rl.dynamic_sampling``, DAPO's filter_groups) groups whose rewards have no
variance are dropped before the loss and replaced by fresh prompts' groups, at most ``max_gen_rounds`` rounds.
The two are alternatives: one changes which prompts are drawn, the other what reaches the loss.
With ``budget_rollouts: true`` (``rl.budget_rollout``, Elastic Reasoning and AdaptThink) TRL's ``rollout_func``
generates instead: the thinking is cut at each prompt's tier budget, the close marker forced and masked out of the
loss (``env_mask``), the answer generated; ``none``-tier groups sample half their completions without thinking.
It combines with either of the two above (both call TRL's generation, which calls the rollout function).

Several processes: group rewards (``kimi``, ``efficiency``) are computed on each process's own completions, so a
layout that would split a prompt's group across processes is refused at start-up (``rl.distributed``).
"""

from __future__ import annotations

import logging

from trl import GRPOTrainer, get_peft_config

from data.budgets import resolve_tiers
from data.completion_format import CompletionFormat
from rewards import RewardContext, build_rewards
from rewards.registry import REGISTRY
from rl.checks import check_prompt_lengths, prompt_limit
from rl.config import ConfigError
from rl.distributed import check_group_layout, log_world
from rl.recipes import ParsedRun
from rl.refresh import check_refresh, question_of
from rl.stages.common import start_training, task_dataset, train_and_save
from rl.tracking import lcrl_config_callback

logger = logging.getLogger(__name__)

DEFAULT_REWARDS = [{"name": "tldr", "weight": 1.0}]


def run(run: ParsedRun) -> None:
    lcrl = run.lcrl
    grpo_args, model_args, refresh, dynamic, budget_rollouts = run.stage_args
    log_world("grpo")
    tiers = resolve_tiers(lcrl.tiers)
    specs = lcrl.rewards or DEFAULT_REWARDS
    grading = lcrl.grading_config()
    build_rewards(specs, RewardContext(tiers=tiers, grading=grading))  # fail fast on unknown names or parameters
    train = task_dataset(lcrl, "train", target=None)
    check_refresh(refresh, len(train) or lcrl.num_train, grpo_args.generation_batch_size // grpo_args.num_generations)
    group = [s["name"] for s in specs if getattr(REGISTRY[s["name"]], "group_relative", False)]
    check_group_layout(grpo_args.per_device_train_batch_size, grpo_args.steps_per_generation,
                       grpo_args.num_generations, grpo_args.world_size, group)
    logger.info("GRPO on %d prompts, budget %s, rewards %s", len(train), lcrl.budget, [s["name"] for s in specs])
    if refresh.enabled and dynamic.dynamic_sampling:
        raise ConfigError("refresh_every and dynamic_sampling are alternatives; set one of them")
    if dynamic.dynamic_sampling:
        logger.info("dynamic sampling: zero-variance groups dropped, at most %s generation rounds per batch",
                    dynamic.max_gen_rounds or "unlimited")
    if refresh.enabled:
        logger.info("on-policy refresh every %d steps: a pool of %d prompts, a reserve of %d",
                    refresh.refresh_every, refresh.refresh_pool, len(train) - refresh.refresh_pool)
    if budget_rollouts.budget_rollouts:
        logger.info("budget rollouts: thinking cut at each tier's budget, answers in %d tokens, %.0f%% of none-tier "
                    "groups without thinking", budget_rollouts.rollout_answer_tokens, 100 * budget_rollouts.skip_share)
    started = start_training(run, check_loaded=lambda model, tokenizer: check_prompt_lengths(
        train["prompt"], tokenizer, prompt_limit(grpo_args, model.config)))
    if started is None:  # a dry run
        return
    model, tokenizer, resume = started
    fmt = policy_format(model, tokenizer)
    logger.info("completion format: close marker %r = %d token(s), thinking opened by the template: %s, EOS ids %s",
                fmt.close_text, len(fmt.close_ids), fmt.opened_by_template, sorted(fmt.eos_ids))
    funcs, weights = build_rewards(specs, RewardContext(tiers=tiers, grading=grading, completion_format=fmt))
    grpo_args.reward_weights = weights
    common = dict(model=model, reward_funcs=funcs, args=grpo_args, processing_class=tokenizer,
                  peft_config=get_peft_config(model_args), callbacks=[lcrl_config_callback(run)])
    if budget_rollouts.budget_rollouts:
        from rl.budget_rollout import BudgetRollout

        common["rollout_func"] = BudgetRollout(budget_rollouts, tiers, fmt)
    if refresh.enabled:
        from rl.refresh_trainer import RefreshGRPOTrainer

        questions = [question_of(row, tiers) for row in train]
        trainer = RefreshGRPOTrainer(problems=train, questions=questions, refresh_args=refresh, grading=grading,
                                     completion_format=fmt, **common)
    elif dynamic.dynamic_sampling:
        from rl.dynamic_sampling import DynamicSamplingGRPOTrainer

        trainer = DynamicSamplingGRPOTrainer(train_dataset=train, dynamic_args=dynamic, **common)
    else:
        trainer = GRPOTrainer(train_dataset=train, **common)
    train_and_save(trainer, run, resume)


def policy_format(model, tokenizer) -> CompletionFormat:
    """The completion format of the policy, with the EOS ids TRL's ``GRPOTrainer`` stops on (the tokenizer's and
    every id of the model's generation config), so a completion without one at its end is truncated."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None:
        eos.append(tokenizer.eos_token_id)
    return CompletionFormat.from_tokenizer(tokenizer, eos_ids=eos)
