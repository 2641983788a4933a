"""AEM / EMPG modulation (AEM, arXiv 2605.00425): properties, hand-computed values, entropy drift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aem_train.modulation import (
    ResponseStats,
    aem_alpha,
    apply_modulation,
    empg_modulate,
    response_mean_entropy,
    scope_ids_for,
)
from aem_train.rows import Row

E = np.e


def random_batch(seed: int = 0, groups: int = 6, trajs: int = 8) -> tuple[ResponseStats, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, g, t, tu, n = [], [], [], [], []
    for gi in range(groups):
        for ti in range(trajs):
            turns = int(rng.integers(1, 7))
            h += list(rng.uniform(0.2, 2.5, turns))
            g += [gi] * turns
            t += [gi * trajs + ti] * turns
            tu += list(range(turns))
            n += list(rng.integers(5, 200, turns))
    stats = ResponseStats.from_arrays(h, g, t, tu, n)
    return stats, rng.normal(size=len(h))


# ---------------------------------------------------------------- AEM properties


def test_alpha_mean_is_one_per_scope():
    stats, _ = random_batch()
    for scope in ("group", "trajectory", "batch"):
        sid = scope_ids_for(stats, scope)
        alpha = aem_alpha(stats.mean_entropy, sid, range_guard=0.0)
        for s in np.unique(sid):
            assert alpha[sid == s].mean() == pytest.approx(1.0, abs=1e-12), scope


def test_token_weighted_mean_option():
    stats, _ = random_batch(1)
    sid = scope_ids_for(stats, "group")
    alpha = aem_alpha(stats.mean_entropy, sid, num_tokens=stats.num_tokens, mean_over="tokens")
    for s in np.unique(sid):
        m = sid == s
        assert np.average(alpha[m], weights=stats.num_tokens[m]) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="num_tokens"):
        aem_alpha(stats.mean_entropy, sid, mean_over="tokens")


def test_signs_never_change_and_low_entropy_is_upweighted():
    stats, base = random_batch(2)
    adv, alpha = apply_modulation(stats, base, "aem")
    assert np.all(alpha > 0)
    assert np.all(np.sign(adv) == np.sign(base))
    sid = scope_ids_for(stats, "group")
    for s in np.unique(sid):
        h, a = stats.mean_entropy[sid == s], alpha[sid == s]
        assert a[np.argmin(h)] > 1.0 > a[np.argmax(h)]
        order = np.argsort(h)
        assert np.all(np.diff(a[order]) <= 1e-12)  # alpha decreases as entropy grows


def test_alpha_ratio_bounded_by_e():
    stats, _ = random_batch(3)
    for scope in ("group", "trajectory", "batch"):
        sid = scope_ids_for(stats, scope)
        alpha = aem_alpha(stats.mean_entropy, sid, lam=1.0)
        for s in np.unique(sid):
            a = alpha[sid == s]
            assert a.max() / a.min() <= E + 1e-9
    alpha = aem_alpha([0.0, 5.0, 1.0], [0, 0, 0], lam=1.0)
    assert alpha.max() / alpha.min() == pytest.approx(E, rel=1e-6)  # the bound is reached at the extremes
    alpha = aem_alpha([0.0, 5.0], [0, 0], lam=2.0)
    assert alpha.max() / alpha.min() == pytest.approx(E**2, rel=1e-6)


def test_range_guard_returns_ones():
    np.testing.assert_array_equal(aem_alpha([1.0, 1.05, 1.09], [0, 0, 0]), [1.0, 1.0, 1.0])
    # one scope guarded, the other not
    alpha = aem_alpha([1.0, 1.05, 1.0, 1.5], [0, 0, 1, 1])
    np.testing.assert_array_equal(alpha[:2], [1.0, 1.0])
    assert alpha[2] > 1.0 > alpha[3]
    # range_guard=0 with identical entropies: eps keeps it finite and alpha = 1
    np.testing.assert_allclose(aem_alpha([0.7, 0.7], [0, 0], range_guard=0.0), [1.0, 1.0])


def test_hand_computed_group():
    # Hbar 0.2, 0.7, 1.2: Htil 0, 0.5, 1; w = 1, e^-0.5, e^-1 = 1, 0.6065307, 0.3678794
    # mean w = 0.6581367; alpha = 1.5194412, 0.9215877, 0.5589712
    alpha = aem_alpha([0.2, 0.7, 1.2], [5, 5, 5])
    np.testing.assert_allclose(alpha, [1.5194412, 0.9215877, 0.5589712], atol=1e-7)
    stats = ResponseStats.from_arrays([0.2, 0.7, 1.2], [0, 0, 0], [0, 1, 2])
    adv, a2 = apply_modulation(stats, [2.0, -1.0, -1.0], "aem")
    np.testing.assert_allclose(adv, [2 * 1.5194412, -0.9215877, -0.5589712], atol=1e-7)
    np.testing.assert_allclose(a2, alpha)


def test_reversed_flips_the_order():
    alpha = aem_alpha([0.2, 0.7, 1.2], [0, 0, 0])
    rev = aem_alpha([0.2, 0.7, 1.2], [0, 0, 0], direction="reversed")
    # reversed w = exp(-(1 - Htil)) = e^-1, e^-0.5, 1: the same weights in the opposite order
    np.testing.assert_allclose(rev, alpha[::-1], atol=1e-12)
    stats, _ = random_batch(4)
    sid = scope_ids_for(stats, "group")
    a, r = aem_alpha(stats.mean_entropy, sid), aem_alpha(stats.mean_entropy, sid, direction="reversed")
    for s in np.unique(sid):
        h = stats.mean_entropy[sid == s]
        assert r[sid == s][np.argmin(h)] < 1.0 < r[sid == s][np.argmax(h)]
        assert np.all(np.argsort(a[sid == s], kind="stable") == np.argsort(-r[sid == s], kind="stable"))
    with pytest.raises(ValueError, match="direction"):
        aem_alpha([0.0, 1.0], [0, 0], direction="backwards")


def test_shuffle_keeps_the_multiset_within_each_scope():
    stats, _ = random_batch(5)
    sid = scope_ids_for(stats, "group")
    plain = aem_alpha(stats.mean_entropy, sid)
    shuf = aem_alpha(stats.mean_entropy, sid, shuffle=True, rng=np.random.default_rng(0))
    for s in np.unique(sid):
        np.testing.assert_array_equal(np.sort(plain[sid == s]), np.sort(shuf[sid == s]))
    assert not np.array_equal(plain, shuf)
    # an int seed means np.random.default_rng(seed): reproducible
    np.testing.assert_array_equal(shuf, aem_alpha(stats.mean_entropy, sid, shuffle=True, rng=0))
    with pytest.raises(ValueError, match="rng"):
        aem_alpha(stats.mean_entropy, sid, shuffle=True)


def test_scopes_group_trajectory_batch_hand_computed():
    # group 0: traj 0 Hbar (0, 1), traj 1 (0.5, 0.5); group 1: traj 2 (2, 2), traj 3 (2, 3)
    h = [0.0, 1.0, 0.5, 0.5, 2.0, 2.0, 2.0, 3.0]
    stats = ResponseStats.from_arrays(h, [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 1, 0, 1])
    ones = np.ones(8)
    # group 0: Htil 0, 1, .5, .5 -> w 1, e^-1, e^-.5, e^-.5, mean 0.6452352
    # group 1: Htil 0, 0, 0, 1 -> w 1, 1, 1, e^-1, mean 0.8419699
    _, a = apply_modulation(stats, ones, "aem", "group")
    expected = [1.5498225, 0.5701478, 0.9400148, 0.9400148, 1.1876910, 1.1876910, 1.1876910, 0.4369271]
    np.testing.assert_allclose(a, expected, atol=1e-7)
    # per trajectory: traj 0 and 3 have range 1 -> 2/(1+e^-1), 2e^-1/(1+e^-1); traj 1, 2 have range 0 -> 1
    hi, lo = 2 / (1 + np.exp(-1)), 2 * np.exp(-1) / (1 + np.exp(-1))
    _, a = apply_modulation(stats, ones, "aem", "trajectory")
    np.testing.assert_allclose(a, [hi, lo, 1, 1, 1, 1, hi, lo], atol=1e-7)
    # batch: range 3, Htil = h / 3
    w = np.exp(-np.array(h) / 3)
    _, a = apply_modulation(stats, ones, "aem", "batch")
    np.testing.assert_allclose(a, w / w.mean(), atol=1e-7)
    expected = [1.5044309, 1.0779718, 1.2734732, 1.2734732, 0.7724006, 0.7724006, 0.7724006, 0.5534492]
    np.testing.assert_allclose(a, expected, atol=1e-7)
    with pytest.raises(ValueError, match="scope"):
        apply_modulation(stats, ones, "aem", "episode")


def test_trajectory_scope_does_not_merge_equal_traj_ids_of_different_groups():
    stats = ResponseStats.from_arrays([0.0, 1.0, 5.0, 6.0], [0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1])
    np.testing.assert_array_equal(scope_ids_for(stats, "trajectory"), [0, 0, 1, 1])


def test_method_none_clip_and_renormalize():
    stats, base = random_batch(6)
    adv, alpha = apply_modulation(stats, base, "none")
    np.testing.assert_array_equal(adv, base)
    np.testing.assert_array_equal(alpha, np.ones_like(base))
    _, alpha = apply_modulation(stats, base, "aem", clip=(0.8, 1.25))
    assert alpha.min() >= 0.8 and alpha.max() <= 1.25
    adv, _ = apply_modulation(stats, base, "aem", renormalize="scale")
    assert np.sqrt(np.mean(adv**2)) == pytest.approx(np.sqrt(np.mean(base**2)))
    assert np.all(np.sign(adv) == np.sign(base))
    adv, _ = apply_modulation(stats, base, "aem", renormalize="standardize")
    assert adv.mean() == pytest.approx(0.0, abs=1e-12) and adv.std() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="method"):
        apply_modulation(stats, base, "aem2")


def test_rows_and_torch_inputs():
    rows = []
    for traj, ents in enumerate([[0.2, 0.4], [1.2]]):
        for turn, hbar in enumerate(ents):
            rows.append(Row([1], [2, 3], np.zeros(2, np.float32), np.array([hbar - 0.1, hbar + 0.1], np.float32),
                            0.0, turn == len(ents) - 1, 0, traj, turn, "t"))
    base = np.array([1.0, 1.0, -1.0])
    adv_rows, alpha_rows = apply_modulation(rows, base, "aem")
    np.testing.assert_allclose(alpha_rows, aem_alpha([0.2, 0.4, 1.2], [0, 0, 0]), atol=1e-6)
    adv_t, alpha_t = apply_modulation(rows, torch.tensor(base, dtype=torch.float32), "aem")
    assert isinstance(adv_t, torch.Tensor) and adv_t.dtype == torch.float32
    np.testing.assert_allclose(adv_t.numpy(), adv_rows, atol=1e-6)
    # an empty response among them: Hbar 0, like Row.mean_entropy
    rows.append(Row([1], [], np.zeros(0, np.float32), np.zeros(0, np.float32), 0.0, True, 1, 9, 0, "t"))
    np.testing.assert_allclose(ResponseStats.from_rows(rows).mean_entropy, [r.mean_entropy for r in rows], atol=1e-6)
    a = aem_alpha(torch.tensor([0.2, 0.7, 1.2], dtype=torch.float64), torch.tensor([0, 0, 0]))
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float64
    np.testing.assert_allclose(a.numpy(), [1.5194412, 0.9215877, 0.5589712], atol=1e-7)


def test_response_mean_entropy_from_padded_tensors():
    ent = torch.tensor([[1.0, 2.0, float("nan")], [3.0, float("nan"), float("nan")], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    h = response_mean_entropy(ent, mask)
    assert isinstance(h, torch.Tensor)
    np.testing.assert_allclose(h.numpy(), [1.5, 3.0, 0.0])
    np.testing.assert_allclose(response_mean_entropy(ent.numpy(), mask.numpy()), [1.5, 3.0, 0.0])


# ---------------------------------------------------------------- EMPG


def test_empg_hand_computed_and_zero_batch_mean():
    # traj 0: turns with Hbar 0, 1; traj 1: one turn with Hbar 0.5; base advantages 1, 1, -1
    # Hnorm (batch) 0, 1, 0.5; g = (1, e^-1, e^-.5) / 0.6581367 = 1.5194412, 0.5589712, 0.9215877
    # f: traj 0 turn 0 -> next Hnorm 1 -> e^-1 = 0.3678794; last turns -> 0
    # A = 1.5194412 + 0.05 * 0.3678794, 0.5589712, -0.9215877 = 1.5378352, 0.5589712, -0.9215877
    # batch mean 0.3917396 -> A = 1.1460956, 0.1672316, -1.3133272
    stats = ResponseStats.from_arrays([0.0, 1.0, 0.5], [0, 0, 1], [0, 0, 1], [0, 1, 0])
    adv, g = apply_modulation(stats, np.array([1.0, 1.0, -1.0]), "empg")
    np.testing.assert_allclose(g, [1.5194412, 0.5589712, 0.9215877], atol=1e-7)
    np.testing.assert_allclose(adv, [1.1460956, 0.1672316, -1.3133272], atol=1e-7)
    assert adv.sum() == pytest.approx(0.0, abs=1e-12)


def test_empg_zero_mean_on_random_batch_and_next_turn_lookup():
    stats, base = random_batch(8)
    adv, g = apply_modulation(stats, base, "empg")
    assert adv.mean() == pytest.approx(0.0, abs=1e-12)
    assert g.mean() == pytest.approx(1.0, abs=1e-12)
    # rows in any order: the bonus follows (traj, turn + 1), not the row order
    perm = np.random.default_rng(0).permutation(len(base))
    shuffled = ResponseStats(
        stats.mean_entropy[perm], stats.group_ids[perm], stats.traj_ids[perm], stats.turns[perm], stats.num_tokens[perm]
    )
    adv_p, _ = apply_modulation(shuffled, base[perm], "empg")
    np.testing.assert_allclose(adv_p, adv[perm], atol=1e-12)


def test_empg_next_turn_lookup_with_traj_ids_unique_only_inside_a_group():
    """Like scope="trajectory", EMPG's future bonus must not mix equal traj ids of different groups."""
    stats, base = random_batch(9, groups=3, trajs=4)
    local = ResponseStats(  # the same batch with traj ids restarting at 0 in every group
        stats.mean_entropy, stats.group_ids, stats.traj_ids % 4, stats.turns, stats.num_tokens
    )
    np.testing.assert_allclose(apply_modulation(local, base, "empg")[0], apply_modulation(stats, base, "empg")[0])


