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
    # an operation index and an operation with its operand are single tokens, so copying "Op 2: * 4" from the
    # question is one-token induction (match " 2:", copy the next token)
    assert loaded.convert_ids_to_tokens(loaded("Op 2: * 4")["input_ids"]) == ["Op", "Ġ2:", "Ġ*Ġ4"]
    for special in ("<think>", "</think>", "<|im_start|>", "<|im_end|>"):
        assert len(loaded(special, add_special_tokens=False)["input_ids"]) == 1
    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert (out / "model.safetensors").is_file()
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    prompt = loaded.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert loaded.apply_chat_template(msgs, tokenize=False).startswith(prompt)  # prefix-consistent for SFT
