"""The report generator on synthetic run directories written in the trainer's exact format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aem_train import cli
from aem_train.config import Config
from aem_train.report import alpha_by_bucket, discover, method_label, summarize, write_report
from aem_train.stats import aulc, bootstrap_ci, paired_diff, t_ci

N_BOOT = 2000
ITERS = 4  # eval at 0, 2, 4


def eval_curve(env: str, method: str, seed: int) -> dict[int, float]:
    """Known eval success per eval iteration; AEM ends higher, seeds differ."""
    start = 0.25 + 0.0625 * seed
    gain = 0.25 if method == "aem" else 0.125
    if env == "webshop":
        start, gain = start / 2, gain / 2
    return {0: start, 2: start + gain / 2, 4: start + gain}


def write_cell(root: Path, env: str, method: str, seed: int, finished: bool = True) -> Path:
    d = root / env / f"grpo-{method}" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"algo:\n  modulation: {method}\ntrain:\n  seed: {seed}\n")
    evals = eval_curve(env, method, seed)
    lines, traj = [], []
    rng = np.random.default_rng(seed)
    for it in range(ITERS + 1 if finished else 2):
        rec = {"iteration": it, "time_s": 1.5 * it}
        if it >= 1:
            # Baseline entropy collapses; AEM holds it early and lowers it later.
            ent = 1.0 * 0.5**it if method == "none" else 1.0 + 0.1 * it - 0.08 * it**2
            rec.update({
                "train/success_rate": 0.1 * it, "train/return_mean": it, "train/turns_mean": 5.0,
                "train/invalid_rate": 0.0, "entropy/token_mean": ent, "entropy/response_mean": ent,
                "alpha/min": 0.6, "alpha/mean": 1.0, "alpha/max": 1.6, "alpha/std": 0.2,
                "ppo/approx_kl": 0.01, "ppo/clip_frac": 0.05,
            })
            for t in range(6):
                alpha = 1.0 if method == "none" else float(rng.uniform(0.5, 1.5))
                traj.append({
                    "iteration": it, "env": f"aem/{env}", "task_id": f"t{t // 3}", "traj_id": t, "turn": t % 3,
                    "response": "<action>go</action>", "reward": 0.0, "base_adv": 0.5 if t % 2 else -0.5,
                    "alpha": alpha, "adv": (0.5 if t % 2 else -0.5) * alpha, "mean_entropy": ent, "surprisal": 3.0,
                })
        if it in evals:
            rec.update({"eval/success_rate": evals[it], "eval/return_mean": 10 * evals[it],
                        "eval/turns_mean": 6.0, "eval/invalid_rate": 0.0})
        lines.append(json.dumps(rec))
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (d / "trajectories.jsonl").write_text("\n".join(json.dumps(r) for r in traj) + "\n")
    if finished:
        (d / "final.json").write_text(json.dumps({"eval/success_rate": evals[ITERS], "iterations": ITERS, "wall_s": 60.0}))
    return d


@pytest.fixture()
def run_root(tmp_path: Path) -> Path:
    root = tmp_path / "bench"
    for env in ("household", "webshop"):
        for method in ("none", "aem"):
            for seed in (0, 1, 2):
                write_cell(root, env, method, seed)
    write_cell(root, "household", "aem", 3, finished=False)  # a partial cell: listed, not counted
    (root / "bench.json").write_text(json.dumps({
        "preset": "quick", "description": "Synthetic data.", "hardware": "Test CPU, 2 CPUs",
        "wall_s": 754.0, "setup_s": 98.0, "envs": ["household", "webshop"], "config_path": "quick.yaml",
    }))
    return root


@pytest.fixture()
def small_root(tmp_path: Path) -> Path:
    """One env, 2 methods x 2 seeds: enough for the report's text checks, quick to plot."""
    root = tmp_path / "small"
    for method in ("none", "aem"):
        for seed in (0, 1):
            write_cell(root, "household", method, seed)
    (root / "bench.json").write_text(json.dumps({
        "preset": "quick", "description": "Synthetic data.", "hardware": "Test CPU, 2 CPUs",
        "wall_s": 754.0, "setup_s": 98.0, "envs": ["household"], "config_path": "quick.yaml",
    }))
    return root


