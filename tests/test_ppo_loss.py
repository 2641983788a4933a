"""PPO loss functions: aggregation numbers, clip bounds, dual clip, masking, k3 KL, value loss."""

from __future__ import annotations

import math

import pytest
import torch

from aem_train.ppo import PPOLossConfig, aggregate, kl_k3, policy_loss, ppo_loss, value_loss

LENGTHS = [1, 2, 4]
ADV = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def padded(lengths: list[int] = LENGTHS, fill: float = float("nan")) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logp with grad, old_logp, mask) [B, T]; padding holds NaN so any leak shows."""
    t = max(lengths)
    mask = torch.zeros(len(lengths), t, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    base = torch.full((len(lengths), t), -0.7, dtype=torch.float64)
    logp = torch.where(mask, base, torch.full_like(base, fill)).requires_grad_(True)
    old = torch.where(mask, base, torch.full_like(base, fill))
    return logp, old, mask


def one_token(log_ratio: float, adv: float, **kw) -> tuple[torch.Tensor, torch.Tensor, dict]:
    logp = torch.tensor([[log_ratio]], dtype=torch.float64, requires_grad=True)
    loss, m = policy_loss(logp, torch.zeros(1, 1, dtype=torch.float64), torch.tensor([adv]), torch.ones(1, 1), **kw)
    loss.backward()
    return loss, logp.grad, m


def test_ratio_one_gives_minus_mean_advantage_in_both_aggregations():
    logp, old, mask = padded()
    # token-mean: -(1*1 - 2*2 + 0.5*4) / 7 = 1/7
    loss, m = policy_loss(logp, old, ADV, mask, loss_agg_mode="token-mean")
    assert loss.item() == pytest.approx(1 / 7, abs=1e-12)
    assert m["loss_agg_mode"] == "token-mean" and m["ratio_mean"] == pytest.approx(1.0)
    assert m["clip_frac"] == 0.0 and m["approx_kl"] == pytest.approx(0.0, abs=1e-12)
    # response-mean: -(1 - 2 + 0.5) / 3 = 1/6: every response counts once, whatever its length
    loss, m = policy_loss(logp, old, ADV, mask, loss_agg_mode="response-mean")
    assert loss.item() == pytest.approx(1 / 6, abs=1e-12)
    assert m["loss_agg_mode"] == "response-mean"
    with pytest.raises(ValueError, match="loss_agg_mode"):
        policy_loss(logp, old, ADV, mask, loss_agg_mode="seq-mean")


def test_per_token_gradients_of_each_aggregation():
    logp, old, mask = padded()
    policy_loss(logp, old, ADV, mask, loss_agg_mode="response-mean")[0].backward()
    # d loss / d logp at ratio 1 = -A / (len * B)
    for b, n in enumerate(LENGTHS):
        assert torch.allclose(logp.grad[b, :n], torch.full((n,), -ADV[b].item() / (n * 3), dtype=torch.float64))
    logp.grad = None
    policy_loss(logp, old, ADV, mask, loss_agg_mode="token-mean")[0].backward()
    for b, n in enumerate(LENGTHS):
        assert torch.allclose(logp.grad[b, :n], torch.full((n,), -ADV[b].item() / 7, dtype=torch.float64))


def test_trajectory_mean_counts_each_trajectory_once():
    # row 0 is a one-turn trajectory, rows 1 and 2 are the two turns of another: weights 1/rows
    w = torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64)
    logp, old, mask = padded()
    loss, m = policy_loss(logp, old, ADV, mask, loss_agg_mode="trajectory-mean", row_weights=w)
    # per-response losses -A = [-1, 2, -0.5]; trajectories -1 and mean(2, -0.5) = 0.75 -> mean -0.125
    assert loss.item() == pytest.approx(-0.125, abs=1e-12) and m["loss_agg_mode"] == "trajectory-mean"
    loss.backward()
    for b, n in enumerate(LENGTHS):  # d loss / d logp = -A * w / (len * sum(w))
        assert torch.allclose(logp.grad[b, :n], torch.full((n,), -ADV[b].item() * w[b].item() / (n * 2.0), dtype=torch.float64))
    # one row per trajectory: the same as response-mean
    logp, old, mask = padded()
    ones = torch.ones(3, dtype=torch.float64)
    assert policy_loss(logp, old, ADV, mask, loss_agg_mode="trajectory-mean", row_weights=ones)[0].item() == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="needs row_weights of shape"):
        policy_loss(logp, old, ADV, mask, loss_agg_mode="trajectory-mean")
    # KL and entropy follow the same weights
    ent = torch.where(mask, torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64).expand(3, 4), torch.zeros(3, 4, dtype=torch.float64))
    _, m = ppo_loss(logp, old, ADV, mask, PPOLossConfig(loss_agg_mode="trajectory-mean"), entropy=ent, row_weights=w)
    assert m["entropy"] == pytest.approx((1 * 1.0 + 0.5 * 2.0 + 0.5 * 4.0) / 2.0)


def test_masked_padding_has_zero_gradient_and_no_nan():
    logp, old, mask = padded()
    for mode in ("token-mean", "response-mean"):
        logp.grad = None
        ent = torch.where(mask, torch.ones_like(logp), torch.full_like(logp, float("nan")))
        loss, m = ppo_loss(logp, old, ADV, mask, PPOLossConfig(loss_agg_mode=mode, kl_coef=0.1, entropy_coef=0.01),
                           ref_logp=old.clone(), entropy=ent)
        loss.backward()
        assert torch.isfinite(loss) and all(not isinstance(v, float) or math.isfinite(v) for v in m.values())
        assert torch.all(logp.grad[~mask] == 0.0)
        assert torch.all(logp.grad[mask] != 0.0)


def test_empty_response_rows_are_skipped_in_response_mean():
    logp, old, mask = padded([2, 0, 3], fill=0.0)
    loss, _ = policy_loss(logp, old, torch.tensor([1.0, 5.0, 3.0]), mask, loss_agg_mode="response-mean")
    assert loss.item() == pytest.approx(-(1.0 + 3.0) / 2)


@pytest.mark.parametrize("clip_low,clip_high", [(0.2, 0.2), (0.2, 0.28)])
def test_clipping_kicks_in_exactly_at_the_bounds(clip_low: float, clip_high: float):
    kw = {"clip_low": clip_low, "clip_high": clip_high}
    d = 1e-6
    # A > 0: the objective stops growing at ratio 1 + clip_high
    loss, grad, m = one_token(math.log(1 + clip_high - d), 1.0, **kw)
    assert loss.item() == pytest.approx(-(1 + clip_high - d)) and grad.item() < 0 and m["clip_frac"] == 0.0
    loss, grad, m = one_token(math.log(1 + clip_high + d), 1.0, **kw)
    assert loss.item() == pytest.approx(-(1 + clip_high)) and grad.item() == 0.0 and m["clip_frac"] == 1.0
    assert m["clip_frac_high"] == 1.0
    # A > 0 below 1 - clip_low: not clipped (pessimistic bound keeps the gradient)
    _, grad, m = one_token(math.log(1 - clip_low - 0.05), 1.0, **kw)
    assert grad.item() < 0 and m["clip_frac"] == 0.0 and m["clip_frac_low"] == 1.0
    # A < 0: the objective stops growing at ratio 1 - clip_low
    loss, grad, m = one_token(math.log(1 - clip_low + d), -1.0, **kw)
    assert loss.item() == pytest.approx(1 - clip_low + d) and grad.item() > 0
    loss, grad, m = one_token(math.log(1 - clip_low - d), -1.0, **kw)
    assert loss.item() == pytest.approx(1 - clip_low) and grad.item() == 0.0 and m["clip_frac"] == 1.0
    # A < 0 above 1 + clip_high: not clipped
    _, grad, _ = one_token(math.log(1 + clip_high + 0.05), -1.0, **kw)
    assert grad.item() > 0


def test_dual_clip_bounds_negative_advantages_only():
    # A = -1, ratio 5: plain loss 5, dual clip c = 3 caps it at 3 with zero gradient
    loss, grad, m = one_token(math.log(5.0), -1.0)
    assert loss.item() == pytest.approx(5.0) and grad.item() > 0
    loss, grad, m = one_token(math.log(5.0), -1.0, dual_clip=3.0)
    assert loss.item() == pytest.approx(3.0) and grad.item() == 0.0 and m["dual_clip_frac"] == 1.0
    loss, grad, m = one_token(math.log(2.0), -1.0, dual_clip=3.0)  # below c: untouched
    assert loss.item() == pytest.approx(2.0) and grad.item() > 0 and m["dual_clip_frac"] == 0.0
    loss, _, _ = one_token(math.log(5.0), 1.0, dual_clip=3.0)  # positive advantage: ordinary clip
    assert loss.item() == pytest.approx(-1.2)
    with pytest.raises(ValueError, match="dual_clip"):
        one_token(0.0, -1.0, dual_clip=0.5)


def test_gradient_signs():
    # gradient descent on the loss raises log-probs of positive-advantage tokens, lowers negatives
    _, grad, _ = one_token(0.0, 2.0)
    assert grad.item() == pytest.approx(-2.0)
    _, grad, _ = one_token(0.0, -2.0)
    assert grad.item() == pytest.approx(2.0)
    _, grad, _ = one_token(0.0, 0.0)
    assert grad.item() == 0.0


def test_k3_kl_nonnegative_zero_at_equality_and_unbiased():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=gen, dtype=torch.float64), torch.randn(1000, generator=gen, dtype=torch.float64)
    assert torch.all(kl_k3(a, b) >= 0)
    assert torch.all(kl_k3(a, a) == 0)
    # E_{x~p}[k3] = KL(p || q) for categorical p, q
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    exact = torch.sum(p * (p.log() - q.log()))
    x = torch.multinomial(p, 200_000, replacement=True, generator=gen)
    est = kl_k3(p.log()[x], q.log()[x]).mean()
    assert est.item() == pytest.approx(exact.item(), rel=0.03)


def test_value_loss_clipping_hand_computed():
    v = torch.tensor([1.5, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    ret = torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64)
    # row 0: v moved 0.5 > 0.2: clipped value 1.2; errors (0.5)^2 = 0.25 vs (0.8)^2 = 0.64 -> 0.64
    # row 1: 1.0; row 2: 0 -> loss = 0.5 * (0.64 + 1 + 0) / 3
    loss, m = value_loss(v, old, ret, clip=0.2)
    assert loss.item() == pytest.approx(0.5 * 1.64 / 3)
    assert m["vf_clip_frac"] == pytest.approx(1 / 3)
    loss.backward()
    assert v.grad[0].item() == 0.0  # clipped branch active: no gradient
    loss_u, _ = value_loss(v, old, ret, clip=None)
    assert loss_u.item() == pytest.approx(0.5 * 1.25 / 3)


def test_ppo_loss_combines_terms():
    logp, old, mask = padded(fill=0.0)
    ent = torch.where(mask, torch.full_like(logp, 2.0), torch.zeros_like(logp))
    ref = old - 0.1  # k3 with d = -0.1 on every token: e^-0.1 + 0.1 - 1
    k3 = math.exp(-0.1) + 0.1 - 1
    v = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    cfg = PPOLossConfig(kl_coef=0.5, entropy_coef=0.01, vf_coef=0.5, value_clip=None)
    loss, m = ppo_loss(logp, old, ADV, mask, cfg, ref_logp=ref, entropy=ent, values=v, old_values=v,
                       returns=torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
    assert m["kl_ref"] == pytest.approx(k3) and m["entropy"] == pytest.approx(2.0)
    assert m["vf_loss"] == pytest.approx(0.5)
    assert loss.item() == pytest.approx(1 / 7 + 0.5 * k3 - 0.01 * 2.0 + 0.5 * 0.5)
    assert m["loss"] == pytest.approx(loss.item()) and m["loss_agg_mode"] == "token-mean"
    with pytest.raises(ValueError, match="ref_logp"):
        ppo_loss(logp, old, ADV, mask, PPOLossConfig(kl_coef=0.1))
    with pytest.raises(ValueError, match="entropy"):
        ppo_loss(logp, old, ADV, mask, PPOLossConfig(entropy_coef=0.1))
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logp, old, torch.ones(2), mask)


def test_aggregate_token_level_advantages_accepted():
    logp, old, mask = padded(fill=0.0)
    adv_tok = ADV[:, None].expand(-1, logp.shape[1])
    a, _ = policy_loss(logp, old, adv_tok, mask)
    b, _ = policy_loss(logp, old, ADV, mask)
    assert a.item() == pytest.approx(b.item())
    assert aggregate(torch.ones_like(logp), mask, "response-mean").item() == pytest.approx(1.0)


def test_approx_kl_metric():
    # log ratio 0.1: (e^0.1 - 1) - 0.1 = 0.0051709, the k3 estimate of KL(old || new)
    _, _, m = one_token(0.1, 1.0)
    assert m["approx_kl"] == pytest.approx(math.exp(0.1) - 1.1, rel=1e-9)
    _, _, m = one_token(-0.1, 1.0)
    assert m["approx_kl"] == pytest.approx(math.exp(-0.1) - 0.9, rel=1e-9)


# ---------------------------------------------------------------- independent reference, edge cases


def _ref_token_losses(logp, old, adv, lengths, clip_low, clip_high, dual_clip):
    """Per-token PPO loss and d loss / d logp, from the textbook formulas, one token at a time."""
    losses, grads = [], []
    for b, n in enumerate(lengths):
        row_l, row_g = [], []
        for t in range(n):
            r, a = math.exp(logp[b][t] - old[b][t]), adv[b]
            unclipped, clipped = -a * r, -a * min(max(r, 1 - clip_low), 1 + clip_high)
            loss, grad = (unclipped, -a * r) if unclipped >= clipped else (clipped, 0.0)
            if dual_clip is not None and a < 0 and -a * dual_clip < loss:
                loss, grad = -a * dual_clip, 0.0
            row_l.append(loss)
            row_g.append(grad)
        losses.append(row_l)
        grads.append(row_g)
    return losses, grads


@pytest.mark.parametrize("clip_low,clip_high,dual_clip", [(0.2, 0.2, None), (0.2, 0.28, None), (0.1, 0.3, 1.5)])
@pytest.mark.parametrize("mode", ["token-mean", "response-mean"])
def test_policy_loss_and_gradient_match_a_plain_reference(clip_low, clip_high, dual_clip, mode):
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        lengths = torch.randint(0, 6, (4,), generator=gen).tolist()  # empty and single-token rows too
        t = max(max(lengths), 1)
        mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
        lp = -1.0 + 0.5 * torch.randn(4, t, generator=gen, dtype=torch.float64)
        old = lp + 0.3 * torch.randn(4, t, generator=gen, dtype=torch.float64)
        adv = torch.randn(4, generator=gen, dtype=torch.float64)
        logp = torch.where(mask, lp, torch.full_like(lp, float("nan"))).requires_grad_(True)
        loss, m = policy_loss(logp, torch.where(mask, old, torch.full_like(old, float("nan"))), adv, mask,
                              clip_low, clip_high, dual_clip, mode)
        loss.backward()
        tok_l, tok_g = _ref_token_losses(lp.tolist(), old.tolist(), adv.tolist(), lengths, clip_low, clip_high, dual_clip)
        n_tok, n_resp = sum(lengths), sum(n > 0 for n in lengths)
        if mode == "token-mean":
            ref = sum(map(sum, tok_l)) / max(n_tok, 1)
            scale = [1.0 / max(n_tok, 1)] * 4
        else:
            ref = sum(sum(row) / len(row) for row in tok_l if row) / max(n_resp, 1)
            scale = [1.0 / (n * n_resp) if n else 0.0 for n in lengths]
        assert loss.item() == pytest.approx(ref, abs=1e-12)
        for b, n in enumerate(lengths):
            expected = torch.tensor([g * scale[b] for g in tok_g[b]], dtype=torch.float64)
            assert torch.allclose(logp.grad[b, :n], expected, atol=1e-12)
            assert torch.all(logp.grad[b, n:] == 0.0)
        assert m["loss_agg_mode"] == mode


def test_kl_and_entropy_follow_the_aggregation():
    logp, old, mask = padded(fill=0.0)
    ref = old.clone()
    ref[2, :4] += torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64)  # only the 4-token row differs
    k3 = [math.exp(d) - d - 1 for d in (0.1, -0.2, 0.3, 0.0)]
    ent = torch.where(mask, torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64).expand_as(logp), 0.0)
    cfg = PPOLossConfig(loss_agg_mode="token-mean")
    _, m = ppo_loss(logp, old, ADV, mask, cfg, ref_logp=ref, entropy=ent)
    assert m["kl_ref"] == pytest.approx(sum(k3) / 7) and m["entropy"] == pytest.approx((1 + 2 * 2 + 4 * 4) / 7)
    _, m = ppo_loss(logp, old, ADV, mask, PPOLossConfig(loss_agg_mode="response-mean"), ref_logp=ref, entropy=ent)
    assert m["kl_ref"] == pytest.approx(sum(k3) / 4 / 3) and m["entropy"] == pytest.approx((1 + 2 + 4) / 3)


def test_empty_batch_and_all_padding_give_zero_loss():
    for mode in ("token-mean", "response-mean"):
        loss, _ = policy_loss(torch.zeros(0, 0), torch.zeros(0, 0), torch.zeros(0), torch.zeros(0, 0), loss_agg_mode=mode)
        assert loss.item() == 0.0
        loss, _ = policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3), loss_agg_mode=mode)
        assert loss.item() == 0.0


def test_shape_mismatches_name_the_tensor():
    logp, old, mask = padded(fill=0.0)
    with pytest.raises(ValueError, match="old_logp shape"):
        policy_loss(logp, old[:, :2], ADV, mask)
    with pytest.raises(ValueError, match="ref_logp shape"):
        ppo_loss(logp, old, ADV, mask, PPOLossConfig(kl_coef=0.1), ref_logp=old[:, :2])
    with pytest.raises(ValueError, match="entropy shape"):
        ppo_loss(logp, old, ADV, mask, PPOLossConfig(entropy_coef=0.1), entropy=old[:, :2])
    v = torch.zeros(3)
    with pytest.raises(ValueError, match="returns shape"):
        value_loss(v, v, torch.zeros(2))
    with pytest.raises(ValueError, match="old_values shape"):
        value_loss(v, torch.zeros(4), v)


def test_clip_ranges_are_checked():
    logp, old, mask = padded(fill=0.0)
    for kw in ({"clip_low": 1.0}, {"clip_low": -0.1}, {"clip_high": -0.1}):
        with pytest.raises(ValueError, match="clip_"):
            policy_loss(logp, old, ADV, mask, **kw)


def test_value_loss_padding_has_zero_gradient_and_no_nan():
    nan = float("nan")
    v = torch.tensor([[0.5, nan], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[0.4, nan], [1.0, 2.0]], dtype=torch.float64)
    ret = torch.tensor([[1.0, nan], [1.0, 3.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 0], [1, 1]])
    loss, m = value_loss(v, old, ret, mask, clip=0.2)
    loss.backward()
    # row 0: 0.5 moved 0.1 (unclipped), error 0.25; row 1: errors 0 and 1 -> 0.5 * 1.25 / 3
    assert loss.item() == pytest.approx(0.5 * 1.25 / 3)
    assert torch.all(torch.isfinite(v.grad)) and v.grad[0, 1].item() == 0.0
    assert v.grad[0, 0].item() == pytest.approx((0.5 - 1.0) / 3)
    assert math.isfinite(m["explained_variance"])


def test_value_loss_matches_a_plain_reference():
    gen = torch.Generator().manual_seed(5)
    v, old, ret = (torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(3))
    for clip in (None, 0.2, 1.0):
        loss, _ = value_loss(v, old, ret, clip=clip)
        per = []
        for vi, oi, ri in zip(v.tolist(), old.tolist(), ret.tolist()):
            e = (vi - ri) ** 2
            if clip is not None:
                e = max(e, (oi + min(max(vi - oi, -clip), clip) - ri) ** 2)
            per.append(0.5 * e)
        assert loss.item() == pytest.approx(sum(per) / len(per), abs=1e-12)


# ---------------------------------------------------------------- GSPO: one ratio per response
def _gspo_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Responses of 1, 2 and 4 tokens with given token log-ratios (padding NaN)."""
    log_ratios = [[0.05], [0.3, -0.1], [1.0, -0.3, -0.3, -0.3]]
    logp, old, mask = padded()
    with torch.no_grad():
        for b, lr in enumerate(log_ratios):
            logp[b, : len(lr)] = old[b, : len(lr)] + torch.tensor(lr, dtype=torch.float64)
    seq = torch.tensor([sum(lr) / len(lr) for lr in log_ratios], dtype=torch.float64)
    return logp, old, mask, seq


