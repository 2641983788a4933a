"""Bootstrap CIs, paired differences and AULC on data whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from aem_train.stats import CI, aulc, bootstrap_ci, eval_aulc, metric_curve, paired_diff, read_jsonl, t_ci, t_quantile


def test_constant_data_gives_zero_width_interval():
    ci = bootstrap_ci([0.25] * 5, n_boot=500)
    assert (ci.mean, ci.lo, ci.hi, ci.n) == (0.25, 0.25, 0.25, 5)
    assert ci.width == 0.0


def test_normal_sample_interval_covers_mean_with_analytic_width():
    rng = np.random.default_rng(123)
    x = rng.normal(5.0, 2.0, size=400)
    ci = bootstrap_ci(x, n_boot=4000, seed=1)
    assert ci.lo < 5.0 < ci.hi
    analytic = 2 * 1.959964 * x.std(ddof=1) / math.sqrt(x.size)  # ~0.39
    assert ci.width == pytest.approx(analytic, rel=0.12)
    assert ci.mean == pytest.approx(x.mean())


def test_interval_is_reproducible_for_a_seed_and_respects_level():
    x = [0.1, 0.4, 0.35, 0.8, 0.55]
    a, b = bootstrap_ci(x, n_boot=2000, seed=7), bootstrap_ci(x, n_boot=2000, seed=7)
    assert a == b
    narrow = bootstrap_ci(x, n_boot=2000, seed=7, level=0.5)
    assert a.lo <= narrow.lo <= narrow.hi <= a.hi
    # The percentile bootstrap cannot leave the range of the data.
    assert min(x) <= a.lo <= a.hi <= max(x)


def test_small_samples_have_no_interval():
    one = bootstrap_ci([0.7])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.lo) and math.isnan(one.hi)
    assert one.fmt(100) == "70.0"
    empty = bootstrap_ci([])
    assert empty.n == 0 and empty.fmt() == "—"
    assert bootstrap_ci([1.0, float("nan"), 3.0], n_boot=100).n == 2


def test_fmt_scales_and_rounds():
    assert CI(0.625, 0.5, 0.75, 4).fmt(100) == "62.5 [50.0, 75.0]"
    # identical seeds: no spread to measure, said in words rather than as a zero-width interval
    assert t_ci([0.25, 0.25, 0.25]).fmt(100) == "25.0 [all 3 equal]"
    assert paired_diff({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5}).fmt(100) == "0.0 [all 2 equal]"
    assert CI(0.1234, 0.1, 0.2, 3).fmt(digits=3) == "0.123 [0.100, 0.200]"


def test_paired_diff_of_identical_arrays_is_zero():
    a = [0.2, 0.5, 0.9]
    d = paired_diff(a, a, n_boot=500)
    assert (d.mean, d.lo, d.hi, d.n) == (0.0, 0.0, 0.0, 3)


def test_paired_diff_removes_shared_seed_variance():
    # Seeds differ a lot; the treatment adds exactly 0.1 on every seed: the paired interval is
    # degenerate at 0.1 while an unpaired comparison would be wide.
    base = {0: 0.1, 1: 0.5, 2: 0.9, 3: 0.3}
    treat = {s: v + 0.1 for s, v in base.items()}
    d = paired_diff(treat, base, n_boot=500)
    assert d.mean == pytest.approx(0.1) and d.lo == pytest.approx(0.1) and d.hi == pytest.approx(0.1)


def test_t_quantile_matches_published_tables():
    # Student's t table (two-sided 95% unless noted), and the normal limit.
    for df, p, want in [(1, 0.975, 12.7062), (2, 0.975, 4.3027), (4, 0.975, 2.7764), (9, 0.975, 2.2622),
                        (100, 0.975, 1.9840), (2, 0.995, 9.9248), (30, 0.95, 1.6973), (10**7, 0.975, 1.9600)]:
        assert t_quantile(p, df) == pytest.approx(want, abs=1e-4), (df, p)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)
    assert t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-9)


def test_t_interval_by_hand_and_clipped_to_the_rate_range():
    # The quick preset's two GRPO seeds (final success 10/64 and 19/64): mean +- t(1) * s / sqrt(2).
    x = [0.15625, 0.296875]
    half = 12.7062047 * np.std(x, ddof=1) / math.sqrt(2)
    ci = t_ci(x)
    assert (ci.n, ci.method) == (2, "t")
    assert ci.mean == pytest.approx(np.mean(x)) and ci.lo == pytest.approx(np.mean(x) - half, abs=1e-6)
    assert ci.hi == pytest.approx(np.mean(x) + half, abs=1e-6)
    clipped = t_ci(x, bounds=(0.0, 1.0))
    assert (clipped.lo, clipped.hi) == (0.0, 1.0)  # -0.67 .. 1.12 intersected with [0, 1]
    # Two seeds tell little: the interval is far wider than their range, unlike the bootstrap's.
    boot = bootstrap_ci(x, n_boot=2000)
    assert (boot.lo, boot.hi) == pytest.approx((min(x), max(x)))
    assert ci.width > 10 * boot.width
    x5 = [0.1, 0.4, 0.35, 0.8, 0.55]
    assert t_ci(x5).width == pytest.approx(2 * 2.776445 * np.std(x5, ddof=1) / math.sqrt(5), rel=1e-6)
    assert math.isnan(t_ci([0.7]).lo) and t_ci([0.7]).fmt(100) == "70.0" and t_ci([]).n == 0
    assert t_ci([0.3, float("nan"), 0.5]).n == 2


def test_t_interval_keeps_its_coverage_with_few_seeds_and_the_bootstrap_does_not():
    # 95% intervals from n normal draws around 0: how often do they contain 0?
    rng = np.random.default_rng(2024)
    reps = 1000
    for n, boot_max in ((2, 0.60), (3, 0.85)):
        t_hits = boot_hits = 0
        for k in range(reps):
            x = rng.normal(0.0, 1.0, n)
            ci = t_ci(x)
            t_hits += ci.lo <= 0.0 <= ci.hi
            b = bootstrap_ci(x, n_boot=400, seed=k)
            boot_hits += b.lo <= 0.0 <= b.hi
        assert 0.93 <= t_hits / reps <= 0.97, (n, t_hits)
        assert boot_hits / reps < boot_max, (n, boot_hits)  # ~0.48 with 2 seeds, ~0.75 with 3


def test_paired_diff_t_is_the_t_interval_of_the_differences():
    treat = {0: 0.203125, 1: 0.265625, 2: 0.5}
    base = {0: 0.15625, 1: 0.296875}  # seed 2 failed for the baseline: not paired
    d = paired_diff(treat, base)
    assert d == t_ci([0.203125 - 0.15625, 0.265625 - 0.296875])
    assert d.method == "t" and d.n == 2
    clipped = paired_diff(treat, base, bounds=(-0.25, 0.25))  # -0.49 .. 0.50 unclipped
    assert (clipped.lo, clipped.hi) == (-0.25, 0.25)
    assert paired_diff(treat, base, method="bootstrap", n_boot=300).method == "bootstrap"
    with pytest.raises(ValueError, match="'t' or 'bootstrap'"):
        paired_diff(treat, base, method="z")


def test_paired_diff_pairs_by_seed_not_position():
    treat = {2: 0.9, 0: 0.5, 5: 1.0}  # seed 5 has no baseline: dropped
    base = {0: 0.4, 2: 0.6}
    d = paired_diff(treat, base, n_boot=500)
    assert d.n == 2 and d.mean == pytest.approx(((0.5 - 0.4) + (0.9 - 0.6)) / 2)
    with pytest.raises(ValueError):
        paired_diff([1.0, 2.0], [1.0])
    with pytest.raises(TypeError):
        paired_diff({0: 1.0}, [1.0])


def test_aulc_trapezoid_normalised_by_span():
    assert aulc([0, 10], [0.0, 1.0]) == pytest.approx(0.5)
    # (0,0.2)->(5,0.4): 1.5; (5,0.4)->(20,1.0): 10.5; span 20 -> 0.6
    assert aulc([0, 5, 20], [0.2, 0.4, 1.0]) == pytest.approx(12.0 / 20)
    assert aulc([20, 0, 5], [1.0, 0.2, 0.4]) == pytest.approx(0.6)  # order does not matter
    assert aulc([3], [0.7]) == 0.7
    assert aulc([0, 4, 8], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(aulc([], []))


def test_metric_curve_from_metrics_jsonl(tmp_path):
    recs = [
        {"iteration": 0, "time_s": 0.0, "eval/success_rate": 0.25},
        {"iteration": 1, "time_s": 1.0, "train/success_rate": 0.3},
        {"iteration": 2, "time_s": 2.0, "train/success_rate": 0.4, "eval/success_rate": 0.5},
        {"iteration": 2, "time_s": 2.5, "train/success_rate": 0.4, "eval/success_rate": 0.75},  # resumed repeat
    ]
    p = tmp_path / "metrics.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + '\n{"iteration": 3, "ti')  # torn last line
    assert len(read_jsonl(p)) == 4
    its, vals = metric_curve(read_jsonl(p), "eval/success_rate")
    assert its.tolist() == [0, 2] and vals.tolist() == [0.25, 0.75]
    assert eval_aulc(p) == pytest.approx(0.5)