def test_discover_and_summarize_numbers(run_root: Path):
    cells = discover(run_root)
    assert len(cells) == 13 and sum(c.finished for c in cells) == 12
    s = summarize(cells, n_boot=N_BOOT)
    assert [(r.env, r.method) for r in s.rows] == [
        ("household", "none"), ("household", "aem"), ("webshop", "none"), ("webshop", "aem")]
    hh_aem = s.rows[1]
    finals = [eval_curve("household", "aem", k)[4] for k in (0, 1, 2)]
    assert hh_aem.seeds == [0, 1, 2]
    assert hh_aem.final == t_ci(finals, bounds=(0.0, 1.0))
    assert hh_aem.final_boot == bootstrap_ci(finals, n_boot=N_BOOT)  # kept for comparison (results.json)
    assert hh_aem.final.mean == pytest.approx(np.mean(finals))
    aulcs = [aulc([0, 2, 4], list(eval_curve("household", "aem", k).values())) for k in (0, 1, 2)]
    assert hh_aem.aulc.mean == pytest.approx(np.mean(aulcs))
    # start = the iteration-0 eval; AEM's cells gain exactly 0.25 on every seed
    assert hh_aem.start_by_seed == {k: eval_curve("household", "aem", k)[0] for k in (0, 1, 2)}
    assert hh_aem.start == t_ci(list(hh_aem.start_by_seed.values()), bounds=(0.0, 1.0))
    assert hh_aem.gain.mean == pytest.approx(0.25) and hh_aem.gain.width == pytest.approx(0.0)
    # AEM gains 0.25 on every seed, the baseline 0.125: the paired difference is exactly 0.125.
    d = s.diffs[0]
    assert (d.env, d.method, d.seeds) == ("household", "aem", [0, 1, 2])
    assert d.final.mean == pytest.approx(0.125) and d.final.width == pytest.approx(0.0)
    base_final = {k: eval_curve("household", "none", k)[4] for k in (0, 1, 2)}
    assert d.final == paired_diff(dict(zip((0, 1, 2), finals)), base_final, bounds=(-1.0, 1.0))


def test_write_report_tables_figures_and_context(run_root: Path):
    path = write_report(run_root, n_boot=N_BOOT)
    md = path.read_text()
    s = summarize(discover(run_root), n_boot=N_BOOT)
    for r in s.rows:
        assert f"| {r.env} | {r.label} | 3 | {r.final.fmt(100)} | {r.aulc.fmt(100)} |" in md
    # household GRPO+AEM final success: seeds 0.5, 0.5625, 0.625 -> mean 56.2 with a real CI
    assert "| household | GRPO+AEM | 3 | 56.2 [" in md
    assert "| 31.2 [" in md and "| 25.0 [all 3 equal] |" in md and "| 12.5 [all 3 equal] |" in md  # start, gains
    assert "| household | grpo-aem | 0 | finished | 25.0 | 50.0 |" in md  # cells: start before final
    assert "| household | GRPO+AEM − GRPO | 3 | 12.5 [all 3 equal] |" in md
    assert "| webshop | GRPO+AEM − GRPO | 3 | 6.2 [all 3 equal] |" in md
    for needle in ("preset: `quick`", "Test CPU, 2 CPUs", "754 s", "seeds: 0, 1, 2, 3",
                   "whatever this run produced", "| household | grpo-aem | 3 | partial |", "| household | grpo-none | 0 | finished |"):
        assert needle in md, needle
    for png in ("learning_curves.png", "entropy.png", "alpha.png"):
        f = run_root / png
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image as mpimg

        img = mpimg.imread(f)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert f"]({png})" in md
    results = json.loads((run_root / "results.json").read_text())
    assert results["diffs"][0]["final_success"]["mean"] == pytest.approx(0.125)
    assert results["rows"][1]["gain"]["mean"] == pytest.approx(0.25)


def test_report_cli_prints_table(run_root: Path, capsys):
    bench = json.loads((run_root / "bench.json").read_text())
    bench["envs"] = ["webshop", "household"]  # the spec's order, not alphabetical
    (run_root / "bench.json").write_text(json.dumps(bench))
    assert cli.main(["report", str(run_root), "--n-boot", "500"]) == 0
    out = capsys.readouterr().out
    assert "| household | GRPO+AEM |" in out and "report:" in out
    md = (run_root / "report.md").read_text()
    assert out.index("| webshop | GRPO |") < out.index("| household | GRPO |")  # as in report.md
    assert md.index("| webshop | GRPO |") < md.index("| household | GRPO |")


def test_report_errors_name_the_fix(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="aem-train bench"):
        write_report(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="run aem-train bench first"):
        write_report(tmp_path)


