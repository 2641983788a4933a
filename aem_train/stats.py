"""Statistics for the benchmark: bootstrap confidence intervals over seeds, paired differences
and the area under the learning curve.

Everything is plain numpy with an explicitly seeded generator, so a report regenerated from the
same run directories prints the same intervals. With only a handful of seeds a percentile
bootstrap interval is narrow-biased (it cannot be wider than the spread of the seeds); the
report states n next to every interval so the reader can judge it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_N_BOOT = 10_000


@dataclass(frozen=True)
class CI:
    """A sample mean with its percentile-bootstrap interval; ``lo``/``hi`` are NaN when n < 2."""

    mean: float
    lo: float
    hi: float
    n: int
    level: float = 0.95

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def fmt(self, scale: float = 1.0, digits: int = 1) -> str:
        """``"62.5 [50.0, 75.0]"`` (``scale=100`` for percentages); no interval when n < 2."""
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        m = f"{self.mean * scale:.{digits}f}"
        if self.n < 2 or math.isnan(self.lo):
            return m
        return f"{m} [{self.lo * scale:.{digits}f}, {self.hi * scale:.{digits}f}]"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile bootstrap interval of the mean of ``values`` (e.g. one number per seed).

    Resamples the values with replacement ``n_boot`` times using ``np.random.default_rng(seed)``
    and takes the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the resampled means. NaNs are
    dropped. With fewer than two values there is nothing to resample: the bounds are NaN.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return CI(float("nan"), float("nan"), float("nan"), 0, level)
    mean = float(x.mean())
    if n < 2:
        return CI(mean, float("nan"), float("nan"), n, level)
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, 2_000_000 // n)  # bound memory for large samples
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    # Constant data gives identical resampled means; keep the interval exactly degenerate.
    return CI(mean, min(float(lo), mean), max(float(hi), mean), n, level)


def paired_diff(
    treatment: Mapping[int, float] | Sequence[float],
    baseline: Mapping[int, float] | Sequence[float],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = 0.95,
    seed: int = 0,
) -> CI:
    """Bootstrap interval of mean(treatment - baseline), paired by seed.

    With mappings ``{seed: value}`` only seeds present in both (and not NaN) are paired; with
    sequences the two must have equal length and are paired by position. Pairing removes the
    seed-to-seed variance both methods share (same initial model, same task order).
    """
    if isinstance(treatment, Mapping) != isinstance(baseline, Mapping):
        raise TypeError("pass two {seed: value} mappings or two equal-length sequences")
    if isinstance(treatment, Mapping):
        seeds = sorted(set(treatment) & set(baseline))
        a = np.array([treatment[s] for s in seeds], dtype=np.float64)
        b = np.array([baseline[s] for s in seeds], dtype=np.float64)
    else:
        a = np.asarray(treatment, dtype=np.float64)
        b = np.asarray(baseline, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    return bootstrap_ci(d[~np.isnan(d)], n_boot=n_boot, level=level, seed=seed)


def aulc(iterations: Sequence[float], values: Sequence[float]) -> float:
    """Area under a learning curve, normalised by its iteration span.

    Trapezoid rule over the (iteration, value) points sorted by iteration, divided by
    ``last - first`` iteration, so the result is on the value's own scale (a success rate's
    AULC is in [0, 1]) and comparable across runs of equal span. One point: its value.
    """
    it = np.asarray(iterations, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if it.shape != v.shape:
        raise ValueError(f"iterations and values differ in length: {it.size} vs {v.size}")
    ok = ~(np.isnan(it) | np.isnan(v))
    it, v = it[ok], v[ok]
    if it.size == 0:
        return float("nan")
    order = np.argsort(it, kind="stable")
    it, v = it[order], v[order]
    span = it[-1] - it[0]
    if it.size == 1 or span == 0:
        return float(v.mean())
    area = float(np.sum((it[1:] - it[:-1]) * (v[1:] + v[:-1]) / 2.0))
    return area / float(span)


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file; a torn last line (a run killed mid-write) is ignored."""
    out: list[dict] = []
    p = Path(path)
    if not p.is_file():
        return out
    with p.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def metric_curve(records: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of ``key`` over the records that carry it, last record per iteration
    winning (a resumed run may repeat an iteration)."""
    by_it: dict[int, float] = {}
    for r in records:
        if key in r and "iteration" in r and r[key] is not None:
            by_it[int(r["iteration"])] = float(r[key])
    its = sorted(by_it)
    return np.array(its, dtype=np.int64), np.array([by_it[i] for i in its], dtype=np.float64)


def eval_aulc(metrics_path: str | Path, key: str = "eval/success_rate") -> float:
    """AULC of a run's evaluation curve read from its ``metrics.jsonl``."""
    its, vals = metric_curve(read_jsonl(metrics_path), key)
    return aulc(its, vals)
