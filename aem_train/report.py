"""Benchmark report: tables and figures regenerated from run directories alone.

``aem-train report RUN_ROOT`` reads every cell ``RUN_ROOT/<env>/<estimator>-<method>/seed<k>/``
(``metrics.jsonl``, ``trajectories.jsonl``, ``final.json``) plus ``RUN_ROOT/bench.json`` when
the grid runner wrote one, and writes ``report.md``, ``results.json`` and PNG figures next to
them. Only finished cells (those with ``final.json``) enter the statistics; the rest are listed.

Intervals are 95% Student-t intervals over seeds (paired by seed for differences), clipped to
the range a rate can take; see :mod:`aem_train.stats` for why not the percentile bootstrap.

Figures: learning curves (eval and train success), response-level entropy over training (the
AEM paper's figure, arXiv 2605.00425: the baseline's entropy collapses early, AEM holds it up
and lowers it later) and the distribution of the AEM weights alpha over training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aem_train.stats import CI, DEFAULT_N_BOOT, aulc, bootstrap_ci, metric_curve, paired_diff, read_jsonl, t_ci

#: Named methods of the grid, in display order. Each maps to ``algo.*`` config overrides.
METHODS: dict[str, dict[str, Any]] = {
    "none": {"algo.modulation": "none"},
    "aem": {"algo.modulation": "aem"},
    "empg": {"algo.modulation": "empg"},
    "aem-reversed": {"algo.modulation": "aem", "algo.direction": "reversed"},
    "aem-shuffle": {"algo.modulation": "aem", "algo.shuffle": True},
    "aem-traj-scope": {"algo.modulation": "aem", "algo.scope": "trajectory"},
    "aem-batch-scope": {"algo.modulation": "aem", "algo.scope": "batch"},
}
ESTIMATORS: tuple[str, ...] = ("grpo", "rloo", "gigpo", "gae")
BASELINE = "none"
SUCCESS_KEY = "eval/success_rate"
#: Range of a success rate and of its AULC; a paired difference lies in (-1, 1).
RATE_BOUNDS = (0.0, 1.0)
DIFF_BOUNDS = (-1.0, 1.0)
_SEED_DIR = re.compile(r"^seed(\d+)$")


def run_name(estimator: str, method: str) -> str:
    return f"{estimator}-{method}"


def method_label(estimator: str, method: str) -> str:
    """``GRPO``, ``GRPO+AEM``, ``GRPO+AEM-reversed`` ..."""
    est = estimator.upper()
    return est if method == BASELINE else f"{est}+{method.upper() if '-' not in method else 'AEM' + method[3:]}"


# ------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One training run of the grid, as found on disk."""

    env: str
    estimator: str
    method: str
    seed: int
    path: Path
    final: dict | None = None
    _metrics: list[dict] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.final is not None

    @property
    def status(self) -> str:
        if self.finished:
            ep, tasks = self.final_eval_coverage()
            # tasks lost to infrastructure failures are excluded from the rate: say over how many it is
            return "finished" if ep == tasks else f"finished (final eval over {ep} of {tasks} tasks)"
        if (self.path / "bench_error.txt").is_file():  # the grid runner's record of a raised cell
            return "failed (see bench_error.txt)"
        return "partial" if (self.path / "metrics.jsonl").is_file() else "not started"

    @property
    def metrics(self) -> list[dict]:
        if self._metrics is None:
            self._metrics = read_jsonl(self.path / "metrics.jsonl")
        return self._metrics

    def final_success(self) -> float:
        """``eval/success_rate`` of ``final.json``; the last eval point if final.json lacks it."""
        if self.final and self.final.get(SUCCESS_KEY) is not None:
            return float(self.final[SUCCESS_KEY])
        _, vals = metric_curve(self.metrics, SUCCESS_KEY)
        return float(vals[-1]) if vals.size else float("nan")

    def start_success(self) -> float:
        """``eval/success_rate`` of iteration 0, the evaluation before any update (NaN if absent)."""
        its, vals = metric_curve(self.metrics, SUCCESS_KEY)
        return float(vals[0]) if its.size and its[0] == 0 else float("nan")

    def final_eval_coverage(self) -> tuple[int | None, int | None]:
        """(episodes that count, tasks asked) of the last evaluation; equal unless infrastructure
        failures excluded tasks (None, None for runs that did not log them)."""
        last = next((r for r in reversed(self.metrics) if SUCCESS_KEY in r), {})
        return last.get("eval/episodes"), last.get("eval/tasks")

    def aulc(self) -> float:
        its, vals = metric_curve(self.metrics, SUCCESS_KEY)
        return aulc(its, vals)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def discover(run_root: str | Path) -> list[Cell]:
    """Every ``<env>/<estimator>-<method>/seed<k>/`` directory under ``run_root``."""
    root = Path(run_root)
    cells: list[Cell] = []
    for seed_dir in sorted(root.glob("*/*/seed*")):
        m = _SEED_DIR.match(seed_dir.name)
        if not m or not seed_dir.is_dir():
            continue
        est, _, method = seed_dir.parent.name.partition("-")
        if not method:
            continue
        final_path = seed_dir / "final.json"
        final = _read_json(final_path) if final_path.is_file() else None
        cells.append(Cell(seed_dir.parent.parent.name, est, method, int(m.group(1)), seed_dir, final))
    return cells


