"""GPU readiness: one LoRA PPO iteration (GRPO + AEM) of a randomly initialised model with
Qwen2.5-1.5B-Instruct's architecture, and its peak memory.

No weights are downloaded: the config below is Qwen2.5-1.5B's (hidden 1536, 28 layers, 12 heads
with 2 KV heads, MLP 8960, vocab 151,936, tied embeddings) and the weights are random. The
tokenizer is the locally trained tiny one, whose ids all fall inside the model's vocabulary, so
the memory and time figures are those of the real model on household-length prompts.

    python benchmarks/gpu_readiness.py                 # full 28 layers (GPU: bf16, checkpointing)
    python benchmarks/gpu_readiness.py --layers 2      # CPU smoke test of the same code path

Goal (issue "Learner II"): peak GPU memory of one iteration fits 24 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

QWEN25_15B = dict(
    hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    vocab_size=151_936, tie_word_embeddings=True, hidden_act="silu",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=28, help="decoder layers (28 = the real model)")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from aem_train.config import from_dict
    from aem_train.tiny import init_model
    from aem_train.trainer import train

    work = tempfile.mkdtemp(prefix="aem-gpu-")
    tok_dir = os.path.join(work, "tok")
    init_model(tok_dir, ["aem/Household-v0"], preset="test", episodes=40)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = Qwen2Config(**{**QWEN25_15B, "num_hidden_layers": args.layers},
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model_dir = os.path.join(work, "qwen2.5-1.5b-random")
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    build_s = time.perf_counter() - t0

    run = from_dict({
        "model": {"path": model_dir, "lora": True, "lora_r": 16},
        "env": {"id": "aem/Household-v0", "groups": args.groups, "group_size": args.group_size, "window": 1,
                "kwargs": {"max_turns": args.max_turns}},
        "algo": {"estimator": "grpo", "modulation": "aem"},
        "ppo": {"kl_coef": 0.01, "token_budget": 16384},
        "rollout": {"max_new_tokens": 24},
        "train": {"iterations": 1, "eval_every": 1, "eval_tasks": 2, "run_dir": os.path.join(work, "run"),
                  "save_final_model": False},
    })
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    train(run, resume=False, progress=False)
    iter_s = time.perf_counter() - t1
    recs = [json.loads(x) for x in open(os.path.join(work, "run", "metrics.jsonl"))]
    it1 = recs[1]
    figures = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "layers": args.layers,
        "parameters": n_params,
        "dtype": "bfloat16" if cuda else "float32",
        "rows": it1["train/rows"],
        "iteration_seconds": round(iter_s, 1),
        "model_build_seconds": round(build_s, 1),
        "peak_memory_gb": round((torch.cuda.max_memory_allocated() if cuda else it1["perf/peak_memory_mb"] * 2**20) / 2**30, 2),
        "update_tokens_per_s": round(it1["perf/update_tokens_per_s"], 1),
        "fits_24gb": None,
    }
    figures["fits_24gb"] = figures["peak_memory_gb"] <= 24 if cuda else None
    print(f"Qwen2.5-1.5B architecture, {args.layers} layers, {n_params / 1e9:.2f} B parameters, {figures['device']}")
    print(f"  one LoRA PPO iteration (GRPO + AEM, {it1['train/rows']} rows): {iter_s:.1f} s, "
          f"peak memory {figures['peak_memory_gb']} GB" + (" (process RSS)" if not cuda else ""))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
