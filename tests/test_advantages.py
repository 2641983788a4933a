"""Base advantage estimators: hand-computed numbers, one-sample-per-trajectory group statistics."""

from __future__ import annotations

import numpy as np
import pytest

from aem_train.advantages import (
    compute_advantages,
    compute_gae,
    discounted_returns_to_go,
    gae_advantages,
    gigpo_advantages,
    grpo_advantages,
    rloo_advantages,
)
from aem_train.rows import Row

S2 = 1 / np.sqrt(2)  # any two-trajectory group: GRPO (ddof=1) gives +-1/sqrt(2)


def make_traj(group: int, traj: int, rewards: list[float], obs: list[str] | None = None, values=None) -> list[Row]:
    rows = []
    for t, r in enumerate(rewards):
        rows.append(
            Row(
                prompt_ids=[1, 2],
                response_ids=[3, 4, 5],
                old_logprobs=np.full(3, -0.5, np.float32),
                token_entropy=np.full(3, 1.0, np.float32),
                reward=r,
                done=t == len(rewards) - 1,
                group_id=group,
                traj_id=traj,
                turn=t,
                task_id=f"task-{group}",
                observation=obs[t] if obs else f"obs-{traj}-{t}",
                traj_return=float(sum(rewards)),
                extras={} if values is None else {"value": values[t]},
            )
        )
    return rows


def test_grpo_hand_computed_three_trajectories():
    # returns 10, 0, -0.1: mean 3.3, deviations 6.7, -3.3, -3.4,
    # unbiased var = (44.89 + 10.89 + 11.56) / 2 = 33.67, std = 5.802586
    adv = grpo_advantages([10.0, 0.0, -0.1], [0, 0, 0], [0, 1, 2], eps=0.0)
    np.testing.assert_allclose(adv, [6.7 / 5.802586, -3.3 / 5.802586, -3.4 / 5.802586], rtol=1e-6)
    np.testing.assert_allclose(adv, [1.154658, -0.568711, -0.585946], atol=1e-6)
    # population std (ddof=0): var = 67.34 / 3 = 22.44667, std = 4.737792
    adv0 = grpo_advantages([10.0, 0.0, -0.1], [0, 0, 0], [0, 1, 2], eps=0.0, ddof=0)
    np.testing.assert_allclose(adv0, [6.7 / 4.737792, -3.3 / 4.737792, -3.4 / 4.737792], rtol=1e-6)


def test_drgrpo_and_rloo_hand_computed():
    ret, g, t = [10.0, 0.0, -0.1], [0, 0, 0], [0, 1, 2]
    np.testing.assert_allclose(grpo_advantages(ret, g, t, std_normalize=False), [6.7, -3.3, -3.4], atol=1e-12)
    # leave-one-out: 10 - (0 - 0.1)/2, 0 - (10 - 0.1)/2, -0.1 - (10 + 0)/2
    np.testing.assert_allclose(rloo_advantages(ret, g, t), [10.05, -4.95, -5.1], atol=1e-12)


def test_group_statistics_count_each_trajectory_once():
    # group 0: a 10-turn failure (ten -0.1 penalties, R = -1) and a 2-turn success (R = 10)
    long_rows = make_traj(0, 0, [-0.1] * 10) + make_traj(0, 1, [0.0, 10.0])
    # the same returns as 1-turn trajectories
    short_rows = make_traj(0, 0, [-1.0]) + make_traj(0, 1, [10.0])
    for est in ("grpo", "drgrpo", "rloo"):
        a_long = compute_advantages(long_rows, est)
        a_short = compute_advantages(short_rows, est)
        assert np.allclose(a_long[:10], a_short[0]) and np.allclose(a_long[10:], a_short[1]), est
    a = compute_advantages(long_rows, "grpo", eps=0.0)
    np.testing.assert_allclose(a, [-S2] * 10 + [S2] * 2, atol=1e-9)
    np.testing.assert_allclose(compute_advantages(long_rows, "drgrpo"), [-5.5] * 10 + [5.5] * 2, atol=1e-9)
    # per-row statistics would have given the success a larger magnitude than the failure
    per_row_mean = np.mean([-1.0] * 10 + [10.0] * 2)
    assert abs(10.0 - per_row_mean) > abs(-1.0 - per_row_mean)


