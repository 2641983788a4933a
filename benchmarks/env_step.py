"""Environment step throughput: one env on one core, and 32 envs through ``make_vec`` in sync
vs threads mode, measured side by side in one run. Also the uniformly random admissible-action
agent's success rate (the floor a trained agent must beat).

    python benchmarks/env_step.py                    # every env in ENV_BENCHMARKS
    python benchmarks/env_step.py --envs household --steps 50000 --json

With ``--json`` the last line is one JSON object ``{"<name>": {figures}, "machine": {...}}``.

To benchmark another env, add an :class:`EnvBench` to :data:`ENV_BENCHMARKS` (as WebShop's
entries do: a smaller step count for its slower steps, and a policy of its own where the env
lists no admissible actions); nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import aem_envs
from aem_envs.core import TextEnv

Policy = Callable[[TextEnv, np.random.Generator], str]  # (env, rng) -> bare action


def random_admissible(env: TextEnv, rng: np.random.Generator) -> str:
    """Uniformly random admissible action (needs ``env.admissible_actions()``)."""
    acts = env.admissible_actions()
    return acts[int(rng.integers(len(acts)))]


@dataclass
class EnvBench:
    env_id: str
    policy: Policy = random_admissible
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 30_000  # single-env steps to time
    vec_rounds: int = 6  # episodes per env in each vec mode
    success_episodes: int = 200  # test tasks for the policy's success rate


ENV_BENCHMARKS: dict[str, EnvBench] = {
    "household": EnvBench("aem/Household-v0"),
    # WebShop steps are HTTP requests to a Flask app plus a BeautifulSoup parse: ~1 ms, not ~10 us.
    # Its page cache is shared by all envs of a process, so in bench_vec the second mode replays
    # pages the first one fetched: read threads/sync from "webshop-nocache", not "webshop".
    "webshop": EnvBench("aem/WebShop-v0", steps=5000, vec_rounds=2),
    "webshop-nocache": EnvBench("aem/WebShop-v0", make_kwargs={"page_cache": False}, steps=5000, vec_rounds=2,
                                success_episodes=50),
}


@contextmanager
def one_core() -> Iterator[int | None]:
    """Pin the process to one CPU for the block (where the OS allows), so 'per core' is honest."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def bench_single(b: EnvBench, steps: int, seed: int = 0, repeats: int = 5) -> dict[str, Any]:
    """Steps/s of ``env.step`` alone, and of the whole loop (reset + policy + step), over
    ``repeats`` equal chunks; the median and best chunk are reported (other processes on a
    shared machine only ever make a chunk slower)."""
    chunks = [_single_chunk(b, max(1, steps // repeats), seed + 10_000 * k) for k in range(repeats)]
    sps = sorted(c["steps_per_s"] for c in chunks)
    loop = sorted(c["loop_steps_per_s"] for c in chunks)
    n = sum(c["steps"] for c in chunks)
    episodes = sum(c["episodes"] for c in chunks)
    return {
        "pinned_cpu": chunks[0]["pinned_cpu"],
        "steps": n,
        "episodes": episodes,
        "repeats": repeats,
        "steps_per_s": sps[len(sps) // 2],  # median chunk
        "steps_per_s_best": sps[-1],
        "us_per_step": 1e6 / sps[len(sps) // 2],
        "loop_steps_per_s": loop[len(loop) // 2],
        "train_success_rate": sum(c["wins"] for c in chunks) / episodes,
    }


def _single_chunk(b: EnvBench, steps: int, seed: int) -> dict[str, Any]:
    env = aem_envs.make(b.env_id, split="train", **b.make_kwargs)
    rng = np.random.default_rng(seed)
    step_time, n, episodes, wins = 0.0, 0, 0, 0
    clock = time.perf_counter
    with one_core() as cpu:
        t_all = clock()
        while n < steps:
            env.reset(seed=seed + episodes)
            episodes += 1
            done = False
            while not done:
                response = env.format_action(b.policy(env, rng))
                t0 = clock()
                _, _, term, trunc, info = env.step(response)
                step_time += clock() - t0
                n += 1
                done = term or trunc
            wins += info["success"]
        loop_time = clock() - t_all
    env.close()
    return {
        "pinned_cpu": cpu,
        "steps": n,
        "episodes": episodes,
        "wins": wins,
        "steps_per_s": n / step_time,
        "loop_steps_per_s": n / loop_time,
    }


def success_rate(b: EnvBench, episodes: int, seed: int = 0) -> float:
    """The policy's success rate on ``episodes`` evenly spaced test tasks."""
    env = aem_envs.make(b.env_id, split="test", **b.make_kwargs)
    ids = env.task_ids("test")
    rng = np.random.default_rng(seed)
    wins = 0
    for k in range(episodes):
        env.reset(seed=seed + k, options={"task_id": ids[(k * len(ids)) // episodes]})
        done = False
        while not done:
            *_, term, trunc, info = env.step(env.format_action(b.policy(env, rng)))
            done = term or trunc
        wins += info["success"]
    env.close()
    return wins / episodes


def _vec_round(vec: aem_envs.TextVecEnv, b: EnvBench, seed: int) -> tuple[int, float, list[list[str]]]:
    """One episode per env; returns (steps, seconds in reset+step, observations per env)."""
    rngs = [np.random.default_rng([seed, i]) for i in range(vec.num_envs)]  # same actions in both modes
    t0 = time.perf_counter()
    obs, _ = vec.reset(seed=seed)
    spent = time.perf_counter() - t0
    trace = [[o] for o in obs]
    steps = 0
    while not vec.all_done:
        actions = [
            None if vec.done[i] else vec.envs[i].format_action(b.policy(vec.envs[i], rngs[i]))
            for i in range(vec.num_envs)
        ]
        t0 = time.perf_counter()
        out = vec.step(actions)
        spent += time.perf_counter() - t0
        for i, o in enumerate(out.observations):
            if o is not None:
                trace[i].append(o)
                steps += 1
    return steps, spent, trace


def bench_vec(b: EnvBench, num_tasks: int = 8, group_size: int = 4, rounds: int = 6) -> dict[str, Any]:
    """32 envs (8 tasks x 4) in sync and in threads mode, rounds interleaved so drift hits both."""
    vecs = {m: aem_envs.make_vec(b.env_id, num_tasks, group_size, mode=m, **b.make_kwargs) for m in ("sync", "threads")}
    steps = {m: 0 for m in vecs}
    secs = {m: 0.0 for m in vecs}
    identical = True
    try:
        for r in range(rounds):
            traces = {}
            for m, vec in vecs.items():
                n, t, traces[m] = _vec_round(vec, b, seed=1000 + r)
                steps[m] += n
                secs[m] += t
            identical &= traces["sync"] == traces["threads"]
    finally:
        for vec in vecs.values():
            vec.close()
    sps = {m: steps[m] / secs[m] for m in vecs}
    return {
        "num_envs": num_tasks * group_size,
        "steps_per_mode": steps["sync"],
        "sync_steps_per_s": sps["sync"],
        "threads_steps_per_s": sps["threads"],
        "threads_over_sync": sps["threads"] / sps["sync"],
        "threads_identical_to_sync": identical,
    }


def run(names: list[str], steps: int | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name in names:
        b = ENV_BENCHMARKS[name]
        single = bench_single(b, steps or b.steps)
        figures[name] = {
            "env_id": b.env_id,
            "policy": b.policy.__name__,
            "single": single,
            "test_success_rate": success_rate(b, b.success_episodes),
            "test_episodes": b.success_episodes,
            "vec": bench_vec(b, rounds=b.vec_rounds),
        }
    figures["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(ENV_BENCHMARKS), choices=list(ENV_BENCHMARKS))
    p.add_argument("--steps", type=int, default=None, help="single-env steps to time (default: per env)")
    p.add_argument("--json", action="store_true", help="print one JSON object of figures last")
    args = p.parse_args(argv)
    figures = run(args.envs, args.steps)
    for name in args.envs:
        f = figures[name]
        s, v = f["single"], f["vec"]
        print(f"{name} ({f['env_id']}), policy {f['policy']}:")
        print(f"  one env, one core : {s['steps_per_s']:,.0f} steps/s in step() (median of {s['repeats']}; best "
              f"{s['steps_per_s_best']:,.0f}; {s['us_per_step']:.1f} us/step); {s['loop_steps_per_s']:,.0f} steps/s "
              f"with reset + policy ({s['steps']} steps, {s['episodes']} episodes)")
        print(f"  {f['policy']} success: {f['test_success_rate']:.1%} on {f['test_episodes']} test tasks, "
              f"{s['train_success_rate']:.1%} on the {s['episodes']} timed train episodes")
        print(f"  make_vec {v['num_envs']} envs : sync {v['sync_steps_per_s']:,.0f} steps/s, threads "
              f"{v['threads_steps_per_s']:,.0f} steps/s, threads/sync = {v['threads_over_sync']:.2f} "
              f"(identical trajectories: {v['threads_identical_to_sync']})")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
