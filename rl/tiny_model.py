"""Build the embedded default model: a tokenizer trained locally and a tiny Llama causal LM.

Nothing here needs a network. The tokenizer is a byte-level BPE trained with ``tokenizers`` on the synthetic
task's text (so any text still encodes losslessly): digits are single tokens, an operation with its operand
(" * 3") is one token, an operation index with its colon (" 2:") is one token, and the special tokens of ChatML
(``<|im_start|>``, ``<|im_end|>``) and ``<think>``/``</think>`` are single added tokens.
The model is a standard ``LlamaForCausalLM``; both are written with ``save_pretrained`` (safetensors), so every
later stage loads them with ``from_pretrained`` like any Hub model. (Llama, not Qwen2: for ``model_type: qwen2``
``AutoTokenizer`` rebuilds Qwen's own pre-tokenizer and would silently discard the one trained here.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from data.budgets import TIER_NAMES, tier_instruction
from data.synthetic import SyntheticConfig, generate
from rl.config import InitArguments

logger = logging.getLogger(__name__)

PAD, BOS_IM, EOS_IM = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS_IM, EOS_IM, "<think>", "</think>"]

PRE_TOKEN_PATTERN = r" [-+*] \d| \d:| ?\d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# ChatML template (as Qwen's): renders prompt + completion as a prefix-consistent string, as TRL's SFT needs.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _corpus(n: int, seed: int) -> Iterable[str]:
    for trace in generate("train", n, seed=seed, cfg=SyntheticConfig()):
        yield trace.problem.question
        yield trace.text
    for tier in TIER_NAMES:
        yield tier_instruction(tier)


def train_tokenizer(vocab_size: int, corpus_size: int, seed: int = 0) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with single-digit tokens, trained on synthetic task text."""
    tok = Tokenizer(models.BPE())
    # GPT-2's word split, plus rules for arithmetic text: an operation with its operand (" - 8") is one
    # pre-token, so BPE learns it as one token, as is an operation index with its colon (" 2:"); every other digit
    # is its own pre-token with its leading space. A small model then copies "Op 2: - 8" from the question by
    # one-token induction (find the earlier " 2:", copy the token after it), and never sees multi-digit merges.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_TOKEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(corpus_size, seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS_IM, unk_token=None, bos_token=None
    )
    fast.add_special_tokens({"additional_special_tokens": [BOS_IM, "<think>", "</think>"]})
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_model(args: InitArguments, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    torch.manual_seed(args.init_seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        num_key_value_heads=args.num_key_value_heads,
        max_position_embeddings=args.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def init_tiny(args: InitArguments) -> tuple[Path, int]:
    """Train the tokenizer, build the model, save both to ``args.output_dir``; returns the path and parameter count."""
    tokenizer = train_tokenizer(args.vocab_size, args.tokenizer_corpus, seed=args.init_seed)
    model = build_model(args, tokenizer)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("tiny model: %.2fM parameters, vocabulary %d, saved to %s", n_params / 1e6, len(tokenizer), out)
    return out, n_params