def test_groups_are_independent_and_singletons_get_zero():
    rows = make_traj(0, 0, [10.0]) + make_traj(0, 1, [0.0]) + make_traj(1, 2, [5.0, 5.0])
    rows += make_traj(2, 3, [0.0]) + make_traj(2, 4, [10.0])
    a = compute_advantages(rows, "grpo", eps=0.0)
    np.testing.assert_allclose(a, [S2, -S2, 0.0, 0.0, -S2, S2], atol=1e-9)
    assert np.all(compute_advantages(rows, "rloo")[2:4] == 0.0)


def test_equal_returns_give_zero_not_nan():
    for eps in (1e-6, 0.0):
        a = grpo_advantages([1.0, 1.0, 1.0], [0, 0, 0], [0, 1, 2], eps=eps)
        assert np.all(a == 0.0)


def test_return_source_field_survives_dropped_rows():
    rows = make_traj(0, 0, [0.0, 0.0, 10.0]) + make_traj(0, 1, [0.0, 0.0])
    kept = [rows[0], rows[3], rows[4]]  # the success's last two rows were dropped
    a = compute_advantages(kept, "drgrpo", return_source="field")
    np.testing.assert_allclose(a, [5.0, -5.0, -5.0])


def test_inconsistent_inputs_raise():
    with pytest.raises(ValueError, match="several groups"):
        grpo_advantages([1.0, 1.0], [0, 1], [7, 7])
    with pytest.raises(ValueError, match="different returns"):
        grpo_advantages([1.0, 2.0], [0, 0], [7, 7])
    with pytest.raises(ValueError, match="unknown estimator"):
        compute_advantages(make_traj(0, 0, [1.0]), "ppo2")
    with pytest.raises(ValueError, match="extras"):
        compute_advantages(make_traj(0, 0, [1.0]), "gae")


def test_discounted_returns_to_go_any_row_order():
    # trajectory 0: rewards 0, 0, 10 -> 9.025, 9.5, 10; trajectory 1: 5, 0 -> 5, 0 (rows shuffled)
    g = discounted_returns_to_go([10.0, 0.0, 0.0, 0.0, 5.0], [0, 1, 0, 0, 1], [2, 1, 0, 1, 0], gamma=0.95)
    np.testing.assert_allclose(g, [10.0, 0.0, 9.025, 9.5, 5.0])


def test_gigpo_hand_computed():
    # traj 1: s0 -> s1, rewards 0, 10 (R = 10); G = 9.5, 10
    # traj 2: s0 -> s2 -> s1, rewards -0.1, 0, 0 (R = -0.1); G = -0.1, 0, 0
    # group 1 also visits "s0" but is another task: never compared with group 0
    rows = (
        make_traj(0, 1, [0.0, 10.0], ["s0", "s1"])
        + make_traj(0, 2, [-0.1, 0.0, 0.0], ["s0", "s2", "s1"])
        + make_traj(1, 3, [0.0], ["s0"])
    )
    # no std: episode +-5.05; anchor s0: 9.5, -0.1 -> +-4.8; s1: 10, 0 -> +-5; s2 singleton -> 0
    a = compute_advantages(rows, "gigpo", std_normalize=False)
    np.testing.assert_allclose(a, [9.85, 10.05, -9.85, -5.05, -10.05, 0.0], atol=1e-9)
    # with std, every pair becomes +-1/sqrt(2)
    a = compute_advantages(rows, "gigpo", eps=0.0)
    np.testing.assert_allclose(a, [2 * S2, 2 * S2, -2 * S2, -S2, -2 * S2, 0.0], atol=1e-9)
    # step_weight scales only the step part
    a = compute_advantages(rows, "gigpo", std_normalize=False, step_weight=0.5)
    np.testing.assert_allclose(a, [5.05 + 2.4, 5.05 + 2.5, -5.05 - 2.4, -5.05, -5.05 - 2.5, 0.0], atol=1e-9)