# ---------------------------------------------------------------- entropy-drift result


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max())
    return z / z.sum()


def _entropy(theta: np.ndarray) -> float:
    p = _softmax(theta)
    return float(-(p * np.log(p)).sum())


def _natural_gradient_log_pi(theta: np.ndarray, y: int) -> np.ndarray:
    """F^+ grad_theta log pi(y), F = diag(pi) - pi pi^T the Fisher matrix of the softmax."""
    p = _softmax(theta)
    fisher = np.diag(p) - np.outer(p, p)
    grad = -p.copy()
    grad[y] += 1.0
    # rcond well above rounding: F's null direction (the constant vector) must be cut, else a
    # ~1e15 constant shift swamps theta's digits; F's smallest real eigenvalue is ~ min pi >> 1e-10
    return np.linalg.pinv(fisher, rcond=1e-10, hermitian=True) @ grad


THETA = np.array([2.0, 1.2, 0.3, -0.4, -1.0, 0.8])


def test_natural_gradient_of_log_pi_is_indicator_over_pi():
    """Derivation (the categorical "bandit over K candidate responses" of the spec).

    pi = softmax(theta), grad log pi(y) = e_y - pi, Fisher F = diag(pi) - pi pi^T (null space: the
    constant vector 1, which leaves softmax unchanged). Since F e_y = pi_y (e_y - pi), the natural
    gradient of log pi(y) is e_y / pi_y up to a constant shift - the indicator *divided by pi_y*,
    not the bare indicator e_y. (e_y itself is the natural gradient of pi_y log pi(y), i.e. the
    expected-objective NPG step per unit advantage, theta += eta * A; with a single sample the
    importance weight 1/pi_y remains.) A step with the bare e_y changes H by pi_y times the
    formula below, which this test also shows.
    """
    p = _softmax(THETA)
    for y in range(len(THETA)):
        d = _natural_gradient_log_pi(THETA, y)
        shift = d - np.eye(len(THETA))[y] / p[y]
        assert np.ptp(shift) < 1e-8  # equal up to a constant vector


