"""Memory: the correct action depends on a cue seen ``k`` steps earlier — proof that recurrence works.

Each episode lasts ``k + 1`` steps. Step 0 shows the cue: observation ``[c, 1, 0]`` with ``c`` = -1 or +1 drawn
at random. The next ``k - 1`` observations are ``[0, 0, 0]``; the last one, ``[0, 0, 1]``, asks for the cue:
action 1 for +1, action 0 for -1 earns reward 1 (success), anything else 0, and the episode terminates.
Actions before the query are ignored. A memoryless policy sees the same query whatever the cue, so it succeeds
half the time; a recurrent one can succeed always. The episode return is the success (0 or 1).

Vectorised in NumPy (tiny per-step cost; no C core needed to measure learning).
"""

from __future__ import annotations

import gymnasium
import numpy as np

from envs_cython.base import Buffers, Env


class Memory(Env):
    """``num_envs`` independent Memory episodes.

    Args:
        num_envs: envs (agents) stepped together.
        buffers: caller-owned buffers (a vectorizer's), or None to allocate.
        seed: env ``i`` draws its cues from a generator seeded with ``seed + i``.
        k: steps between the cue and the query (>= 1).
    """

    def __init__(self, num_envs: int = 1, buffers: Buffers | None = None, seed: int = 0, k: int = 8) -> None:
        if num_envs < 1 or k < 1:
            raise ValueError(f"Memory needs num_envs >= 1 and k >= 1; got num_envs={num_envs}, k={k}")
        self.k = k
        self.single_observation_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self._init_buffers(num_envs, buffers)
        self._seed = seed
        self._rngs: list[np.random.Generator] = []
        self._cue = np.zeros(num_envs, dtype=np.float32)
        self._tick = np.zeros(num_envs, dtype=np.int64)
        self._sum_return = 0.0
        self._episodes = 0

    def _start(self, idx: np.ndarray) -> None:
        self._cue[idx] = [self._rngs[i].choice((-1.0, 1.0)) for i in idx]
        self._tick[idx] = 0
        self.observations[idx] = 0.0
        self.observations[idx, 0] = self._cue[idx]
        self.observations[idx, 1] = 1.0

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode in every env: draw a cue and write the cue observation ``[c, 1, 0]``.

        Args:
            seed: reseed env ``i``'s generator with ``seed + i`` first; ``None`` continues each generator (the
                first reset after construction seeds from the constructor's ``seed``). Finished-episode
                statistics are kept for ``log()``.
        """
        if seed is not None or not self._rngs:
            base = self._seed if seed is None else seed
            self._rngs = [np.random.default_rng(base + i) for i in range(self.num_agents)]
        self._start(np.arange(self.num_agents))

    def step(self, actions: np.ndarray | None = None) -> None:
        """Advance every env one step; the envs that answer the query get their reward, terminate and auto-reset.

        Args:
            actions: [num_envs] int32 actions copied into ``self.actions`` (only the one taken on the query
                observation matters); ``None`` steps with what the buffer holds.
        """
        if actions is not None:
            self.actions[:] = actions
        self._tick += 1
        query_answered = self._tick > self.k
        correct = (self.actions == 1) == (self._cue > 0)
        self.rewards[:] = (query_answered & correct).astype(np.float32)
        self.terminals[:] = query_answered
        self.truncations[:] = False
        self.observations[:] = 0.0
        self.observations[self._tick == self.k, 2] = 1.0  # the query
        ended = np.flatnonzero(query_answered)
        if len(ended):
            self.final_observations[ended] = 0.0
            self.final_observations[ended, 2] = 1.0
            self._sum_return += float(self.rewards[ended].sum())
            self._episodes += len(ended)
            self._start(ended)

    def log(self) -> dict[str, float]:
        """Mean ``episode_return`` (the success rate) of the episodes finished since the last call and their count
        ``n``; then clear. Empty dict when none finished."""
        if self._episodes == 0:
            return {}
        out = {"episode_return": self._sum_return / self._episodes, "n": float(self._episodes)}
        self._sum_return, self._episodes = 0.0, 0
        return out
