"""Advantage estimators as pure functions of tensors.

Time is the LAST axis and row t describes the transition t → t+1; the full index convention (which step a
reward, terminal or truncation belongs to, and where ``next_values`` comes from at a truncation) is written once,
in :mod:`thrust_cli.rollout`.
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, https://arxiv.org/abs/1506.02438).

    ``delta_t = r_t + gamma * (1 - terminal_t) * V(s_{t+1}) - V(s_t)``
    ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}``

    A truncated step (done, not terminal) bootstraps from ``next_values`` and cuts the trace, which gives the
    same numbers as SB3's "add gamma * V(final obs) to the reward" and TorchRL's done/terminated split.

    Args:
        rewards: reward for the action at t.
        values: V(s_t), computed by the policy that collected the data.
        next_values: V(s_{t+1}) of the same episode (V(final observation) at a truncation).
        terminals: bool or {0, 1}; the episode reached a terminal state at t.
        dones: bool or {0, 1}; the episode ended at t (terminal or truncated).
        gamma: discount factor.
        gae_lambda: GAE lambda.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.

    Shapes:
        all inputs and outputs: [..., T], time on the last axis.
    """
    dtype = values.dtype
    not_terminal = 1.0 - terminals.to(dtype)
    not_done = 1.0 - dones.to(dtype)
    deltas = rewards.to(dtype) + gamma * not_terminal * next_values - values
    decay = (gamma * gae_lambda) * not_done
    advantages = torch.empty_like(deltas)
    lastgaelam = torch.zeros_like(deltas[..., 0])
    for t in range(deltas.shape[-1] - 1, -1, -1):
        lastgaelam = deltas[..., t] + decay[..., t] * lastgaelam
        advantages[..., t] = lastgaelam
    return advantages, advantages + values
