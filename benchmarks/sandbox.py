"""Sandbox figures, side by side in one run (needs the Docker engine and the base image).

- per-step overhead: one command through the persistent shell vs ``exec_run`` (goal >= 30x)
- same-task reset p50 through the pool (goal <= 100 ms), and a bare ``DockerSandbox.reset``
- cold start p50 (container + shell ready) and close p50
- 16 concurrent aem/Shell-v0 oracle episodes in threads: wall time, episodes/s, steps/s

    python benchmarks/sandbox.py [--steps 300] [--resets 20] [--cold 6] [--episodes 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--resets", type=int, default=20)
    ap.add_argument("--cold", type=int, default=6)
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import aem_envs
    from aem_envs.envs.shell import make_task
    from aem_envs.envs.shell.env import ShellEnv, _default_image
    from aem_envs.sandbox import SandboxConfig, lifecycle
    from aem_envs.sandbox.docker_sandbox import DockerSandbox
    from aem_envs.sandbox.pool import SandboxPool, close_shared_pools

    cfg = SandboxConfig(image=_default_image(), mem_limit="512m")
    fig: dict[str, float | int | str] = {"image": cfg.image, "swap_limit_supported": lifecycle.swap_supported()}

    # --- per-step overhead ---------------------------------------------------------------
    sb = DockerSandbox(cfg)
    try:
        for _ in range(20):
            sb.run("true")
        shell = []
        for _ in range(args.steps):
            t = time.perf_counter()
            sb.run("true")
            shell.append(time.perf_counter() - t)
        n_exec = max(20, args.steps // 10)
        execs = []
        for _ in range(n_exec):
            t = time.perf_counter()
            sb.container.exec_run(["true"], user=cfg.user)
            execs.append(time.perf_counter() - t)
        fig["step_persistent_shell_ms_p50"] = p50(shell) * 1e3
        fig["step_exec_run_ms_p50"] = p50(execs) * 1e3
        fig["step_speedup_x"] = p50(execs) / p50(shell)

        # --- bare reset of a task tree ----------------------------------------------------
        ids = ShellEnv().task_ids("test")
        task = make_task(ids[0], ids.index_of(ids[0]))
        tar = task.tar()
        sb.put_archive(sb.workdir, tar)
        sb.snapshot(tar)
        bare = []
        for _ in range(args.resets):
            sb.run("rm -rf docs; touch junk; sleep 300 & cd /tmp")
            t = time.perf_counter()
            sb.reset()
            bare.append(time.perf_counter() - t)
        fig["reset_bare_ms_p50"] = p50(bare) * 1e3
        fig["task_files"] = len(task.files)

        # --- reset of a 2,000-file git work tree (git reset --hard && git clean -fdx) --------
        sb.run(
            "cd /workspace && find . -mindepth 1 -delete && git init -q . && "
            "for d in $(seq 1 40); do mkdir -p pkg$d; for f in $(seq 1 50); do echo \"v $d $f\" > pkg$d/m$f.py; done; done && "
            "git add -A && git -c user.email=b@b -c user.name=b commit -qm base",
            timeout=120,
        )
        sb.snapshot()
        git_resets = []
        for _ in range(max(5, args.resets // 2)):
            sb.run("rm -rf pkg1; echo x > pkg2/m1.py; touch new.txt; sleep 300 &")
            t = time.perf_counter()
            sb.reset()
            git_resets.append(time.perf_counter() - t)
        fig["reset_git_2000_files_ms_p50"] = p50(git_resets) * 1e3
    finally:
        sb.close()

    # --- pool: same-task reset, fresh acquire -------------------------------------------------
    with SandboxPool(cfg, low=1, high=2) as pool:
        pool.wait_warm(2, timeout=60)
        t = time.perf_counter()
        box = pool.acquire("bench-task")
        fig["pool_fresh_acquire_ms"] = (time.perf_counter() - t) * 1e3
        box.put_archive(box.workdir, tar)
        box.snapshot(tar)
        pooled = []
        for _ in range(args.resets):
            box.run("rm -rf docs; touch junk; sleep 300 & cd /tmp")
            pool.release(box, "bench-task")
            t = time.perf_counter()
            box = pool.acquire("bench-task")
            pooled.append(time.perf_counter() - t)
        pool.release(box)
        fig["reset_pool_same_task_ms_p50"] = p50(pooled) * 1e3

    # --- cold start -----------------------------------------------------------------------
    cold, closes = [], []
    for _ in range(args.cold):
        t = time.perf_counter()
        b = DockerSandbox(cfg)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        b.close()
        closes.append(time.perf_counter() - t)
    fig["cold_start_ms_p50"] = p50(cold) * 1e3
    fig["close_ms_p50"] = p50(closes) * 1e3

    # --- concurrent episodes ------------------------------------------------------------------
    n = args.episodes
    vec = aem_envs.make_vec("aem/Shell-v0", num_tasks=n, group_size=1, mode="threads", split="test")
    try:
        t = time.perf_counter()
        vec.reset(seed=0, task_ids=[ids[i] for i in range(n)])
        steps = 0
        wins = 0
        while not vec.all_done:
            acts = [None if vec.done[i] else e.oracle_response() for i, e in enumerate(vec.envs)]
            st = vec.step(acts)
            steps += sum(a is not None for a in acts)
            wins += sum(bool(i and i["success"]) for i in st.infos)
        wall = time.perf_counter() - t
    finally:
        vec.close()
        close_shared_pools()
    fig.update({
        "concurrent_episodes": n,
        "concurrent_wall_s": wall,
        "concurrent_episodes_per_s": n / wall,
        "concurrent_steps_per_s": steps / wall,
        "concurrent_success_rate": wins / n,
    })

    rows = [
        ("per-step, persistent shell (p50)", f"{fig['step_persistent_shell_ms_p50']:.3f} ms"),
        ("per-step, exec_run (p50)", f"{fig['step_exec_run_ms_p50']:.2f} ms"),
        ("  speedup", f"{fig['step_speedup_x']:.0f}x (goal >= 30x)"),
        (f"same-task reset via pool (p50, {fig['task_files']} files)", f"{fig['reset_pool_same_task_ms_p50']:.1f} ms (goal <= 100 ms)"),
        ("bare DockerSandbox.reset (p50)", f"{fig['reset_bare_ms_p50']:.1f} ms"),
        ("reset of a 2,000-file git work tree (p50)", f"{fig['reset_git_2000_files_ms_p50']:.1f} ms"),
        ("fresh sandbox from a warm pool", f"{fig['pool_fresh_acquire_ms']:.2f} ms"),
        ("cold start: container + shell (p50)", f"{fig['cold_start_ms_p50']:.0f} ms"),
        ("close: remove container (p50)", f"{fig['close_ms_p50']:.0f} ms"),
        (f"{n} concurrent Shell-v0 oracle episodes", f"{wall:.2f} s wall, {n / wall:.2f} episodes/s, "
         f"{steps / wall:.1f} steps/s, success {wins}/{n}"),
    ]
    w = max(len(k) for k, _ in rows)
    print(f"sandbox benchmark (image {cfg.image}, swap limit supported: {fig['swap_limit_supported']})")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if args.json:
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
