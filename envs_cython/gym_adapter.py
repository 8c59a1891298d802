"""Gymnasium interoperability, both ways.

- :class:`GymnasiumEnv` runs ``num_envs`` instances of any registered Gymnasium env (Box observations,
  Discrete or Box actions) behind the Thrust env API of :mod:`envs_cython.base`, so the vectorizer and the
  learner can train on it unchanged. It steps the instances in a Python loop: expect Gymnasium speed, not
  C speed.
- :class:`ThrustVectorEnv` exposes any Thrust env as a :class:`gymnasium.vector.VectorEnv` with same-step
  autoreset (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``), so Gymnasium-based code (CleanRL,
  wrappers, evaluation scripts) can drive the C envs.

Both follow Gymnasium 1.x semantics: where an episode ends, the step that ends it already returns the first
observation of the next one, and the last observation of the ended episode travels separately
(``final_observations`` on the Thrust side, ``infos["final_obs"]`` on the Gymnasium side).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs_cython.base import Buffers, Env

__all__ = ["GymnasiumEnv", "ThrustVectorEnv"]


def _float32_box(space: gymnasium.spaces.Box) -> gymnasium.spaces.Box:
    """``space`` with float32 dtype and the same bounds (rounded to nearest; bounds beyond the float32 range
    become ±inf). Rounding is monotone, so an observation inside the float64 box stays inside this one."""
    with np.errstate(over="ignore"):
        low = space.low.astype(np.float32)
        high = space.high.astype(np.float32)
    return gymnasium.spaces.Box(low=low, high=high, shape=space.shape, dtype=np.float32)


class GymnasiumEnv(Env):
    """``num_envs`` instances of a Gymnasium env behind the Thrust env API (one agent per instance).

    Instances are built with ``gymnasium.make(env_id, **make_kwargs)``, so the registered wrappers apply:
    ``TimeLimit`` ends episodes with ``truncations`` (not ``terminals``), and ``max_episode_steps=`` in
    ``make_kwargs`` overrides the registered limit. Each step's ``info`` dicts are discarded.

    Spaces, as seen by Thrust (``single_observation_space`` / ``single_action_space``):

    - A float64 observation Box becomes a float32 Box with the same bounds (rounded to float32), and
      observations are cast to float32 when written: Thrust buffers and policies are float32. Other dtypes
      (float32, uint8 images, ints) are kept as they are.
    - ``Discrete(n, start=s)`` becomes ``Discrete(n)``: the policy picks ``a`` in ``[0, n)`` and the
      instance receives ``a + s``.
    - A float64 action Box becomes a float32 Box (the action buffer is float32); the instance receives
      float32 actions, which a float64 Box accepts.

    Args:
        env_id: a registered Gymnasium id, e.g. ``"CartPole-v1"``.
        num_envs: number of instances, one agent each.
        buffers: buffers to write into (e.g. a vectorizer's shared-memory slice); allocated when ``None``.
        seed: seed of the first :meth:`reset` when that is called without one (so a vectorizer's per-object
            seeds apply); instance ``i`` is reset with ``seed + i``.
        **make_kwargs: passed to every ``gymnasium.make`` call (``max_episode_steps``, ``render_mode``, env
            parameters).

    Raises:
        ValueError: ``env_id`` is not registered, ``num_envs < 1``, or a space is unsupported.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        buffers: Buffers | None = None,
        seed: int = 0,
        **make_kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 for Gymnasium env {env_id!r}, got {num_envs}")
        self.env_id = env_id
        self._pending_seed: int | None = seed
        self._closed = False
        self.envs: list[gymnasium.Env[Any, Any]] = [self._make(env_id, make_kwargs)]
        try:  # validate the spaces before making the other instances; close what was made on any error
            self._set_spaces(self.envs[0])
            self.envs.extend(self._make(env_id, make_kwargs) for _ in range(num_envs - 1))
            self._init_buffers(num_envs, buffers)
        except Exception:
            self.close()
            raise
        # episode statistics: running episode per instance, sums over finished episodes since the last log()
        self._episode_returns = np.zeros(num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(num_envs, dtype=np.int64)
        self._sum_returns = 0.0
        self._sum_lengths = 0
        self._num_episodes = 0

    @staticmethod
    def _make(env_id: str, make_kwargs: dict[str, Any]) -> gymnasium.Env[Any, Any]:
        if not env_id:
            raise ValueError("env.id is empty; give a Gymnasium id such as CartPole-v1")
        try:
            return gymnasium.make(env_id, **make_kwargs)
        except (gymnasium.error.UnregisteredEnv, gymnasium.error.DeprecatedEnv) as err:
            raise ValueError(f"unknown Gymnasium env id {env_id!r}: {err}") from err
        except gymnasium.error.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if type(err).__name__ == "DependencyNotInstalled":  # e.g. Box2D for CarRacing
                raise ValueError(f"Gymnasium env {env_id!r} needs a package that is not installed: {first}") from err
            if first.startswith("Malformed environment ID"):
                raise ValueError(f"unknown Gymnasium env id {env_id!r}: {first}") from err
            raise

    def _set_spaces(self, env: gymnasium.Env[Any, Any]) -> None:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gymnasium.spaces.Box):
            raise ValueError(f"Gymnasium env {self.env_id!r} has observation space {obs_space}; allowed: Box")
        if obs_space.dtype == np.float64:
            obs_space = _float32_box(obs_space)
        self._action_start = 0
        if isinstance(act_space, gymnasium.spaces.Discrete):
            self._action_start = int(act_space.start)
            act_space = gymnasium.spaces.Discrete(int(act_space.n))
        elif isinstance(act_space, gymnasium.spaces.Box):
            if act_space.dtype != np.float32:
                act_space = _float32_box(act_space)
        else:
            raise ValueError(f"Gymnasium env {self.env_id!r} has action space {act_space}; allowed: Discrete, Box")
        self._discrete = isinstance(act_space, gymnasium.spaces.Discrete)
        self.single_observation_space = obs_space
        self.single_action_space = act_space

    def reset(self, seed: int | None = None) -> None:
        """Reset every instance and write ``observations``.

        Instance ``i`` is reseeded with ``seed + i``. With ``seed=None`` the first reset uses the
        constructor's seed and later ones continue each instance's RNG. Clears the running episodes, not the
        statistics of finished ones (see :meth:`log`).
        """
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else seed + i)
            self.observations[i] = obs
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0

    def step(self, actions: np.ndarray | None = None) -> None:
        """Step every instance with ``actions`` (default: ``self.actions``); auto-reset ended episodes.

        Shapes:
            actions: [A] int (Discrete) or [A, *act_shape] float (Box).
        """
        if actions is not None:
            self.actions[:] = actions
        # A fresh array, so no instance keeps a view of the reused buffer. Discrete actions go as int64 NumPy
        # scalars: Discrete.contains checks those without the np.iinfo lookup it does for Python ints.
        acts = self.actions.astype(np.int64) + self._action_start if self._discrete else self.actions.copy()
        obs_buf, final_buf = self.observations, self.final_observations
        rewards: list[float] = []
        terminals: list[bool] = []
        truncations: list[bool] = []
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, _ = env.step(acts[i])
            if terminated or truncated:
                final_buf[i] = obs
                obs, _ = env.reset()
            obs_buf[i] = obs
            rewards.append(float(reward))
            terminals.append(bool(terminated))
            truncations.append(bool(truncated))
        self.rewards[:] = rewards
        self.terminals[:] = terminals
        self.truncations[:] = truncations

        self._episode_returns += rewards
        self._episode_lengths += 1
        dones = self.terminals | self.truncations
        if dones.any():
            self._sum_returns += float(self._episode_returns[dones].sum())
            self._sum_lengths += int(self._episode_lengths[dones].sum())
            self._num_episodes += int(dones.sum())
            self._episode_returns[dones] = 0.0
            self._episode_lengths[dones] = 0

    def log(self) -> dict[str, float]:
        """Mean return and length of the episodes finished since the last call, and their count ``n``; then
        clear. Empty dict when none finished."""
        if self._num_episodes == 0:
            return {}
        n = self._num_episodes
        stats = {
            "episode_return": self._sum_returns / n,
            "episode_length": self._sum_lengths / n,
            "n": n,
        }
        self._sum_returns, self._sum_lengths, self._num_episodes = 0.0, 0, 0
        return stats

    def render(self) -> Any:
        """Render instance 0 (needs ``render_mode=`` in ``make_kwargs``)."""
        return self.envs[0].render()

    def close(self) -> None:
        """Close every instance. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for env in self.envs:
            env.close()


class ThrustVectorEnv(gymnasium.vector.VectorEnv):
    """A Thrust env as a Gymnasium vector env with same-step autoreset (``num_envs = env.num_agents``).

    ``step`` returns, like ``SyncVectorEnv(autoreset_mode=AutoresetMode.SAME_STEP)``:

    - ``observations``: where an episode ended, already the first observation of the next one;
    - ``infos["final_obs"]``: object array, the ended episode's last observation where ``infos["_final_obs"]``
      is True and ``None`` elsewhere; ``infos["final_info"] = {}`` with its ``"_final_info"`` mask;
    - ``infos["episode"] = {"r", "l", "t"}`` (return, length, seconds) and the ``"_episode"`` mask, in the
      format of ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` (off with ``episode_statistics=False``,
      which that wrapper needs, since it refuses an existing ``"episode"`` key).

    Keys are present only on steps where some episode ended. All returned arrays are copies. Rewards are
    float32 (Thrust's buffer dtype). The wrapped env's ``log()`` is left untouched for Thrust's own logging.

    Args:
        env: any object following :class:`envs_cython.base.Env`.
        episode_statistics: add the ``"episode"`` / ``"_episode"`` infos.
    """

    def __init__(self, env: Env, episode_statistics: bool = True) -> None:
        self.env = env
        self.num_envs = env.num_agents
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.episode_statistics = episode_statistics
        self._discrete_n = (
            int(env.single_action_space.n) if isinstance(env.single_action_space, gymnasium.spaces.Discrete) else None
        )
        self._episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._episode_starts = np.zeros(self.num_envs, dtype=np.float64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (sub-env ``i`` seeded with ``seed + i`` for Thrust's Gymnasium adapter; a C env
        derives its per-agent seeds from ``seed``). Thrust envs take no reset options.

        Raises:
            ValueError: ``options`` is not empty (Thrust envs reset all agents at once).
        """
        if options:
            raise ValueError(f"Thrust envs take no reset options (got {sorted(options)})")
        super().reset(seed=seed)
        self.env.reset(seed)
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        self._episode_starts[:] = time.perf_counter()
        return self.env.observations.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env; see the class docstring for the returned ``infos``.

        Raises:
            ValueError: a Discrete action lies outside ``[0, n)`` (a C env would not check it).
        """
        actions = np.asarray(actions)
        if self._discrete_n is not None and actions.size and (actions.min() < 0 or actions.max() >= self._discrete_n):
            raise ValueError(f"actions must lie in [0, {self._discrete_n}), got {actions}")
        env = self.env
        env.step(actions)
        rewards = env.rewards.copy()
        terminations = env.terminals.copy()
        truncations = env.truncations.copy()
        infos: dict[str, Any] = {}
        self._episode_returns += rewards
        self._episode_lengths += 1
        dones = terminations | truncations
        if dones.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(dones):
                final_obs[i] = env.final_observations[i].copy()
            infos["final_obs"], infos["_final_obs"] = final_obs, dones
            infos["final_info"], infos["_final_info"] = {}, dones.copy()
            if self.episode_statistics:
                now = time.perf_counter()
                infos["episode"] = {
                    "r": np.where(dones, self._episode_returns, 0.0),
                    "l": np.where(dones, self._episode_lengths, 0),
                    "t": np.where(dones, np.round(now - self._episode_starts, 6), 0.0),
                }
                infos["_episode"] = dones.copy()
                self._episode_starts[dones] = now
            self._episode_returns[dones] = 0.0
            self._episode_lengths[dones] = 0
        return env.observations.copy(), rewards, terminations, truncations, infos

    def render(self) -> tuple[Any, ...] | None:
        """A one-element tuple holding the wrapped env's ``render()`` (which draws its agent 0)."""
        return (self.env.render(),)

    def close_extras(self, **kwargs: Any) -> None:
        """Close the wrapped env (called by Gymnasium's ``close()``; ``kwargs`` are ignored)."""
        self.env.close()
