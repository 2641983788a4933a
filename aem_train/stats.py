"""Statistics for the benchmark: confidence intervals over seeds, paired differences and the
area under the learning curve.

The report's intervals are Student-t intervals of the mean over seeds (:func:`t_ci`). A
benchmark has 2-5 seeds, and a percentile bootstrap over so few values cannot be wider than
their range: its nominal 95% interval covers the true mean about 48% of the time with 2 seeds,
75% with 3 and 84% with 5 (normal data, measured in tests/test_stats.py), while the t interval
keeps its 95% at every n >= 2. :func:`bootstrap_ci` stays for large samples and for comparison;
it is plain numpy with an explicitly seeded generator, so the same values give the same interval.
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
    """A sample mean with its confidence interval; ``lo``/``hi`` are NaN when n < 2.

    ``method`` names how the interval was made: ``"t"`` (:func:`t_ci`) or ``"bootstrap"``
    (percentile bootstrap, :func:`bootstrap_ci`)."""

    mean: float
    lo: float
    hi: float
    n: int
    level: float = 0.95
    method: str = "bootstrap"

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def fmt(self, scale: float = 1.0, digits: int = 1) -> str:
        """``"62.5 [50.0, 75.0]"`` (``scale=100`` for percentages); no interval when n < 2, and
        ``"62.5 [all 3 equal]"`` when the values have no spread: a zero-width interval would read
        as certainty, while it only says the few values agreed."""
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        m = f"{self.mean * scale:.{digits}f}"
        if self.n < 2 or math.isnan(self.lo):
            return m
        if self.lo == self.hi:
            return f"{m} [all {self.n} equal]"
        return f"{m} [{self.lo * scale:.{digits}f}, {self.hi * scale:.{digits}f}]"


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below the mean
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df={df} must be > 0")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + x * x))  # P(T > |x|)
    return 1.0 - tail if x >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`,
    exact to ~1e-12; numpy has no t distribution and scipy is not a dependency)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p} must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _finite(values: Sequence[float] | np.ndarray, level: float, method: str) -> tuple[np.ndarray, CI | None]:
    """The values without NaNs, and the interval to return as is when fewer than two are left
    (no spread to measure: NaN bounds, and a NaN mean for none)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if x.size >= 2:
        return x, None
    mean = float(x.mean()) if x.size else float("nan")
    return x, CI(mean, float("nan"), float("nan"), int(x.size), level, method)


def t_ci(
    values: Sequence[float] | np.ndarray, *, level: float = 0.95, bounds: tuple[float, float] | None = None
) -> CI:
    """Student-t interval of the mean of ``values`` (e.g. one number per seed): mean +- t(n-1) * s / sqrt(n).

    NaNs are dropped; with fewer than two values the bounds are NaN. ``bounds`` is the range the
    mean cannot leave (``(0, 1)`` for a success rate): the interval is intersected with it, which
    keeps its coverage (2 seeds give a very wide interval, as they should).
    """
    x, short = _finite(values, level, "t")
    if short is not None:
        return short
    n, mean = int(x.size), float(x.mean())
    half = t_quantile((1.0 + level) / 2.0, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return CI(mean, lo, hi, n, level, "t")


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
    x, short = _finite(values, level, "bootstrap")
    if short is not None:
        return short
    n, mean = int(x.size), float(x.mean())
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
    return CI(mean, min(float(lo), mean), max(float(hi), mean), n, level, "bootstrap")


def paired_diff(
    treatment: Mapping[int, float] | Sequence[float],
    baseline: Mapping[int, float] | Sequence[float],
    *,
    method: str = "t",
    n_boot: int = DEFAULT_N_BOOT,
    level: float = 0.95,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> CI:
    """Interval of mean(treatment - baseline), paired by seed: :func:`t_ci` (``method="t"``, the
    paired t interval, with ``bounds``) or :func:`bootstrap_ci` (``method="bootstrap"``).

    With mappings ``{seed: value}`` only seeds present in both (and not NaN) are paired; with
    sequences the two must have equal length and are paired by position. Pairing removes the
    seed-to-seed variance both methods share (same initial model, same task order).
    """
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method={method!r}; use 't' or 'bootstrap'")
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
    d = d[~np.isnan(d)]
    if method == "t":
        return t_ci(d, level=level, bounds=bounds)
    return bootstrap_ci(d, n_boot=n_boot, level=level, seed=seed)


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
