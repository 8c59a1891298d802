"""Policies: an MLP actor-critic with a categorical head.

Orthogonal init as in the PPO reference implementations: gain sqrt(2) on hidden layers, 0.01 on the policy head,
1.0 on the value head (CleanRL detail #2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_size: int, num_layers: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        layers += [layer_init(nn.Linear(dim, hidden_size)), ACTIVATIONS[activation]()]
        dim = hidden_size
    return nn.Sequential(*layers)


class StackedMLP(nn.Module):
    """``copies`` independent MLPs with the same shapes evaluated together by batched matmuls.

    The actor and the critic trunks of a small policy cost one ``baddbmm`` per layer instead of two ``addmm``,
    which halves the autograd nodes; on a CPU the per-op overhead, not the flops, dominates nets this small.
    Each copy is initialised like :func:`layer_init`.

    Shapes:
        input [B, in_dim] → output [copies, B, hidden_size].
    """

    def __init__(self, copies: int, in_dim: int, hidden_size: int, num_layers: int, activation: str) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        dim = in_dim
        for _ in range(num_layers):
            weight = torch.empty(copies, dim, hidden_size)
            for k in range(copies):
                nn.init.orthogonal_(weight[k].T, math.sqrt(2))
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(copies, 1, hidden_size)))
            dim = hidden_size
        self.copies = copies
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.copies, *x.shape)
        for weight, bias in zip(self.weights, self.biases, strict=True):
            h = self.activation(torch.baddbmm(bias, h, weight))
        return h


class MLPPolicy(nn.Module):
    """Actor-critic MLP for flat observations and Discrete actions.

    Args:
        obs_dim: size of the flattened observation.
        num_actions: number of discrete actions.
        hidden_size: width of each hidden layer.
        num_layers: hidden layers per trunk.
        activation: one of ``tanh``, ``relu``, ``gelu``.
        shared: one trunk for actor and critic instead of two separate ones (CleanRL's choice, which often
            learns better on small control tasks; the two are evaluated together by :class:`StackedMLP`).
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        activation: str = "tanh",
        shared: bool = False,
    ) -> None:
        super().__init__()
        self.shared = shared
        if shared:
            self.trunk: nn.Module = mlp(obs_dim, hidden_size, num_layers, activation)
        else:
            self.trunk = StackedMLP(2, obs_dim, hidden_size, num_layers, activation)
        out_dim = hidden_size if num_layers > 0 else obs_dim
        self.actor_head = layer_init(nn.Linear(out_dim, num_actions), gain=0.01)
        self.critic_head = layer_init(nn.Linear(out_dim, 1), gain=1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits [B, A], value [B])`` for observations ``[B, *obs_shape]``."""
        hidden = self.trunk(obs.flatten(1).float())
        actor_hidden, critic_hidden = (hidden, hidden) if self.shared else (hidden[0], hidden[1])
        return self.actor_head(actor_hidden), self.critic_head(critic_hidden).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.forward(obs)[1]


def sample_actions(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from the categorical distribution given by ``logits [B, A]``; return ``(actions, logprobs)``."""
    logp = torch.log_softmax(logits, dim=-1)
    actions = torch.multinomial(logp.exp(), 1)
    return actions.squeeze(-1), logp.gather(-1, actions).squeeze(-1)


def evaluate_actions(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(logprobs [B], entropy [B])`` of ``actions [B]`` under ``logits [B, A]``."""
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy


def make_policy(obs_shape: tuple[int, ...], num_actions: int, cfg: Any) -> MLPPolicy:
    """Build the policy named by ``cfg.name`` (the ``policy`` config group)."""
    if cfg.name == "mlp":
        return MLPPolicy(
            obs_dim=math.prod(obs_shape),
            num_actions=num_actions,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            activation=cfg.activation,
            shared=cfg.shared,
        )
    raise ValueError(f"unknown policy '{cfg.name}'; allowed: mlp")
