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
from typing import Any, ClassVar

import gymnasium
import numpy as np


@dataclass
class Buffers:
    """The arrays an env writes into; all share the leading agent axis ``A`` (see the module table).

    Attributes:
        observations: [A, *obs_shape] observation delivered by the last step (or reset).
        actions: [A] int32 (Discrete) or [A, *act_shape] float32 actions the next step consumes.
        rewards: [A] float32 reward for the action just taken.
        terminals: [A] bool, the action just taken ended the episode.
        truncations: [A] bool, the episode was cut by a time limit.
        final_observations: [A, *obs_shape] last observation of an episode that just ended; valid only where
            ``terminals | truncations``.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    final_observations: np.ndarray

    @property
    def num_agents(self) -> int:
        """Number of agents ``A`` (the length of the leading axis)."""
        return int(self.rewards.shape[0])

    def slice(self, start: int, stop: int) -> Buffers:
        """Views of agents ``[start, stop)`` (no copy)."""
        return Buffers(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})


def action_dtype(space: gymnasium.Space[Any]) -> np.dtype[Any]:
    """The dtype of the action buffer for ``space``.

    Args:
        space: one agent's action space.

    Returns:
        int32 for ``Discrete``, float32 for ``Box``.

    Raises:
        TypeError: any other space.
    """
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
    """Allocate the buffers of ``num_agents`` agents.

    Args:
        observation_space: one agent's observation space; gives ``obs_shape`` and the observation dtype.
        action_space: one agent's action space (``Discrete`` or ``Box``); gives ``act_shape`` and dtype.
        num_agents: length ``A`` of the leading axis.
        alloc: ``alloc(shape, dtype) -> np.ndarray``, ``np.zeros`` by default; a vectorizer passes a
            shared-memory allocator.

    Returns:
        The six buffers, shaped and typed as in the module table.

    Raises:
        TypeError: the action space is neither ``Discrete`` nor ``Box``.
    """
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
        """Draw agent 0's current state; the return type is the subclass's (e.g. an RGB array or text).

        Raises:
            NotImplementedError: the env does not render (the default).
        """
        raise NotImplementedError(f"{type(self).__name__} does not render")

    def close(self) -> None:
        """Release resources. Idempotent."""


class CEnv(Env):
    """Base class of the envs with a C core: forwards reset/step/log/close to the Cython binding ``_c``.

    A subclass declares its spaces, calls :meth:`_init_buffers`, then :meth:`_bind` with its binding class and
    the arrays and parameters that come before and after the six buffers. ``log()`` turns the binding's
    ``(*sums, n)`` into means named by ``log_keys``.
    """

    #: names of the sums the binding's ``log()`` returns before the episode count, in order
    log_keys: ClassVar[tuple[str, ...]] = ("episode_return", "episode_length")
    _c: Any = None  # the binding object; None once closed (or before it is built)

    def _bind(self, core_type: Any, *args: Any, layout: str, seed: int) -> None:
        """Build ``core_type(*args)`` over this env's buffers and seed it.

        Args:
            core_type: the Cython binding class.
            args: its arguments; :meth:`_buffer_args` gives the six buffers as it takes them.
            layout: what the observation and action buffers must hold, for the error message, e.g.
                ``"observations float32, actions int32"``.
            seed: passed to the binding's ``seed``.

        Raises:
            ValueError: the binding rejected a buffer (wrong size, dtype or layout), as one line.
        """
        try:
            self._c = core_type(*args)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{type(self).__name__} buffers must be C-contiguous along the agent axis, with {layout}, "
                f"rewards float32, terminals and truncations bool: {err}"
            ) from err
        self._c.seed(seed)

    def _buffer_args(self) -> tuple[np.ndarray, ...]:
        """The six buffers in the order the bindings take them, the flags viewed as uint8."""
        return (
            self.observations,
            self.actions,
            self.rewards,
            self.terminals.view(np.uint8),
            self.truncations.view(np.uint8),
            self.final_observations,
        )

    def _core(self) -> Any:
        if self._c is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return self._c

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode in every env; writes ``observations`` (and the env's own state).

        Args:
            seed: reseed env ``i``'s PRNG with ``seed + i`` first; ``None`` continues each env's PRNG (the
                first reset after construction then uses the constructor's seed). Statistics of finished
                episodes are kept for :meth:`log`; running episodes are dropped.
        """
        core = self._core()
        if seed is not None:
            core.seed(seed)
        core.reset()

    def step(self, actions: np.ndarray | None = None) -> None:
        """Step every env once: one C call, auto-resetting the envs whose episode ends.

        Args:
            actions: [num_agents, *action_shape] actions (see the class), copied into ``self.actions``; ``None``
                steps with what the buffer holds.
        """
        if actions is not None and actions is not self.actions:
            self.actions[:] = actions
        self._core().step()

    def log(self) -> dict[str, float]:
        """Means of ``log_keys`` over the episodes finished since the last call, and their count ``n``; then
        clear. Empty dict when none finished."""
        *totals, n = self._core().log()
        if n == 0:
            return {}
        return {**{key: total / n for key, total in zip(self.log_keys, totals, strict=True)}, "n": int(n)}

    def close(self) -> None:
        """Free the C structs; the buffers stay with their owner. Idempotent."""
        if self._c is not None:
            self._c.close()
            self._c = None


class StateMixin:
    """The per-env ``state`` array a C core holds a pointer to, exposed as a writable attribute.

    One row per env: [N, 4] float64 for CartPole, [N, 2] float64 for Pendulum, an [N] structured array of
    ``STATE_DTYPE`` for Asteroids. Assigning copies into the same memory, so the C core sees the change.
    """

    _state: np.ndarray

    @property
    def state(self) -> np.ndarray:
        """The state array the C core reads and writes (the array itself, not a copy)."""
        return self._state

    @state.setter
    def state(self, value: np.ndarray) -> None:
        """Copy ``value`` into the same array (the C core keeps its pointer)."""
        self._state[...] = value
