"""PPO loss functions over padded response tokens (no trainer loop here).

Inputs are padded ``[B, T]`` tensors, one row per response (one turn of one trajectory, see
:mod:`aem_train.rows`), with ``mask[b, t] = 1`` on the response's real tokens. Observation /
prompt tokens are never in these tensors, so they never carry loss. Advantages are one scalar
per response ``[B]`` (AEM's alpha, AEM arXiv 2605.00425, is per response) broadcast to tokens;
a ``[B, T]`` advantage is accepted too.

Policy loss, per token, with ``ratio = exp(logp - old_logp)``::

    l = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))     (clip-higher if high > low)
    dual clip (A < 0 only):  l = min(l, -A * dual_clip)                     (dual_clip = c, e.g. 3)

``ratio_level="sequence"`` is GSPO's ratio (Zheng et al., arXiv 2507.18071): one ratio per
response, the geometric mean of its token ratios, clipped per response and shared by its tokens::

    s = exp( mean over the response's tokens of (logp - old_logp) )   then l as above with s

Every token of a response then gets the same gradient weight (``s * A / |y|`` under
``response-mean``), and one outlier token can no longer clip or dominate its response. GSPO =
``ratio_level="sequence"`` + ``response-mean`` + clip ranges of a few 1e-4 (paper: 3e-4 / 4e-4),
as sequence ratios stay much closer to 1 than token ratios.

Aggregation (logged as ``loss_agg_mode``):
- ``token-mean``: sum of token losses / number of response tokens in the batch (long
  responses weigh more).
- ``response-mean``: mean over each response's tokens, then mean over responses (each
  response counts once). Rows without tokens are skipped.
- ``trajectory-mean``: ``response-mean`` weighted by ``row_weights``, which the trainer sets to
  1 / (responses of the row's trajectory in the batch): each trajectory counts once, so a
  failing episode that ran to the turn limit weighs no more than a short solved one (the
  turn-count bias of the other two modes).

Optional terms: KL to a reference with the k3 estimator ``exp(ref - logp) - (ref - logp) - 1``
(>= 0, unbiased for KL(pi || ref)), an entropy bonus (``- coef * entropy``), and a clipped
value loss ``0.5 * max((V - R)^2, (clip(V, V_old +- c) - R)^2)`` for a critic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "AGG_MODES",
    "RATIO_LEVELS",
    "PPOLossConfig",
    "aggregate",
    "masked_mean",
    "kl_k3",
    "policy_loss",
    "value_loss",
    "ppo_loss",
]

AGG_MODES = ("token-mean", "response-mean", "trajectory-mean")
RATIO_LEVELS = ("token", "sequence")
_LOG_RATIO_LIMIT = 20.0  # exp(20) ~ 5e8: keeps a wild ratio finite instead of inf/NaN


@dataclass(frozen=True)
class PPOLossConfig:
    clip_low: float = 0.2
    clip_high: float = 0.2  # > clip_low = clip-higher (DAPO uses 0.28)
    dual_clip: float | None = None  # c > 1, e.g. 3.0; bounds the loss of negative advantages
    loss_agg_mode: str = "token-mean"
    ratio_level: str = "token"  # "sequence" = GSPO's one ratio per response
    kl_coef: float = 0.0  # weight of k3 KL to the reference (needs ref_logp)
    entropy_coef: float = 0.0  # entropy bonus weight (needs entropy)
    vf_coef: float = 0.5  # value loss weight (needs values, old_values, returns)
    value_clip: float | None = 0.2  # None = unclipped value loss


def _check_mask(mask: torch.Tensor, like: torch.Tensor, like_name: str = "logp") -> torch.Tensor:
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != {like_name} shape {tuple(like.shape)}; pad both to [B, T]")
    return mask.to(dtype=like.dtype)


def _check_same_shape(name: str, x: torch.Tensor, like: torch.Tensor, like_name: str = "logp") -> None:
    if x.shape != like.shape:
        raise ValueError(f"{name} shape {tuple(x.shape)} != {like_name} shape {tuple(like.shape)}; pad both alike")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is 1 (0 if the mask is empty)."""
    m = mask.to(x.dtype)
    return (torch.where(m > 0, x, torch.zeros_like(x)) * m).sum() / m.sum().clamp(min=1.0)


