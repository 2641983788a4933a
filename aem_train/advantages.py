"""Base advantage estimators: one scalar per response row (one turn of one trajectory).

Every estimator here works on flat per-row numpy arrays (one entry per :class:`~aem_train.rows.Row`)
and returns a float64 array of the same length. :func:`compute_advantages` is the convenience
entry point over a list of rows. The output is the ``A_base`` that AEM (AEM, arXiv 2605.00425)
later rescales per response in :mod:`aem_train.modulation`.

Estimators
----------
GRPO       ``A_i = (R_i - mean_G R) / (std_G R + eps)``, the same value on every turn of
           trajectory ``i``. ``std_normalize=False`` drops the division (Dr.GRPO).
RLOO       ``A_i = R_i - mean_{j != i, j in G} R_j`` (leave-one-out baseline, no std).
GiGPO      (arXiv 2505.10978) ``A = A_episode + w * A_step``. ``A_episode`` is GRPO over
           trajectory returns; ``A_step`` normalises the discounted return-to-go
           ``G_t = sum_{k>=t} gamma^(k-t) r_k`` (gamma 0.95) among the steps of the group whose
           observation is identical ("anchor state"). Anchor groups of one step get
           ``A_step = 0`` (no comparison is possible). ``w = 1``.
GAE        PPO with a per-turn value head: ``delta_t = r_t + gamma V_{t+1} - V_t``,
           ``A_t = sum_k (gamma lam)^k delta_{t+k}`` over the turns of each trajectory with
           ``V`` after the last turn = 0 (terminal: the env's final reward arrives at the last
           turn). Returns ``(advantages, returns)`` where ``returns = A + V`` are the critic's
           targets.

Group statistics count each trajectory ONCE
-------------------------------------------
``R_i`` is the trajectory return (sum of all its rewards, invalid-action penalties included).
A trajectory of 10 turns contributes 10 rows but only ONE sample to its group's mean and std;
otherwise long (usually failing) trajectories would drag the baseline towards themselves
(turn-count bias, verl RFC #7244). So a 10-turn failure and a 2-turn success in one group get
exactly the advantages two 1-turn trajectories with the same returns would get.

Standard deviation: ``ddof=1`` (unbiased, as ``torch.std`` in verl/verl-agent, the code base
the AEM paper builds on) by default; groups of one trajectory get advantage 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aem_train.rows import Row

__all__ = [
    "ESTIMATORS",
    "TrajectoryTable",
    "trajectory_table",
    "discounted_returns_to_go",
    "grpo_advantages",
    "rloo_advantages",
    "gigpo_advantages",
    "gae_advantages",
    "compute_advantages",
    "compute_gae",
]

ESTIMATORS = ("grpo", "drgrpo", "rloo", "gigpo", "gae")


@dataclass(frozen=True)
class TrajectoryTable:
    """Per-trajectory view of per-row arrays; each trajectory appears once.

    ``row_traj[r]`` is the index (into the per-trajectory arrays) of row ``r``'s trajectory.
    """

    traj_keys: np.ndarray  # [n_traj] the traj id of each trajectory
    traj_group: np.ndarray  # [n_traj] group index (0..n_groups-1) of each trajectory
    traj_return: np.ndarray  # [n_traj] float64 return R_i
    row_traj: np.ndarray  # [n_rows] trajectory index of each row


def _as_1d(name: str, x: Any, n: int | None = None, dtype: Any = None) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D per-row array, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} entries but there are {n} rows; pass one per row")
    return arr


def _finite_1d(name: str, x: Any, n: int | None = None) -> np.ndarray:
    """A float64 per-row array; NaN/inf would silently poison (or, as inf - inf, zero) a whole group."""
    arr = _as_1d(name, x, n, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        row = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} contains NaN/inf at row {row}; check the env's rewards (and the critic's values)")
    return arr


def trajectory_table(
    traj_returns: Sequence[float] | np.ndarray,
    group_ids: Sequence[Hashable] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
) -> TrajectoryTable:
    """Collapse per-row arrays to one entry per trajectory, checking they are consistent.

    ``traj_returns[r]`` is the return of row ``r``'s trajectory (repeated on each of its rows).
    Raises ``ValueError`` if a trajectory's rows disagree on their group or their return, or if
    a return is NaN/inf.
    """
    ret = _finite_1d("traj_returns", traj_returns)
    n = len(ret)
    gid = _as_1d("group_ids", group_ids, n)
    tid = _as_1d("traj_ids", traj_ids, n)
    traj_keys, first, row_traj = np.unique(tid, return_index=True, return_inverse=True)
    _, group_index = np.unique(gid, return_inverse=True)
    traj_group = group_index[first]
    traj_return = ret[first]
    if np.any(group_index != traj_group[row_traj]):
        bad = tid[np.flatnonzero(group_index != traj_group[row_traj])[0]]
        raise ValueError(f"trajectory {bad!r} has rows in several groups; give each trajectory one group id")
    if not np.allclose(ret, traj_return[row_traj], rtol=0.0, atol=1e-9):
        bad = tid[np.flatnonzero(~np.isclose(ret, traj_return[row_traj], rtol=0.0, atol=1e-9))[0]]
        raise ValueError(f"trajectory {bad!r} has rows with different returns; repeat R_i on every row")
    return TrajectoryTable(traj_keys, traj_group.astype(np.int64), traj_return, row_traj.astype(np.int64))


def _group_mean_std(values: np.ndarray, groups: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group mean, std and count of ``values`` (groups = dense indices 0..G-1)."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    count = np.bincount(groups, minlength=n_groups).astype(np.float64)
    mean = np.bincount(groups, weights=values, minlength=n_groups) / np.maximum(count, 1.0)
    sq = np.bincount(groups, weights=(values - mean[groups]) ** 2, minlength=n_groups)
    std = np.sqrt(sq / np.maximum(count - ddof, 1.0))
    return mean, std, count


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, with 0 where den == 0 (equal returns, eps=0): no spread means no signal."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def grpo_advantages(
    traj_returns: Sequence[float] | np.ndarray,
    group_ids: Sequence[Hashable] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    *,
    std_normalize: bool = True,
    eps: float = 1e-6,
    ddof: int = 1,
) -> np.ndarray:
    """GRPO advantage per row: ``(R_i - mean_G R) / (std_G R + eps)`` over trajectories.

    Statistics count each trajectory once (see module docstring). ``std_normalize=False`` gives
    Dr.GRPO's ``R_i - mean_G R``. Groups with a single trajectory get 0.
    """
    table = trajectory_table(traj_returns, group_ids, traj_ids)
    adv_traj = _grpo_per_traj(table.traj_return, table.traj_group, std_normalize, eps, ddof)
    return adv_traj[table.row_traj]


def _grpo_per_traj(ret: np.ndarray, group: np.ndarray, std_normalize: bool, eps: float, ddof: int) -> np.ndarray:
    mean, std, count = _group_mean_std(ret, group, ddof)
    adv = ret - mean[group]
    if std_normalize:
        adv = _safe_div(adv, std[group] + eps)
    adv[count[group] < 2] = 0.0
    return adv


def rloo_advantages(
    traj_returns: Sequence[float] | np.ndarray,
    group_ids: Sequence[Hashable] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
) -> np.ndarray:
    """RLOO advantage per row: ``R_i - mean_{j != i} R_j`` over the other trajectories of the group.

    Equals ``N/(N-1) * (R_i - mean_G R)``. Groups with a single trajectory get 0.
    """
    table = trajectory_table(traj_returns, group_ids, traj_ids)
    ret, group = table.traj_return, table.traj_group
    n_groups = int(group.max()) + 1 if len(group) else 0
    count = np.bincount(group, minlength=n_groups).astype(np.float64)
    total = np.bincount(group, weights=ret, minlength=n_groups)
    others = count[group] - 1.0
    adv = np.where(others > 0, ret - (total[group] - ret) / np.maximum(others, 1.0), 0.0)
    return adv[table.row_traj]


def _traj_order(traj_ids: np.ndarray, turns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (trajectory, turn) and the start of each trajectory's run in that order."""
    _, tix = np.unique(traj_ids, return_inverse=True)
    order = np.lexsort((turns, tix))
    st = tix[order]
    if len(order) > 1:
        same = (st[1:] == st[:-1]) & (turns[order][1:] == turns[order][:-1])
        if np.any(same):
            r = order[1:][same][0]
            raise ValueError(f"trajectory {traj_ids[r]!r} has two rows for turn {turns[r]}; turns must be unique")
    starts = np.r_[True, st[1:] != st[:-1]] if len(order) else np.zeros(0, bool)
    return order, starts