def test_gigpo_all_singleton_anchors_equals_grpo():
    rows = make_traj(0, 0, [0.0, 10.0]) + make_traj(0, 1, [0.0, 0.0, 0.0])  # unique observations
    np.testing.assert_allclose(compute_advantages(rows, "gigpo"), compute_advantages(rows, "grpo"))


def test_gae_hand_computed():
    # rewards 0, -0.1, 10; values 1, 2, 5; gamma 0.9, lam 0.8 (gamma*lam = 0.72)
    # delta2 = 10 - 5 = 5; delta1 = -0.1 + 0.9*5 - 2 = 2.4; delta0 = 0 + 0.9*2 - 1 = 0.8
    # A2 = 5; A1 = 2.4 + 0.72*5 = 6.0; A0 = 0.8 + 0.72*6 = 5.12
    adv, ret = gae_advantages([0.0, -0.1, 10.0], [1.0, 2.0, 5.0], [0, 0, 0], [0, 1, 2], gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv, [5.12, 6.0, 5.0], atol=1e-12)
    np.testing.assert_allclose(ret, [6.12, 8.0, 10.0], atol=1e-12)


def test_gae_limits_and_rows():
    rows = make_traj(0, 0, [0.0, -0.1, 10.0], values=[1.0, 2.0, 5.0]) + make_traj(0, 1, [0.0, 0.0], values=[3.0, 4.0])
    # lam = 1: returns are the discounted Monte-Carlo returns-to-go, per trajectory
    adv, ret = compute_gae(rows, gamma=0.9, lam=1.0)
    np.testing.assert_allclose(ret, [-0.09 + 9.0 * 0.9, -0.1 + 9.0, 10.0, 0.0, 0.0], atol=1e-12)
    # lam = 0: one-step TD errors
    adv0, _ = compute_gae(rows, gamma=0.9, lam=0.0)
    np.testing.assert_allclose(adv0, [0.8, 2.4, 5.0, 0.9 * 4.0 - 3.0, -4.0], atol=1e-12)
    np.testing.assert_allclose(compute_advantages(rows, "gae", gamma=0.9, lam=0.0), adv0)


# ---------------------------------------------------------------- independent reference, edge cases


def _random_batch(rng: np.random.Generator) -> dict[str, list]:
    """Trajectories of 1-5 turns in up to 3 groups, rows shuffled; observations repeat (anchor states)."""
    cols: dict[str, list] = {"rew": [], "group": [], "traj": [], "turn": [], "obs": []}
    for t in range(int(rng.integers(1, 10))):
        g = int(rng.integers(0, 3))
        for k in range(int(rng.integers(1, 6))):
            cols["rew"].append(float(rng.choice([0.0, -0.1, 10.0])))
            cols["group"].append(g)
            cols["traj"].append(100 + t)
            cols["turn"].append(k)
            cols["obs"].append(f"s{int(rng.integers(0, 3))}")
    perm = rng.permutation(len(cols["rew"]))
    return {k: [v[i] for i in perm] for k, v in cols.items()}


def _ref_returns(b: dict[str, list]) -> list[float]:
    return [sum(r for r, t in zip(b["rew"], b["traj"]) if t == traj) for traj in b["traj"]]


def _ref_group_norm(x: float, peers: list[float], eps: float = 1e-6) -> float:
    """(x - mean) / (std_ddof1 + eps) over ``peers``; 0 for fewer than two."""
    if len(peers) < 2:
        return 0.0
    mu = sum(peers) / len(peers)
    return (x - mu) / (np.sqrt(sum((p - mu) ** 2 for p in peers) / (len(peers) - 1)) + eps)


def _ref_grpo(b: dict[str, list]) -> list[float]:
    ret = dict(zip(b["traj"], _ref_returns(b)))  # one sample per trajectory
    grp = dict(zip(b["traj"], b["group"]))
    return [_ref_group_norm(ret[t], [ret[u] for u in ret if grp[u] == grp[t]]) for t in b["traj"]]


def _ref_rloo(b: dict[str, list]) -> list[float]:
    ret = dict(zip(b["traj"], _ref_returns(b)))
    grp = dict(zip(b["traj"], b["group"]))
    out = []
    for t in b["traj"]:
        others = [ret[u] for u in ret if grp[u] == grp[t] and u != t]
        out.append(ret[t] - sum(others) / len(others) if others else 0.0)
    return out


