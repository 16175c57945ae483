"""Build the embedded default model: a tokenizer trained locally and a tiny Llama causal LM.

Nothing here needs a network. The tokenizer is a byte-level BPE trained with ``tokenizers`` on the synthetic
task's text (so any text still encodes losslessly): digits are single tokens, an operation with its operand
(" * 3") is one token, a numbered operation of the question with its index (" 2: * 3.") is one token, an arithmetic
fact's left side (" 4 * 3 =") is one token, the chat roles are one token each, ChatML's ``<|im_start|>``/``<|im_end|>`` are special tokens, and ``<think>``/``</think>`` are ordinary
added tokens: single tokens that decoding keeps even with ``skip_special_tokens=True`` (as TRL decodes
completions), the way R1-Distill and Qwen3 tokenizers register them.
The model is a standard ``LlamaForCausalLM``; both are written with ``save_pretrained`` (safetensors), so every
later stage loads them with ``from_pretrained`` like any Hub model. (Llama, not Qwen2: for ``model_type: qwen2``
``AutoTokenizer`` rebuilds Qwen's own pre-tokenizer and would silently discard the one trained here.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from data.budgets import TIER_NAMES, tier_instruction
from data.synthetic import SyntheticConfig, generate
from rl.config import InitArguments

logger = logging.getLogger(__name__)

PAD, BOS_IM, EOS_IM = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS_IM, EOS_IM]
THINK_TOKENS = ["<think>", "</think>"]  # ordinary added tokens (special=False)

PRE_TOKEN_PATTERN = r" \d [-+*] \d =| \d+: [-+*] \d(?=\.)| [-+*] \d| \d:| ?\d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# Operation indices the tokenizer corpus covers (tasks with up to this many operations keep one token per step).
CORPUS_MAX_OPS = 9

# ChatML template (as Qwen's): renders prompt + completion as a prefix-consistent string, as TRL's SFT needs.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _corpus(n: int, seed: int) -> Iterable[str]:
    for trace in generate("train", n, seed=seed, cfg=SyntheticConfig()):
        yield f"user\n{trace.problem.question}"
        yield f"assistant\n{trace.text}"
    # longer chains, so every operation index up to CORPUS_MAX_OPS is one token with each operation
    for trace in generate("train", n // 4, seed=seed, cfg=SyntheticConfig(min_ops=5, max_ops=CORPUS_MAX_OPS)):
        yield trace.problem.question
    for tier in TIER_NAMES:
        yield tier_instruction(tier)


def train_tokenizer(vocab_size: int, corpus_size: int, seed: int = 0) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with single-digit tokens, trained on synthetic task text."""
    tok = Tokenizer(models.BPE())
    # GPT-2's word split, plus rules for arithmetic text, each a pre-token that BPE learns as one token:
    # - a numbered operation of the question (" 2: - 8" before its "."): step k of the thinking looks it up by its
    #   index (one content-addressed attention) instead of through an induction circuit (find the earlier " 2:",
    #   copy the token after it), which a tiny model forms late, at a step that shifts with seed and CPU kernels;
    # - an arithmetic fact's left side (" 6 - 8 ="): the model writes the pair (value, operation) as one token, a
    #   choice linear in the two features it gathered, and the result is that token's own lookup; a result read
    #   off two separate tokens is a non-linear table the MLP learns slowly (~1500 steps at 1.1M parameters);
    # - an operation with its operand (" - 8"); every other digit is its own pre-token with its leading space, so
    #   there are no multi-digit merges.
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
    fast.add_special_tokens({"additional_special_tokens": [BOS_IM]})
    fast.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
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
        tie_word_embeddings=args.tie_word_embeddings,
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