@pytest.mark.parametrize("a_sign", [1.0, -1.0])
def test_entropy_drift_formula_matches_finite_difference(a_sign: float):
    """One natural-gradient step theta += eta * A * F^+ grad log pi(y) changes the entropy by
    dH = eta * A * (S(y) - H) + O(eta^2), S(y) = -log pi(y) (AEM, arXiv 2605.00425).

    Proof: dH/dtheta_k = -pi_k (log pi_k + H); with the step direction e_y / pi_y (up to a shift,
    which is orthogonal to this gradient since sum_k pi_k (log pi_k + H) = 0) the first-order change
    is eta * A * (-(log pi_y + H)) = eta * A * (S(y) - H).
    """
    p, h0, eta = _softmax(THETA), _entropy(THETA), 1e-6
    for y in range(len(THETA)):
        for a in (0.5 * a_sign, 2.0 * a_sign):
            d = _natural_gradient_log_pi(THETA, y)
            fd = _entropy(THETA + eta * a * d) - h0
            formula = eta * a * (-np.log(p[y]) - h0)
            assert fd == pytest.approx(formula, rel=1e-3, abs=1e-13)
            # the bare indicator step moves H by pi_y times as much
            fd_bare = _entropy(THETA + eta * a * np.eye(len(THETA))[y]) - h0
            assert fd_bare == pytest.approx(p[y] * formula, rel=1e-3, abs=1e-13)