def _ref_gigpo(b: dict[str, list], gamma: float = 0.95) -> list[float]:
    n = len(b["rew"])
    rtg = [sum(gamma ** (b["turn"][q] - b["turn"][r]) * b["rew"][q] for q in range(n)
               if b["traj"][q] == b["traj"][r] and b["turn"][q] >= b["turn"][r]) for r in range(n)]
    anchor = list(zip(b["group"], b["obs"]))  # identical observation within the group
    step = [_ref_group_norm(rtg[r], [rtg[q] for q in range(n) if anchor[q] == anchor[r]]) for r in range(n)]
    return [e + s for e, s in zip(_ref_grpo(b), step)]


def _ref_gae(b: dict[str, list], values: list[float], gamma: float, lam: float) -> list[float]:
    adv = [0.0] * len(values)
    for traj in set(b["traj"]):
        idx = sorted((i for i, t in enumerate(b["traj"]) if t == traj), key=lambda i: b["turn"][i])
        running = 0.0
        for j in reversed(range(len(idx))):
            v_next = values[idx[j + 1]] if j + 1 < len(idx) else 0.0
            running = b["rew"][idx[j]] + gamma * v_next - values[idx[j]] + gamma * lam * running
            adv[idx[j]] = running
    return adv


def test_estimators_match_plain_references_on_random_batches():
    rng = np.random.default_rng(21)
    for _ in range(40):
        b = _random_batch(rng)
        ret = _ref_returns(b)
        np.testing.assert_allclose(grpo_advantages(ret, b["group"], b["traj"]), _ref_grpo(b), atol=1e-7)
        np.testing.assert_allclose(rloo_advantages(ret, b["group"], b["traj"]), _ref_rloo(b), atol=1e-12)
        got = gigpo_advantages(b["rew"], b["group"], b["traj"], b["turn"], b["obs"])  # gamma 0.95, weight 1
        np.testing.assert_allclose(got, _ref_gigpo(b), atol=1e-7)
        values = rng.normal(size=len(ret)).tolist()
        for gamma, lam in ((1.0, 1.0), (0.95, 0.95), (0.9, 0.0)):
            adv, target = gae_advantages(b["rew"], values, b["traj"], b["turn"], gamma=gamma, lam=lam)
            ref = _ref_gae(b, values, gamma, lam)
            np.testing.assert_allclose(adv, ref, atol=1e-12)
            np.testing.assert_allclose(target, np.array(ref) + values, atol=1e-12)


def test_empty_inputs_give_empty_outputs():
    assert grpo_advantages([], [], []).shape == (0,)
    assert rloo_advantages([], [], []).shape == (0,)
    assert gigpo_advantages([], [], [], [], []).shape == (0,)
    assert all(x.shape == (0,) for x in gae_advantages([], [], [], []))
    with pytest.raises(ValueError, match="no rows"):
        compute_advantages([], "grpo")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_rewards_and_values_are_refused(bad: float):
    # inf returns silently zeroed their whole group; NaN ones were reported as "different returns"
    with pytest.raises(ValueError, match="traj_returns contains NaN/inf"):
        grpo_advantages([1.0, bad, 0.0], [0, 0, 0], [0, 1, 2])
    with pytest.raises(ValueError, match="traj_returns contains NaN/inf"):
        rloo_advantages([1.0, bad, 0.0], [0, 0, 0], [0, 1, 2])
    with pytest.raises(ValueError, match="rewards contains NaN/inf"):
        gigpo_advantages([1.0, bad], [0, 0], [0, 1], [0, 0], ["a", "a"])
    with pytest.raises(ValueError, match="rewards contains NaN/inf"):
        discounted_returns_to_go([bad, 0.0], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="rewards contains NaN/inf"):
        gae_advantages([bad, 0.0], [0.0, 0.0], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="values contains NaN/inf"):
        gae_advantages([1.0, 0.0], [bad, 0.0], [0, 0], [0, 1])
