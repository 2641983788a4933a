"""Descriptive statistics on lists of numbers."""

import math


def mean(xs):
    if not xs:
        raise ValueError("mean of empty data")
    return sum(xs) / len(xs)


def median(xs):
    if not xs:
        raise ValueError("median of empty data")
    s = sorted(xs)
    mid = len(s) // 2
    if len(s) % 2 == 1:
        return s[mid]
    return (s[mid - 1] + s[mid]) / 2


def mode(xs):
    """Most common value; ties go to the value seen first."""
    if not xs:
        raise ValueError("mode of empty data")
    counts = {}
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
    best = xs[0]
    for x in counts:
        if counts[x] > counts[best]:
            best = x
    return best


def variance(xs, sample=True):
    """Sample variance (n - 1) by default, population variance otherwise."""
    n = len(xs)
    if n < 2 and sample:
        raise ValueError("sample variance needs at least two values")
    m = mean(xs)
    ss = sum((x - m) ** 2 for x in xs)
    return ss / (n - 1) if sample else ss / n


def stdev(xs, sample=True):
    return math.sqrt(variance(xs, sample))


def percentile(xs, p):
    """Linear interpolation between closest ranks; p in [0, 100]."""
    if not xs:
        raise ValueError("percentile of empty data")
    if p < 0 or p > 100:
        raise ValueError("p must be in [0, 100]")
    s = sorted(xs)
    pos = (len(s) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    frac = pos - lo
    return s[lo] + (s[hi] - s[lo]) * frac


def zscores(xs):
    m = mean(xs)
    sd = stdev(xs)
    return [(x - m) / sd for x in xs]


def correlation(xs, ys):
    """Pearson correlation coefficient."""
    if len(xs) != len(ys):
        raise ValueError("length mismatch")
    mx, my = mean(xs), mean(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return cov / math.sqrt(vx * vy)
