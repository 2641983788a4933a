"""Every benchmark script keeps its contract at a small size: it runs, and with ``--json`` its
last line is one JSON object holding its figures.

Timings are not asserted (the figures are the scripts' business, measured side by side); what
is asserted is what does not depend on the machine's load: counts, success rates of oracle
episodes, memory orderings, and that every figure is a finite number. About 2 minutes, most of
it the two GPU-sizing scripts building a 1-layer Qwen2.5-1.5B-shaped model on CPU.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from aem_envs.envs.shell.env import _default_image
from docker_support import docker_only

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


def _run(script: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=540)
    assert r.returncode == 0, r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert isinstance(figures, dict) and figures
    return figures


def _numbers(d: dict) -> list[float]:
    out = []
    for v in d.values():
        if isinstance(v, dict):
            out += _numbers(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
    return out


def _all_finite(d: dict) -> None:
    nums = _numbers(d)
    assert nums and all(math.isfinite(x) for x in nums), d


def test_aem_overhead():
    f = _run("aem_overhead.py", "--groups", "2", "--trajs", "4", "--repeats", "2")
    _all_finite(f)
    assert (f["groups"], f["trajectories"]) == (2, 8) and f["rows"] >= 8
    assert 0 < f["aem_step_ms"] and 0 < f["aem_pct_of_tiny_model"] < 100


def test_env_step():
    f = _run("env_step.py", "--envs", "household", "--steps", "200")
    _all_finite(f)
    hh = f["household"]
    assert hh["env_id"] == "aem/Household-v0" and hh["single"]["steps_per_s"] > 0


def test_rollout():
    f = _run("rollout.py", "--max-turns", "2")
    _all_finite(f)
    assert f["envs"] == 32 and f["parameters"] > 0 and 0 < f["batched_model_share"] <= 1


def test_update_memory_pieces_need_less_than_whole_logits():
    f = _run("update_memory.py", "--layers", "1", "--rows", "2")
    _all_finite(f)
    peak = f["peak_gb"]["1"]
    assert 0 < peak["pieces"] < peak["whole"]


def test_gpu_readiness_runs_one_lora_iteration_on_cpu():
    f = _run("gpu_readiness.py", "--layers", "1", "--groups", "1", "--group-size", "2", "--max-turns", "1")
    assert f["device"] == "cpu" and f["layers"] == 1 and f["rows"] >= 2
    assert f["peak_memory_gb"] > 0 and f["fits_24gb"] is None  # the 24 GB verdict is a GPU's to give


@pytest.mark.docker
@docker_only(_default_image())
def test_sandbox():
    f = _run("sandbox.py", "--steps", "20", "--resets", "5", "--cold", "2", "--episodes", "2")
    _all_finite(f)
    assert f["concurrent_episodes"] == 2 and f["concurrent_success_rate"] == 1.0


@pytest.mark.docker
@docker_only(_default_image())
def test_coderepair():
    f = _run("coderepair.py", "--tasks", "2", "--rounds", "1")
    _all_finite(f)
    assert f["pool_episodes"] == f["nopool_episodes"] == 2
    assert f["pool_success_rate"] == f["nopool_success_rate"] == 1.0