def test_entropy_drift_sign_table():
    """A>0 & S>H raises H; A>0 & S<H lowers it; A<0 & S>H lowers it; A<0 & S<H raises it."""
    p, h0, eta = _softmax(THETA), _entropy(THETA), 1e-4
    surprisal = -np.log(p)
    likely, unlikely = int(np.argmax(p)), int(np.argmin(p))
    assert surprisal[likely] < h0 < surprisal[unlikely]
    table = {(1.0, unlikely): +1, (1.0, likely): -1, (-1.0, unlikely): -1, (-1.0, likely): +1}
    for (a, y), sign in table.items():
        dh = _entropy(THETA + eta * a * _natural_gradient_log_pi(THETA, y)) - h0
        assert np.sign(dh) == sign, (a, y)


def test_expected_entropy_drift_is_minus_covariance():
    """E_y~pi[dH] = -eta * Cov_pi(log pi, A): average the single-sample finite differences."""
    p, h0, eta = _softmax(THETA), _entropy(THETA), 1e-6
    adv = np.array([1.0, -0.5, 2.0, -1.5, 0.3, -0.2])
    steps = [_entropy(THETA + eta * adv[y] * _natural_gradient_log_pi(THETA, y)) - h0 for y in range(len(p))]
    expected_fd = float(np.dot(p, steps))
    logp = np.log(p)
    cov = np.sum(p * (logp - np.sum(p * logp)) * (adv - np.sum(p * adv)))
    assert expected_fd == pytest.approx(-eta * cov, rel=1e-3)
    # the expected-objective NPG step (theta += eta * A) gives the same first-order change
    assert _entropy(THETA + eta * adv) - h0 == pytest.approx(-eta * cov, rel=1e-3)
    # AEM's lever: rescaling advantages by alpha changes Cov and so the drift; with only negative
    # advantages, up-weighting confident (likely) responses raises entropy more than uniform weights
    neg = -np.ones(len(p))
    alpha = aem_alpha(-logp, np.zeros(len(p)), range_guard=0.0)  # Hbar proxy: surprisal
    drift = lambda a: -eta * np.sum(p * (logp - np.sum(p * logp)) * (a - np.sum(p * a)))  # noqa: E731
    assert drift(neg) == pytest.approx(0.0, abs=1e-15)
    assert drift(alpha * neg) > 0


