"""Response-level advantage modulation: AEM (AEM, arXiv 2605.00425) and EMPG (arXiv 2509.09265).

Both are pure post-processors of a base advantage (one scalar per response = one turn of one
trajectory, see :mod:`aem_train.advantages`); they need only each response's mean token
entropy from the old-policy forward pass. No trainer state, no extra loss or forward pass.
``aem_alpha``, ``response_mean_entropy`` and ``apply_modulation`` accept numpy arrays or torch
tensors and return the same kind; ``empg_modulate`` is numpy in, numpy out.

AEM, per normalisation scope S (default: the group of N trajectories of one task)::

    Hbar[r] = mean token entropy of response r            (length-normalised confidence proxy)
    lo, hi  = min_S Hbar, max_S Hbar
    hi - lo < range_guard            ->  alpha[r] = 1     (don't act on noise)
    otherwise  Htil[r] = (Hbar[r] - lo) / (hi - lo + eps)             in [0, 1]
               w[r]    = exp(-lam * Htil[r])     ("reversed": exp(-lam * (1 - Htil[r])))
               alpha[r] = w[r] / mean_S w
    A_aem[r] = alpha[r] * A_base[r]                        (same scalar on every token of r)

Properties: mean_S alpha = 1; alpha > 0 so no advantage changes sign; confident (low-entropy)
responses get alpha > 1; with lam = 1, max/min alpha <= e. Why it works: a natural-gradient
step on ``A log pi(y)`` changes the response entropy by ``eta * A * (S(y) - H)`` (advantage
times relative surprisal), so scaling confident responses' advantages up and uncertain ones'
down raises entropy while negatives dominate (early training) and lowers it once positives
dominate - an exploration-to-exploitation schedule with no schedule.

Choices the source leaves open (all options here; defaults in brackets):
- ``eps`` in the min-max denominator [1e-8]; with the range guard active it only matters
  when ``range_guard=0``.
- mean of ``w`` over responses or over tokens (``mean_over="responses"|"tokens"``) ["responses"];
  "tokens" weights each response by its length so the token-average of alpha is 1.
- clipping of alpha (``clip=(lo, hi)``) [None]; applied after normalisation, not renormalised.
- re-normalising the advantages after modulation (``renormalize``) ["none"]; "scale" rescales
  the batch by one positive scalar so its RMS matches the base advantages' (signs kept),
  "standardize" re-centres and divides by the std (may flip signs of small advantages).
- ablations of the paper: ``scope`` (group | trajectory | batch), ``direction``
  (normal | reversed) and ``shuffle`` (permute alpha inside each scope).

EMPG (arXiv 2509.09265), the closest relative, with batch-wide statistics::

    Hnorm[r] = (Hbar[r] - min_B Hbar) / (max_B Hbar - min_B Hbar + eps)
    g[r]     = exp(-k * Hnorm[r]) / mean_B exp(-k * Hnorm)
    f[r]     = exp(-k2 * Hnorm[next response of r's trajectory])   (0 for its last turn)
    A[r]     = g[r] * A_base[r] + zeta * f[r],  then A -= mean_B A       (k = k2 = 1, zeta = 0.05)

EMPG has no range guard; ``g`` is returned as its "alpha".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aem_train.rows import Row

__all__ = ["ResponseStats", "response_mean_entropy", "aem_alpha", "empg_modulate", "apply_modulation", "scope_ids_for"]

METHODS = ("none", "aem", "empg")
SCOPES = ("group", "trajectory", "batch")


def _to_numpy(x: Any) -> tuple[np.ndarray, Any]:
    """numpy view of ``x`` plus the torch tensor to imitate on the way out (None for numpy)."""
    if type(x).__module__.startswith("torch"):
        t = x.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()  # numpy has no bfloat16: a bfloat16 model's entropies would raise TypeError
        return t.numpy(), x
    return np.asarray(x), None


def _check_entropy(h: np.ndarray) -> None:
    if not np.all(np.isfinite(h)):
        raise ValueError("mean_entropy contains NaN/inf; check the old-policy entropy pass")


def _like(out: np.ndarray, template: Any) -> Any:
    if template is None:
        return out
    import torch

    dtype = template.dtype if template.is_floating_point() else torch.float32
    return torch.as_tensor(out).to(device=template.device, dtype=dtype)


def _dense(ids: np.ndarray) -> np.ndarray:
    return np.unique(ids, return_inverse=True)[1].reshape(-1)


def _scope_mean(values: np.ndarray, scope: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Per-row mean of ``values`` over its scope (weighted if ``weights`` given)."""
    wts = np.ones_like(values) if weights is None else weights
    num = np.bincount(scope, weights=values * wts)
    den = np.bincount(scope, weights=wts)
    return (num / den)[scope]


