"""The PPO loss as a pure function (Schulman et al. 2017, https://arxiv.org/abs/1707.06347).

Details follow CleanRL's "37 implementation details" (https://iclr-blog-track.github.io/2022/03/25/ppo-implementation-details/).
Variants: the clipped surrogate, dual-clip PPO (Ye et al. 2020, https://arxiv.org/abs/1912.09729), a KL
penalty (Schulman et al. 2017 §4; its coefficient is adapted by :func:`adapt_kl_coef`) alone or with clipping,
and value clipping on or off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PPOStats:
    """Diagnostics of one minibatch, as detached tensors."""

    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor


def ppo_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float | None,
    vf_coef: float,
    ent_coef: float,
    vf_clip_coef: float | None = None,
    dual_clip_c: float | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, PPOStats]:
    """PPO loss ``pg + kl_coef * KL - ent_coef * entropy + vf_coef * v``.

    Args:
        new_logprobs: log pi(a|s) under the policy being trained (with gradient).
        old_logprobs: log pi(a|s) under the policy that collected the data.
        advantages: advantages, already normalized if wanted.
        new_values: V(s) being trained (with gradient).
        old_values: V(s) at collection time (for value clipping).
        returns: value targets.
        entropy: policy entropy per sample (with gradient).
        clip_coef: surrogate clip range epsilon: ratio is clipped to [1 - eps, 1 + eps]; None gives the
            unclipped surrogate ``-A * r`` (use it with a KL penalty).
        vf_coef: weight of the value loss.
        ent_coef: weight of the entropy bonus.
        vf_clip_coef: if set, value clipping ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, ±c) - R)^2)``;
            None gives the plain ``0.5 * (V - R)^2``.
        dual_clip_c: dual-clip PPO: for negative advantages the loss is capped at ``-c * A`` (c > 1), so a
            huge ratio on a bad action cannot produce an unbounded loss; None disables it.
        kl_coef: weight of the KL penalty ``mean((r - 1) - log r)`` (an unbiased, non-negative estimate of
            KL(old || new)); 0 disables it.

    Returns:
        ``(loss, stats)``; ``approx_kl = mean((r - 1) - log r)`` (http://joschu.net/blog/kl-approx.html),
        ``clipfrac = mean(|r - 1| > clip_coef)`` (with 0.2 in place of a None ``clip_coef``).

    Shapes:
        every tensor argument: [B] (one minibatch).
    """
    logratio = new_logprobs - old_logprobs
    ratio = logratio.exp()
    if clip_coef is None:
        pg_losses = -advantages * ratio
    else:
        pg_losses = torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef))
    if dual_clip_c is not None:
        pg_losses = torch.where(advantages < 0, torch.min(pg_losses, -dual_clip_c * advantages), pg_losses)
    pg_loss = pg_losses.mean()
    approx_kl = ((ratio - 1.0) - logratio).mean()

    if vf_clip_coef is None:
        v_loss = 0.5 * (new_values - returns).pow(2).mean()
    else:
        v_clipped = old_values + (new_values - old_values).clamp(-vf_clip_coef, vf_clip_coef)
        v_loss = 0.5 * torch.max((new_values - returns).pow(2), (v_clipped - returns).pow(2)).mean()

    entropy_mean = entropy.mean()
    loss = pg_loss - ent_coef * entropy_mean + vf_coef * v_loss
    if kl_coef:
        loss = loss + kl_coef * approx_kl
    with torch.no_grad():
        stats = PPOStats(
            policy_loss=pg_loss.detach(),
            value_loss=v_loss.detach(),
            entropy=entropy_mean.detach(),
            approx_kl=approx_kl.detach(),
            clipfrac=((ratio - 1.0).abs() > (clip_coef or 0.2)).float().mean(),
        )
    return loss, stats


def adapt_kl_coef(kl_coef: float, kl: float, target_kl: float) -> float:
    """Schulman et al. 2017 §4: halve the penalty when ``kl < target / 1.5``, double it when ``kl > 1.5 target``.

    Called once per update with the update's mean KL; the coefficient stays in ``[1e-4, 1e4]``.
    """
    if kl < target_kl / 1.5:
        kl_coef /= 2.0
    elif kl > target_kl * 1.5:
        kl_coef *= 2.0
    return min(max(kl_coef, 1e-4), 1e4)
