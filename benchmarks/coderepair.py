"""aem/CodeRepair-v0 on Docker with the warm sandbox pool vs without, side by side in one run.

For each mode (``use_pool=True`` / ``False``) one env plays the oracle (apply the gold patch,
``run_tests``, ``submit``) on the same N test tasks of the shipped corpus, spread evenly over
the split. Figures per mode:

- ``reset_ms_p50``: ``env.reset`` (sandbox reset or start, repository copied in, git baseline)
- ``grade_ms_p50``: the ``submit`` step, i.e. submit -> reward (grading sandbox, diff, tests)
- ``step_ms_p50``: the other steps (``git apply``, ``run_tests``)
- ``steps_per_s``: all steps / wall time of the episodes (resets included)
- ``first_reset_ms``: the first reset (container start when not pooled, pool start when pooled)

and the ratios no-pool / pool (``> 1`` = the pool is faster). The modes run as separate
blocks (one env alive at a time, so the pool's background refills never slow the other
mode), in the order pool, no-pool, then reversed on each further ``--rounds``.

    python benchmarks/coderepair.py [--tasks 10] [--rounds 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_block(task_ids: list[str], use_pool: bool, acc: dict) -> None:
    """Oracle episodes on ``task_ids`` in one env; timings appended to ``acc``."""
    from aem_envs.envs.coderepair.env import CodeRepairEnv

    env = CodeRepairEnv(sandbox="docker", use_pool=use_pool, split="test")
    try:
        for tid in task_ids:
            t0 = time.perf_counter()
            env.reset(seed=0, options={"task_id": tid})
            acc["reset"].append(time.perf_counter() - t0)
            n = 0
            while True:
                action = env.oracle_action()
                t = time.perf_counter()
                _, r, te, tr, info = env.step(f"<action>{action}</action>")
                dt = time.perf_counter() - t
                n += 1
                if te or tr:
                    acc["grade"].append(dt)
                    break
                acc["step"].append(dt)
            acc["episode_wall"].append(time.perf_counter() - t0)
            acc["steps"] += n
            acc["successes"] += int(bool(info["success"]) and r == env.max_reward)
            acc["episodes"] += 1
        if use_pool:
            for pool in env._pools.values():
                for k, v in pool.stats.items():
                    acc["pool_stats"][k] = acc["pool_stats"].get(k, 0) + v
    finally:
        t = time.perf_counter()
        env.close()
        acc["close"].append(time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10, help="test tasks per mode and round")
    ap.add_argument("--rounds", type=int, default=1, help="repeat both blocks, alternating their order")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures last")
    args = ap.parse_args(argv)

    from aem_envs.envs.coderepair.corpus_index import load_index
    from aem_envs.sandbox import lifecycle

    lifecycle.get_client().images.get("aem/base:0")  # fail now, with Docker's message, if missing
    ids = load_index().by_split["test"]
    task_ids = [ids[(k * len(ids)) // args.tasks] for k in range(args.tasks)]

    modes = {"pool": True, "nopool": False}
    acc = {
        m: {"reset": [], "grade": [], "step": [], "episode_wall": [], "close": [], "steps": 0, "successes": 0,
            "episodes": 0, "pool_stats": {}}
        for m in modes
    }
    first_reset: dict[str, float] = {}
    order = list(modes)
    for rnd in range(args.rounds):
        for m in order if rnd % 2 == 0 else order[::-1]:
            run_block(task_ids, modes[m], acc[m])
            first_reset.setdefault(m, acc[m]["reset"][0])

    fig: dict[str, float | int | str | dict] = {"tasks": args.tasks, "rounds": args.rounds, "image": "aem/base:0"}
    for m, a in acc.items():
        fig[f"{m}_reset_ms_p50"] = round(p50(a["reset"]) * 1e3, 1)
        fig[f"{m}_grade_ms_p50"] = round(p50(a["grade"]) * 1e3, 1)
        fig[f"{m}_step_ms_p50"] = round(p50(a["step"]) * 1e3, 1)
        fig[f"{m}_steps_per_s"] = round(a["steps"] / sum(a["episode_wall"]), 3)
        fig[f"{m}_first_reset_ms"] = round(first_reset[m] * 1e3, 1)
        fig[f"{m}_close_ms_p50"] = round(p50(a["close"]) * 1e3, 1)
        fig[f"{m}_episodes"] = a["episodes"]
        fig[f"{m}_success_rate"] = a["successes"] / max(a["episodes"], 1)
    fig["pool_stats"] = acc["pool"]["pool_stats"]
    fig["grade_speedup_x"] = round(fig["nopool_grade_ms_p50"] / fig["pool_grade_ms_p50"], 3)
    fig["reset_speedup_x"] = round(fig["nopool_reset_ms_p50"] / fig["pool_reset_ms_p50"], 3)
    fig["steps_per_s_ratio_x"] = round(fig["pool_steps_per_s"] / fig["nopool_steps_per_s"], 3)

    print(f"aem/CodeRepair-v0 oracle episodes, Docker, {args.tasks} test tasks x {args.rounds} round(s) per mode")
    print(f"{'':24}{'pool':>12}{'no pool':>12}{'no pool / pool':>16}")
    for key, label, ratio in (
        ("reset_ms_p50", "reset p50 (ms)", fig["reset_speedup_x"]),
        ("grade_ms_p50", "submit->reward p50 (ms)", fig["grade_speedup_x"]),
        ("step_ms_p50", "other step p50 (ms)", None),
        ("first_reset_ms", "first reset (ms)", None),
        ("close_ms_p50", "env.close (ms)", None),
    ):
        r = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{label:24}{fig['pool_' + key]:>12.1f}{fig['nopool_' + key]:>12.1f}{r:>16}")
    print(f"{'steps/s':24}{fig['pool_steps_per_s']:>12.3f}{fig['nopool_steps_per_s']:>12.3f}"
          f"{format(1 / fig['steps_per_s_ratio_x'], '.2f') + 'x':>16}  (pool/no pool {fig['steps_per_s_ratio_x']:.2f}x)")
    print(f"success rate: pool {fig['pool_success_rate']:.2f}, no pool {fig['nopool_success_rate']:.2f}; "
          f"pool stats {fig['pool_stats']}")
    if args.json:
        print(json.dumps(fig))
    return 0 if fig["pool_success_rate"] == 1.0 and fig["nopool_success_rate"] == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