def test_method_labels():
    assert method_label("grpo", "none") == "GRPO"
    assert method_label("rloo", "aem") == "RLOO+AEM"
    assert method_label("grpo", "aem-reversed") == "GRPO+AEM-reversed"
    assert method_label("gigpo", "empg") == "GIGPO+EMPG"


def test_alpha_buckets_split_by_advantage_sign(run_root: Path):
    cells = [c for c in discover(run_root) if c.env == "household" and c.method == "aem" and c.finished]
    buckets = alpha_by_bucket(cells, n_buckets=2)
    assert [b.label for b in buckets] == ["1-2", "3-4"]
    for b in buckets:  # 2 iterations x 3 seeds x 6 rows, half with negative base advantage
        assert (b.all.size, b.neg.size, b.pos.size) == (36, 18, 18)
        assert np.all((b.all >= 0.5) & (b.all <= 1.5))
    assert [b.label for b in alpha_by_bucket(cells, n_buckets=10)] == ["1", "2", "3", "4"]
    sub = alpha_by_bucket(cells, n_buckets=1, max_per_bucket=10)
    assert sub[0].all.size == 10 and sub[0].neg.size + sub[0].pos.size == 10


def test_two_seeds_get_an_honest_interval_not_their_range(tmp_path: Path):
    # The committed quick report's figures: 2 seeds, final success 10/64, 19/64 (GRPO) and 13/64,
    # 17/64 (GRPO+AEM). A percentile bootstrap over 2 values is just [min, max] and covers the mean
    # about half the time; the report's "95% CI" must be the t interval (clipped to the rate range).
    root = tmp_path / "bench"
    finals = {("none", 0): 10 / 64, ("none", 1): 19 / 64, ("aem", 0): 13 / 64, ("aem", 1): 17 / 64}
    for (method, seed), v in finals.items():
        d = write_cell(root, "household", method, seed)
        (d / "final.json").write_text(json.dumps({"eval/success_rate": v, "iterations": ITERS, "wall_s": 1.0}))
    md = write_report(root, n_boot=500).read_text()
    t1 = 12.7062047
    base = [finals[("none", 0)], finals[("none", 1)]]
    hi = np.mean(base) + t1 * np.std(base, ddof=1) / np.sqrt(2)
    assert hi > 1.0  # two seeds this far apart say almost nothing
    assert f"| household | GRPO | 2 | {np.mean(base) * 100:.1f} [0.0, 100.0] |" in md
    diffs = [finals[("aem", s)] - finals[("none", s)] for s in (0, 1)]
    half = t1 * np.std(diffs, ddof=1) / np.sqrt(2)
    want = f"{np.mean(diffs) * 100:.1f} [{(np.mean(diffs) - half) * 100:.1f}, {(np.mean(diffs) + half) * 100:.1f}]"
    assert f"| household | GRPO+AEM − GRPO | 2 | {want} |" in md
    assert "[15.6, 29.7]" not in md and "Student-t" in md and "bootstrap band" not in md
    results = json.loads((root / "results.json").read_text())
    row = results["rows"][0]
    assert row["final_success"]["method"] == "t" and row["final_success_bootstrap"]["method"] == "bootstrap"
    assert row["final_success_bootstrap"]["lo"] == pytest.approx(10 / 64)  # the range, for comparison