# ---------------------------------------------------------------- independent reference, edge cases


def _reference_alpha(h: list[float], scopes: list[int], lam: float, guard: float, reverse: bool) -> list[float]:
    """AEM alpha written straight from the spec, one scope at a time (no eps: spans here are >= guard > 0)."""
    out = [1.0] * len(h)
    for s in set(scopes):
        idx = [i for i, x in enumerate(scopes) if x == s]
        lo, hi = min(h[i] for i in idx), max(h[i] for i in idx)
        if hi - lo < guard:
            continue
        w = {i: np.exp(-lam * ((1 - (h[i] - lo) / (hi - lo)) if reverse else (h[i] - lo) / (hi - lo))) for i in idx}
        mean_w = sum(w.values()) / len(idx)
        for i in idx:
            out[i] = w[i] / mean_w
    return out


def test_alpha_matches_a_plain_reference_on_random_scopes():
    rng = np.random.default_rng(11)
    for trial in range(60):
        n = int(rng.integers(1, 25))
        # every third trial draws from few values, so ties, equal-entropy scopes and guarded scopes occur
        h = rng.choice([0.5, 0.55, 1.0, 2.5], n) if trial % 3 == 0 else rng.uniform(0.0, 3.0, n)
        scopes = rng.integers(0, 4, n)
        lam, guard = float(rng.choice([0.5, 1.0, 2.0])), float(rng.choice([0.1, 0.5]))
        for direction in ("normal", "reversed"):
            got = aem_alpha(h, scopes, lam, guard, direction)
            ref = _reference_alpha(h.tolist(), scopes.tolist(), lam, guard, direction == "reversed")
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_range_exactly_at_the_guard_acts_and_just_below_does_not():
    # 0.625 - 0.5 = 0.125 exactly in binary: the spec's "hi - lo < guard" is false, so AEM acts
    alpha = aem_alpha([0.5, 0.625], [0, 0], range_guard=0.125)
    np.testing.assert_allclose(alpha, [2 / (1 + np.exp(-1)), 2 * np.exp(-1) / (1 + np.exp(-1))], atol=1e-7)
    np.testing.assert_array_equal(aem_alpha([0.5, 0.625 - 2**-20], [0, 0], range_guard=0.125), [1.0, 1.0])
    # a group of one trajectory of one turn and a group of equal entropies: alpha 1
    np.testing.assert_array_equal(aem_alpha([1.3], [0]), [1.0])
    np.testing.assert_array_equal(aem_alpha([0.9] * 4, [0] * 4, range_guard=0.0), [1.0] * 4)