def discounted_returns_to_go(
    rewards: Sequence[float] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    turns: Sequence[int] | np.ndarray,
    gamma: float = 0.95,
) -> np.ndarray:
    """``G_t = sum_{k>=t} gamma^(k-t) r_k`` per row, within each trajectory ordered by turn."""
    r = _finite_1d("rewards", rewards)
    tid = _as_1d("traj_ids", traj_ids, len(r))
    t = _as_1d("turns", turns, len(r), dtype=np.int64)
    order, starts = _traj_order(tid, t)
    out = np.zeros(len(r))
    running = 0.0
    # walk backwards; a trajectory's last row (next row starts a new one) resets the sum
    ends = np.r_[starts[1:], True] if len(order) else starts
    for k in range(len(order) - 1, -1, -1):
        if ends[k]:
            running = 0.0
        running = r[order[k]] + gamma * running
        out[order[k]] = running
    return out


def gigpo_advantages(
    rewards: Sequence[float] | np.ndarray,
    group_ids: Sequence[Hashable] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    turns: Sequence[int] | np.ndarray,
    observations: Sequence[Hashable] | np.ndarray,
    *,
    traj_returns: Sequence[float] | np.ndarray | None = None,
    gamma: float = 0.95,
    step_weight: float = 1.0,
    std_normalize: bool = True,
    eps: float = 1e-6,
    ddof: int = 1,
) -> np.ndarray:
    """GiGPO (arXiv 2505.10978): episode-level GRPO plus ``step_weight`` x step-level anchor advantage.

    ``rewards`` are per-turn env rewards. ``traj_returns`` default to the sum of each trajectory's
    rewards. Anchor groups are rows with equal ``(group_id, observation)``; within each, the
    discounted return-to-go is normalised like GRPO (mean, and std unless ``std_normalize`` is
    False). Anchor groups of one row get ``A_step = 0``.
    """
    r = _finite_1d("rewards", rewards)
    n = len(r)
    gid = _as_1d("group_ids", group_ids, n)
    tid = _as_1d("traj_ids", traj_ids, n)
    obs = list(observations)
    if len(obs) != n:
        raise ValueError(f"observations has {len(obs)} entries but there are {n} rows; pass one per row")
    if traj_returns is None:
        _, tix = np.unique(tid, return_inverse=True)
        traj_returns = np.bincount(tix, weights=r)[tix]
    if n == 0:
        return np.zeros(0)
    a_episode = grpo_advantages(traj_returns, gid, tid, std_normalize=std_normalize, eps=eps, ddof=ddof)
    g = discounted_returns_to_go(r, tid, turns, gamma)
    _, gix = np.unique(gid, return_inverse=True)
    # anchor state = (group, observation): identical observations in different tasks never compare
    anchor_index: dict[tuple[int, Hashable], int] = {}
    keys = zip(gix.tolist(), obs)
    anchor = np.fromiter((anchor_index.setdefault(key, len(anchor_index)) for key in keys), np.int64, n)
    mean, std, count = _group_mean_std(g, anchor, ddof)
    a_step = g - mean[anchor]
    if std_normalize:
        a_step = _safe_div(a_step, std[anchor] + eps)
    a_step[count[anchor] < 2] = 0.0
    return a_episode + step_weight * a_step


