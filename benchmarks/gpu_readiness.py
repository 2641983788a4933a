"""GPU readiness: one LoRA PPO iteration (GRPO + AEM) of a randomly initialised model with
Qwen2.5-1.5B-Instruct's architecture, and its peak memory.

No weights are downloaded: the config below is Qwen2.5-1.5B's (hidden 1536, 28 layers, 12 heads
with 2 KV heads, MLP 8960, vocab 151,936, tied embeddings) and the weights are random. The
tokenizer is the locally trained tiny one, whose ids all fall inside the model's vocabulary, so
the memory and time figures are those of the real model on household-length prompts.

    python benchmarks/gpu_readiness.py                 # full 28 layers (GPU: bf16, checkpointing)
    python benchmarks/gpu_readiness.py --layers 2      # CPU smoke test of the same code path: 64 rows,
                                                       # ~4.5 min and ~10 GB RSS on 2 quiet cores
    python benchmarks/gpu_readiness.py --layers 1 --groups 1 --group-size 2 --max-turns 1  # ~30 s
    python benchmarks/gpu_readiness.py --track-tensors # CPU: bf16 + checkpointing as on the GPU,
                                                       # peak of live tensor memory counted op by op

Goal (issue "Learner II"): peak GPU memory of one iteration fits 24 GB. On a GPU the script
also runs the learner's start-up preflight (aem_train/preflight.py) at the paper preset's worst
case (128 rollout rows, rows of 2,048 prompt + 512 response tokens, 16,384-token update
micro-batches) and reports that peak too: the figure that decides whether the paper's setting fits.

Measured on a 2-core CPU with ``--track-tensors`` (Nov 2026), 28 layers, one iteration (eval,
rollout, scoring, reference, update): with 8 rows peak of live
tensors 4.46 GB (bf16 weights are 3.09 GB), 537 s; with the default 64 rows 8.61 GB (process
RSS 10.59 GB), 2,237 s (the cores partly shared with other work). Not yet run on a GPU.

``--track-tensors`` runs the iteration under ``LiveTensorPeak`` (a dispatch mode that adds up
every live tensor storage, rounded to the CUDA allocator's 512-byte blocks), with the
GPU's dtype (bfloat16) and gradient checkpointing. Its peak is the quantity
``torch.cuda.max_memory_allocated`` reports on a GPU, minus what only a GPU has: kernel
workspaces (cuBLAS, attention) and the CUDA context, which are not tensors. On a GPU the script
reports both, which also checks the estimate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

QWEN25_15B = dict(
    hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    vocab_size=151_936, tie_word_embeddings=True, hidden_act="silu",
)


class LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of live tensor storages that the ops run inside it create or read.

    Every storage an op returns or reads is counted once (rounded up to the CUDA caching allocator's
    512-byte blocks) until Python frees it, and the running maximum is kept. This is what
    ``torch.cuda.max_memory_allocated`` measures on a GPU, without cuBLAS/attention
    workspaces and the CUDA context, which are not tensors. (PyTorch's own ``MemTracker`` does
    more, per module, and cannot follow generation's repeated calls or frozen LoRA weights.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def _track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = st._cdata
        if key in self.live or st.device.type == "meta":
            return
        size = -(-st.nbytes() // 512) * 512
        self.live[key] = size
        self.now += size
        self.peak = max(self.peak, self.now)
        weakref.finalize(st, self._free, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # Inputs too: weights loaded from safetensors are made outside any dispatch mode and
        # are first seen as an op's argument.
        for t in tree_flatten((out, args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=28, help="decoder layers (28 = the real model)")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--paper-preflight", choices=("auto", "yes", "no"), default="auto",
                    help="also run aem_train.preflight at the paper preset's worst case "
                         "(128 rows of 2,048 prompt + 512 response tokens; auto = on a GPU only)")
    ap.add_argument("--track-tensors", action="store_true",
                    help="count live tensor memory op by op (bf16 + checkpointing on any device)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aem-gpu-") as work:  # the random model is GBs: never leave it
        run_benchmark(args, work)


def run_benchmark(args: argparse.Namespace, work: str) -> None:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from aem_train.config import from_dict
    from aem_train.tiny import init_model
    from aem_train.trainer import train

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

    cuda = torch.cuda.is_available()
    like_gpu = cuda or args.track_tensors
    run = from_dict({
        "model": {"path": model_dir, "lora": True, "lora_r": 16,
                  "dtype": "bfloat16" if like_gpu else "float32", "gradient_checkpointing": like_gpu},
        "env": {"id": "aem/Household-v0", "groups": args.groups, "group_size": args.group_size, "window": 1,
                "kwargs": {"max_turns": args.max_turns}},
        "algo": {"estimator": "grpo", "modulation": "aem"},
        "ppo": {"kl_coef": 0.01, "token_budget": 16384},
        "rollout": {"max_new_tokens": 24},
        "train": {"iterations": 1, "eval_every": 1, "eval_tasks": 2, "run_dir": os.path.join(work, "run"),
                  "save_final_model": False, "preflight": "never"},  # the iteration's own peak; the worst case below
    })
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tracker = LiveTensorPeak() if args.track_tensors else None
    t1 = time.perf_counter()
    with tracker or contextlib.nullcontext():
        train(run, resume=False, progress=False)
    iter_s = time.perf_counter() - t1
    recs = [json.loads(x) for x in open(os.path.join(work, "run", "metrics.jsonl"))]
    it1 = recs[1]
    figures = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "layers": args.layers,
        "parameters": n_params,
        "dtype": "bfloat16" if like_gpu else "float32",
        "rows": it1["train/rows"],
        "iteration_seconds": round(iter_s, 1),
        "model_build_seconds": round(build_s, 1),
        "peak_memory_gb": round((torch.cuda.max_memory_allocated() if cuda else it1["perf/peak_memory_mb"] * 2**20) / 2**30, 2),
        "update_tokens_per_s": round(it1["perf/update_tokens_per_s"], 1),
        "fits_24gb": None,
    }
    figures["fits_24gb"] = figures["peak_memory_gb"] <= 24 if cuda else None
    if tracker is not None:
        figures["tensor_peak_gb"] = round(tracker.peak / 2**30, 2)  # an estimate; fits_24gb needs a GPU
    print(f"Qwen2.5-1.5B architecture, {args.layers} layers, {n_params / 1e9:.2f} B parameters, {figures['device']}")
    print(f"  one LoRA PPO iteration (GRPO + AEM, {it1['train/rows']} rows): {iter_s:.1f} s, "
          f"peak memory {figures['peak_memory_gb']} GB" + (" (process RSS)" if not cuda else ""))
    if tracker is not None:
        print(f"  peak of live tensors (bf16, checkpointing): {figures['tensor_peak_gb']} GB")
    if args.paper_preflight == "yes" or (args.paper_preflight == "auto" and cuda):
        figures.update(paper_worst_case(run, cuda))
        print(f"  paper preset's worst case (preflight: {PAPER['rollout_rows']} rows x "
              f"{PAPER['prompt_tokens']}+{PAPER['response_tokens']} tokens, update budget {PAPER['token_budget']}): "
              f"peak {figures['paper_preflight_peak_gb'] or '(needs a GPU)'} GB, {figures['paper_preflight_seconds']} s")
    if args.json:
        print(json.dumps(figures))


#: aem_train/presets/paper.yaml: env.groups x group_size rows, rollout/ppo sizes.
PAPER = dict(rollout_rows=16 * 8, prompt_tokens=2048, response_tokens=512, token_budget=16384, score_max_tokens=16384)


def paper_worst_case(run, cuda: bool) -> dict:
    """aem_train.preflight with the paper preset's longest possible rows, on the same model."""
    from aem_train.preflight import preflight
    from aem_train.trainer import load_policy

    policy = load_policy(run)
    policy.model.eval()
    opt = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=1e-5)
    res = preflight(policy, temperature=1.0, optimizer=opt, **PAPER)
    out = {"paper_preflight_seconds": round(res.seconds, 1)}
    out["paper_preflight_peak_gb"] = round(res.peak_memory_mb / 1024, 2) if cuda else None
    if cuda:
        out["paper_preflight_fits_24gb"] = res.peak_memory_mb / 1024 <= 24
    return out


if __name__ == "__main__":
    main()