def missing_cells(bench: dict[str, Any], cells: Sequence[Cell]) -> list[tuple[str, str, str, int]]:
    """(env, estimator, method, seed) of the grid in ``bench.json`` that have no directory and were
    not skipped: a grid stopped early (or cut by ``--only``) must not read as complete."""
    if not all(isinstance(bench.get(k), list) for k in ("envs", "estimators", "methods", "seeds")):
        return []
    have = {(c.env, c.estimator, c.method, c.seed) for c in cells}
    skipped = {(s.get("env"), s.get("run"), s.get("seed")) for s in bench.get("skipped") or []}
    return [
        (env, est, m, int(seed))
        for env in bench["envs"] for est in bench["estimators"] for m in bench["methods"] for seed in bench["seeds"]
        if (env, est, m, int(seed)) not in have and (env, run_name(est, m), int(seed)) not in skipped
    ]


#: Config keys that differ between the cells of one env by design: the grid's axes and the run dir.
GRID_AXES = frozenset({"train.seed", "train.run_dir", "algo.estimator", *(k for m in METHODS.values() for k in m)})


def _flat_config(path: Path) -> dict[str, Any] | None:
    """A run's config.yaml as ``{"section.key": value}`` with defaults filled in (keys added to
    the config since the run keep their defaults), the grid's axes left out; None if unreadable."""
    import yaml

    from aem_train import config as config_mod

    try:
        full = config_mod.from_dict(yaml.safe_load(path.read_text()) or {}).to_dict()
    except Exception:  # noqa: BLE001 - a missing, unparsable or no longer valid config
        return None
    flat = {f"{sec}.{k}": v for sec, d in full.items() for k, v in d.items()}
    model, run_dir = str(flat.get("model.path") or ""), str(flat.get("train.run_dir") or "")
    if model and run_dir and Path(model).is_absolute() == Path(run_dir).is_absolute():
        # A checkpoint under the grid's OUT (OUT/setup/...; cells are OUT/<env>/<run>/seed<k>) is
        # named by where it is from the cell, not by how --out was spelled (relative, absolute).
        rel, up = os.path.relpath(model, run_dir), os.path.join("..", "..", "..", "")
        if rel.startswith(up) and not rel[len(up):].startswith(".."):
            flat["model.path"] = os.path.join("OUT", rel[len(up):])
    return {k: v for k, v in flat.items() if k not in GRID_AXES}