def response_mean_entropy(token_entropy: Any, mask: Any) -> Any:
    """Hbar per response from padded ``[B, T]`` token entropies and response mask (0 if no tokens).

    Call it on the old-policy forward pass's entropies (no gradient needed); numpy or torch.
    """
    ent, template = _to_numpy(token_entropy)
    m = _to_numpy(mask)[0].astype(np.float64)
    if ent.shape != m.shape or ent.ndim != 2:
        raise ValueError(f"token_entropy {ent.shape} and mask {m.shape} must both be [B, T]")
    total = np.where(m > 0, ent.astype(np.float64), 0.0).sum(axis=1)
    return _like(total / np.maximum(m.sum(axis=1), 1.0), template)


def aem_alpha(
    mean_entropy: Any,
    scope_ids: Any,
    lam: float = 1.0,
    range_guard: float = 0.1,
    direction: str = "normal",
    shuffle: bool = False,
    rng: np.random.Generator | int | None = None,
    eps: float = 1e-8,
    *,
    num_tokens: Any = None,
    mean_over: str = "responses",
    clip: tuple[float, float] | None = None,
) -> Any:
    """AEM weight alpha per response (formulas in the module docstring).

    ``mean_entropy[r]`` is Hbar of response r; responses with equal ``scope_ids`` are
    normalised together. ``shuffle`` permutes alpha inside each scope with ``rng`` (a
    ``np.random.Generator`` or a seed; required). ``mean_over="tokens"`` needs ``num_tokens``.
    Returns float64 numpy (or a torch tensor like ``mean_entropy``). Raises ``ValueError`` on
    NaN/inf entropies, mismatched lengths or an unknown option.
    """
    h, template = _to_numpy(mean_entropy)
    h = h.astype(np.float64).reshape(-1)
    sid_raw, _ = _to_numpy(scope_ids)
    if sid_raw.reshape(-1).shape != h.shape:
        raise ValueError(f"scope_ids has {sid_raw.size} entries but mean_entropy has {h.size}; pass one per response")
    _check_entropy(h)
    if direction not in ("normal", "reversed"):
        raise ValueError(f"direction={direction!r} is not 'normal' or 'reversed'")
    if mean_over not in ("responses", "tokens"):
        raise ValueError(f"mean_over={mean_over!r} is not 'responses' or 'tokens'")
    if clip is not None and not 0 <= clip[0] <= clip[1]:
        raise ValueError(f"clip={clip!r} must be (lo, hi) with 0 <= lo <= hi")
    if h.size == 0:
        return _like(np.zeros(0), template)
    sid = _dense(sid_raw.reshape(-1))
    weights = None
    if mean_over == "tokens":
        if num_tokens is None:
            raise ValueError("mean_over='tokens' needs num_tokens= (response lengths)")
        # a floor keeps a scope of empty responses finite (alpha is then moot: no tokens carry it)
        weights = np.maximum(_to_numpy(num_tokens)[0].astype(np.float64).reshape(-1), 1e-9)
        if weights.shape != h.shape:
            raise ValueError(f"num_tokens has {weights.size} entries but mean_entropy has {h.size}; one per response")

    n_scopes = int(sid.max()) + 1
    lo = np.full(n_scopes, np.inf)
    hi = np.full(n_scopes, -np.inf)
    np.minimum.at(lo, sid, h)
    np.maximum.at(hi, sid, h)
    span = (hi - lo)[sid]
    htil = (h - lo[sid]) / (span + eps)
    if direction == "reversed":
        htil = 1.0 - htil
    w = np.exp(-lam * htil)
    alpha = w / _scope_mean(w, sid, weights)
    alpha[span < range_guard] = 1.0
    if clip is not None:
        alpha = np.clip(alpha, clip[0], clip[1])
    if shuffle:
        alpha = _shuffle_within(alpha, sid, rng)
    return _like(alpha, template)