def test_zero_base_advantages_stay_zero():
    stats, _ = random_batch(12)
    for method in ("aem", "none"):
        adv, _ = apply_modulation(stats, np.zeros(len(stats.mean_entropy)), method)
        np.testing.assert_array_equal(adv, 0.0)


def test_empty_batch_gives_empty_outputs():
    for method in ("none", "aem", "empg"):
        adv, alpha = apply_modulation([], np.zeros(0), method)
        assert adv.shape == (0,) and alpha.shape == (0,)
        adv_t, _ = apply_modulation([], torch.zeros(0), method)
        assert isinstance(adv_t, torch.Tensor) and adv_t.shape == (0,)


def test_non_finite_base_advantages_are_refused():
    stats = ResponseStats.from_arrays([0.1, 1.0], [0, 0], [0, 1])
    for bad in (float("nan"), float("inf")):
        for method in ("none", "aem", "empg"):
            with pytest.raises(ValueError, match="base_adv contains NaN/inf"):
                apply_modulation(stats, [bad, 1.0], method)


def test_empg_refuses_non_finite_entropies_like_aem():
    # rollouts that skipped the scoring pass leave NaN entropies; EMPG returned all-NaN advantages
    stats = ResponseStats.from_arrays([float("nan"), 1.0], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="mean_entropy contains NaN/inf"):
        apply_modulation(stats, [1.0, 1.0], "empg")


