"""benchmarks/bench_cost.py: a real (tiny) measurement of a small bench spec, and its arithmetic.

The script is run as a user runs it (a subprocess with ``--json``) on a spec of one small
Household (one room, 3 turns) with the ``test`` model preset and one or two steps of
everything, so every figure is a real measurement; the test checks that the figures are positive and that every
total is the sum of its parts.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_cost.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_cost", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_cost"] = mod
    spec.loader.exec_module(mod)
    return mod


SPEC = textwrap.dedent("""\
    name: tinycost
    description: a tiny spec for the cost script's test
    common:
      train: {iterations: 5, eval_every: 2, eval_tasks: 6, threads: 2, device: cpu}
      env: {groups: 2, group_size: 2, window: 1}
      rollout: {max_new_tokens: 12}
    setup:
      kind: tiny
      model_preset: test
      init_episodes: 10
      pretrain: {episodes: 20, steps: 50, batch_size: 4}
      sft: {episodes: 30, steps: 40, batch_size: 4}
    envs:
      household:
        id: aem/Household-v0
        overrides:
          env.kwargs: {rooms: 1, receptacles_per_room: 3, distractors: 1, max_turns: 3}
    grid: {estimators: [grpo], methods: [none, aem], seeds: [0, 1]}
    """)


def test_evals_per_cell_follows_the_trainer():
    bc = _module()
    assert bc.evals_per_cell(30, 10) == 4  # 0, 10, 20, 30
    assert bc.evals_per_cell(16, 8) == 3  # 0, 8, 16
    assert bc.evals_per_cell(5, 2) == 4  # 0, 2, 4 and the last, 5


def test_measures_a_tiny_spec_and_totals_are_sums(tmp_path: Path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", str(spec), "--json", "--corpus-episodes", "2",
         "--demo-episodes", "1", "--steps", "2", "--eval-tasks", "2", "--turns", "2", "--bound", "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    r = json.loads(lines[-1])  # the project convention: one JSON object on the last line
    text = "\n".join(lines[:-1])
    assert "estimate:" in text and "household" in text and "upper bound" in text

    assert r["preset"] == "tinycost" and r["skipped"] == {}
    (e,) = r["envs"]
    assert e["cells"] == 4 and e["iterations"] == 5 and e["evals_per_cell"] == 4 and e["eval_tasks"] == 6
    # every measured unit cost is positive
    for v in (r["pretrain_step_s"], r["tokenizer_s"], e["sft_step_s"], e["corpus"]["episode_s"] + e["corpus"]["startup_s"],
              e["transcripts"]["episode_s"] + e["transcripts"]["startup_s"], e["setup_s"]):
        assert v > 0
    for it in (e["it"], e["bound"]):
        assert it["rollout_s"] > 0 and it["update_s"] > 0 and it["eval_task_s"] > 0 and it["rows"] > 0
        # a random-init model plays every episode to the turn limit (cut at 2, scaled to the env's 3)
        assert (it["played_turns"], it["max_turns"], it["scale"]) == (2, 3, 1.5)
        assert it["turns_mean"] == pytest.approx(2.0) and it["rows"] == 2 * 2 * 2
    # the estimate caps responses at the demonstrations' length, the bound runs the config as is
    assert e["it"]["max_new_tokens"] == min(12, math.ceil(e["demo_response_tokens"]))
    assert e["bound"]["max_new_tokens"] == 12

    # totals are sums of their parts
    it = e["it"]
    iteration = it["rollout_s"] + it["update_s"] + it["other_s"]
    assert e["iteration_s"] == pytest.approx(iteration)
    cell = 5 * iteration + 4 * 6 * it["eval_task_s"] + it["overhead_s"]
    assert e["cell_s"] == pytest.approx(cell) and e["train_s"] == pytest.approx(4 * cell)
    setup = (e["corpus"]["startup_s"] + 10 * e["corpus"]["episode_s"]
             + e["transcripts"]["startup_s"] + 20 * e["transcripts"]["episode_s"]
             + e["demos"]["startup_s"] + 30 * e["demos"]["episode_s"] + 40 * e["sft_step_s"])
    assert e["setup_s"] == pytest.approx(setup)
    assert e["total_s"] == pytest.approx(e["setup_s"] + e["train_s"])
    assert r["shared_setup_s"] == pytest.approx(r["tokenizer_s"] + 50 * r["pretrain_step_s"])
    assert r["setup_s"] == pytest.approx(r["shared_setup_s"] + e["setup_s"])
    assert r["total_s"] == pytest.approx(r["setup_s"] + r["train_s"]) and r["train_s"] == pytest.approx(e["train_s"])
    assert r["total_h"] == pytest.approx(r["total_s"] / 3600)
    b = e["bound"]
    bound_cell = 5 * (b["rollout_s"] + b["update_s"] + b["other_s"]) + 4 * 6 * b["eval_task_s"] + b["overhead_s"]
    assert r["bound_total_s"] == pytest.approx(r["shared_setup_s"] + e["setup_s"] + 4 * bound_cell)
    # the CPU-seconds view removes other processes' share: never above the wall-clock figure
    assert 0 < r["dedicated_total_s"] <= r["total_s"] * (1 + 1e-9)
    assert r["dedicated_total_s"] == pytest.approx(r["dedicated_setup_s"] + e["dedicated_total_s"])
    assert r["dedicated_setup_s"] == pytest.approx(
        r["tokenizer_s"] + 50 * min(r["pretrain_step_s"], r["pretrain_step_cpu_s"] / 2))
    m = r["machine"]
    assert m["matmul_gflops_before"] > 0 and 0 <= m["others_cpu_share"] <= 1 and 0 <= m["others_cpu_share_after"] <= 1 and isinstance(r["shared_machine"], bool)
