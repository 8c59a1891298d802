"""Experience storage and episode tracking.

THE index convention of Thrust, used by every buffer, advantage function and loss (written here once):

    Row t of a rollout describes the transition t → t+1 (TorchRL/rlax layout):
      obs[t]        observation the policy saw at step t
      actions[t]    action taken at step t;  logprobs[t], values[t] computed on obs[t]
      rewards[t]    reward FOR actions[t] (delivered by the env together with obs[t+1])
      terminals[t]  actions[t] ended the episode in a terminal state: no bootstrap
      dones[t]      the episode ended at t (terminal or truncated): the trace is cut
      next_values[t] V(s_{t+1}) of the same episode; at a truncation V(final observation), which the env
                    hands out in ``final_observations`` because obs[t+1] is already the next episode's start

The envs (``envs_cython.base``) deliver reward/terminal/truncation *with* the next observation; the rollout loop
converts at this one boundary by writing what ``recv()`` returns after ``send(actions[t])`` into row t.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Rollout:
    """Preallocated tensors of one rollout. Shapes: [T, N, ...] (time, agent)."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    terminals: torch.Tensor
    dones: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor
    last_values: torch.Tensor
    h0: torch.Tensor | None = None  # recurrent policies: state before each segment's first row [T/L, N, H]
    c0: torch.Tensor | None = None

    @classmethod
    def allocate(
        cls,
        num_steps: int,
        num_agents: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype,
        device: torch.device,
        segments: int = 0,
        hidden_size: int = 0,
        action_shape: tuple[int, ...] = (),
        action_dtype: torch.dtype = torch.long,
    ) -> Rollout:
        """Zeroed tensors; with ``hidden_size`` also the start states of ``segments`` segments per agent.

        Actions are int64 [T, N] for Discrete spaces, or float32 [T, N, *action_shape] pre-squash samples of a
        Gaussian head for Box spaces (see :mod:`thrust_cli.learn.distributions`).
        """
        T, N = num_steps, num_agents

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            obs=zeros(T, N, *obs_shape, dtype=obs_dtype),
            actions=zeros(T, N, *action_shape, dtype=action_dtype),
            logprobs=zeros(T, N),
            values=zeros(T, N),
            rewards=zeros(T, N),
            terminals=zeros(T, N, dtype=torch.bool),
            dones=zeros(T, N, dtype=torch.bool),
            truncated=zeros(T, N, dtype=torch.bool),
            final_values=zeros(T, N),
            last_values=zeros(N),
            h0=zeros(segments, N, hidden_size) if hidden_size else None,
            c0=zeros(segments, N, hidden_size) if hidden_size else None,
        )

    def next_values(self) -> torch.Tensor:
        """V(s_{t+1}) per row: the next row's value, ``last_values`` (V of the observation after the last row)
        after the last row, and V(final obs) where the episode was truncated.

        Shapes:
            returns [T, N].
        """
        shifted = torch.cat([self.values[1:], self.last_values.unsqueeze(0)], dim=0)
        return torch.where(self.truncated, self.final_values, shifted)


class EpisodeTracker:
    """Per-agent running return and length, and a window of finished episodes (no per-agent Python loop).

    Args:
        num_agents: agents stepped per call.
        window: number of most recent finished episodes kept.
    """

    def __init__(self, num_agents: int, window: int) -> None:
        self.returns = np.zeros(num_agents, dtype=np.float64)
        self.lengths = np.zeros(num_agents, dtype=np.int64)
        self.recent_returns: deque[float] = deque(maxlen=window)
        self.recent_lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0
        self._since = [0.0, 0.0, 0]  # return sum, length sum, count since the last pop_since()

    def step(self, rewards: np.ndarray, dones: np.ndarray, agents: slice | np.ndarray = slice(None)) -> int:
        """Account one step of ``agents`` (all by default); return how many episodes finished in it."""
        self.returns[agents] += rewards
        self.lengths[agents] += 1
        if not dones.any():
            return 0
        idx = np.arange(len(self.returns))[agents][dones]
        self.recent_returns.extend(self.returns[idx].tolist())
        self.recent_lengths.extend(self.lengths[idx].tolist())
        self._since[0] += float(self.returns[idx].sum())
        self._since[1] += float(self.lengths[idx].sum())
        self._since[2] += len(idx)
        self.returns[idx] = 0.0
        self.lengths[idx] = 0
        self.episodes += len(idx)
        return len(idx)

    def pop_since(self) -> tuple[float | None, float | None]:
        """Mean return and length of the episodes finished since the last call (None, None if none)."""
        ret_sum, len_sum, count = self._since
        self._since = [0.0, 0.0, 0]
        if count == 0:
            return None, None
        return ret_sum / count, len_sum / count

    def mean_return(self, last: int | None = None) -> float | None:
        """Mean return of the last ``last`` finished episodes (all kept by default); None if fewer exist."""
        n = len(self.recent_returns) if last is None else last
        if n == 0 or len(self.recent_returns) < n:
            return None
        values = list(self.recent_returns)[-n:]
        return float(sum(values) / n)

    def mean_length(self) -> float | None:
        """Mean length of the finished episodes kept; None if there are none."""
        if not self.recent_lengths:
            return None
        return float(sum(self.recent_lengths) / len(self.recent_lengths))
