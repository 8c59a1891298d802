"""PPO loss against the formulas of REFERENCE.md §6, computed independently in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thrust_cli.loss import ppo_loss


def numpy_ppo(new_lp, old_lp, adv, v, v_old, ret, ent, clip, vf_coef, ent_coef, vf_clip):  # type: ignore[no-untyped-def]
    ratio = np.exp(new_lp - old_lp)
    pg = np.mean(np.maximum(-adv * ratio, -adv * np.clip(ratio, 1 - clip, 1 + clip)))
    if vf_clip is None:
        vl = 0.5 * np.mean((v - ret) ** 2)
    else:
        v_clipped = v_old + np.clip(v - v_old, -vf_clip, vf_clip)
        vl = 0.5 * np.mean(np.maximum((v - ret) ** 2, (v_clipped - ret) ** 2))
    kl = np.mean((ratio - 1) - np.log(ratio))
    clipfrac = np.mean(np.abs(ratio - 1) > clip)
    return pg - ent_coef * ent.mean() + vf_coef * vl, pg, vl, kl, clipfrac


@pytest.mark.parametrize("vf_clip", [None, 0.2])
def test_ppo_loss_matches_numpy_formulas(vf_clip: float | None) -> None:
    rng = np.random.default_rng(1)
    B = 256
    arrays = {
        "new_lp": rng.normal(-0.7, 0.3, B),
        "old_lp": rng.normal(-0.7, 0.3, B),
        "adv": rng.normal(size=B),
        "v": rng.normal(size=B),
        "v_old": rng.normal(size=B),
        "ret": rng.normal(size=B),
        "ent": rng.uniform(0.1, 0.7, B),
    }
    t = {k: torch.tensor(a) for k, a in arrays.items()}
    loss, stats = ppo_loss(
        t["new_lp"],
        t["old_lp"],
        t["adv"],
        t["v"],
        t["v_old"],
        t["ret"],
        t["ent"],
        clip_coef=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        vf_clip_coef=vf_clip,
    )
    expected = numpy_ppo(*arrays.values(), 0.2, 0.5, 0.01, vf_clip)
    got = (loss, stats.policy_loss, stats.value_loss, stats.approx_kl, stats.clipfrac)
    for g, e in zip(got, expected, strict=True):
        assert float(g) == pytest.approx(float(e), rel=1e-9, abs=1e-12)


def test_first_minibatch_has_ratio_one_and_gradient_minus_mean_advantage() -> None:
    """With identical log-probs the ratio is exactly 1: no clipping, zero KL, pg = -mean(A)."""
    lp = torch.tensor([-0.3, -1.2, -0.9], requires_grad=True)
    adv = torch.tensor([1.0, -2.0, 0.5])
    zeros = torch.zeros(3)
    _, stats = ppo_loss(lp, lp.detach(), adv, zeros, zeros, zeros, zeros, 0.2, 0.0, 0.0)
    assert stats.approx_kl.item() == 0.0
    assert stats.clipfrac.item() == 0.0
    assert stats.policy_loss.item() == pytest.approx(-adv.mean().item())


def test_clipping_stops_the_gradient_beyond_the_trust_region() -> None:
    new_lp = torch.log(torch.tensor([1.5])).requires_grad_()  # ratio 1.5 > 1 + 0.2 with positive advantage
    loss, _ = ppo_loss(
        new_lp,
        torch.zeros(1),
        torch.ones(1),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        0.2,
        0.0,
        0.0,
    )
    loss.backward()
    assert new_lp.grad is not None and new_lp.grad.item() == 0.0
