"""Start-up checks of a training recipe: the mistakes that only show on real GPUs, refused before anything loads.

Run by the ``sft``, ``dpo`` and ``grpo`` stages at start and in ``--dry_run`` (which logs every check it made). Each
refusal is a ``ConfigError`` naming the problem and the fix:

- **precision**: half-precision parameters (``dtype: bfloat16 | float16``, or ``auto`` on a half checkpoint)
  trained by a plain optimizer lose small updates: a 1e-6 step on a weight of 0.02 is below bf16's resolution
  there (2^-14 ~ 6e-5) and rounds away, so the curves stay flat. Allowed when something keeps fp32 master
  weights (DeepSpeed, FSDP: ``accelerate launch`` with their configs) or when only LoRA adapters train (PEFT
  creates them in fp32). The fix on one GPU or under DDP: ``dtype: float32`` with ``bf16: true`` (TRL's
  ``ModelConfig.dtype`` default: fp32 weights, bf16 autocast of the matmuls). Checked again on the loaded
  parameters (``check_loaded_precision``: ``dtype: auto`` whose checkpoint config was not readable before);
- **reward length constants** (GRPO): a constant smaller than the smallest tier budget (``rewards.recipes``);
- **context**: ``max_completion_length`` (GRPO; the prompt needs room too) or ``max_length`` (SFT, DPO) beyond the
  model's ``max_position_embeddings`` (read with ``AutoConfig``, no weights; a dry run reads local files and the
  Hub cache only, and a config it cannot read is not checked), a completion that does not fit
  ``vllm_max_model_length``, or a ``vllm_max_model_length`` beyond the model's context. Once the tokenizer is loaded, ``check_prompt_lengths`` measures the real prompts;
- **completion logging** (GRPO): ``log_completions`` writes (and with W&B uploads) every completion of the last
  generation batch at each logging step; more than ``LOGGED_TOKENS_PER_STEP`` tokens per step on average is
  refused.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any

from rl.config import ConfigError
from rl.recipes import ParsedRun

logger = logging.getLogger(__name__)

HALF_DTYPES = ("bfloat16", "float16")
# log_completions: tokens of completions written per optimizer step, on average over the logging interval.
LOGGED_TOKENS_PER_STEP = 2**17


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("true", "1", "yes")


def master_weights(training_args: Any) -> str | None:
    """What keeps fp32 master weights of half parameters: ``deepspeed``, ``fsdp`` or ``None``.

    Read from ``accelerate launch``'s environment (``ACCELERATE_USE_DEEPSPEED`` / ``ACCELERATE_USE_FSDP``), the
    training arguments (``deepspeed``, ``fsdp``) and an already initialised ``AcceleratorState``.
    """
    if _env_true("ACCELERATE_USE_DEEPSPEED") or getattr(training_args, "deepspeed", None):
        return "deepspeed"
    if _env_true("ACCELERATE_USE_FSDP") or getattr(training_args, "fsdp", None):
        return "fsdp"
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state:  # initialised: ask it (no side effect otherwise)
        kind = str(AcceleratorState().distributed_type).lower()
        for name in ("deepspeed", "fsdp"):
            if name in kind:
                return name
    return None


def model_config(model_args: Any, trust_remote_code: bool = False, offline: bool = True) -> Any | None:
    """The model's ``PretrainedConfig`` without its weights; ``None`` if not readable. ``offline``: local files and
    the Hub cache only (a dry run); otherwise the Hub too (a real run is about to download the model anyway)."""
    from transformers import AutoConfig

    from rl.model_files import resolve_model

    try:
        source = resolve_model(model_args.model_name_or_path)
        kwargs = {**source.kwargs(), "revision": getattr(model_args, "model_revision", None) or "main"}
        return AutoConfig.from_pretrained(source.path, trust_remote_code=trust_remote_code, local_files_only=offline,
                                          **kwargs)
    except Exception as exc:  # noqa: BLE001 -- any failure means: not available here, check skipped
        logger.debug("model config of %s not readable: %s", model_args.model_name_or_path, exc)
        return None


def _config_dtype(config: Any | None) -> str | None:
    dtype = None if config is None else getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return None if dtype is None else str(dtype).removeprefix("torch.")


def check_precision(training_args: Any, model_args: Any, config: Any | None) -> str:
    """Refuse half-precision parameters under a plain optimizer (no fp32 master weights, no LoRA)."""
    dtype = model_args.dtype or "float32"
    loaded = _config_dtype(config) if dtype == "auto" else dtype
    if loaded not in HALF_DTYPES:
        return f"precision: parameters load as {loaded or 'the checkpoint dtype (config not readable here)'}"
    if getattr(model_args, "use_peft", False):
        return f"precision: {loaded} base weights frozen, LoRA adapters trained in float32"
    keeper = master_weights(training_args)
    if keeper:
        return f"precision: {loaded} parameters, fp32 master weights kept by {keeper}"
    raise ConfigError(
        f"dtype {dtype!r} loads {loaded} parameters and the optimizer would update them in {loaded}: a step of "
        f"learning_rate {training_args.learning_rate:g} on a weight of ~0.02 rounds away, so training shows flat "
        "curves. Fix: dtype: float32 with bf16: true (fp32 weights, bf16 autocast), or launch with a DeepSpeed "
        "or FSDP accelerate config (fp32 master weights), or use_peft: true"
    )


def check_loaded_precision(model: Any, training_args: Any, model_args: Any) -> None:
    """After loading, ``check_precision`` on the parameters' real dtype (``dtype: auto`` on a half checkpoint whose
    config could not be read before loading)."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    check_precision(training_args, SimpleNamespace(dtype=dtype, use_peft=getattr(model_args, "use_peft", False)), None)