def config_mismatches(cells: Sequence[Cell]) -> list[str]:
    """One line per finished cell whose settings differ from the most common settings of its env
    and estimator in anything but method and seed: such a cell is not comparable with the others
    (a spec edited between sessions, a directory copied from another grid). Estimators are
    compared apart because settings follow from them (``gae`` turns on ``model.value_head``)."""
    by_group: dict[tuple[str, str], list[tuple[Cell, dict[str, Any] | None]]] = defaultdict(list)
    for c in cells:
        if c.finished:
            by_group[(c.env, c.estimator)].append((c, _flat_config(c.path / "config.yaml")))
    out: list[str] = []
    for (env, _), items in by_group.items():
        keyed = [json.dumps(f, sort_keys=True, default=str) for _, f in items if f is not None]
        if not keyed:
            continue
        common = json.loads(Counter(keyed).most_common(1)[0][0])
        for c, f in items:
            where = f"{env}/{run_name(c.estimator, c.method)}/seed{c.seed}"
            if f is None:
                out.append(f"{where}: config.yaml missing or not a valid config")
                continue
            f = json.loads(json.dumps(f, sort_keys=True, default=str))  # same JSON types as `common`
            diff = sorted(k for k in set(f) | set(common) if f.get(k) != common.get(k))
            if diff:
                out.append(f"{where}: " + ", ".join(f"`{k}={f.get(k)}` (others {common.get(k)})" for k in diff))
    return out


def _order(items: Iterable[str], preferred: Sequence[str]) -> list[str]:
    items = set(items)
    head = [x for x in preferred if x in items]
    return head + sorted(items - set(head))