def test_report_leaves_the_callers_matplotlib_backend_and_figures_alone(small_root: Path):
    # A notebook or script calling write_report keeps its backend and its open figures.
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    fig = plt.figure()
    try:
        write_report(small_root, n_boot=200)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [fig.number]
    finally:
        plt.close(fig)
        matplotlib.use(before)
    assert (small_root / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_regenerates_byte_identically(small_root: Path):
    write_report(small_root, n_boot=300)
    first = {p.name: p.read_bytes() for p in small_root.iterdir() if p.is_file()}
    write_report(small_root, n_boot=300)
    second = {p.name: p.read_bytes() for p in small_root.iterdir() if p.is_file()}
    assert first.keys() == second.keys() and {"report.md", "results.json", "alpha.png"} <= set(first)
    for name in first:
        assert first[name] == second[name], name


def test_unstarted_and_failed_cells_of_the_grid_are_counted(tmp_path: Path):
    # A grid of 2 methods x 3 seeds stopped after 3 cells: seed 1's AEM cell raised (the grid
    # runner left bench_error.txt), seed 2 never started (no directories at all).
    root = tmp_path / "bench"
    write_cell(root, "household", "none", 0)
    write_cell(root, "household", "aem", 0)
    write_cell(root, "household", "none", 1)
    failed = write_cell(root, "household", "aem", 1, finished=False)
    (failed / "bench_error.txt").write_text("Traceback ...\nRuntimeError: out of memory\n")
    (root / "bench.json").write_text(json.dumps({
        "preset": "quick", "envs": ["household"], "estimators": ["grpo"], "methods": ["none", "aem"], "seeds": [0, 1, 2],
        "skipped": []}))
    md = write_report(root, n_boot=200).read_text()
    assert "- seeds: 0, 1, 2; cells finished 3 of 6; failed 1; not started 2" in md
    assert "| household | grpo-aem | 1 | failed (see bench_error.txt) |" in md
    assert "| household | grpo-none | 2 | not started |" in md and "| household | grpo-aem | 2 | not started |" in md
    # Skipped (no Docker) cells are counted once, as skipped.
    bench = json.loads((root / "bench.json").read_text())
    bench["skipped"] = [{"env": "household", "run": "grpo-aem", "seed": 2, "reason": "no Docker engine"}]
    (root / "bench.json").write_text(json.dumps(bench))
    md = write_report(root, n_boot=200).read_text()
    assert "cells finished 3 of 6; failed 1; not started 1; skipped 1" in md
    assert "| household | grpo-aem | 2 | skipped: no Docker engine |" in md


def test_wall_time_line_says_what_the_sessions_did(small_root: Path):
    bench = json.loads((small_root / "bench.json").read_text())
    cells = ["household/grpo-none/seed0", "household/grpo-aem/seed0"]
    # A second session that only rewrote the report reran nothing.
    bench["sessions"] = [{"wall_s": 700.0, "cells_run": cells}, {"wall_s": 54.0, "cells_run": []}]
    (small_root / "bench.json").write_text(json.dumps(bench))
    md = write_report(small_root, n_boot=200).read_text()
    assert "- wall time: 754 s (12.6 min) in total over 2 sessions (700 s, 54 s) (setup" in md
    assert "again" not in md and "rerun" not in md
    # Both cells finished again after their directories were deleted: the total holds replaced work.
    bench["sessions"][1]["cells_run"] = cells
    (small_root / "bench.json").write_text(json.dumps(bench))
    md = write_report(small_root, n_boot=200).read_text()
    assert "over 2 sessions (700 s, 54 s), including 2 cells finished again in a later session" in md


def test_cells_run_with_other_settings_are_flagged(small_root: Path):
    # The spec's ppo.lr was edited and one baseline seed rerun: it no longer pairs like for like.
    for seed in (0, 1):  # a GAE baseline: its config differs by what the estimator implies (value head)
        gae = small_root / "household" / "gae-none" / f"seed{seed}"
        shutil.copytree(small_root / "household" / "grpo-none" / f"seed{seed}", gae)
        (gae / "config.yaml").write_text(f"algo:\n  estimator: gae\n  modulation: none\ntrain:\n  seed: {seed}\n")
    md = write_report(small_root, n_boot=200).read_text()
    assert "Settings differ" not in md and "| household | GAE | 2 |" in md
    cfg = small_root / "household" / "grpo-none" / "seed1" / "config.yaml"
    cfg.write_text(cfg.read_text() + "ppo:\n  lr: 5.0e-05\n")
    (small_root / "household" / "grpo-aem" / "seed0" / "config.yaml").unlink()
    md = write_report(small_root, n_boot=200).read_text()
    assert "**Settings differ within an env**" in md
    assert f"- household/grpo-none/seed1: `ppo.lr=5e-05` (others {Config().ppo.lr})" in md
    assert "- household/grpo-aem/seed0: config.yaml missing or not a valid config" in md
    assert md.count("\n- household/") == 2  # the other cells differ only in method and seed: not listed


def test_hardware_of_every_session_that_ran_cells_is_named(small_root: Path):
    bench = json.loads((small_root / "bench.json").read_text())
    bench["hardware"] = "Laptop CPU"  # the last session, which only rewrote the report
    bench["sessions"] = [
        {"wall_s": 500.0, "hardware": "Test CPU, 2 CPUs", "setup_s": 90.0, "cells_run": ["household/grpo-none/seed0"]},
        {"wall_s": 250.0, "hardware": "Test GPU box", "setup_s": 0.0, "cells_run": ["household/grpo-aem/seed0"]},
        {"wall_s": 4.0, "hardware": "Laptop CPU", "setup_s": 0.0, "cells_run": []},
    ]
    (small_root / "bench.json").write_text(json.dumps(bench))
    md = write_report(small_root, n_boot=200).read_text()
    assert ("- hardware: Test CPU, 2 CPUs (session 1); Test GPU box (session 2) — cells run on different "
            "machines may not be comparable") in md
    bench["sessions"][1]["hardware"] = "Test CPU, 2 CPUs"
    (small_root / "bench.json").write_text(json.dumps(bench))
    assert "- hardware: Test CPU, 2 CPUs\n" in write_report(small_root, n_boot=200).read_text()


def test_out_spelled_another_way_is_not_a_settings_difference(small_root: Path):
    # Seed 0 ran with a relative --out, seed 1 with the absolute one: same model, same settings.
    def set_paths(cell: Path, out: str, model: str) -> None:
        rel = cell.relative_to(small_root)
        (cell / "config.yaml").write_text(
            f"model:\n  path: {model}\ntrain:\n  seed: {rel.name[4:]}\n  run_dir: {out}/{rel}\n"
            f"algo:\n  modulation: {rel.parent.name[5:]}\n")

    for d in small_root.glob("*/*/seed*"):
        set_paths(d, "runs/q", "runs/q/setup/sft-x")
    hh1 = small_root / "household" / "grpo-aem" / "seed1"
    set_paths(hh1, str(small_root), f"{small_root}/setup/sft-x")
    assert "Settings differ" not in write_report(small_root, n_boot=200).read_text()
    set_paths(hh1, str(small_root), f"{small_root}/setup/sft-other")  # another checkpoint: a real difference
    md = write_report(small_root, n_boot=200).read_text()
    assert "- household/grpo-aem/seed1: `model.path=OUT/setup/sft-other` (others OUT/setup/sft-x)" in md


def test_pairing_uses_only_seeds_both_methods_finished(tmp_path: Path):
    root = tmp_path / "bench"
    for seed in (0, 1, 2):
        write_cell(root, "household", "aem", seed)
    write_cell(root, "household", "none", 0)
    write_cell(root, "household", "none", 1, finished=False)  # failed or killed: not paired
    write_cell(root, "household", "none", 2)
    s = summarize(discover(root), n_boot=200)
    base, aem = s.rows
    assert (base.seeds, aem.seeds) == ([0, 2], [0, 1, 2])
    d = s.diffs[0]
    assert d.seeds == [0, 2] and d.final.n == 2
    assert d.final.mean == pytest.approx(0.125)  # AEM gains 0.25, the baseline 0.125, on every seed
    # One pair left (the baseline's seed 3 has no AEM run): a difference, no interval.
    write_cell(root, "household", "none", 3)
    (root / "household" / "grpo-none" / "seed0" / "final.json").unlink()
    d = summarize(discover(root), n_boot=200).diffs[0]
    assert d.seeds == [2] and d.final.n == 1 and d.final.fmt(100) == "12.5"
    (root / "household" / "grpo-none" / "seed2" / "final.json").unlink()
    d = summarize(discover(root), n_boot=200).diffs[0]
    assert d.seeds == [] and d.final.n == 0 and d.final.fmt(100) == "—"


def test_report_shows_the_config_path_relative_to_the_checkout(tmp_path):
    """The committed quick report named /work/main/aem_train/presets/quick.yaml: the writer's checkout."""
    from aem_train.report import _shown_path

    preset = Path(__file__).resolve().parent.parent / "aem_train" / "presets" / "quick.yaml"
    assert _shown_path(str(preset)) == "aem_train/presets/quick.yaml"
    outside = tmp_path / "my_bench.yaml"
    assert _shown_path(str(outside)) == str(outside)  # a path outside stays as written


def test_cells_table_says_when_the_final_eval_excluded_tasks(tmp_path: Path):
    """Tasks lost to infrastructure failures are excluded from the eval rate: the table says over how many."""
    root = tmp_path / "bench"
    d = write_cell(root, "household", "none", 0)
    write_cell(root, "household", "aem", 0)
    recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    for r in recs:
        if "eval/success_rate" in r:
            r.update({"eval/episodes": 62 if r["iteration"] == ITERS else 64, "eval/tasks": 64})
    (d / "metrics.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
    md = write_report(root, n_boot=N_BOOT).read_text()
    assert "| household | grpo-none | 0 | finished (final eval over 62 of 64 tasks) |" in md
    assert "| household | grpo-aem | 0 | finished |" in md  # no counts logged: nothing to say