def test_sequence_ratio_is_the_geometric_mean_and_clips_per_response():
    logp, old, mask, seq = _gspo_case()
    s = torch.exp(seq)  # 1.051, 1.105, 1.019
    clip = 0.08
    loss, m = policy_loss(logp, old, ADV, mask, clip, clip, loss_agg_mode="response-mean", ratio_level="sequence")
    # each response: max(-A s, -A clip(s)); response 1 (A = -2 < 0, s = 1.105 > 1.08) takes the
    # unclipped branch (the larger loss), the others are inside the range
    per = [max(-a * r, -a * min(max(r, 1 - clip), 1 + clip)) for a, r in zip(ADV.tolist(), s.tolist())]
    assert loss.item() == pytest.approx(sum(per) / 3, abs=1e-12)
    assert m["ratio_level"] == "sequence" and m["clip_frac"] == 0.0
    assert m["ratio_max"] == pytest.approx(s.max().item())
    loss.backward()
    # d/dlogp[b, t] = -A_b s_b / (|y_b| B): every token of a response gets the same weight
    for b, n in enumerate(LENGTHS):
        want = -ADV[b].item() * s[b].item() / (n * 3)
        assert torch.allclose(logp.grad[b, :n], torch.full((n,), want, dtype=torch.float64))
    assert torch.all(logp.grad[~mask] == 0.0)


