"""Vectorizers: run many env objects behind one batched interface.

The protocol (every backend implements it; the multiprocessing backend follows the same calls):

- ``reset(seed)``: reset every env; the next ``recv()`` returns the first observations.
- ``send(actions)``: hand the actions of the batch returned by the last ``recv()`` to the envs.
- ``recv()``: ``(observations, rewards, terminals, truncations, infos, agent_ids)`` of the next ready batch.
  The arrays are views of buffers the vectorizer owns, overwritten by the next step: copy what you keep.
  ``infos`` is a list of dicts (env statistics); ``agent_ids`` are the global indices of the batch's agents.

Buffers are allocated once by the vectorizer; the C envs write into them in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

from envs_cython.base import Buffers, Env, allocate

EnvCreator = Callable[..., Env]


class VectorizerError(RuntimeError):
    """A worker died or raised; the vectorizer is closed.

    Attributes:
        worker: index of the failed worker (``None`` when no single worker is to blame).
        worker_traceback: the worker's formatted traceback, when it raised.
    """

    def __init__(self, message: str, worker: int | None = None, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.worker = worker
        self.worker_traceback = worker_traceback


def probe_env(
    env_creator: EnvCreator, num_envs: int, seed: int
) -> tuple[gymnasium.spaces.Box, gymnasium.Space[Any], int]:
    """Make one throwaway env object of ``num_envs`` envs to read its spaces and agent count."""
    probe = env_creator(num_envs=num_envs, buffers=None, seed=seed)
    try:
        return probe.single_observation_space, probe.single_action_space, probe.num_agents
    finally:
        probe.close()


class Serial:
    """All envs stepped in the calling process.

    Args:
        env_creator: ``env_creator(num_envs=..., buffers=..., seed=...)`` returns an env over those buffers.
        num_envs: total number of env instances (agents, for single-agent envs).
        num_objects: how many env objects share them (each gets a contiguous block).
        seed: base seed; object k is seeded with ``seed + k * num_envs // num_objects`` (the index of its first
            env instance).

    Raises:
        ValueError: ``num_envs`` is not a positive multiple of ``num_objects``.
    """

    def __init__(self, env_creator: EnvCreator, num_envs: int, num_objects: int = 1, seed: int = 0) -> None:
        if num_envs < 1 or num_objects < 1 or num_envs % num_objects:
            raise ValueError(f"num_envs={num_envs} must be a positive multiple of num_objects={num_objects}")
        per_object = num_envs // num_objects
        self.single_observation_space, self.single_action_space, agents_per_object = probe_env(
            env_creator, per_object, seed
        )
        self.num_envs = num_envs
        self.num_agents = agents_per_object * num_objects
        self.buffers: Buffers = allocate(self.single_observation_space, self.single_action_space, self.num_agents)
        self.envs = [
            env_creator(
                num_envs=per_object,
                buffers=self.buffers.slice(k * agents_per_object, (k + 1) * agents_per_object),
                seed=seed + k * per_object,
            )
            for k in range(num_objects)
        ]
        self.agent_ids = np.arange(self.num_agents)
        self.observations = self.buffers.observations
        self.actions = self.buffers.actions
        self.rewards = self.buffers.rewards
        self.terminals = self.buffers.terminals
        self.truncations = self.buffers.truncations
        self.final_observations = self.buffers.final_observations
        self._seed = seed
        self._closed = False

    def reset(self, seed: int | None = None) -> None:
        """Reset every env object and clear the reward and done flags; the next `recv` returns the first
        observations.

        Args:
            seed: object k is reseeded with ``seed + k * num_envs // num_objects``; None continues each object's
                PRNG (see the env's ``reset``).
        """
        per_object = self.num_envs // len(self.envs)
        for k, env in enumerate(self.envs):
            env.reset(None if seed is None else seed + k * per_object)
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False

    def send(self, actions: np.ndarray) -> None:
        """Step every env object once with ``actions``, [num_agents] (Discrete) or [num_agents, *act_shape].

        The step runs here, synchronously; ``actions`` may be the ``actions`` buffer itself (no copy then).
        """
        if actions is not self.actions:
            self.actions[:] = actions
        for env in self.envs:
            env.step()

    def recv(
        self,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, float]], np.ndarray]:
        """The whole batch after the last `reset` or `send`: ``(observations, rewards, terminals, truncations,
        infos, agent_ids)``, views of the vectorizer's buffers over all ``num_agents`` agents; ``infos`` is always
        empty here (statistics come from `log`)."""
        return self.observations, self.rewards, self.terminals, self.truncations, [], self.agent_ids

    def log(self) -> dict[str, float]:
        """Episode statistics of all env objects since the last call, averaged by episode count."""
        return merge_logs([env.log() for env in self.envs])

    def close(self) -> None:
        """Close every env object. Idempotent."""
        if not self._closed:
            for env in self.envs:
                env.close()
            self._closed = True


def merge_logs(logs: list[dict[str, float]]) -> dict[str, float]:
    """Average several ``Env.log()`` dicts, weighting each by its episode count ``n``.

    A key averages over the logs that have it (a key one log lacks is not counted as 0 there); ``n`` is the
    total episode count.
    """
    logs = [log for log in logs if log.get("n", 0) > 0]
    if not logs:
        return {}
    keys = {k for log in logs for k in log if k != "n"}
    merged = {}
    for k in keys:
        having = [log for log in logs if k in log]
        merged[k] = sum(log[k] * log["n"] for log in having) / sum(log["n"] for log in having)
    merged["n"] = sum(log["n"] for log in logs)
    return merged
