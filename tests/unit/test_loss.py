"""PPO loss against the formulas of REFERENCE.md §6, computed independently in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thrust_cli.learn.loss import ppo_loss


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


def _loss_inputs(seed: int = 3, B: int = 512) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "new_logprobs": torch.randn(B, generator=g, dtype=torch.float64) * 0.5,
        "old_logprobs": torch.randn(B, generator=g, dtype=torch.float64) * 0.5,
        "advantages": torch.randn(B, generator=g, dtype=torch.float64),
        "new_values": torch.randn(B, generator=g, dtype=torch.float64),
        "old_values": torch.randn(B, generator=g, dtype=torch.float64),
        "returns": torch.randn(B, generator=g, dtype=torch.float64),
        "entropy": torch.rand(B, generator=g, dtype=torch.float64),
    }


def test_dual_clip_caps_the_loss_of_negative_advantages_at_c_times_minus_a() -> None:
    t = _loss_inputs()
    c = 3.0
    _, plain = ppo_loss(**t, clip_coef=0.2, vf_coef=0.0, ent_coef=0.0)
    _, dual = ppo_loss(**t, clip_coef=0.2, vf_coef=0.0, ent_coef=0.0, dual_clip_c=c)
    ratio = (t["new_logprobs"] - t["old_logprobs"]).exp()
    a = t["advantages"]
    clipped = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2))
    expected = torch.where(a < 0, torch.min(clipped, -c * a), clipped).mean()
    torch.testing.assert_close(dual.policy_loss, expected)
    assert (ratio[a < 0] > c).any(), "the inputs must exercise the cap"
    assert dual.policy_loss < plain.policy_loss


def test_unclipped_surrogate_and_kl_penalty() -> None:
    t = _loss_inputs()
    ratio = (t["new_logprobs"] - t["old_logprobs"]).exp()
    loss, stats = ppo_loss(**t, clip_coef=None, vf_coef=0.0, ent_coef=0.0)
    torch.testing.assert_close(stats.policy_loss, (-t["advantages"] * ratio).mean())
    penalized, _ = ppo_loss(**t, clip_coef=None, vf_coef=0.0, ent_coef=0.0, kl_coef=2.0)
    kl = ((ratio - 1) - ratio.log()).mean()
    torch.testing.assert_close(penalized, loss + 2.0 * kl)
    torch.testing.assert_close(stats.approx_kl, kl)


def test_adaptive_kl_coefficient_follows_schulman_2017() -> None:
    from thrust_cli.learn.loss import adapt_kl_coef

    assert adapt_kl_coef(1.0, 0.001, 0.01) == 0.5  # kl < target / 1.5
    assert adapt_kl_coef(1.0, 0.02, 0.01) == 2.0  # kl > 1.5 target
    assert adapt_kl_coef(1.0, 0.01, 0.01) == 1.0
    assert adapt_kl_coef(1e4, 1.0, 0.01) == 1e4  # bounded
