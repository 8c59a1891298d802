"""Busy: a test env whose cost per step is configurable, for benchmarking vectorizers (docs/performance.md).

The step logic lives in ``busy.h``; ``busy.pyx`` binds it (stepping without the GIL); this module declares the
spaces.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from envs_cython.base import Buffers, CEnv

from .busy import CyBusy

__all__ = ["Busy"]


class Busy(CEnv):
    """``num_envs`` envs that burn ``work`` iterations of integer arithmetic per env and step.

    Observations are uniform in [-1, 1) from each env's PRNG; the reward is 1.0 when the action equals
    ``observation[0] >= 0`` of the previous observation (so the env is learnable); episodes terminate with a
    hazard of 1/64 per step and are truncated after ``max_steps`` steps. Trajectories are a deterministic
    function of the seed, the actions ([num_envs] ints in {0, 1}) and the parameters. One step of N envs (one C
    loop without the GIL) costs about ``N * work * 1.5 ns`` on a current x86 core (see busy.h).

    Args:
        num_envs: number of envs (one agent each).
        buffers: buffers to write into (e.g. a vectorizer's slice, C-contiguous); allocated when ``None``.
        seed: seeds env ``i``'s PRNG with ``seed + i``; the first :meth:`reset` without a seed draws from it.
        work: iterations of the busy chain per env and step (>= 0).
        obs_dim: observation size.
        max_steps: time limit of an episode.

    Raises:
        ValueError: a parameter out of range, or buffers of the wrong size, dtype or layout.
    """

    def __init__(
        self,
        num_envs: int = 1,
        buffers: Buffers | None = None,
        seed: int = 0,
        work: int = 1000,
        obs_dim: int = 4,
        max_steps: int = 100,
    ) -> None:
        if num_envs < 1 or obs_dim < 1 or max_steps < 1 or work < 0:
            raise ValueError(
                f"Busy needs num_envs >= 1, obs_dim >= 1, max_steps >= 1 and work >= 0; got num_envs={num_envs}, "
                f"obs_dim={obs_dim}, max_steps={max_steps}, work={work}"
            )
        self.single_observation_space = gymnasium.spaces.Box(-1.0, 1.0, (obs_dim,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self._init_buffers(num_envs, buffers)
        self.work = work
        self.max_steps = max_steps
        self._bind(
            CyBusy, *self._buffer_args(), max_steps, work, layout="observations float32, actions int32", seed=seed
        )