def gae_advantages(
    rewards: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    turns: Sequence[int] | np.ndarray,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn-level GAE: ``(advantages, returns)`` per row, ``returns = advantages + values``.

    ``values[r]`` is the critic's value of row ``r``'s prompt (the observation before the
    response). The value after a trajectory's last row is 0: every trajectory is treated as
    terminated (a turn-limit truncation is a failure in these envs, not a bootstrap point).
    """
    r = _finite_1d("rewards", rewards)
    v = _finite_1d("values", values, len(r))
    tid = _as_1d("traj_ids", traj_ids, len(r))
    t = _as_1d("turns", turns, len(r), dtype=np.int64)
    order, starts = _traj_order(tid, t)
    ends = np.r_[starts[1:], True] if len(order) else starts
    adv = np.zeros(len(r))
    running = 0.0
    next_value = 0.0
    for k in range(len(order) - 1, -1, -1):
        i = order[k]
        if ends[k]:
            running, next_value = 0.0, 0.0
        delta = r[i] + gamma * next_value - v[i]
        running = delta + gamma * lam * running
        adv[i] = running
        next_value = v[i]
    return adv, adv + v


def _row_arrays(rows: Sequence[Row]) -> dict[str, np.ndarray]:
    if not rows:
        raise ValueError("compute_advantages got no rows; pass at least one Row")
    return {
        "reward": np.array([row.reward for row in rows], dtype=np.float64),
        "group_id": np.array([row.group_id for row in rows]),
        "traj_id": np.array([row.traj_id for row in rows]),
        "turn": np.array([row.turn for row in rows], dtype=np.int64),
    }


def _returns_of(rows: Sequence[Row], arrays: dict[str, np.ndarray], source: str) -> np.ndarray:
    if source == "rewards":
        _, tix = np.unique(arrays["traj_id"], return_inverse=True)
        return np.bincount(tix, weights=arrays["reward"])[tix]
    if source == "field":
        return np.array([row.traj_return for row in rows], dtype=np.float64)
    raise ValueError(f"return_source={source!r} is not one of 'rewards', 'field'")


def compute_advantages(rows: Sequence[Row], estimator: str = "grpo", **opts: Any) -> np.ndarray:
    """Base advantage per row (same order as ``rows``) with the named estimator.

    ``estimator``: ``grpo``, ``drgrpo`` (GRPO without std division), ``rloo``, ``gigpo`` or
    ``gae``. ``return_source``: ``"rewards"`` (default: R_i = sum of the trajectory's row
    rewards, so every row of a trajectory must be in ``rows``) or ``"field"`` (``Row.traj_return``,
    for batches that dropped some rows). ``gae`` reads ``values`` from the option of that name
    or from ``row.extras["value"]``; use :func:`compute_gae` to also get critic targets.
    Other options are passed to the estimator function.
    """
    if estimator == "gae":
        return compute_gae(rows, **opts)[0]
    arrays = _row_arrays(rows)
    returns = _returns_of(rows, arrays, opts.pop("return_source", "rewards"))
    if estimator == "grpo":
        return grpo_advantages(returns, arrays["group_id"], arrays["traj_id"], **opts)
    if estimator == "drgrpo":
        return grpo_advantages(returns, arrays["group_id"], arrays["traj_id"], std_normalize=False, **opts)
    if estimator == "rloo":
        return rloo_advantages(returns, arrays["group_id"], arrays["traj_id"], **opts)
    if estimator == "gigpo":
        obs = [row.observation for row in rows]
        return gigpo_advantages(
            arrays["reward"], arrays["group_id"], arrays["traj_id"], arrays["turn"], obs, traj_returns=returns, **opts
        )
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")


def compute_gae(
    rows: Sequence[Row], values: Sequence[float] | np.ndarray | None = None, **opts: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Turn-level GAE over rows: ``(advantages, returns)``; values default to ``row.extras["value"]``."""
    arrays = _row_arrays(rows)
    if values is None:
        missing = [i for i, row in enumerate(rows) if "value" not in row.extras]
        if missing:
            raise ValueError(f"row {missing[0]} has no extras['value']; run the critic or pass values=")
        values = np.array([float(row.extras["value"]) for row in rows])
    return gae_advantages(arrays["reward"], values, arrays["traj_id"], arrays["turn"], **opts)
