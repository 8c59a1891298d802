"""The Thrust env API: many agents per object, stepping in place into buffers the caller may own.

An env object simulates ``num_agents`` agents. Its buffers are NumPy arrays with a leading agent axis:

=====================  ==========================  ===================================================
buffer                 shape / dtype               meaning after ``step()``
=====================  ==========================  ===================================================
``observations``       [A, *obs_shape] obs dtype   observation *delivered* by this step (the first
                                                   observation of a new episode where one ended)
``actions``            [A] int32 (Discrete) or     the actions the step consumed
                       [A, *act_shape] float32
``rewards``            [A] float32                 reward for the action just taken
``terminals``          [A] bool                    the action just taken ended the episode (MDP end)
``truncations``        [A] bool                    the episode was cut by a time limit
``final_observations`` [A, *obs_shape] obs dtype   last observation of the episode that ended this
                                                   step; valid only where terminals | truncations
=====================  ==========================  ===================================================

Envs auto-reset inside ``step``: where an episode ends the flags are set and ``observations`` already holds
the next episode's first observation, so the bootstrap value of a truncated episode must come from
``final_observations``. A vectorizer passes slices of its own (possibly shared-memory) buffers through
``buffers=``; a standalone env allocates them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import gymnasium
import numpy as np


@dataclass
class Buffers:
    """The arrays an env writes into. All share the leading agent axis."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    final_observations: np.ndarray

    @property
    def num_agents(self) -> int:
        return int(self.rewards.shape[0])

    def slice(self, start: int, stop: int) -> Buffers:
        """Views of agents ``[start, stop)`` (no copy)."""
        return Buffers(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})


def action_dtype(space: gymnasium.Space[Any]) -> np.dtype[Any]:
    if isinstance(space, gymnasium.spaces.Discrete):
        return np.dtype(np.int32)
    if isinstance(space, gymnasium.spaces.Box):
        return np.dtype(np.float32)
    raise TypeError(f"unsupported action space {space}; allowed: Discrete, Box")


def allocate(
    observation_space: gymnasium.spaces.Box,
    action_space: gymnasium.Space[Any],
    num_agents: int,
    alloc: Any = np.zeros,
) -> Buffers:
    """Allocate the buffers of ``num_agents`` agents with ``alloc(shape, dtype)`` (e.g. a shared-memory
    allocator)."""
    obs_shape = (num_agents, *observation_space.shape)
    act_shape = (num_agents, *(action_space.shape or ()))
    return Buffers(
        observations=alloc(obs_shape, observation_space.dtype),
        actions=alloc(act_shape, action_dtype(action_space)),
        rewards=alloc((num_agents,), np.float32),
        terminals=alloc((num_agents,), np.bool_),
        truncations=alloc((num_agents,), np.bool_),
        final_observations=alloc(obs_shape, observation_space.dtype),
    )


class Env:
    """Base class of Thrust envs: holds spaces and buffers; subclasses implement reset/step/log.

    Attributes:
        single_observation_space: space of one agent's observation.
        single_action_space: space of one agent's action.
        num_agents: number of agents stepped by one ``step()`` call.
    """

    single_observation_space: gymnasium.spaces.Box
    single_action_space: gymnasium.Space[Any]
    num_agents: int
    buffers: Buffers

    def _init_buffers(self, num_agents: int, buffers: Buffers | None) -> None:
        self.num_agents = num_agents
        if buffers is None:
            buffers = allocate(self.single_observation_space, self.single_action_space, num_agents)
        elif buffers.num_agents != num_agents:
            raise ValueError(f"buffers hold {buffers.num_agents} agents, the env has {num_agents}")
        self.buffers = buffers
        self.observations = buffers.observations
        self.actions = buffers.actions
        self.rewards = buffers.rewards
        self.terminals = buffers.terminals
        self.truncations = buffers.truncations
        self.final_observations = buffers.final_observations

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode for every agent; writes ``observations``. Same seed → same trajectories."""
        raise NotImplementedError

    def step(self, actions: np.ndarray | None = None) -> None:
        """Step every agent once with ``actions`` (default: whatever is in ``self.actions``)."""
        raise NotImplementedError

    def log(self) -> dict[str, float]:
        """Aggregated statistics of the episodes finished since the last call (means, plus ``n``), then reset
        the counters. Empty dict when no episode finished."""
        raise NotImplementedError

    def render(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not render")

    def close(self) -> None:
        """Release resources. Idempotent."""