def test_empg_checks_its_inputs():
    stats = ResponseStats.from_arrays([0.0, 1.0], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="base_adv has 1 entries"):
        empg_modulate(stats, np.array([1.0]))  # numpy broadcast it silently
    twice = ResponseStats.from_arrays([0.0, 1.0, 0.5], [0, 0, 0], [0, 0, 0], [0, 0, 1])
    with pytest.raises(ValueError, match="two rows for turn 0"):
        apply_modulation(twice, [1.0, 1.0, 1.0], "empg")


def test_aem_alpha_argument_checks():
    with pytest.raises(ValueError, match="num_tokens has 1 entries"):
        aem_alpha([0.0, 1.0], [0, 0], num_tokens=[3], mean_over="tokens")
    with pytest.raises(ValueError, match="clip"):
        aem_alpha([0.0, 1.0], [0, 0], clip=(2.0, 1.0))


def test_bfloat16_tensors_are_accepted():
    # a bfloat16 model's entropies / advantages: torch cannot hand bfloat16 to numpy directly
    h = torch.tensor([0.25, 1.25], dtype=torch.bfloat16)
    alpha = aem_alpha(h, [0, 0])
    assert isinstance(alpha, torch.Tensor) and alpha.dtype == torch.bfloat16
    np.testing.assert_allclose(alpha.float().numpy(), [1.4621171, 0.5378829], rtol=1e-2)
    hbar = response_mean_entropy(torch.ones(2, 3, dtype=torch.bfloat16), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    np.testing.assert_allclose(hbar.float().numpy(), [1.0, 1.0])
    stats = ResponseStats.from_arrays([0.25, 1.25], [0, 0], [0, 1])
    adv, _ = apply_modulation(stats, torch.tensor([1.0, -1.0], dtype=torch.bfloat16), "aem")
    np.testing.assert_allclose(adv.float().numpy(), [1.4621171, -0.5378829], rtol=1e-2)


def _reference_empg(h, traj, turn, base, k=1.0, k2=1.0, zeta=0.05):
    """EMPG from the spec: batch min-max, g, next-turn bonus f, zero batch mean."""
    lo, hi = min(h), max(h)
    hn = [(x - lo) / (hi - lo) for x in h]
    e = [np.exp(-k * x) for x in hn]
    g = [x / (sum(e) / len(e)) for x in e]
    nxt = {(traj[q], turn[q]): q for q in range(len(h))}
    f = [np.exp(-k2 * hn[nxt[(traj[r], turn[r] + 1)]]) if (traj[r], turn[r] + 1) in nxt else 0.0 for r in range(len(h))]
    a = [g[r] * base[r] + zeta * f[r] for r in range(len(h))]
    return [x - sum(a) / len(a) for x in a], g


def test_empg_matches_a_plain_reference():
    rng = np.random.default_rng(13)
    for _ in range(30):
        n = int(rng.integers(2, 20))
        traj = rng.integers(0, 5, n).tolist()
        turn = [traj[:i].count(t) for i, t in enumerate(traj)]
        h, base = rng.uniform(0.0, 3.0, n).tolist(), rng.normal(size=n).tolist()
        adv, g = apply_modulation(ResponseStats.from_arrays(h, [0] * n, traj, turn), base, "empg", eps=0.0)
        ref_adv, ref_g = _reference_empg(h, traj, turn, base)
        np.testing.assert_allclose(adv, ref_adv, atol=1e-12)
        np.testing.assert_allclose(g, ref_g, atol=1e-12)


def test_entropy_drift_formula_on_random_categoricals():
    """The drift result for any K and logits, not one hand-picked policy (central differences)."""
    rng = np.random.default_rng(17)
    eta = 1e-7
    for _ in range(50):
        theta = rng.normal(0.0, 1.5, int(rng.integers(2, 12)))
        y, a = int(rng.integers(len(theta))), float(rng.normal())
        step = eta * a * _natural_gradient_log_pi(theta, y)
        fd = (_entropy(theta + step) - _entropy(theta - step)) / 2
        formula = eta * a * (-np.log(_softmax(theta)[y]) - _entropy(theta))
        assert fd == pytest.approx(formula, rel=1e-4, abs=1e-15)
