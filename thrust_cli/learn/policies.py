"""Policies: MLP and LSTM actor-critics with a categorical head (Discrete actions) or a Gaussian head (Box).

The actor head outputs the parameters of ``policy.dist`` (:mod:`thrust_cli.learn.distributions`): logits, or the
Gaussian mean; ``policy.dist`` samples, evaluates log-probs and maps samples to env actions.

Orthogonal init as in the PPO reference implementations: gain sqrt(2) on hidden layers, 0.01 on the policy head,
1.0 on the value head (CleanRL detail #2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from thrust_cli.learn.distributions import Categorical, Gaussian

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Initialise ``layer`` in place, orthogonal weights scaled by ``gain`` and a constant bias, and return it."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_size: int, num_layers: int, activation: str) -> nn.Sequential:
    """``num_layers`` Linear + activation pairs from ``in_dim`` to ``hidden_size`` (empty for 0 layers)."""
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
        """Run every copy on the same input: ``[B, in_dim]`` → ``[copies, B, hidden_size]``."""
        h = x.unsqueeze(0).expand(self.copies, *x.shape)
        for weight, bias in zip(self.weights, self.biases, strict=True):
            h = self.activation(torch.baddbmm(bias, h, weight))
        return h


class MLPPolicy(nn.Module):
    """Actor-critic MLP for flat observations.

    Args:
        obs_dim: size of the flattened observation.
        num_actions: number of discrete actions, or action dimensions with a Gaussian ``dist``.
        hidden_size: width of each hidden layer.
        num_layers: hidden layers per trunk.
        activation: one of ``tanh``, ``relu``, ``gelu``.
        shared: one trunk for actor and critic instead of two separate ones (CleanRL's choice, which often
            learns better on small control tasks; the two are evaluated together by :class:`StackedMLP`).
        dist: the action distribution (default :class:`Categorical`).
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        activation: str = "tanh",
        shared: bool = False,
        dist: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.dist: Any = dist if dist is not None else Categorical()
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
        """The critic's value ``[B]`` for observations ``[B, *obs_shape]``."""
        return self.forward(obs)[1]


class LSTMPolicy(nn.Module):
    """Encoder → one LSTM layer → actor and critic heads (REFERENCE.md §7).

    The encoder suits the observation: integer cell codes (e.g. Snake's int8 view) are one-hot encoded over
    ``num_codes`` values, float vectors go through a linear layer; both end in ``hidden_size`` ReLU units.
    In the rollout the LSTM steps one observation at a time; :meth:`forward_sequence` replays a segment from its
    stored start state, zeroing the state where an episode ended, so it reproduces the rollout exactly.

    Args:
        obs_shape: shape of one observation.
        num_actions: number of discrete actions.
        hidden_size: width of the encoder output and of the LSTM state.
        num_codes: for integer observations, the number of distinct codes (max code + 1); None for floats.
        dist: the action distribution (default :class:`Categorical`).
    """

    recurrent = True

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        hidden_size: int = 128,
        num_codes: int | None = None,
        dist: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.dist: Any = dist if dist is not None else Categorical()
        self.num_codes = num_codes
        self.hidden_size = hidden_size
        in_dim = math.prod(obs_shape) * (num_codes or 1)
        self.encoder = nn.Sequential(layer_init(nn.Linear(in_dim, hidden_size)), nn.ReLU())
        self.lstm = nn.LSTM(hidden_size, hidden_size)
        for name, param in self.lstm.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0.0)
            else:
                nn.init.orthogonal_(param, 1.0)
        self.actor_head = layer_init(nn.Linear(hidden_size, num_actions), gain=0.01)
        self.critic_head = layer_init(nn.Linear(hidden_size, 1), gain=1.0)

    def initial_state(self, batch: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero state ``(h, c)``, each [1, batch, hidden_size]."""
        h = torch.zeros(1, batch, self.hidden_size, device=device)
        return h, torch.zeros_like(h)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """[B, *obs_shape] → [B, hidden_size]."""
        if self.num_codes is not None:
            x = nn.functional.one_hot(obs.flatten(1).long(), self.num_codes).flatten(1).float()
        else:
            x = obs.flatten(1).float()
        return self.encoder(x)

    def _cell(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One LSTM step with ``self.lstm``'s parameters: ``torch.lstm_cell`` is ~1.5x faster than calling
        ``nn.LSTM`` one step at a time (fwd + bwd, 16 steps, batch 32, on this CPU) and computes the same gates."""
        lstm: Any = self.lstm
        return torch.lstm_cell(x, (h, c), lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)

    def forward(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One step: ``(logits [B, A], values [B], (h, c))`` for observations [B, ...] and state [1, B, H]."""
        h, c = self._cell(self.encode(obs), state[0][0], state[1][0])
        return self.actor_head(h), self.critic_head(h).squeeze(-1), (h.unsqueeze(0), c.unsqueeze(0))

    def forward_sequence(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], resets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replay segments: ``(logits [S, L, A], values [S, L])``.

        Shapes:
            obs: [S, L, *obs_shape]; state: ([1, S, H], [1, S, H]), the state before step 0 (already zeroed if
            step 0 starts an episode); resets: [S, L] bool, True where step t starts a new episode (t > 0).
        """
        S, L = resets.shape
        x = self.encode(obs.reshape(S * L, *obs.shape[2:])).reshape(S, L, -1)
        keep = (~resets).float().unsqueeze(-1)
        h, c = state[0][0], state[1][0]
        outputs = []
        for t in range(L):
            if t > 0:
                h, c = h * keep[:, t], c * keep[:, t]
            h, c = self._cell(x[:, t], h, c)
            outputs.append(h)
        hidden = torch.stack(outputs, dim=1)
        return self.actor_head(hidden), self.critic_head(hidden).squeeze(-1)


def sample_actions(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from the categorical distribution given by ``logits [B, A]``; return ``(actions, logprobs)``."""
    return Categorical().sample(logits)


def evaluate_actions(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(logprobs [B], entropy [B])`` of ``actions [B]`` under ``logits [B, A]``."""
    return Categorical().evaluate(logits, actions)


def make_policy(
    obs_shape: tuple[int, ...],
    num_actions: int,
    cfg: Any,
    num_codes: int | None = None,
    box: tuple[Any, Any] | None = None,
) -> MLPPolicy | LSTMPolicy:
    """Build the policy named by ``cfg.name`` (the ``policy`` config group).

    Args:
        num_actions: discrete actions, or the action dimensions of a Box space.
        num_codes: for integer observations, the number of distinct codes (the LSTM one-hot encodes them).
        box: ``(low, high)`` of a Box action space: a Gaussian head (``cfg.squash``, ``cfg.log_std_init``)
            instead of the categorical one.
    """
    dist: nn.Module | None = None
    if box is not None:
        dist = Gaussian(
            num_actions,
            box[0],
            box[1],
            squash=bool(getattr(cfg, "squash", False)),
            log_std_init=float(getattr(cfg, "log_std_init", 0.0)),
        )
    if cfg.name == "mlp":
        return MLPPolicy(
            obs_dim=math.prod(obs_shape),
            num_actions=num_actions,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            activation=cfg.activation,
            shared=cfg.shared,
            dist=dist,
        )
    if cfg.name == "lstm":
        return LSTMPolicy(obs_shape, num_actions, hidden_size=cfg.hidden_size, num_codes=num_codes, dist=dist)
    raise ValueError(f"unknown policy '{cfg.name}'; allowed: mlp, lstm")
