"""Action distributions of the policy heads: categorical for ``Discrete``, diagonal Gaussian for ``Box``.

A policy's actor head outputs the distribution's parameters (logits, or the Gaussian mean); the distribution
object turns them into sampled actions, log-probabilities and entropies. For a ``Box`` space the rollout stores
the *pre-squash* sample ``u`` and :meth:`Gaussian.to_env` maps it to the env's bounds, so log-probs are always
evaluated at the exact sample (never through an ``atanh`` of a clipped action).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class Categorical(nn.Module):
    """Categorical over ``logits [B, A]``; actions are int64 indices [B]."""

    continuous = False

    def sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(actions [B], logprobs [B])``."""
        logp = torch.log_softmax(logits, dim=-1)
        actions = torch.multinomial(logp.exp(), 1)
        return actions.squeeze(-1), logp.gather(-1, actions).squeeze(-1)

    def evaluate(self, logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logprobs [B], entropy [B])`` of ``actions [B]``."""
        logp = torch.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        """The most likely actions [B] (int64), for deterministic evaluation."""
        return logits.argmax(-1)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """The env actions: the sampled indices themselves (no transformation)."""
        return actions


class Gaussian(nn.Module):
    """Diagonal Gaussian with a state-independent, learned log standard deviation.

    Without squashing the env receives ``clip(u, low, high)`` (the sample itself is trained on, as CleanRL does
    with ``ClipAction``). With ``squash`` the env receives ``low + (tanh(u) + 1) / 2 * (high - low)`` and the
    log-prob includes the change of variables, ``- sum log(scale * (1 - tanh(u)^2))`` (Haarnoja et al. 2018,
    appendix C), computed as ``2 (log 2 - u - softplus(-2u))`` for stability. The entropy reported (and used by
    the entropy bonus) is the Gaussian's, before squashing, which has no closed form after it.

    Args:
        dim: action dimensions.
        low: the Box's lower bounds, ``dim`` values (finite for ``squash``; -inf disables clipping below).
        high: the Box's upper bounds, ``dim`` values (finite for ``squash``; +inf disables clipping above).
        squash: tanh squashing into the bounds.
        log_std_init: initial log standard deviation.

    Raises:
        ValueError: ``squash`` with a bound that is not finite.
    """

    continuous = True
    low: torch.Tensor
    high: torch.Tensor

    def __init__(
        self, dim: int, low: Sequence[float], high: Sequence[float], squash: bool = False, log_std_init: float = 0.0
    ) -> None:
        super().__init__()
        # the bounds are checked on the host: under a meta-device context (train's preflight) a tensor has no values
        low_a, high_a = (np.asarray(b, dtype=np.float32).reshape(dim) for b in (low, high))
        if squash and not (np.isfinite(low_a).all() and np.isfinite(high_a).all()):
            raise ValueError("tanh squashing needs finite action bounds; set policy.squash=false")
        low_t, high_t = torch.as_tensor(low_a), torch.as_tensor(high_a)
        self.log_std = nn.Parameter(torch.full((dim,), float(log_std_init)))
        self.register_buffer("low", low_t, persistent=False)
        self.register_buffer("high", high_t, persistent=False)
        self.squash = squash
        self.dim = dim

    def _log_prob(self, mean: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        log_std = self.log_std.expand_as(mean)
        z = (u - mean) * torch.exp(-log_std)
        logp = (-0.5 * z * z - log_std - _LOG_SQRT_2PI).sum(-1)
        if self.squash:
            scale = 0.5 * (self.high - self.low)
            log_det = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u)) + torch.log(scale)
            logp = logp - log_det.sum(-1)
        return logp

    def sample(self, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u [B, D], logprobs [B])``: the pre-squash sample and its log-prob (with ``squash``, that of the
        squashed env action, change of variables included; without, that of ``u`` before clipping)."""
        u = mean + torch.randn_like(mean) * self.log_std.exp()
        return u, self._log_prob(mean, u)

    def evaluate(self, mean: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logprobs [B], entropy [B])`` of stored pre-squash samples ``u [B, D]``."""
        entropy = (self.log_std + 0.5 + _LOG_SQRT_2PI).sum().expand(mean.shape[0])
        return self._log_prob(mean, u), entropy

    def mode(self, mean: torch.Tensor) -> torch.Tensor:
        """The pre-squash mode [B, D]: the mean itself (pass it through `to_env` for the env action)."""
        return mean

    def to_env(self, u: torch.Tensor) -> torch.Tensor:
        """Map pre-squash samples ``u [B, D]`` to env actions inside the bounds (tanh-squashed or clipped)."""
        if self.squash:
            return self.low + (torch.tanh(u) + 1.0) * 0.5 * (self.high - self.low)
        return torch.maximum(torch.minimum(u, self.high), self.low)
