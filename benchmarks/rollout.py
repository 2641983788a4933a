"""Rollout throughput: batched generation over 32 envs vs one env at a time, same model, same run.

Prints (a) new tokens/second of generation when every active env's prompt goes into one
``generate`` call vs one env at a time, and their ratio (goal >= 3x at household prompt
lengths on CPU); (b) the share of rollout wall time spent inside the model (generation and
scoring; goal >= 85%: prompt building, tokenisation and env steps must not dominate).

    python benchmarks/rollout.py [--model DIR] [--envs 32] [--json]

Without ``--model`` a tiny model (preset ``tiny``, ~1.3 M parameters) is built first.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

import aem_envs
from aem_train.policy import GenerationSettings, Policy
from aem_train.rollout import RolloutConfig, collect


def run(policy: Policy, env_id: str, n_envs: int, batched: bool, max_turns: int, new_tokens: int, seed: int) -> dict:
    cfg = RolloutConfig(GenerationSettings(max_new_tokens=new_tokens, temperature=1.0), window=1)
    stats = []
    if batched:
        vec = aem_envs.make_vec(env_id, n_envs // 4, 4, max_turns=max_turns)
        stats.append(collect(policy, vec, cfg, seed=seed).stats)
        vec.close()
    else:
        vec = aem_envs.make_vec(env_id, 1, 1, max_turns=max_turns)
        for k in range(n_envs):
            stats.append(collect(policy, vec, cfg, seed=seed + k).stats)
        vec.close()
    tokens = sum(s.response_tokens for s in stats)
    gen = sum(s.generate_seconds for s in stats)
    model = sum(s.generate_seconds + s.score_seconds for s in stats)
    wall = sum(s.seconds for s in stats)
    return {
        "new_tokens": tokens,
        "generate_seconds": gen,
        "tokens_per_s": tokens / max(gen, 1e-9),
        "wall_seconds": wall,
        "model_share": model / max(wall, 1e-9),
        "mean_prompt_tokens": sum(s.prompt_tokens for s in stats) / max(1, sum(s.rows for s in stats)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="HF checkpoint dir (default: build a tiny one)")
    ap.add_argument("--env", default="aem/Household-v0")
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model
    if model_dir is None:
        from aem_train.tiny import init_model

        tmp = tempfile.TemporaryDirectory(prefix="aem-bench-")  # removed when main() returns
        model_dir = os.path.join(tmp.name, "tiny")
        init_model(model_dir, [args.env], preset="tiny", episodes=60, seed=0)
    policy = Policy.from_pretrained(model_dir, reference="none")
    run(policy, args.env, 4, True, 1, 4, 99)  # warm-up: first-call allocations
    batched = run(policy, args.env, args.envs, True, args.max_turns, args.new_tokens, 0)
    single = run(policy, args.env, args.envs, False, args.max_turns, args.new_tokens, 0)
    figures = {
        "device": str(policy.device),
        "parameters": policy.num_parameters(),
        "envs": args.envs,
        "mean_prompt_tokens": round(batched["mean_prompt_tokens"], 1),
        "batched_tokens_per_s": round(batched["tokens_per_s"], 1),
        "single_tokens_per_s": round(single["tokens_per_s"], 1),
        "batched_vs_single": round(batched["tokens_per_s"] / max(single["tokens_per_s"], 1e-9), 2),
        "batched_model_share": round(batched["model_share"], 3),
        "single_model_share": round(single["model_share"], 3),
        "load_average_1m": os.getloadavg()[0],
    }
    print(f"rollout on {args.env}, {figures['parameters']:,} parameters, {figures['device']}, "
          f"{args.envs} envs, ~{figures['mean_prompt_tokens']:.0f} prompt tokens")
    print(f"  batched generate : {figures['batched_tokens_per_s']:>9.1f} new tokens/s")
    print(f"  one env at a time: {figures['single_tokens_per_s']:>9.1f} new tokens/s")
    print(f"  ratio            : {figures['batched_vs_single']:>9.2f}x   (goal >= 3x)")
    print(f"  share of rollout wall time inside the model: batched {figures['batched_model_share']:.1%}, "
          f"single {figures['single_model_share']:.1%}   (goal >= 85%)")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
