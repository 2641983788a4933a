"""Cost of the AEM step next to the PPO update it feeds (AEM, arXiv 2605.00425 reports 1.1%).

Builds a realistic rollout batch (default 16 groups x 8 trajectories x ~10 turns, ~100 response
tokens each) as :class:`aem_train.rows.Row` objects, then times, median of ``--repeats``:

- ``aem``: ``ResponseStats.from_rows`` + ``aem_alpha`` + ``apply_modulation`` (what a trainer runs
  per step), and ``aem_alpha`` alone on ready arrays;
- ``empg``: the EMPG modulation on the same batch;
- ``aem_on_arrays``: the same without building ``ResponseStats`` from Row objects;
- ``ppo_loss``: PPO loss forward + backward on the padded [B, T] log-prob tensor alone;
- ``tiny_model``: forward + backward of a tiny language-model head (embedding, one hidden layer,
  vocab ``--vocab``) producing those log-probs and entropies, in micro-batches, + the loss.

and prints the AEM step as a percentage of each. ``--device cuda`` runs the torch parts on a
GPU (AEM itself is numpy on the CPU, as in a trainer). Timings on a shared, loaded machine are
noisy: report the load next to them. ``--json`` prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from aem_train.advantages import compute_advantages
from aem_train.modulation import ResponseStats, aem_alpha, apply_modulation, scope_ids_for
from aem_train.ppo import PPOLossConfig, ppo_loss
from aem_train.rows import Row


def make_rows(groups: int, trajs: int, mean_turns: int, mean_tokens: int, seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        for i in range(trajs):
            turns = int(rng.integers(1, 2 * mean_turns))
            success = bool(rng.random() < 0.4)
            for t in range(turns):
                n = int(rng.integers(mean_tokens // 2, 3 * mean_tokens // 2))
                last = t == turns - 1
                rows.append(
                    Row(
                        prompt_ids=[0] * 8,
                        response_ids=rng.integers(0, 1000, n).tolist(),
                        old_logprobs=-rng.exponential(0.5, n).astype(np.float32),
                        token_entropy=rng.gamma(2.0, 0.4, n).astype(np.float32),
                        reward=(10.0 if success else 0.0) if last else float(-0.1 * (rng.random() < 0.1)),
                        done=last,
                        group_id=g,
                        traj_id=g * trajs + i,
                        turn=t,
                        task_id=f"task-{g}",
                    )
                )
    return rows


def timed(
    fn: Callable[[], object], repeats: int, warmup: bool = True, sync: Callable[[], None] = lambda: None
) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    BEST[id(fn)] = min(times)
    return statistics.median(times)


BEST: dict[int, float] = {}  # fastest run of each timed function: less sensitive to a loaded machine


def padded_batch(rows: list[Row], max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b = len(rows)
    ids = torch.zeros(b, max_len, dtype=torch.long)
    old = torch.zeros(b, max_len)
    mask = torch.zeros(b, max_len, dtype=torch.bool)
    for r, row in enumerate(rows):
        n = min(row.num_tokens, max_len)
        ids[r, :n] = torch.tensor(row.response_ids[:n])
        old[r, :n] = torch.from_numpy(row.old_logprobs[:n])
        mask[r, :n] = True
    return ids, old, mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--trajs", type=int, default=8)
    ap.add_argument("--turns", type=int, default=10, help="mean turns per trajectory")
    ap.add_argument("--tokens", type=int, default=100, help="mean response tokens")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device for the loss and the tiny model (AEM is numpy, CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    rows = make_rows(args.groups, args.trajs, args.turns, args.tokens, args.seed)
    base = compute_advantages(rows, "grpo")
    stats = ResponseStats.from_rows(rows)
    sid = scope_ids_for(stats, "group")

    def aem_step() -> None:
        s = ResponseStats.from_rows(rows)
        apply_modulation(s, base, "aem", "group")

    t_aem = timed(aem_step, args.repeats * 4)
    best_aem = BEST[id(aem_step)]
    t_alpha = timed(lambda: aem_alpha(stats.mean_entropy, sid), args.repeats * 4)
    t_arrays = timed(lambda: apply_modulation(stats, base, "aem", "group"), args.repeats * 4)
    t_empg = timed(lambda: apply_modulation(ResponseStats.from_rows(rows), base, "empg"), args.repeats * 4)

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    max_len = max(r.num_tokens for r in rows)
    ids, old, mask = (x.to(dev) for x in padded_batch(rows, max_len))
    ids = ids % args.vocab  # synthetic token ids must fit the tiny vocabulary
    adv = torch.from_numpy(apply_modulation(stats, base, "aem")[0]).float().to(dev)
    cfg = PPOLossConfig(clip_high=0.28, loss_agg_mode="response-mean")

    logp_leaf = (old + 0.01 * torch.randn_like(old)).requires_grad_(True)

    def loss_only() -> None:
        logp_leaf.grad = None
        loss, _ = ppo_loss(logp_leaf, old, adv, mask, cfg)
        loss.backward()

    t_loss = timed(loss_only, args.repeats, sync=sync)
    best_loss = BEST[id(loss_only)]

    model = torch.nn.Sequential(
        torch.nn.Embedding(args.vocab, args.hidden),
        torch.nn.Linear(args.hidden, args.hidden),
        torch.nn.GELU(),
        torch.nn.Linear(args.hidden, args.vocab),
    ).to(dev)

    def tiny_model(n_rows: int = len(rows)) -> None:
        model.zero_grad(set_to_none=True)
        for s in range(0, n_rows, args.micro_batch):
            sl = slice(s, s + args.micro_batch)
            logits = model(ids[sl])
            logprobs = torch.log_softmax(logits, dim=-1)
            # next-token targets stand in for the response tokens; the cost is what matters
            logp = logprobs.gather(-1, ids[sl].unsqueeze(-1)).squeeze(-1)
            entropy = -(logprobs.exp() * logprobs).sum(-1)
            loss, _ = ppo_loss(logp, old[sl], adv[sl], mask[sl], cfg, entropy=entropy)
            (loss * logp.shape[0] / len(rows)).backward()

    tiny_model(args.micro_batch)  # warm-up on one micro-batch: a full pass costs seconds on CPU
    t_model = timed(tiny_model, 1 if dev.type == "cpu" else args.repeats, warmup=False, sync=sync)

    n_tokens = int(mask.sum())
    figures = {
        "rows": len(rows),
        "groups": args.groups,
        "trajectories": args.groups * args.trajs,
        "response_tokens": n_tokens,
        "max_len": max_len,
        "aem_step_ms": t_aem * 1e3,
        "aem_step_best_ms": best_aem * 1e3,
        "aem_alpha_only_ms": t_alpha * 1e3,
        "aem_on_arrays_ms": t_arrays * 1e3,
        "empg_step_ms": t_empg * 1e3,
        "ppo_loss_fwd_bwd_ms": t_loss * 1e3,
        "ppo_loss_fwd_bwd_best_ms": best_loss * 1e3,
        "tiny_model_fwd_bwd_ms": t_model * 1e3,
        "aem_pct_of_ppo_loss": 100 * t_aem / t_loss,
        "aem_pct_of_tiny_model": 100 * t_aem / t_model,
        "threads": args.threads,
        "load_avg_1min": os.getloadavg()[0],
        "device": str(dev),
        "hidden": args.hidden,
        "vocab": args.vocab,
    }
    print(
        f"batch: {len(rows)} responses ({args.groups} groups x {args.trajs} trajectories), "
        f"{n_tokens} response tokens, T={max_len}, device {dev}"
    )
    print(
        f"AEM step (rows -> stats -> alpha -> advantages): {t_aem * 1e3:10.2f} ms "
        f"(best {best_aem * 1e3:.2f} ms; on arrays {t_arrays * 1e3:.2f} ms, aem_alpha alone {t_alpha * 1e3:.2f} ms)"
    )
    print(f"EMPG step:                                       {t_empg * 1e3:10.2f} ms")
    print(
        f"PPO loss fwd+bwd on [B, T] log-probs:            {t_loss * 1e3:10.2f} ms "
        f"AEM = {figures['aem_pct_of_ppo_loss']:.1f}% of it"
    )
    print(
        f"tiny model (h={args.hidden}, V={args.vocab}) fwd+bwd + loss:   {t_model * 1e3:10.2f} ms "
        f"AEM = {figures['aem_pct_of_tiny_model']:.2f}% of it"
    )
    print(f"(median of repeats; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