def test_one_outlier_token_clips_under_token_ratios_but_not_under_the_sequence_ratio():
    logp, old, mask, _ = _gspo_case()
    adv = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # only the 4-token response counts
    _, tok = policy_loss(logp, old, adv, mask, 0.2, 0.2, loss_agg_mode="response-mean")
    loss, seq = policy_loss(logp, old, adv, mask, 0.2, 0.2, loss_agg_mode="response-mean", ratio_level="sequence")
    # token ratios: e^1 = 2.72 is clipped (A > 0, ratio > 1.2); the geometric mean e^0.025 is not
    assert tok["clip_frac"] > 0 and tok["clip_frac_high"] > 0
    assert seq["clip_frac"] == 0.0 and seq["clip_frac_high"] == 0.0
    loss.backward()
    assert torch.all(logp.grad[2, :4] != 0.0)  # the outlier still gets gradient through the mean
    # a response whose mean log-ratio leaves the range is clipped whole: no gradient at all
    logp.grad = None
    loss, seq = policy_loss(logp, old, adv, mask, 0.01, 0.01, loss_agg_mode="response-mean", ratio_level="sequence")
    loss.backward()
    assert seq["clip_frac"] == 1.0 * 4 / 7 and torch.all(logp.grad == 0.0)


def test_sequence_ratio_at_one_equals_the_token_ratio_loss_and_checks_its_name():
    logp, old, mask = padded()
    for mode in ("token-mean", "response-mean"):
        a, _ = policy_loss(logp, old, ADV, mask, loss_agg_mode=mode)
        b, _ = policy_loss(logp, old, ADV, mask, loss_agg_mode=mode, ratio_level="sequence")
        assert a.item() == pytest.approx(b.item(), abs=1e-12)
    cfg = PPOLossConfig(ratio_level="sequence", loss_agg_mode="response-mean", kl_coef=0.1)
    loss, m = ppo_loss(logp, old, ADV, mask, cfg, ref_logp=old.clone())
    assert torch.isfinite(loss) and m["ratio_level"] == "sequence"
    with pytest.raises(ValueError, match="ratio_level='response' is not one of token, sequence"):
        policy_loss(logp, old, ADV, mask, ratio_level="response")
