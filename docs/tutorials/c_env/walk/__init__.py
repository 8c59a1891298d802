"""Walk in C: a 1-D corridor with the goal at one end and a pit at the other (docs/tutorials/c-env.md).

``walk.h`` holds the dynamics, ``walk.pyx`` binds it, this module declares the spaces and renders.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from envs_cython.base import Buffers, CEnv

from .walk import CyWalk

__all__ = ["Walk"]


class Walk(CEnv):
    """``num_envs`` independent corridors stepped by one C call.

    Args:
        num_envs: number of envs (one agent each).
        buffers: buffers to write into (a vectorizer's slice); allocated when ``None``.
        seed: seeds env ``i``'s PRNG with ``seed + i``.
        length: the ends are ``length`` steps from the start, left and right.
        max_steps: time limit of an episode.
    """

    def __init__(
        self, num_envs: int = 1, buffers: Buffers | None = None, seed: int = 0, length: int = 8, max_steps: int = 100
    ) -> None:
        if num_envs < 1 or length < 1 or max_steps < 1:
            raise ValueError(f"Walk needs num_envs, length and max_steps >= 1, got {num_envs}, {length}, {max_steps}")
        self.length = length
        self.single_observation_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self._init_buffers(num_envs, buffers)
        self._bind(
            CyWalk,
            *self._buffer_args(),
            length,
            max_steps,
            layout="observations float32 [N, 2], actions int32 [N]",
            seed=seed,
        )

    def render(self, mode: str = "ansi") -> str:
        """Env 0 as one line of text: ``G`` the goal, ``x`` the pit, ``@`` the agent."""
        if mode != "ansi":
            raise ValueError(f"unknown render mode {mode!r}; allowed: ansi")
        position = round(float(self.observations[0, 0]) * self.length)
        goal = int(self.observations[0, 1])
        cells = ["."] * (2 * self.length + 1)
        cells[0], cells[-1] = ("x", "G") if goal > 0 else ("G", "x")
        cells[position + self.length] = "@"
        return "".join(cells)
