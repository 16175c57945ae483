"""Generation throughput: the engine (batched) against a plain one-prompt-at-a-time ``generate`` loop.

Run from the repository root:  .venv/bin/python bench/bench_generation.py

Both decode the same prompts greedily with the same model and the same token limit: the engine
(``rl.generation.TransformersEngine``: length-sorted, left-padded batches through ``model.generate`` with the KV
cache) and the loop ``model.generate(one prompt)`` with the KV cache too (what a script without an engine does).
Throughput is generated tokens per second (up to and excluding the end-of-sequence token; padding not counted);
the ratio is engine / loop. The completions are compared token by token (greedy decoding: they should agree, up
to floating-point differences from padding and batch shape). Prompts: the embedded task's held-out problems
(medium tier). Model: ``outputs/tiny/sft`` when it exists (it stops at its own end of sequence), else the tiny
Llama of ``configs/tiny/init.yaml`` built in-process with random weights (it runs to the token limit). Where
vllm is installed and a GPU is present, vLLM runs the same prompts too. Writes ``bench/results/generation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from data.benchmarks import load_benchmark  # noqa: E402
from data.budgets import resolve_tiers  # noqa: E402
from data.tasks import make_prompt  # noqa: E402
from rl.engine import Generation, SamplingParams  # noqa: E402
from rl.generation import TransformersEngine, chat_prompts, vllm_available  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "generation.json"
SFT = ROOT / "outputs" / "tiny" / "sft"


def load_engine(batch_size: int) -> tuple[TransformersEngine, str]:
    if (SFT / "model.safetensors").is_file():
        return TransformersEngine.from_pretrained(str(SFT), batch_size), str(SFT.relative_to(ROOT))
    from rl.config import InitArguments
    from rl.tiny_model import build_model, train_tokenizer

    recipe = yaml.safe_load((ROOT / "configs" / "tiny" / "init.yaml").read_text())
    args = InitArguments(**{k: v for k, v in recipe.items() if k in InitArguments.__dataclass_fields__})
    tok = train_tokenizer(args.vocab_size, args.tokenizer_corpus, seed=args.init_seed)
    return TransformersEngine(build_model(args, tok), tok, batch_size), "tiny Llama (configs/tiny/init.yaml), random"


@torch.inference_mode()
def loop_generate(engine: TransformersEngine, prompts: list[str], max_new_tokens: int) -> list[Generation]:
    """The baseline: one ``model.generate`` call per prompt (batch of 1, KV cache, greedy)."""
    out = []
    for p in prompts:
        ids = engine.tokenizer(p, add_special_tokens=False, return_tensors="pt")["input_ids"].to(engine.model.device)
        gen = engine.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=engine.tokenizer.pad_token_id)
        out.append(engine.to_generation(gen[0, ids.shape[1]:].tolist()))
    return out


def timed(fn) -> tuple[list[Generation], float]:
    start = time.perf_counter()
    gens = fn()
    return gens, time.perf_counter() - start


def stats(gens: list[Generation], seconds: float) -> dict:
    tokens = sum(g.num_tokens for g in gens)
    return {"seconds": round(seconds, 3), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max_new_tokens", type=int, default=256)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds; the best of each is reported")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    engine, model_name = load_engine(args.batch_size)
    tiers = resolve_tiers({"short": {"budget": 64}, "medium": {"budget": 80}, "long": {"budget": 160}})
    problems = load_benchmark("synthetic", synthetic={"n": args.prompts, "seed": 0})
    prompts = chat_prompts(engine.tokenizer, [make_prompt(p.question, "medium", tiers) for p in problems])
    params = SamplingParams(max_new_tokens=args.max_new_tokens)

    engine.generate(prompts[:4], SamplingParams(max_new_tokens=8))  # warm-up (allocations, kernels)
    loop_generate(engine, prompts[:2], 8)
    runs: dict[str, list] = {"engine": [], "loop": []}
    for _ in range(args.rounds):  # interleaved, so a change in machine load hits both alike
        runs["engine"].append(timed(lambda: engine.generate(prompts, params)))
        runs["loop"].append(timed(lambda: loop_generate(engine, prompts, args.max_new_tokens)))
    best = {k: min(v, key=lambda r: r[1]) for k, v in runs.items()}
    eng, loop = stats(*best["engine"]), stats(*best["loop"])
    same = sum(a.token_ids == b.token_ids for a, b in zip(best["engine"][0], best["loop"][0]))
    result = {
        "command": f".venv/bin/python bench/bench_generation.py --prompts {args.prompts} --max_new_tokens "
                   f"{args.max_new_tokens} --batch_size {args.batch_size} --rounds {args.rounds}",
        "model": model_name,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "device": str(engine.model.device),
        "engine_batched": eng,
        "loop_one_prompt_at_a_time": loop,
        "throughput_ratio_engine_over_loop": round(eng["tokens_per_s"] / loop["tokens_per_s"], 2),
        "identical_completions": f"{same}/{len(prompts)}",
        "all_rounds_seconds": {k: [round(s, 3) for _, s in v] for k, v in runs.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg_1m_before": round(load_before, 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    if vllm_available():
        from rl.vllm_engine import VLLMEngine

        path = str(SFT) if (SFT / "model.safetensors").is_file() else None
        if path is None:
            result["vllm"] = "skipped: vLLM needs a saved model (outputs/tiny/sft)"
        else:
            vllm = VLLMEngine(path)
            vllm.generate(prompts[:4], SamplingParams(max_new_tokens=8))
            v = stats(*timed(lambda: vllm.generate(prompts, params)))
            result["vllm"] = v
            result["throughput_ratio_vllm_over_engine"] = round(v["tokens_per_s"] / eng["tokens_per_s"], 2)
    else:
        result["vllm"] = "skipped: needs the vllm package and a CUDA GPU (neither is on this machine)"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