def _shuffle_within(values: np.ndarray, scope: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
    if rng is None:
        raise ValueError("shuffle=True needs rng= (a np.random.Generator or an int seed) for reproducibility")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out = values.copy()
    for s in np.unique(scope):
        idx = np.flatnonzero(scope == s)
        out[idx] = values[idx[gen.permutation(len(idx))]]
    return out


@dataclass(frozen=True)
class ResponseStats:
    """The per-response arrays modulation needs, one entry per response (row)."""

    mean_entropy: np.ndarray  # Hbar per response
    group_ids: np.ndarray
    traj_ids: np.ndarray
    turns: np.ndarray
    num_tokens: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> ResponseStats:
        # Row.mean_entropy for all rows at once: per-row np.mean dominated the AEM step (~40x slower)
        lengths = np.array([len(row.token_entropy) for row in rows], dtype=np.int64)
        flat = np.concatenate([row.token_entropy for row in rows] or [np.zeros(0)]).astype(np.float64)
        csum = np.concatenate([[0.0], np.cumsum(flat)])
        ends = np.cumsum(lengths)
        hbar = (csum[ends] - csum[ends - lengths]) / np.maximum(lengths, 1)
        return cls(
            mean_entropy=hbar,
            group_ids=np.array([row.group_id for row in rows]),
            traj_ids=np.array([row.traj_id for row in rows]),
            turns=np.array([row.turn for row in rows], dtype=np.int64),
            num_tokens=np.array([row.num_tokens for row in rows], dtype=np.int64),
        )

    @classmethod
    def from_arrays(
        cls,
        mean_entropy: Any,
        group_ids: Any,
        traj_ids: Any,
        turns: Any = None,
        num_tokens: Any = None,
    ) -> ResponseStats:
        h = _to_numpy(mean_entropy)[0].astype(np.float64).reshape(-1)
        n = len(h)
        turns_arr = np.zeros(n, np.int64) if turns is None else _to_numpy(turns)[0].reshape(-1)
        tok = np.ones(n, np.int64) if num_tokens is None else _to_numpy(num_tokens)[0].reshape(-1)
        g, t = _to_numpy(group_ids)[0].reshape(-1), _to_numpy(traj_ids)[0].reshape(-1)
        for name, arr in (("group_ids", g), ("traj_ids", t), ("turns", turns_arr), ("num_tokens", tok)):
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries but mean_entropy has {n}; pass one per response")
        return cls(h, g, t, turns_arr, tok)


def scope_ids_for(stats: ResponseStats, scope: str) -> np.ndarray:
    """Dense scope index per response: its group, its trajectory, or 0 for the whole batch."""
    if scope == "group":
        return _dense(stats.group_ids)
    if scope == "trajectory":
        # (group, traj) pairs so trajectory ids need only be unique inside a group
        pairs = np.stack([_dense(stats.group_ids), _dense(stats.traj_ids)], axis=1)
        return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
    if scope == "batch":
        return np.zeros(len(stats.mean_entropy), np.int64)
    raise ValueError(f"scope={scope!r} is not one of {', '.join(SCOPES)}")


def empg_modulate(
    stats: ResponseStats,
    base_adv: np.ndarray,
    scope_ids: np.ndarray | None = None,
    k: float = 1.0,
    k2: float = 1.0,
    zeta: float = 0.05,
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    """EMPG (arXiv 2509.09265): ``(advantages, g)``; statistics over the batch unless ``scope_ids`` given.

    The zero-mean step is always over the whole batch. Raises ``ValueError`` on non-finite
    entropies, a ``base_adv`` of the wrong length, or two rows for one (trajectory, turn).
    """
    h = stats.mean_entropy.astype(np.float64)
    n = len(h)
    base_adv = np.asarray(base_adv, dtype=np.float64).reshape(-1)
    if len(base_adv) != n:
        raise ValueError(f"base_adv has {len(base_adv)} entries but there are {n} responses; pass one per response")
    if n == 0:
        return np.zeros(0), np.zeros(0)
    _check_entropy(h)
    sid = np.zeros(n, np.int64) if scope_ids is None else _dense(scope_ids)
    n_scopes = int(sid.max()) + 1
    lo = np.full(n_scopes, np.inf)
    hi = np.full(n_scopes, -np.inf)
    np.minimum.at(lo, sid, h)
    np.maximum.at(hi, sid, h)
    hnorm = (h - lo[sid]) / ((hi - lo)[sid] + eps)
    e = np.exp(-k * hnorm)
    g = e / _scope_mean(e, sid, None)
    # future-clarity bonus: the clarity of the state this response led to; trajectories are
    # keyed like scope_ids_for's "trajectory" scope (traj ids need only be unique inside a group)
    traj = scope_ids_for(stats, "trajectory").tolist()
    key_to_row: dict[tuple[int, int], int] = {}
    for r, (t, turn) in enumerate(zip(traj, stats.turns)):
        if key_to_row.setdefault((t, int(turn)), r) != r:
            raise ValueError(f"trajectory {stats.traj_ids[r]!r} has two rows for turn {turn}; turns must be unique")
    f = np.zeros(n)
    for r, (t, turn) in enumerate(zip(traj, stats.turns)):
        nxt = key_to_row.get((t, int(turn) + 1))
        if nxt is not None:
            f[r] = np.exp(-k2 * hnorm[nxt])
    adv = g * base_adv + zeta * f
    return adv - adv.mean(), g


def apply_modulation(
    data: Sequence[Row] | ResponseStats,
    base_adv: Any,
    method: str = "none",
    scope: str | None = None,
    *,
    lam: float = 1.0,
    range_guard: float = 0.1,
    direction: str = "normal",
    shuffle: bool = False,
    rng: np.random.Generator | int | None = None,
    eps: float = 1e-8,
    mean_over: str = "responses",
    clip: tuple[float, float] | None = None,
    renormalize: str = "none",
    empg_k: float = 1.0,
    empg_k2: float = 1.0,
    empg_zeta: float = 0.05,
) -> tuple[Any, Any]:
    """Modulate per-response base advantages: returns ``(advantages, alpha)``, both per response.

    ``method``: "none" (alpha = 1), "aem" or "empg". ``scope`` defaults to "group" for AEM and
    "batch" for EMPG. Alpha is broadcast to tokens later, in the loss. Output kind (numpy or
    torch) follows ``base_adv``. Raises ``ValueError`` on NaN/inf entropies or advantages.
    """
    stats = data if isinstance(data, ResponseStats) else ResponseStats.from_rows(data)
    adv, template = _to_numpy(base_adv)
    adv = adv.astype(np.float64).reshape(-1)
    if len(adv) != len(stats.mean_entropy):
        raise ValueError(f"base_adv has {len(adv)} entries but there are {len(stats.mean_entropy)} responses")
    if not np.all(np.isfinite(adv)):
        raise ValueError("base_adv contains NaN/inf; check the rewards (and values) the base estimator was given")
    if method == "none":
        out, alpha = adv.copy(), np.ones_like(adv)
    elif method == "aem":
        sid = scope_ids_for(stats, scope or "group")
        alpha = aem_alpha(
            stats.mean_entropy, sid, lam, range_guard, direction, shuffle, rng, eps,
            num_tokens=stats.num_tokens, mean_over=mean_over, clip=clip,
        )
        out = alpha * adv
    elif method == "empg":
        sid = scope_ids_for(stats, scope or "batch")
        out, alpha = empg_modulate(stats, adv, sid, empg_k, empg_k2, empg_zeta, eps)
    else:
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}")
    out = _renormalize(out, adv, renormalize)
    return _like(out, template), _like(alpha, template)


def _renormalize(out: np.ndarray, base: np.ndarray, mode: str) -> np.ndarray:
    if mode == "none" or len(out) == 0:
        return out
    if mode == "scale":
        rms_out = np.sqrt(np.mean(out**2))
        return out * (np.sqrt(np.mean(base**2)) / rms_out) if rms_out > 0 else out
    if mode == "standardize":
        return (out - out.mean()) / (out.std() + 1e-8)
    raise ValueError(f"renormalize={mode!r} is not one of 'none', 'scale', 'standardize'")
