"""The bench grid: spec parsing, cell configs, filters, resumability, Docker skipping, setup cache.

The grid runner takes ``train_fn``; these tests inject :func:`fast_train`, a small real training
stand-in that writes the trainer's file format (metrics.jsonl, trajectories.jsonl, final.json
last), resumes from what it already wrote, and counts its calls in the run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aem_train import bench, cli
from aem_train.config import Config

TESTS_DIR = Path(__file__).resolve().parent


def fast_train(cfg: Config, resume: bool = True, sleep_s: float = 0.0) -> dict:
    """Write a run in the trainer's format; success grows with iterations (AEM a bit faster)."""
    run = Path(cfg.train.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    with (run / "calls.txt").open("a") as f:
        f.write(f"{time.time()}\n")
    cfg.save(run / "config.yaml")
    metrics = run / "metrics.jsonl"
    done = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if resume and metrics.exists() else []
    if not resume:
        metrics.unlink(missing_ok=True)
    start = done[-1]["iteration"] + 1 if done else 0
    if start:
        (run / "resumed_at.txt").write_text(str(start))
    rate = 0.1 if cfg.algo.modulation == "aem" else 0.05
    n = cfg.train.iterations
    for it in range(start, n + 1):
        time.sleep(sleep_s)
        rec = {"iteration": it, "time_s": 0.01 * it}
        if it >= 1:
            rec.update({"train/success_rate": rate * it, "entropy/response_mean": 1.0 / it, "alpha/mean": 1.0})
            with (run / "trajectories.jsonl").open("a") as f:
                for t in range(4):
                    f.write(json.dumps({"iteration": it, "env": cfg.env.id, "task_id": "t0", "traj_id": t, "turn": 0,
                                        "response": "x", "reward": 0.0, "base_adv": 1.0, "alpha": 0.8 + 0.1 * t,
                                        "adv": 0.8 + 0.1 * t, "mean_entropy": 0.5, "surprisal": 2.0}) + "\n")
        if it == 0 or it == n or it % cfg.train.eval_every == 0:
            rec["eval/success_rate"] = min(1.0, 0.1 * cfg.train.seed + rate * it)
        with metrics.open("a") as f:
            f.write(json.dumps(rec) + "\n")
    final = {"eval/success_rate": min(1.0, 0.1 * cfg.train.seed + rate * n), "iterations": n, "wall_s": 0.5}
    (run / "final.json").write_text(json.dumps(final))
    return final


def calls(run_dir: Path) -> int:
    p = run_dir / "calls.txt"
    return len(p.read_text().splitlines()) if p.exists() else 0


def write_spec(tmp_path: Path, envs: str = "hh: {id: aem/Household-v0}", iterations: int = 3, extra: str = "") -> Path:
    p = tmp_path / "bench.yaml"
    p.write_text(textwrap.dedent(f"""\
        name: testbench
        description: a test grid
        common:
          train: {{iterations: {iterations}, eval_every: 2}}
          env.groups: 2
        setup: {{kind: none, model: /nonexistent/model}}
        envs: {{{envs}}}
        grid: {{estimators: [grpo], methods: [none, aem], seeds: [0, 1]}}
        n_boot: 300
        """) + extra)
    return p


# ----------------------------------------------------------------------------- spec and cells
def test_presets_ship_and_validate():
    sizes = {}
    for name in bench.PRESET_NAMES:
        spec = bench.load_spec(bench.preset_path(name))
        sizes[name] = len(bench.plan(spec, "/tmp/out"))
    quick = bench.load_spec(bench.preset_path("quick"))
    assert [e.id for e in quick.envs] == ["aem/Household-v0"]
    assert quick.methods == ["none", "aem"] and len(quick.seeds) >= 2 and quick.estimators == ["grpo"]
    assert sizes["quick"] == 4 and quick.envs[0].setup["pretrain"]["steps"] > 0
    standard = bench.load_spec(bench.preset_path("standard"))
    assert len(standard.seeds) == 5 and len(standard.envs) == 4
    paper = bench.load_spec(bench.preset_path("paper"))
    cfg = bench.cell_config(paper, bench.plan(paper, "/tmp/out")[0], None)
    assert cfg.model.path == "Qwen/Qwen2.5-1.5B-Instruct" and cfg.model.lora
    assert (cfg.env.groups, cfg.env.group_size, cfg.train.iterations) == (16, 8, 150)
    assert set(paper.estimators) == {"grpo", "rloo", "gigpo"}
    with pytest.raises(ValueError, match="unknown bench preset"):
        bench.preset_path("huge")


def test_methods_map_to_config_overrides(tmp_path: Path):
    spec = bench.load_spec(write_spec(tmp_path, extra="grid: {estimators: [rloo], methods: [none, aem, empg, aem-reversed, aem-shuffle, aem-traj-scope, aem-batch-scope], seeds: [3]}\n"))
    cells = bench.plan(spec, tmp_path / "out")
    got = {}
    for c in cells:
        cfg = bench.cell_config(spec, c, "/m")
        assert cfg.train.run_dir == str(tmp_path / "out" / "hh" / f"rloo-{c.method}" / "seed3")
        assert (cfg.train.seed, cfg.algo.estimator, cfg.env.id, cfg.model.path) == (3, "rloo", "aem/Household-v0", "/m")
        assert (cfg.train.iterations, cfg.env.groups) == (3, 2)  # common overrides, nested and dotted
        got[c.method] = (cfg.algo.modulation, cfg.algo.direction, cfg.algo.shuffle, cfg.algo.scope)
    assert got == {
        "none": ("none", "normal", False, "group"),
        "aem": ("aem", "normal", False, "group"),
        "empg": ("empg", "normal", False, "group"),
        "aem-reversed": ("aem", "reversed", False, "group"),
        "aem-shuffle": ("aem", "normal", True, "group"),
        "aem-traj-scope": ("aem", "normal", False, "trajectory"),
        "aem-batch-scope": ("aem", "normal", False, "batch"),
    }
    # Without a setup path the spec's setup.model is used, unless an override names model.path.
    assert bench.cell_config(spec, cells[0], None).model.path == "/nonexistent/model"
    spec2 = bench.load_spec(write_spec(tmp_path), {"model.path": "/mine"})
    assert bench.cell_config(spec2, bench.plan(spec2, "o")[0], None).model.path == "/mine"


def test_env_overrides_and_bad_specs(tmp_path: Path):
    spec = bench.load_spec(write_spec(tmp_path, envs="a: {id: aem/Household-v0, overrides: {rollout: {max_new_tokens: 7}}}, b: {id: aem/WebShop-v0}"))
    a, b = (bench.cell_config(spec, c, "m") for c in bench.plan(spec, "o")[:4:2])
    assert (a.rollout.max_new_tokens, b.rollout.max_new_tokens) == (7, 24)
    with pytest.raises(ValueError, match="not one of"):
        bench.load_spec(write_spec(tmp_path, extra="grid: {methods: [aem-magic]}\n"))
    with pytest.raises(Exception, match="unknown config key 'train.iteratons'"):
        bench.load_spec(write_spec(tmp_path, extra="common: {train: {iteratons: 3}}\n"))
    with pytest.raises(FileNotFoundError, match="--preset quick"):
        bench.load_spec(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match=r"grid.seeds lists 1 more than once"):
        bench.load_spec(write_spec(tmp_path, extra="grid: {seeds: [0, 1, 1]}\n"))
    with pytest.raises(ValueError, match=r"grid.methods lists aem more than once"):
        bench.load_spec(write_spec(tmp_path, extra="grid: {methods: [none, aem, aem]}\n"))
    with pytest.raises(ValueError, match=r"grid.seeds is empty"):
        bench.load_spec(write_spec(tmp_path, extra="grid: {seeds: []}\n"))
    # Keys the grid sets per cell would be overwritten without a word: refused, naming where they go.
    with pytest.raises(ValueError, match=r"common \(or --set\) sets train.seed, which the grid sets per cell; use grid.seeds"):
        bench.load_spec(write_spec(tmp_path), {"train.seed": 5})
    with pytest.raises(ValueError, match="envs.hh.overrides sets algo.modulation.*grid.methods"):
        bench.load_spec(write_spec(tmp_path, envs="hh: {id: aem/Household-v0, overrides: {algo: {modulation: aem}}}"))


def test_setup_settings_follow_each_envs_cells(tmp_path: Path):
    """Pretraining and SFT prompts are built like each env's rollout prompts (its window, its kwargs)."""
    spec = bench.load_spec(write_spec(
        tmp_path, envs="a: {id: aem/Household-v0, overrides: {env: {window: 3, kwargs: {max_turns: 9}}}}, "
                       "b: {id: aem/WebShop-v0}"))
    plan = bench.plan(spec, "o")
    cfgs = [bench.cell_config(spec, next(c for c in plan if c.env.name == e.name), "m") for e in spec.envs]
    pre = bench.pretrain_settings(spec.envs, cfgs, {"pretrain": {"steps": 5}})
    assert pre["window"] == {"aem/Household-v0": 3, "aem/WebShop-v0": cfgs[1].env.window}  # was the first env's for both
    assert pre["env_kwargs"] == {"aem/Household-v0": {"max_turns": 9}} and pre["steps"] == 5
    from aem_train.pretrain import PretrainConfig
    assert PretrainConfig(**pre).window_of("aem/WebShop-v0") == cfgs[1].env.window != 3
    # envs that agree keep a single number (the cached setups' recipe hashes do not change)
    assert bench.pretrain_settings(spec.envs[1:], cfgs[1:], {"pretrain": {}})["window"] == cfgs[1].env.window
    assert bench.pretrain_settings(spec.envs, cfgs, {"pretrain": {"window": 4}})["window"] == 4
    sft = bench.sft_settings(spec.envs[0], cfgs[0])
    assert sft["window"] == 3 and sft["env_kwargs"] == {"max_turns": 9}
    with pytest.raises(ValueError, match="one window for every env id"):
        PretrainConfig(["aem/Household-v0", "aem/WebShop-v0"], window={"aem/Household-v0": 2})


def test_bench_threads_sets_the_cells_train_threads(tmp_path: Path, monkeypatch):
    """--threads used to be overridden by every cell's train.threads (the trainer sets torch's)."""
    seen = []

    def grid(spec, *a, **k):
        seen.append(spec)
        return bench.GridResult()

    monkeypatch.setattr(bench, "run_grid", grid)
    for argv in (["--threads", "1"], []):
        assert cli.main(["bench", "--config", str(write_spec(tmp_path)), "--dry-run", *argv]) == 0
    threads = [bench.cell_config(s, bench.plan(s, "o")[0], "m").train.threads for s in seen]
    assert threads == [1, Config().train.threads]


def test_only_filters(tmp_path: Path):
    spec = bench.load_spec(write_spec(tmp_path, envs="hh: {id: aem/Household-v0}, ws: {id: aem/WebShop-v0}"))
    keys = lambda only: [c.key for c in bench.plan(spec, "o", only)]  # noqa: E731
    assert len(keys(())) == 8
    assert keys(["hh/aem/0"]) == ["hh/grpo-aem/seed0"]
    assert keys(["ws/grpo-none/seed1"]) == ["ws/grpo-none/seed1"]
    assert keys(["aem/WebShop-v0/aem"]) == ["ws/grpo-aem/seed0", "ws/grpo-aem/seed1"]
    assert len(keys(["hh"])) == 4 and len(keys(["*/*/1", "hh/none"])) == 5
    with pytest.raises(ValueError, match="selects no cell"):
        bench.run_grid(spec, tmp_path / "o", only=["zz"], train_fn=fast_train)


def test_only_matches_env_ids_of_any_namespace_and_module_prefix(tmp_path: Path):
    # Users' envs: MODULE:ID and FILE.py:ID ids whose namespace is not aem/.
    spec = bench.load_spec(write_spec(tmp_path, envs="hh: {id: aem/Household-v0}, ws: {id: aem/WebShop-v0}"))
    spec.envs[0].id = "my_envs:acme/Maze-v0"
    spec.envs[1].id = "envs/maze.py:acme/Maze-v1"
    keys = lambda only: [c.key for c in bench.plan(spec, "o", only)]  # noqa: E731
    assert keys(["my_envs:acme/Maze-v0/aem/1"]) == ["hh/grpo-aem/seed1"]
    assert keys(["my_envs:acme/Maze-v0"]) == ["hh/grpo-none/seed0", "hh/grpo-aem/seed0", "hh/grpo-none/seed1", "hh/grpo-aem/seed1"]
    assert keys(["envs/maze.py:acme/Maze-v1/none"]) == ["ws/grpo-none/seed0", "ws/grpo-none/seed1"]
    assert keys(["*acme/Maze-v?/grpo-aem/seed0"]) == ["hh/grpo-aem/seed0", "ws/grpo-aem/seed0"]
    assert keys(["hh/aem/0"]) == ["hh/grpo-aem/seed0"] and keys(["acme/aem"]) == []


def test_dry_run_cli_lists_quick_cells(capsys, tmp_path: Path):
    assert cli.main(["bench", "--preset", "quick", "--dry-run", "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "household/grpo-none/seed0" in out and "household/grpo-aem/seed1" in out
    assert "4 cells, 0 finished" in out
    assert not (tmp_path / "q").exists()  # a dry run writes nothing


# ----------------------------------------------------------------------------- resumability
def test_grid_runs_reports_and_retries_a_crashed_cell(tmp_path: Path):
    spec = bench.load_spec(write_spec(tmp_path))
    out = tmp_path / "out"
    crashed: list[str] = []

    def flaky(cfg: Config, resume: bool = True) -> dict:
        # The second cell writes part of its run, then crashes once (like an OOM mid-run).
        if cfg.train.run_dir.endswith("grpo-aem/seed0") and not crashed:
            crashed.append(cfg.train.run_dir)
            short = bench.config_mod.replace(cfg, **{"train.iterations": 1})
            fast_train(short)
            (Path(cfg.train.run_dir) / "final.json").unlink()
            raise RuntimeError("simulated crash\nsecond line")
        return fast_train(cfg, resume)

    logs: list[str] = []
    res = bench.run_grid(spec, out, train_fn=flaky, log=logs.append)
    assert list(res.failed) == ["hh/grpo-aem/seed0"] and "simulated crash" in res.failed["hh/grpo-aem/seed0"]
    assert len(res.ran) == 3
    crashed_dir = out / "hh" / "grpo-aem" / "seed0"
    assert "RuntimeError: simulated crash" in (crashed_dir / "bench_error.txt").read_text()
    assert not (crashed_dir / "final.json").exists()
    assert any("FAILED" in x and "rerun the bench to retry" in x for x in logs)
    assert (out / "report.md").is_file()  # the report covers what finished
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("hh/*/seed*/final.json")}
    listing: list[str] = []
    bench.run_grid(spec, out, dry_run=True, log=listing.append)
    assert any(x.startswith("hh/grpo-aem/seed0") and x.endswith("failed (see bench_error.txt)") for x in listing)
    assert "| hh | grpo-aem | 0 | failed (see bench_error.txt) |" in (out / "report.md").read_text()

    logs.clear()
    res2 = bench.run_grid(spec, out, train_fn=flaky, log=logs.append)
    assert res2.ran == ["hh/grpo-aem/seed0"] and not res2.failed and len(res2.skipped_done) == 3
    assert calls(crashed_dir) == 2
    assert (crashed_dir / "resumed_at.txt").read_text() == "2"  # continued after iteration 1
    assert not (crashed_dir / "bench_error.txt").exists()
    for p, m in mtimes.items():  # finished cells were not recomputed
        assert p.stat().st_mtime_ns == m and calls(p.parent) == 1
    meta = json.loads((out / "bench.json").read_text())
    assert len(meta["sessions"]) == 2 and meta["preset"] == "testbench" and meta["hardware"]
    assert meta["sessions"][1]["hardware"] == meta["hardware"]  # each session names its machine
    assert meta["wall_s"] > 0 and meta["cpu_s"] > 0 and "cpu_s" in meta["sessions"][0]
    md = (out / "report.md").read_text()
    assert "| hh | GRPO+AEM | 2 |" in md and "| hh | GRPO+AEM − GRPO | 2 |" in md

    logs.clear()
    res3 = bench.run_grid(spec, out, train_fn=flaky, log=logs.append)  # everything finished
    assert res3.ran == [] and len(res3.skipped_done) == 4
    assert not any(x.startswith("note:") for x in logs)
    # Editing the spec does not silently mix configs: finished cells are kept and named.
    spec.common["ppo.lr"] = 5e-5
    logs.clear()
    bench.run_grid(spec, out, train_fn=flaky, log=logs.append, report=False)
    assert any(x.startswith("note: 4 finished cells ran with a different config") for x in logs)


def test_fail_fast_stops_at_the_first_failing_cell(tmp_path: Path):
    spec = bench.load_spec(write_spec(tmp_path))
    out = tmp_path / "out"

    def broken_aem(cfg: Config, resume: bool = True) -> dict:
        if cfg.algo.modulation == "aem":
            raise RuntimeError("boom")
        return fast_train(cfg, resume)

    logs: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        bench.run_grid(spec, out, train_fn=broken_aem, log=logs.append, fail_fast=True)
    # Seed-major order: seed0's baseline ran, seed0's AEM failed, seed 1 never started.
    assert (out / "hh" / "grpo-none" / "seed0" / "final.json").is_file()
    assert "RuntimeError: boom" in (out / "hh" / "grpo-aem" / "seed0" / "bench_error.txt").read_text()
    assert not (out / "hh" / "grpo-none" / "seed1").exists()
    meta = json.loads((out / "bench.json").read_text())
    assert meta["sessions"][0]["cells_run"] == ["hh/grpo-none/seed0"] and meta["sessions"][0]["wall_s"] > 0
    assert any("FAILED" in x for x in logs)


def test_out_spelled_another_way_is_not_a_config_change(tmp_path: Path, monkeypatch):
    spec = bench.load_spec(write_spec(tmp_path))
    monkeypatch.chdir(tmp_path)
    bench.run_grid(spec, "out", train_fn=fast_train, log=lambda s: None, report=False)  # relative --out
    logs: list[str] = []
    res = bench.run_grid(spec, tmp_path / "out", train_fn=fast_train, log=logs.append, report=False)
    assert res.ran == [] and len(res.skipped_done) == 4
    assert not any(x.startswith("note:") for x in logs), logs


def test_grid_terminated_midway_resumes_without_recomputing(tmp_path: Path):
    spec_path = write_spec(tmp_path, iterations=8)
    out = tmp_path / "out"
    script = textwrap.dedent(f"""\
        import functools, sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from test_bench import fast_train
        from aem_train import bench
        spec = bench.load_spec({str(spec_path)!r})
        bench.run_grid(spec, {str(out)!r}, train_fn=functools.partial(fast_train, sleep_s=0.25), report=False)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    first = out / "hh" / "grpo-none" / "seed0"
    second = out / "hh" / "grpo-aem" / "seed0"
    deadline = time.time() + 120
    try:
        # Kill once the first cell finished and the second has written some iterations.
        while time.time() < deadline:
            if (first / "final.json").exists() and (second / "metrics.jsonl").exists() \
                    and len((second / "metrics.jsonl").read_text().splitlines()) >= 2:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the grid subprocess did not reach the second cell in time")
        proc.terminate()  # SIGTERM unwinds like Ctrl-C: bench.json records the session
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (second / "final.json").exists()
    session = json.loads((out / "bench.json").read_text())["sessions"][0]
    assert session["cells_run"] == ["hh/grpo-none/seed0"] and session["wall_s"] > 0.5
    first_mtime = (first / "final.json").stat().st_mtime_ns

    res = bench.run_grid(spec := bench.load_spec(spec_path), out, train_fn=fast_train, log=lambda s: None)
    assert "hh/grpo-none/seed0" in res.skipped_done and "hh/grpo-aem/seed0" in res.ran
    assert calls(first) == 1 and (first / "final.json").stat().st_mtime_ns == first_mtime
    assert calls(second) == 2 and int((second / "resumed_at.txt").read_text()) >= 2
    assert all(c.finished for c in bench.plan(spec, out))
    its = [json.loads(x)["iteration"] for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert its == list(range(9))  # resumed run: each iteration exactly once


def test_grid_terminated_during_setup_records_the_session(tmp_path: Path):
    # The setup (tokenizer, pretraining, SFT) takes minutes; a SIGTERM there must not lose its time.
    spec_path = write_spec(tmp_path)
    out = tmp_path / "out"
    script = textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from test_bench import fast_train
        from aem_train import bench

        def slow_setup(*args, **kwargs):
            print("setup started", flush=True)
            time.sleep(60)

        bench.run_setup = slow_setup
        bench.run_grid(bench.load_spec({str(spec_path)!r}), {str(out)!r}, train_fn=fast_train, report=False)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for line in proc.stdout:
            if b"setup started" in line:
                break
        time.sleep(0.5)
        proc.terminate()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    session = json.loads((out / "bench.json").read_text())["sessions"][0]
    assert session["setup_s"] >= 0.4 and session["wall_s"] >= 0.4 and session["cells_run"] == []


# ----------------------------------------------------------------------------- docker and setup
@pytest.mark.parametrize("shell_id", ["aem/Shell-v0", "aem_envs.envs:aem/Shell-v0"])  # MODULE:ID too
def test_docker_cells_are_skipped_without_an_engine(tmp_path: Path, monkeypatch, shell_id):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")  # nothing answers there
    spec = bench.load_spec(write_spec(tmp_path, envs=f"hh: {{id: aem/Household-v0}}, sh: {{id: '{shell_id}'}}"))
    logs: list[str] = []
    res = bench.run_grid(spec, tmp_path / "out", train_fn=fast_train, log=logs.append)
    assert len(res.ran) == 4 and not res.failed
    assert sorted(res.skipped_docker) == ["sh/grpo-aem/seed0", "sh/grpo-aem/seed1", "sh/grpo-none/seed0", "sh/grpo-none/seed1"]
    skip_lines = [x for x in logs if x.startswith("skipping")]
    assert len(skip_lines) == 1 and "aem/Shell-v0" in skip_lines[0] and "Docker" in skip_lines[0]
    assert "\n" not in skip_lines[0]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "skipped: no Docker engine" in md


def test_docker_cells_after_the_engine_died_are_skipped_not_failed(tmp_path: Path, monkeypatch):
    """The engine answered at the start and died mid-grid: each later Docker cell used to load its
    model and fail the same way; now they are skipped in one line and the other envs still run."""
    answers = iter([(True, "")])
    monkeypatch.setattr(bench, "docker_available", lambda: next(answers, (False, "connection refused")))

    def train(cfg: Config, resume: bool = True) -> dict:
        if "Shell" in cfg.env.id:
            raise RuntimeError("sandbox lost: the Docker daemon stopped answering")
        return fast_train(cfg, resume)

    spec = bench.load_spec(write_spec(tmp_path, envs="sh: {id: aem/Shell-v0}, hh: {id: aem/Household-v0}"))
    logs: list[str] = []
    res = bench.run_grid(spec, tmp_path / "out", train_fn=train, log=logs.append)
    assert list(res.failed) == ["sh/grpo-none/seed0"] and len(res.ran) == 4
    assert sorted(res.skipped_docker) == ["sh/grpo-aem/seed0", "sh/grpo-aem/seed1", "sh/grpo-none/seed1"]
    assert sum("stopped answering (connection refused): skipping the 3 remaining Docker cells" in x for x in logs) == 1
    meta = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert len(meta["skipped"]) == 3


@pytest.mark.slow
def test_setup_builds_once_and_is_cached(tmp_path: Path):
    spec = bench.load_spec(write_spec(tmp_path, envs="hh: {id: aem/Household-v0}, ws: {id: aem/WebShop-v0, setup: {sft: null}}", extra=textwrap.dedent("""\
        setup:
          kind: tiny
          model_preset: test
          init_episodes: 3
          pretrain: {episodes: 2, steps: 2, batch_size: 4}
          sft: {episodes: 2, steps: 2, batch_size: 4, epsilon: 0.0}
        """)))
    out = tmp_path / "out"
    logs: list[str] = []
    paths = bench.run_setup(spec, out, spec.envs[:1], logs.append)  # only hh still has cells to run
    assert list(paths) == ["hh"]
    shared = json.loads((out / "setup" / "model-shared" / "setup.json").read_text())
    assert shared["recipe"]["envs"] == ["aem/Household-v0", "aem/WebShop-v0"]  # the whole spec's envs
    sft_dir = Path(paths["hh"])
    assert sft_dir == out / "setup" / "sft-hh" and (sft_dir / "config.json").is_file()
    assert (out / "setup" / "model-shared" / "tokenizer.json").is_file()
    # Pretraining runs once on both envs' transcripts, each with its cells' window; SFT starts from it.
    pre = json.loads((out / "setup" / "pretrained-shared" / "setup.json").read_text())
    assert pre["recipe"]["pretrain"]["env_ids"] == ["aem/Household-v0", "aem/WebShop-v0"]
    assert pre["recipe"]["pretrain"]["window"] == 2 and pre["pretrain"]["steps"] == 2
    assert set(pre["documents"]) == {"aem/Household-v0", "aem/WebShop-v0"}
    assert json.loads((sft_dir / "setup.json").read_text())["recipe"]["base"] == pre["recipe_hash"]
    marker = sft_dir / "setup.json"
    m0 = marker.stat().st_mtime_ns
    assert json.loads(marker.read_text())["recipe"]["sft"]["window"] == 2  # the rollout's window
    logs.clear()
    both = bench.run_setup(spec, out, spec.envs, logs.append)
    assert both == {**paths, "ws": str(out / "setup" / "pretrained-shared")}  # sft: null -> the base model
    assert sum("cached" in x for x in logs) == 5 and marker.stat().st_mtime_ns == m0
    # A changed SFT recipe rebuilds the SFT checkpoint only.
    spec.envs[0].setup["sft"]["steps"] = 3
    logs.clear()
    bench.run_setup(spec, out, spec.envs[:1], logs.append)
    assert any("model-shared cached" in x for x in logs) and any("SFT hh" in x for x in logs)
    assert json.loads(marker.read_text())["sft"]["steps"] == 3
