"""``--stage sft``: supervised warm-start on long (or pruned) traces with TRL's ``SFTTrainer``.

The loss is on the completion only (``completion_only_loss``); LoRA is used when the recipe sets
``use_peft: true`` (TRL ``ModelConfig`` -> ``peft_config``). Re-running the command resumes from the last
checkpoint in ``output_dir``.
"""

from __future__ import annotations

import logging

from trl import SFTTrainer, get_peft_config

from rl.config import ParsedRun, dump_run
from rl.stages.common import load_policy, prepare_training, task_dataset
from rl.tracking import lcrl_config_callback

logger = logging.getLogger(__name__)


def run(run: ParsedRun) -> None:
    lcrl = run.lcrl
    sft_args, model_args = run.stage_args
    train = task_dataset(lcrl, "train", target=lcrl.sft_target)
    logger.info("SFT on %d %s traces (budget %s)", len(train), lcrl.sft_target, lcrl.budget)
    if lcrl.dry_run:
        return
    resume = prepare_training(run, sft_args)
    model, tokenizer = load_policy(model_args, sft_args.trust_remote_code)
    trainer = SFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[lcrl_config_callback(run)],
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(sft_args.output_dir)
    dump_run(run, sft_args.output_dir)
    trainer.accelerator.end_training()
