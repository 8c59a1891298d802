"""The observations an ONNX export is checked on: drawn from the run's env (its observation space and a short
random rollout), or, where the env cannot be built, from what the checkpoint records (:func:`check_observations`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from thrust_cli.vector.spaces import random_actions, sample_box

if TYPE_CHECKING:
    import gymnasium

ROLLOUT_STEPS = 32  # random-action env steps whose observations are also checked
ROLLOUT_ROWS = 64  # at most this many of them, as one batch


def check_observations(
    env_cfg: Any, spaces: dict[str, Any], seed: int = 0
) -> tuple[gymnasium.spaces.Box | None, np.ndarray | None, str]:
    """The observations the export check runs: ``(observation_space, rollout, description)``.

    The run's env is built from its config (one board for multi-agent envs, else 8 instances) for its
    observation space (the bounds checkpoints do not record) and :data:`ROLLOUT_STEPS` random-action steps, of
    which up to :data:`ROLLOUT_ROWS` observations are kept. If the env cannot be built here (e.g. a Gymnasium id
    whose package is missing), integer observations fall back to the checkpoint's ``num_codes`` (codes
    ``0 .. num_codes - 1``) and float ones to standard normal draws; the description says which.

    Shapes:
        rollout: [rows, *obs_shape] in the env's observation dtype.
    """
    import gymnasium

    obs_shape = tuple(spaces["obs_shape"])
    try:
        space, rollout = env_rollout(env_cfg, seed)
        if tuple(space.shape) != obs_shape:
            raise ValueError(f"its observation shape {list(space.shape)} is not the checkpoint's {list(obs_shape)}")
        return space, rollout, f"observations from {env_cfg.name}'s observation space and a random rollout"
    except Exception as exc:  # any env failure: check on what the checkpoint records instead
        reason = root_cause(exc)
    num_codes = spaces.get("num_codes")
    if num_codes:
        codes = gymnasium.spaces.Box(0, int(num_codes) - 1, obs_shape, dtype=np.dtype(spaces["obs_dtype"]))
        return codes, None, f"observation codes 0..{int(num_codes) - 1}; env not built: {reason}"
    return None, None, f"standard normal observations; env not built: {reason}"


def env_rollout(env_cfg: Any, seed: int) -> tuple[gymnasium.spaces.Box, np.ndarray]:
    """The env's observation space and observations of a short rollout with uniform random actions."""
    from thrust_cli.vector.envs import agents_per_env, make_env

    env = make_env(env_cfg, 1 if agents_per_env(env_cfg) > 1 else 8, seed)
    rng = np.random.default_rng(seed)
    try:
        env.reset(seed=seed)
        rows = [env.observations.copy()]
        for actions in random_actions(env.single_action_space, env.num_agents, ROLLOUT_STEPS, rng):
            env.step(actions)
            rows.append(env.observations.copy())
        space = env.single_observation_space
    finally:
        env.close()
    observations = np.concatenate(rows)
    keep = rng.choice(len(observations), min(ROLLOUT_ROWS, len(observations)), replace=False)
    return space, observations[np.sort(keep)]


def fallback_space(policy: nn.Module, obs_shape: tuple[int, ...], obs_dtype: str | None) -> gymnasium.spaces.Box | None:
    """Check-input bounds without the env's space: the policy's one-hot codes, an integer dtype's range within
    [0, 255], or None (standard normal) for floats."""
    import gymnasium

    dtype = np.dtype(obs_dtype or "float32")
    num_codes = getattr(policy, "num_codes", None)
    if dtype.kind not in "biu":
        return None
    if dtype.kind == "b":
        high = 1
    elif isinstance(num_codes, int) and num_codes > 0:  # a one-hot encoder accepts only codes below num_codes
        high = num_codes - 1
    else:
        high = min(int(np.iinfo(dtype).max), 255)
    return gymnasium.spaces.Box(0, high, obs_shape, dtype=np.int64)


def space_observations(
    space: gymnasium.spaces.Box | None, obs_shape: tuple[int, ...], batch: int, rng: np.random.Generator
) -> np.ndarray:
    """``batch`` float32 observations within ``space`` (:func:`~thrust_cli.vector.spaces.sample_box`), all
    standard normal without a space.

    Shapes:
        returns [batch, *obs_shape] float32.
    """
    if space is None:
        return rng.standard_normal((batch, *obs_shape)).astype(np.float32)
    return sample_box(space, batch, rng).astype(np.float32)


def root_cause(exc: BaseException) -> str:
    """First line of the innermost cause: the exporter wraps the real error in several layers of advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
