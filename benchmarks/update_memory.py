"""Peak memory of one paper-size PPO update micro-batch: the LM head in pieces vs whole logits.

One micro-batch of the paper preset's token budget (``ppo.token_budget``: 16,384 tokens, here 8
rows x (1,536 prompt + 512 response); the preset's longest rows, 2,048 + 512 tokens, fill the same
budget with 6 rows) goes forward and backward through ``Policy.forward_response`` of a random model
with Qwen2.5-1.5B's shape (151,936-token vocabulary), bf16, LoRA r=16, activation
checkpointing, counted with ``LiveTensorPeak`` (see gpu_readiness.py). Both ways of computing
log-probs and entropies run side by side on the same model and batch:

- ``pieces``: the decoder, then the head a few rows at a time (what the learner does), and
- ``whole``: the model's own forward, all response logits at once (the previous code).

Per-layer cost comes from two depths (``--layers 1 3``), extrapolated linearly to 28.

    python benchmarks/update_memory.py --layers 1 3 --json     # ~6 min on 2 CPU cores

Measured (2-core CPU, Nov 2026): pieces 3.64 GB (1 layer) / 3.91 GB (3 layers) -> ~7.3 GB at
28 layers; whole logits 12.27 GB at 1 layer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_readiness import QWEN25_15B, LiveTensorPeak  # noqa: E402


def peak_gb(policy, batch, mode: str) -> float:
    import aem_train.policy as P

    saved = P._decoder_and_head, P.LOGIT_CHUNK_ELEMENTS
    if mode == "whole":
        P._decoder_and_head, P.LOGIT_CHUNK_ELEMENTS = (lambda model: None), 10**15
    try:
        policy.model.zero_grad(set_to_none=True)
        tracker = LiveTensorPeak()
        with tracker:
            lp, ent = policy.forward_response(batch, temperature=0.7)
            (lp.sum() + 0.01 * ent.sum()).backward()
        return tracker.peak / 2**30
    finally:
        P._decoder_and_head, P.LOGIT_CHUNK_ELEMENTS = saved


def measure(layers: int, rows: int, prompt: int, response: int, modes: list[str]) -> dict[str, float]:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from aem_train.policy import LoraSettings, Policy, build_response_batch
    from aem_train.tiny import init_model

    with tempfile.TemporaryDirectory(prefix="aem-updmem-") as d:
        init_model(os.path.join(d, "tok"), ["aem/Household-v0"], preset="test", episodes=20)
        tok = AutoTokenizer.from_pretrained(os.path.join(d, "tok"))
        cfg = Qwen2Config(**{**QWEN25_15B, "num_hidden_layers": layers},
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        torch.manual_seed(0)
        Qwen2ForCausalLM(cfg).save_pretrained(os.path.join(d, "m"))
        tok.save_pretrained(os.path.join(d, "m"))
        policy = Policy.from_pretrained(os.path.join(d, "m"), dtype="bfloat16", reference="none",
                                        gradient_checkpointing=True, lora=LoraSettings(r=16))
        g = torch.Generator().manual_seed(0)
        prompts = [torch.randint(5, 400, (prompt,), generator=g).tolist() for _ in range(rows)]
        responses = [torch.randint(5, 400, (response,), generator=g).tolist() for _ in range(rows)]
        batch = build_response_batch(prompts, responses, policy.pad_token_id, policy.device)
        return {mode: round(peak_gb(policy, batch, mode), 3) for mode in modes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 3], help="depths to measure (two for a slope)")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=1536)
    ap.add_argument("--response", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    figures: dict[str, object] = {"rows": args.rows, "tokens": args.rows * (args.prompt + args.response)}
    by_layers = {}
    for i, L in enumerate(args.layers):
        # The whole-logits path only at the first depth: it is the slow, memory-hungry one.
        by_layers[L] = measure(L, args.rows, args.prompt, args.response, ["pieces", "whole"] if i == 0 else ["pieces"])
        print(f"{L} layer(s): " + ", ".join(f"{k} {v} GB" for k, v in by_layers[L].items()), flush=True)
    figures["peak_gb"] = {str(k): v for k, v in by_layers.items()}
    if len(args.layers) >= 2:
        (l0, a), (l1, b) = sorted(by_layers.items())[:2]
        slope = (b["pieces"] - a["pieces"]) / (l1 - l0)
        figures["per_layer_gb"] = round(slope, 3)
        figures["pieces_28_layers_gb"] = round(a["pieces"] + (28 - l0) * slope, 2)
        if "whole" in a:
            figures["whole_28_layers_gb"] = round(a["whole"] + (28 - l0) * slope, 2)
        print(f"extrapolated to 28 layers: pieces {figures['pieces_28_layers_gb']} GB"
              + (f", whole logits {figures['whole_28_layers_gb']} GB" if "whole_28_layers_gb" in figures else ""))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