def model_context(config: Any | None) -> int | None:
    """The model's context length (``max_position_embeddings``), ``None`` when unknown."""
    value = getattr(config, "max_position_embeddings", None) if config is not None else None
    return int(value) if value else None


def check_context(stage: str, training_args: Any, config: Any | None) -> list[str]:
    """Refuse completions (or SFT sequences) longer than the model's context or vLLM's ``max_model_len``."""
    context = model_context(config)
    done = []
    if stage in ("sft", "dpo"):
        length = getattr(training_args, "max_length", None)
        if context and length and length > context:
            raise ConfigError(f"max_length {length} exceeds the model's context ({context} tokens, "
                              f"max_position_embeddings): set max_length <= {context}")
        known = context or "unknown (config not readable here)"
        return [f"context: {stage.upper()} max_length {length} within {known}"]
    completion = training_args.max_completion_length
    if context and completion >= context:
        raise ConfigError(f"max_completion_length {completion} leaves no room for the prompt in the model's context "
                          f"({context} tokens, max_position_embeddings): set max_completion_length below {context} "
                          "minus the longest prompt")
    done.append(f"context: max_completion_length {completion} below the model's "
                f"{context or 'unknown (config not readable here)'}")
    vllm_len = getattr(training_args, "vllm_max_model_length", None)
    if training_args.use_vllm and training_args.vllm_mode == "colocate" and vllm_len:
        if completion >= vllm_len:
            raise ConfigError(f"max_completion_length {completion} does not fit vllm_max_model_length {vllm_len} "
                              "with a prompt: raise vllm_max_model_length to the longest prompt + "
                              "max_completion_length, or lower max_completion_length")
        if context and vllm_len > context:
            raise ConfigError(f"vllm_max_model_length {vllm_len} exceeds the model's context ({context} tokens): "
                              f"set it <= {context} and max_completion_length below it")
        done.append(f"context: vllm_max_model_length {vllm_len} leaves {vllm_len - completion} prompt tokens")
    return done


def prompt_limit(training_args: Any, config: Any | None) -> int | None:
    """The most prompt tokens that fit: the smaller of the model's context and vLLM's, minus the completion."""
    limits = [model_context(config)]
    if training_args.use_vllm and training_args.vllm_mode == "colocate":
        limits.append(getattr(training_args, "vllm_max_model_length", None))
    known = [x for x in limits if x]
    return min(known) - training_args.max_completion_length if known else None


def check_prompt_lengths(prompts: list, tokenizer: Any, limit: int | None) -> None:
    """With the tokenizer loaded: refuse a prompt longer than ``limit`` tokens (``prompt_limit``)."""
    if limit is None or not prompts:
        return
    # return_dict=False: the ids themselves (transformers 5 returns a BatchEncoding by default, whose len is 2)
    longest = max(len(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False))
                  for p in prompts)
    if longest > limit:
        raise ConfigError(f"the longest prompt has {longest} tokens, over the {limit} left beside "
                          "max_completion_length: lower max_completion_length or raise vllm_max_model_length "
                          "(within the model's context)")
    logger.info("start-up check: longest prompt %d tokens, within %d", longest, limit)


def check_log_completions(training_args: Any) -> str:
    """Refuse ``log_completions`` that would write more than ``LOGGED_TOKENS_PER_STEP`` tokens per step."""
    if not training_args.log_completions:
        return "log_completions: off"
    batch = training_args.generation_batch_size
    per_step = batch * training_args.max_completion_length / training_args.logging_steps
    if per_step > LOGGED_TOKENS_PER_STEP:
        steps = -(-batch * training_args.max_completion_length // LOGGED_TOKENS_PER_STEP)
        raise ConfigError(
            f"log_completions with logging_steps {training_args.logging_steps} writes (and with W&B uploads) "
            f"{batch} completions of up to {training_args.max_completion_length} tokens every "
            f"{training_args.logging_steps} step(s), ~{per_step:,.0f} tokens per step (limit "
            f"{LOGGED_TOKENS_PER_STEP:,}): set logging_steps >= {steps}, or log_completions: false"
        )
    return f"log_completions: ~{per_step:,.0f} tokens per step"


def startup_checks(run: ParsedRun) -> list[str]:
    """Every check of an ``sft``, ``dpo`` or ``grpo`` run; returns (and logs) what was checked; ``ConfigError``."""
    training_args, model_args = run.stage_args[0], run.stage_args[1]
    config = model_config(model_args, getattr(training_args, "trust_remote_code", False), offline=run.lcrl.dry_run)
    done = [check_precision(training_args, model_args, config), *check_context(run.stage, training_args, config)]
    if run.stage == "grpo":
        from data.budgets import resolve_tiers
        from rewards.recipes import check_length_constants

        try:
            done.append(check_length_constants(run.lcrl.rewards or [], resolve_tiers(run.lcrl.tiers)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        done.append(check_log_completions(training_args))
    for line in done:
        logger.info("start-up check: %s", line)
    return done