def aggregate(
    loss_mat: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean", row_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Reduce a ``[B, T]`` per-token quantity to a scalar (module docstring); ``trajectory-mean``
    needs ``row_weights`` ``[B]``."""
    m = _check_mask(mask, loss_mat)
    vals = torch.where(m > 0, loss_mat, torch.zeros_like(loss_mat)) * m
    if mode == "token-mean":
        return vals.sum() / m.sum().clamp(min=1.0)
    if mode in ("response-mean", "trajectory-mean"):
        lengths = m.sum(dim=-1)
        w = (lengths > 0).to(m.dtype)
        if mode == "trajectory-mean":
            if row_weights is None or row_weights.shape != lengths.shape:
                raise ValueError("loss_agg_mode='trajectory-mean' needs row_weights of shape [B]: "
                                 "1 / (responses of the row's trajectory in the batch)")
            w = w * row_weights.to(m.dtype)
        per_response = vals.sum(dim=-1) / lengths.clamp(min=1.0)
        return (per_response * w).sum() / w.sum().clamp(min=torch.finfo(m.dtype).tiny)
    raise ValueError(f"loss_agg_mode={mode!r} is not one of {', '.join(AGG_MODES)}")


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || ref) from samples of pi: ``e^d - d - 1``, ``d = ref - logp`` (>= 0)."""
    d = (ref_logp - logp).clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    return torch.exp(d) - d - 1.0


def _broadcast_adv(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    adv = advantages.to(dtype=like.dtype, device=like.device)
    if adv.dim() == 1:
        if adv.shape[0] != like.shape[0]:
            raise ValueError(f"advantages has {adv.shape[0]} rows but logp has {like.shape[0]}; one per response")
        return adv.unsqueeze(-1).expand_as(like)
    if adv.shape != like.shape:
        raise ValueError(f"advantages shape {tuple(adv.shape)} is neither [B] nor logp's {tuple(like.shape)}")
    return adv


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    loss_agg_mode: str = "token-mean",
    row_weights: torch.Tensor | None = None,
    ratio_level: str = "token",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Clipped PPO surrogate on response tokens: ``(loss, metrics)``.

    Metrics: ``pg_loss``, ``approx_kl`` (k3 estimate of KL(old || new) from the token ratios,
    masked token mean), ``clip_frac`` (tokens where the clipped branch is active),
    ``clip_frac_low/high`` (ratio beyond each bound), ``dual_clip_frac``, ``ratio_mean``,
    ``ratio_max``, ``loss_agg_mode``, ``ratio_level``; with ``ratio_level="sequence"`` the ratio
    and clip metrics are those of the response ratios, counted on their tokens. Raises
    ``ValueError`` on mismatched shapes or out-of-range clip settings.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip={dual_clip} must be > 1 (e.g. 3.0) or None")
    if not (0.0 <= clip_low < 1.0 and clip_high >= 0.0):
        raise ValueError(f"clip_low={clip_low}, clip_high={clip_high}: need 0 <= clip_low < 1 and clip_high >= 0")
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"ratio_level={ratio_level!r} is not one of {', '.join(RATIO_LEVELS)}")
    _check_same_shape("old_logp", old_logp, logp)
    m = _check_mask(mask, logp)
    live = m > 0
    zero = torch.zeros_like(logp)
    # zero padded entries BEFORE exp so garbage there cannot produce NaN gradients
    logp_ = torch.where(live, logp, zero)
    old_ = torch.where(live, old_logp.to(logp.dtype), zero)
    adv = torch.where(live, _broadcast_adv(advantages, logp), zero)
    log_ratio = (logp_ - old_).clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    token_ratio = torch.exp(log_ratio)
    ratio = token_ratio
    if ratio_level == "sequence":
        # padded entries hold 0 in log_ratio, so the sum is over the response's own tokens
        seq_log_ratio = log_ratio.sum(dim=-1, keepdim=True) / m.sum(dim=-1, keepdim=True).clamp(min=1.0)
        ratio = torch.where(live, torch.exp(seq_log_ratio).expand_as(logp), torch.ones_like(logp))
    loss1 = -adv * ratio
    loss2 = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    clipped = torch.maximum(loss1, loss2)
    token_loss = clipped
    dual_active = torch.zeros_like(live)
    if dual_clip is not None:
        loss3 = -adv * dual_clip
        dual_active = (adv < 0) & (loss3 < clipped)
        token_loss = torch.where(adv < 0, torch.minimum(clipped, loss3), clipped)
    loss = aggregate(token_loss, m, loss_agg_mode, row_weights)
    with torch.no_grad():
        metrics: dict[str, Any] = {
            "pg_loss": loss.item(),
            # tokens were sampled from pi_old, so (r - 1) - log r estimates KL(pi_old || pi) (CleanRL's)
            "approx_kl": float(masked_mean((token_ratio - 1.0) - log_ratio, m)),
            "clip_frac": float(masked_mean((loss2 > loss1).to(m.dtype), m)),
            "clip_frac_low": float(masked_mean((ratio < 1.0 - clip_low).to(m.dtype), m)),
            "clip_frac_high": float(masked_mean((ratio > 1.0 + clip_high).to(m.dtype), m)),
            "dual_clip_frac": float(masked_mean(dual_active.to(m.dtype), m)),
            "ratio_mean": float(masked_mean(ratio, m)),
            "ratio_max": float(torch.where(live, ratio, zero).max()) if live.any() else 1.0,
            "loss_agg_mode": loss_agg_mode,
            "ratio_level": ratio_level,
        }
    return loss, metrics


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip: float | None = 0.2,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped critic loss ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, +-c) - R)^2)``.

    Shapes: ``[B]`` (turn-level critic: value of each response's prompt) or ``[B, T]`` with
    ``mask``; padded entries get zero gradient whatever they hold. Metrics: ``vf_loss``,
    ``vf_clip_frac``, ``explained_variance``.
    """
    if mask is None:
        mask = torch.ones_like(values)
    _check_same_shape("old_values", old_values, values, "values")
    _check_same_shape("returns", returns, values, "values")
    m = _check_mask(mask, values, "values")
    live = m > 0
    zero = torch.zeros_like(values)
    # sanitise padding first, as in policy_loss: 0 * NaN in the backward pass would leak NaN
    values = torch.where(live, values, zero)
    old = torch.where(live, old_values.to(values.dtype), zero)
    ret = torch.where(live, returns.to(values.dtype), zero)
    err1 = (values - ret) ** 2
    if clip is None:
        per = err1
        clip_active = torch.zeros_like(m)
    else:
        v_clipped = old + (values - old).clamp(-clip, clip)
        err2 = (v_clipped - ret) ** 2
        per = torch.maximum(err1, err2)
        clip_active = (err2 > err1).to(m.dtype)
    loss = 0.5 * masked_mean(per, m)
    with torch.no_grad():
        var_ret = masked_mean((ret - masked_mean(ret, m)) ** 2, m)
        resid = ret - values
        var_res = masked_mean((resid - masked_mean(resid, m)) ** 2, m)
        ev = float(1.0 - var_res / var_ret) if float(var_ret) > 0 else float("nan")
    return loss, {"vf_loss": loss.item(), "vf_clip_frac": float(masked_mean(clip_active, m)), "explained_variance": ev}


def ppo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: PPOLossConfig = PPOLossConfig(),
    *,
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    old_values: torch.Tensor | None = None,
    returns: torch.Tensor | None = None,
    value_mask: torch.Tensor | None = None,
    row_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Total loss = policy loss + kl_coef * KL_k3 - entropy_coef * entropy + vf_coef * value loss.

    ``entropy`` is the per-token entropy ``[B, T]`` of the current policy (with grad if the bonus
    is on); it is always logged when given. KL and entropy use the same aggregation (and
    ``row_weights``, for ``trajectory-mean``) as the policy loss. Returns ``(loss, metrics)``;
    metrics include every term and ``loss_agg_mode``.
    """
    loss, metrics = policy_loss(
        logp, old_logp, advantages, mask, config.clip_low, config.clip_high, config.dual_clip, config.loss_agg_mode,
        row_weights, config.ratio_level,
    )
    if config.kl_coef > 0 and ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp= (reference log-probs of the response tokens)")
    if ref_logp is not None:
        _check_same_shape("ref_logp", ref_logp, logp)
        live = mask > 0
        zero = torch.zeros_like(logp)
        # sanitise padding first: a NaN there would leak into gradients through exp
        kl_tok = kl_k3(torch.where(live, logp, zero), torch.where(live, ref_logp.to(logp.dtype), zero))
        kl = aggregate(kl_tok, mask, config.loss_agg_mode, row_weights)
        metrics["kl_ref"] = kl.item()
        if config.kl_coef > 0:
            loss = loss + config.kl_coef * kl
    if config.entropy_coef > 0 and entropy is None:
        raise ValueError("entropy_coef > 0 needs entropy= (per-token entropy [B, T] of the current policy)")
    if entropy is not None:
        _check_same_shape("entropy", entropy, logp)
        ent = aggregate(entropy, mask, config.loss_agg_mode, row_weights)
        metrics["entropy"] = ent.item()
        if config.entropy_coef > 0:
            loss = loss - config.entropy_coef * ent
    if values is not None:
        if old_values is None or returns is None:
            raise ValueError("a value loss needs values=, old_values= and returns= together")
        vl, vmetrics = value_loss(values, old_values, returns, value_mask, config.value_clip)
        metrics.update(vmetrics)
        loss = loss + config.vf_coef * vl
    metrics["loss"] = loss.item()
    return loss, metrics
