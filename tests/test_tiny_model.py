"""``--stage init`` output loads back through the Auto classes exactly as it was built."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from data.synthetic import generate
from rl.config import InitArguments
from rl.tiny_model import init_tiny, train_tokenizer


def test_saved_tokenizer_and_model_reload_identically(tmp_path):
    args = InitArguments(output_dir=str(tmp_path), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, tokenizer_corpus=300)
    out, n_params = init_tiny(args)
    built = train_tokenizer(args.vocab_size, args.tokenizer_corpus, seed=args.init_seed)
    loaded = AutoTokenizer.from_pretrained(out)
    for trace in generate("test", 20, seed=4):
        text = trace.problem.question + trace.text
        assert loaded(text)["input_ids"] == built(text)["input_ids"]  # same pre-tokenizer, not a model default
        assert loaded.decode(loaded(text)["input_ids"]) == text
    assert loaded.convert_ids_to_tokens(loaded(" 7")["input_ids"]) == ["Ġ7"]  # a digit keeps its space
    # a numbered operation of the question is one token, so step k of the thinking looks it up by its index;
    # the thinking writes the index and the operation as two tokens
    assert loaded.convert_ids_to_tokens(loaded("Op 2: * 4.")["input_ids"]) == ["Op", "Ġ2:Ġ*Ġ4", "."]
    assert loaded.convert_ids_to_tokens(loaded("Op 7: - 1.")["input_ids"]) == ["Op", "Ġ7:Ġ-Ġ1", "."]
    assert loaded.convert_ids_to_tokens(loaded("Op 2: * 4, so 3 * 4 = 2.")["input_ids"]) == [
        "Op", "Ġ2:", "Ġ*Ġ4", ",", "Ġso", "Ġ3Ġ*Ġ4Ġ=", "Ġ2", "."]  # the result is one lookup from one token
    for marker in ("<think>", "</think>", "<|im_start|>", "<|im_end|>", "user", "assistant"):
        assert len(loaded(marker, add_special_tokens=False)["input_ids"]) == 1
    # the think tags are ordinary added tokens: TRL decodes completions with skip_special_tokens=True and keeps them
    ids = loaded("<think>\nOp 1: + 2, so 3 + 2 = 5.\n</think>\n\nThe final value is \\boxed{5}.<|im_end|>")["input_ids"]
    assert loaded.decode(ids, skip_special_tokens=True) == (
        "<think>\nOp 1: + 2, so 3 + 2 = 5.\n</think>\n\nThe final value is \\boxed{5}.")
    assert "<think>" not in loaded.all_special_tokens and "<|im_end|>" in loaded.all_special_tokens
    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert (out / "model.safetensors").is_file()
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    prompt = loaded.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert loaded.apply_chat_template(msgs, tokenize=False).startswith(prompt)  # prefix-consistent for SFT