# ------------------------------------------------------------------------------------- summary
@dataclass
class Row:
    env: str
    estimator: str
    method: str
    seeds: list[int]
    final: CI  # Student-t interval over seeds (what the tables print)
    aulc: CI
    final_by_seed: dict[int, float]
    aulc_by_seed: dict[int, float]
    final_boot: CI | None = None  # percentile bootstrap, in results.json for comparison only
    aulc_boot: CI | None = None
    start: CI | None = None  # eval before any update (iteration 0), over the same seeds ("—" if none logged)
    gain: CI | None = None  # final - start, paired by seed: did training move success at all?
    start_by_seed: dict[int, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return method_label(self.estimator, self.method)


@dataclass
class Diff:
    env: str
    estimator: str
    method: str  # the treatment; the baseline is the estimator alone
    seeds: list[int]
    final: CI
    aulc: CI
    final_boot: CI | None = None
    aulc_boot: CI | None = None

    @property
    def label(self) -> str:
        return f"{method_label(self.estimator, self.method)} − {method_label(self.estimator, BASELINE)}"


@dataclass
class Summary:
    rows: list[Row]
    diffs: list[Diff]
    envs: list[str]
    n_boot: int


def summarize(
    cells: Sequence[Cell], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, env_order: Sequence[str] = ()
) -> Summary:
    """Per env x estimator x method: final success and AULC over seeds (mean, 95% Student-t
    interval clipped to [0, 1]), and every modulated method minus its estimator's baseline,
    paired by seed (paired t interval). ``n_boot``/``seed`` drive the percentile-bootstrap
    intervals kept next to them for comparison (``final_boot``/``aulc_boot``)."""
    groups: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
    for c in cells:
        if c.finished:
            groups[(c.env, c.estimator, c.method)].append(c)
    envs = _order({c.env for c in cells}, env_order)
    rows: list[Row] = []
    for env in envs:
        ests = _order({k[1] for k in groups if k[0] == env}, ESTIMATORS)
        for est in ests:
            for method in _order({k[2] for k in groups if k[:2] == (env, est)}, list(METHODS)):
                cs = sorted(groups[(env, est, method)], key=lambda c: c.seed)
                fin = {c.seed: c.final_success() for c in cs}
                au = {c.seed: c.aulc() for c in cs}
                st = {c.seed: c.start_success() for c in cs}
                rows.append(
                    Row(env, est, method, [c.seed for c in cs],
                        t_ci(list(fin.values()), bounds=RATE_BOUNDS), t_ci(list(au.values()), bounds=RATE_BOUNDS),
                        fin, au,
                        bootstrap_ci(list(fin.values()), n_boot=n_boot, seed=seed),
                        bootstrap_ci(list(au.values()), n_boot=n_boot, seed=seed),
                        t_ci([v for v in st.values() if not math.isnan(v)], bounds=RATE_BOUNDS),
                        paired_diff(fin, st, bounds=DIFF_BOUNDS), st)
                )
    base = {(r.env, r.estimator): r for r in rows if r.method == BASELINE}
    diffs: list[Diff] = []
    for r in rows:
        b = base.get((r.env, r.estimator))
        if r.method == BASELINE or b is None:
            continue
        paired = sorted(set(r.final_by_seed) & set(b.final_by_seed))
        diffs.append(
            Diff(r.env, r.estimator, r.method, paired,
                 paired_diff(r.final_by_seed, b.final_by_seed, bounds=DIFF_BOUNDS),
                 paired_diff(r.aulc_by_seed, b.aulc_by_seed, bounds=DIFF_BOUNDS),
                 paired_diff(r.final_by_seed, b.final_by_seed, method="bootstrap", n_boot=n_boot, seed=seed),
                 paired_diff(r.aulc_by_seed, b.aulc_by_seed, method="bootstrap", n_boot=n_boot, seed=seed))
        )
    return Summary(rows, diffs, envs, n_boot)


def results_table(summary: Summary) -> str:
    """Markdown table per env x method (percent, mean [95% CI]): final test success, AULC, the
    success before training and final minus start (percentage points, paired by seed)."""
    lines = [
        "| env | method | seeds | final test success % [95% CI] | AULC % [95% CI] | start % [95% CI] "
        "| Δ final − start pp [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary.rows:
        start = r.start.fmt(100) if r.start is not None else "—"
        gain = r.gain.fmt(100) if r.gain is not None else "—"
        lines.append(f"| {r.env} | {r.label} | {len(r.seeds)} | {r.final.fmt(100)} | {r.aulc.fmt(100)} | {start} | {gain} |")
    return "\n".join(lines)


def diff_table(summary: Summary) -> str:
    """Markdown table of paired differences (percentage points, mean [95% CI])."""
    lines = [
        "| env | comparison | pairs | Δ final success pp [95% CI] | Δ AULC pp [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for d in summary.diffs:
        lines.append(f"| {d.env} | {d.label} | {len(d.seeds)} | {d.final.fmt(100)} | {d.aulc.fmt(100)} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- figures
def _curve_band(cells: Sequence[Cell], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per iteration: mean over the cells that logged ``key`` there, and the seeds' range (min,
    max). A range says what the seeds did; a "95%" band from 2-5 seeds would claim more than it
    covers (see :mod:`aem_train.stats`)."""
    by_it: dict[int, list[float]] = defaultdict(list)
    for c in cells:
        its, vals = metric_curve(c.metrics, key)
        for i, v in zip(its, vals):
            by_it[int(i)].append(float(v))
    its = np.array(sorted(by_it), dtype=np.int64)
    mean, lo, hi = (np.empty(its.size) for _ in range(3))
    for j, i in enumerate(its):
        v = np.asarray(by_it[int(i)])
        mean[j], lo[j], hi[j] = v.mean(), v.min(), v.max()
    return its, mean, lo, hi


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]):
    """(figure, axes grid) drawn by the Agg canvas directly. No pyplot: ``matplotlib.use("Agg")``
    would switch the backend of the calling process (a notebook's figures stop showing) and
    pyplot keeps every figure until it is closed; this needs no display and changes nothing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _runs(cells: Sequence[Cell], env: str) -> list[tuple[str, str, list[Cell]]]:
    by_run: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for c in cells:
        if c.env == env:
            by_run[(c.estimator, c.method)].append(c)
    order = {m: i for i, m in enumerate(METHODS)}
    keys = sorted(by_run, key=lambda k: (ESTIMATORS.index(k[0]) if k[0] in ESTIMATORS else 99, order.get(k[1], 99), k))
    return [(e, m, by_run[(e, m)]) for e, m in keys]


def plot_curves(cells: Sequence[Cell], envs: Sequence[str], panels: Sequence[tuple[str, str]], out: Path) -> Path:
    """One row per env, one column per (metric key, y label); mean over seeds, shaded min-max."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(len(envs), len(panels), (5.2 * len(panels), 3.4 * len(envs)))
    for r, env in enumerate(envs):
        for col, (key, ylabel) in enumerate(panels):
            ax = axes[r][col]
            for est, method, cs in _runs(cells, env):
                its, mean, lo, hi = _curve_band(cs, key)
                if its.size == 0:
                    continue
                label = f"{method_label(est, method)} (n={len(cs)})"
                (line,) = ax.plot(its, mean, marker="o" if its.size <= 12 else None, ms=3, label=label)
                ax.fill_between(its, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{env}: {ylabel}", fontsize=10)
            ax.set_xlabel("iteration")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, f"no '{key}' logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


@dataclass
class AlphaBucket:
    """Alpha values of one iteration range, all responses and split by base-advantage sign."""

    label: str
    all: np.ndarray
    neg: np.ndarray  # base advantage < 0
    pos: np.ndarray  # base advantage > 0


def alpha_by_bucket(
    cells: Sequence[Cell], n_buckets: int = 5, max_per_bucket: int = 20_000, seed: int = 0
) -> list[AlphaBucket]:
    """Alpha values from ``trajectories.jsonl`` pooled over cells, split into ``n_buckets``
    equal iteration ranges; buckets larger than ``max_per_bucket`` are subsampled (seeded)."""
    its_l: list[int] = []
    alpha_l: list[float] = []
    adv_l: list[float] = []
    for c in cells:
        path = c.path / "trajectories.jsonl"
        if not path.is_file():
            continue
        with path.open() as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    it, a, b = int(rec["iteration"]), float(rec["alpha"]), float(rec.get("base_adv", 0.0))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # torn last line or a row without alpha
                its_l.append(it)
                alpha_l.append(a)
                adv_l.append(b)
    if not its_l:
        return []
    its, vals, adv = np.array(its_l), np.array(alpha_l), np.array(adv_l)
    lo, hi = int(its.min()), int(its.max())
    edges = np.linspace(lo, hi + 1, min(n_buckets, hi - lo + 1) + 1)
    rng = np.random.default_rng(seed)
    out: list[AlphaBucket] = []
    for a, b in zip(edges[:-1], edges[1:]):
        idx = np.flatnonzero((its >= a) & (its < b))
        if idx.size == 0:
            continue
        if idx.size > max_per_bucket:
            idx = rng.choice(idx, max_per_bucket, replace=False)
        first, last = int(math.ceil(a)), int(math.ceil(b)) - 1
        label = f"{first}" if first == last else f"{first}-{last}"
        out.append(AlphaBucket(label, vals[idx], vals[idx][adv[idx] < 0], vals[idx][adv[idx] > 0]))
    return out


def plot_alpha(cells: Sequence[Cell], envs: Sequence[str], out: Path) -> Path | None:
    """Box plots of alpha per iteration bucket — all responses, and those with negative and
    positive base advantage (AEM's entropy effect is the sign of A times relative surprisal) —
    one panel per env x modulated method."""
    panels = []
    for env in envs:
        for est, method, cs in _runs(cells, env):
            if method != BASELINE:
                buckets = alpha_by_bucket(cs)
                if buckets:
                    panels.append((env, est, method, buckets))
    if not panels:
        return None
    from matplotlib.patches import Patch

    kinds = [("all", "0.6", "all responses"), ("neg", "tab:red", "A < 0"), ("pos", "tab:blue", "A > 0")]
    ncol = min(2, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = _figure(nrow, ncol, (6.0 * ncol, 3.6 * nrow))
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, (env, est, method, buckets) in zip(axes.ravel(), panels):
        for k, (attr, color, _) in enumerate(kinds):
            data = [(i, getattr(b, attr)) for i, b in enumerate(buckets) if getattr(b, attr).size]
            if not data:
                continue
            bp = ax.boxplot([d for _, d in data], positions=[i + (k - 1) * 0.27 for i, _ in data], widths=0.22,
                            showfliers=False, patch_artist=True)
            for box in bp["boxes"]:
                box.set_facecolor(color)
                box.set_alpha(0.55)
            for med in bp["medians"]:
                med.set_color("black")
        ax.set_xticks(range(len(buckets)), [b.label for b in buckets])
        ax.set_xlim(-0.6, len(buckets) - 0.4)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{env}: alpha of {method_label(est, method)}", fontsize=10)
        ax.set_xlabel("iterations")
        ax.set_ylabel("alpha (per response)")
        ax.grid(alpha=0.3)
        ax.legend(handles=[Patch(facecolor=c, alpha=0.55, label=lab) for _, c, lab in kinds], fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


# ------------------------------------------------------------------------------------- report
def _fmt_seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "not recorded"
    s = float(s)
    return f"{s:.0f} s ({s / 60:.1f} min)"


def write_report(run_root: str | Path, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> Path:
    """Write ``report.md``, ``results.json`` and the PNG figures into ``run_root``."""
    root = Path(run_root)
    if not root.is_dir():
        raise FileNotFoundError(f"run root {str(root)!r} does not exist; pass the --out directory of aem-train bench")
    cells = discover(root)
    if not cells:
        raise FileNotFoundError(f"no cells (<env>/<estimator>-<method>/seed<k>/) under {root}; run aem-train bench first")
    bench = _read_json(root / "bench.json") or {}
    summary = summarize(cells, n_boot=n_boot, seed=seed, env_order=bench.get("envs", []))
    finished = [c for c in cells if c.finished]
    envs = summary.envs

    figs: dict[str, Path | None] = {}
    figs["learning curves"] = plot_curves(
        finished, envs, [(SUCCESS_KEY, "eval success rate"), ("train/success_rate", "train success rate")],
        root / "learning_curves.png")
    figs["entropy"] = plot_curves(
        finished, envs, [("entropy/response_mean", "response entropy (nats/token)")], root / "entropy.png")
    figs["alpha"] = plot_alpha(finished, envs, root / "alpha.png")

    missing = missing_cells(bench, cells)
    seeds = sorted({c.seed for c in cells} | {m[3] for m in missing})
    on_disk = {(c.env, run_name(c.estimator, c.method), c.seed) for c in cells}
    skipped = [s for s in bench.get("skipped") or [] if (s.get("env"), s.get("run"), s.get("seed")) not in on_disk]
    failed = sum(c.status.startswith("failed") for c in cells)
    mismatched = config_mismatches(cells)
    cell_wall = sum(float(c.final.get("wall_s", 0.0)) for c in finished)
    lines = [f"# AEM benchmark report: {bench.get('preset', root.name)}", ""]
    if bench.get("description"):
        lines += [bench["description"].strip(), ""]
    lines += [
        f"- preset: `{bench.get('preset', 'not recorded')}`"
        + (f" (`{_shown_path(bench['config_path'])}`)" if bench.get("config_path") else ""),
        f"- hardware: {_hardware(bench)}",
        *(["- envs: " + "; ".join(
            f"{name} = `{eid}`" + (f" with {_fmt_overrides(bench.get('env_overrides', {}).get(name))}"
                                   if bench.get("env_overrides", {}).get(name) else "")
            for name, eid in bench["env_ids"].items())] if bench.get("env_ids") else []),
        *([f"- common settings: {_fmt_overrides(bench['common'])}"] if bench.get("common") else []),
        f"- wall time: {_fmt_seconds(bench.get('wall_s'))} in total" + _sessions_note(bench.get("sessions") or [])
        + (f" (setup {_fmt_seconds(bench.get('setup_s'))})" if bench.get("setup_s") is not None else "")
        + f"; training cells {_fmt_seconds(cell_wall)} summed"
        + (f"; CPU time {bench['cpu_s']:.0f} s (CPU/wall {bench['cpu_s'] / bench['wall_s']:.2f}; "
           "a low ratio can mean the machine was shared)" if bench.get("cpu_s") and bench.get("wall_s") else ""),
        f"- seeds: {', '.join(map(str, seeds))}; "
        f"cells finished {len(finished)} of {len(cells) + len(missing) + len(skipped)}"
        + (f"; failed {failed}" if failed else "")
        + (f"; not started {len(missing)}" if missing else "")
        + (f"; skipped {len(skipped)}" if skipped else ""),
        "- statistics: mean over seeds with a 95% Student-t interval (t quantile with n-1 degrees of freedom, "
        "clipped to the possible range; none for a single seed); the interval is over seeds only, on fixed test "
        "tasks; differences are paired by seed (seeds finished by both methods); final = the eval after the last "
        "iteration, not the best eval of the run; AULC = trapezoid area under the eval-success curve / iteration "
        "span; start = the eval before any update (iteration 0), and Δ final − start, paired by seed, says "
        f"whether training moved success at all. results.json also has {n_boot}-resample percentile-bootstrap intervals (seeded), which cover less "
        "than their nominal 95% with few seeds",
        "",
        "These numbers are whatever this run produced — a record of this run on this hardware, not the "
        "paper's results. CPU presets train tiny models for a few iterations, so differences between "
        "methods are small and noisy; read them with their intervals and the number of seeds.",
        "",
        *(["**Settings differ within an env** (besides method and seed), so these cells are not "
            "comparable with the others; rerun them with the spec's settings (delete their directories):", "",
            *[f"- {x}" for x in mismatched], ""] if mismatched else []),
        "## Final test success and AULC",
        "",
        results_table(summary),
        "",
        "## Paired difference: method − baseline (same seed)",
        "",
        diff_table(summary) if summary.diffs else "No method has a finished baseline to pair with.",
        "",
    ]
    captions = {
        "learning curves": "Eval success (greedy, fixed test tasks) and training success vs iteration; "
        "mean over seeds, shaded from the lowest to the highest seed.",
        "entropy": "Mean response-level entropy (length-normalised) of the sampled training responses. The "
        "AEM paper's observation is that the baseline's entropy collapses early while AEM keeps it higher "
        "early and lowers it later; check whether this run shows it.",
        "alpha": "AEM weights alpha of every training response (from trajectories.jsonl), pooled over seeds, "
        "by iteration range: all responses, and those with negative and positive base advantage; "
        "1 = unchanged advantage, boxes = quartiles, whiskers = 1.5 IQR.",
    }
    for name, path in figs.items():
        lines += [f"## {name.capitalize()}", ""]
        if path is None:
            lines += ["No alpha values were logged (no modulated method finished).", ""]
        else:
            lines += [captions[name], "", f"![{name}]({path.name})", ""]
    lines += ["## Cells", "", "| env | run | seed | status | start % | final success % | AULC % | wall s |",
              "|---|---|---|---|---|---|---|---|"]
    m_order = {m: i for i, m in enumerate(METHODS)}
    for c in sorted(cells, key=lambda c: (envs.index(c.env) if c.env in envs else 99, c.estimator,
                                          m_order.get(c.method, 99), c.method, c.seed)):
        fin = c.final_success() if c.finished else float("nan")
        au = c.aulc() if c.finished else float("nan")
        st = c.start_success() if (c.path / "metrics.jsonl").is_file() else float("nan")
        wall = c.final.get("wall_s") if c.final else None
        lines.append(
            f"| {c.env} | {run_name(c.estimator, c.method)} | {c.seed} | {c.status} | "
            f"{'—' if math.isnan(st) else f'{st * 100:.1f}'} | "
            f"{'—' if math.isnan(fin) else f'{fin * 100:.1f}'} | {'—' if math.isnan(au) else f'{au * 100:.1f}'} | "
            f"{'—' if wall is None else f'{float(wall):.0f}'} |"
        )
    for env, est, m, seed in missing:
        lines.append(f"| {env} | {run_name(est, m)} | {seed} | not started | — | — | — | — |")
    for s in skipped:
        lines.append(f"| {s.get('env', '?')} | {s.get('run', '?')} | {s.get('seed', '?')} | skipped: {s.get('reason', '')} | — | — | — | — |")
    lines.append("")
    (root / "report.md").write_text("\n".join(lines))

    results = {
        "preset": bench.get("preset"),
        "n_boot": n_boot,
        "rows": [
            {"env": r.env, "estimator": r.estimator, "method": r.method, "seeds": r.seeds,
             "final_success": vars(r.final), "aulc": vars(r.aulc),
             "final_success_bootstrap": vars(r.final_boot), "aulc_bootstrap": vars(r.aulc_boot),
             "final_by_seed": r.final_by_seed, "aulc_by_seed": r.aulc_by_seed,
             "start_success": vars(r.start) if r.start is not None else None,
             "gain": vars(r.gain) if r.gain is not None else None, "start_by_seed": r.start_by_seed}
            for r in summary.rows
        ],
        "diffs": [
            {"env": d.env, "estimator": d.estimator, "method": d.method, "seeds": d.seeds,
             "final_success": vars(d.final), "aulc": vars(d.aulc),
             "final_success_bootstrap": vars(d.final_boot), "aulc_bootstrap": vars(d.aulc_boot)}
            for d in summary.diffs
        ],
    }
    (root / "results.json").write_text(json.dumps(_strict(results), indent=2, allow_nan=False))
    return root / "report.md"


def _shown_path(path: str) -> str:
    """``path`` relative to the repository (or else the working directory) when it lies inside:
    a committed report should not carry the machine's absolute checkout path."""
    p = Path(path)
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        try:
            return str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)


def _hardware(bench: dict[str, Any]) -> str:
    """The machine the cells ran on; every machine, with its sessions, when a grid was resumed on
    another one (bench.json's top-level ``hardware`` is only the last session's)."""
    used: dict[str, list[int]] = defaultdict(list)
    for i, x in enumerate(bench.get("sessions") or [], 1):
        if x.get("hardware") and (x.get("cells_run") or x.get("setup_s")):
            used[x["hardware"]].append(i)
    if len(used) < 2:
        return str(next(iter(used), bench.get("hardware", "not recorded")))
    named = [f"{hw} (session{'s' if len(ix) > 1 else ''} {', '.join(map(str, ix))})" for hw, ix in used.items()]
    return "; ".join(named) + " — cells run on different machines may not be comparable"


def _sessions_note(sessions: Sequence[dict[str, Any]]) -> str:
    """" over 3 sessions (905 s, 568 s, 1 s)", and whether the total holds replaced work: a cell
    finished in more than one session was run again (its directory deleted), so the earlier
    run's time is in the total but not in the results."""
    if len(sessions) < 2:
        return ""
    walls = ", ".join(f"{float(x.get('wall_s', 0.0)):.0f} s" for x in sessions)
    note = f" over {len(sessions)} sessions ({walls})"
    runs: dict[str, int] = defaultdict(int)
    for x in sessions:
        for key in set(x.get("cells_run") or []):
            runs[key] += 1
    again = sum(1 for k in runs if runs[k] > 1)
    if again:
        note += (f", including {again} cell{'s' if again > 1 else ''} finished again in a later session "
                 "(the earlier run's time counts, its results were replaced)")
    return note


def _fmt_overrides(d: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}`" for k, v in d.items())


def _strict(o: Any) -> Any:
    """NaN (an interval of fewer than two seeds) becomes null: results.json stays strict JSON."""
    if isinstance(o, float):
        return None if math.isnan(o) else o
    if isinstance(o, dict):
        return {str(k): _strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict(v) for v in o]
    return o


# ------------------------------------------------------------------------------------- CLI
def _cmd_report(args: argparse.Namespace) -> int:
    path = write_report(args.run_root, n_boot=args.n_boot, seed=args.seed)
    bench = _read_json(Path(args.run_root) / "bench.json") or {}
    summary = summarize(discover(args.run_root), n_boot=args.n_boot, seed=args.seed, env_order=bench.get("envs", []))
    print(results_table(summary))
    if summary.diffs:
        print()
        print(diff_table(summary))
    print(f"\nreport: {path}")
    if args.json:
        print(json.dumps(json.loads((Path(args.run_root) / "results.json").read_text())))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aem_train.cli import add_common_options

    sp = sub.add_parser("report", help="regenerate report.md + figures from a bench run directory")
    sp.add_argument("run_root", help="the --out directory of aem-train bench")
    sp.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                    help="resamples of the percentile-bootstrap intervals results.json keeps next to the t intervals "
                         "(default 10000)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap generator")
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_report)
