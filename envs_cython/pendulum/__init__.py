"""Pendulum in C, bit-exact with Gymnasium's Pendulum-v1, many envs per object (docs/envs.md).

The physics, the reward and the auto-reset live in ``pendulum.h``; ``pendulum.pyx`` binds it; this module
declares the spaces, owns the float64 ``state`` and renders.
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np

from envs_cython.base import Buffers, CEnv, StateMixin

from .pendulum import CyPendulum

__all__ = ["Pendulum"]

MAX_SPEED = 8.0
MAX_TORQUE = 2.0


def angle_normalize(x: float) -> float:
    """Gymnasium's ``angle_normalize``: ``x`` wrapped into [-pi, pi), 0 upright."""
    return ((x + math.pi) % (2 * math.pi)) - math.pi


class Pendulum(StateMixin, CEnv):
    """``num_envs`` independent Pendulum-v1 envs stepped by one C call.

    Dynamics, reward and observation are Gymnasium Pendulum-v1's, bit for bit (float64 state, float32
    observation; the float64 reward is delivered rounded to float32). The pendulum never terminates; episodes
    are truncated after ``max_steps`` steps, like Gymnasium's ``TimeLimit``, and auto-reset inside
    :meth:`step` (see docs/envs.md). Actions are [num_envs, 1] float32 torques; like Gymnasium, values beyond
    ±2 are clipped to ±2. The returns :meth:`log` reports are sums of the float32 rewards the episodes
    delivered, added in float64.

    Args:
        num_envs: number of envs (one agent each).
        buffers: buffers to write into (e.g. a vectorizer's slice, C-contiguous); allocated when ``None``.
        seed: seeds env ``i``'s PRNG with ``seed + i``; the first :meth:`reset` without a seed draws from it.
        max_steps: time limit of an episode (Pendulum-v1: 200).
        g: gravity (Pendulum-v1's ``g``, default 10.0).

    Raises:
        ValueError: ``num_envs < 1``, ``max_steps < 1``, ``g`` not finite, or buffers of the wrong size, dtype
            or layout.

    Attributes:
        state: [num_envs, 2] float64 (th, thdot); th is not wrapped (0 is upright, counter-clockwise positive).
            Writable in place, e.g. to start from Gymnasium's state. Assigning to it copies into the same
            array (the C core holds its pointer).
    """

    def __init__(
        self,
        num_envs: int = 1,
        buffers: Buffers | None = None,
        seed: int = 0,
        max_steps: int = 200,
        g: float = 10.0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 for Pendulum, got {num_envs}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 for Pendulum, got {max_steps}")
        if not math.isfinite(g):
            raise ValueError(f"g must be finite for Pendulum, got {g}")
        # Gymnasium Pendulum-v1's spaces.
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        self.single_observation_space = gymnasium.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Box(-MAX_TORQUE, MAX_TORQUE, shape=(1,), dtype=np.float32)
        self._init_buffers(num_envs, buffers)
        self.max_steps = max_steps
        self.g = float(g)
        self._state = np.zeros((num_envs, 2), dtype=np.float64)
        self._bind(
            CyPendulum,
            self._state,
            *self._buffer_args(),
            max_steps,
            self.g,
            layout="observations float32 [N, 3], actions float32 [N, 1]",
            seed=seed,
        )

    def render(self, mode: str = "rgb_array") -> np.ndarray | str:
        """Draw env 0.

        Args:
            mode: ``"rgb_array"`` for a [160, 160, 3] uint8 image (rod, axle, and a bar for the torque of the
                last step), ``"ansi"`` for one line of text.

        Raises:
            ValueError: unknown ``mode``.
        """
        th, thdot = (float(v) for v in self._state[0])
        u = min(max(float(self.actions[0, 0]), -MAX_TORQUE), MAX_TORQUE)  # NaN stays NaN in the text only
        if mode == "ansi":
            return f"theta={angle_normalize(th):+.3f} theta_dot={thdot:+.3f} torque={u:+.3f}"
        if mode == "rgb_array":
            return _render_rgb(th, u if math.isfinite(u) else 0.0)
        raise ValueError(f"unknown render mode {mode!r}; allowed: rgb_array, ansi")


def _render_rgb(th: float, u: float, size: int = 160) -> np.ndarray:
    """Env 0 as Gymnasium draws it: a red 1 m rod from the black axle at the centre, upright at th = 0 and
    turning counter-clockwise with th, over [-2.2, 2.2] m. Gymnasium's torque arrow becomes a grey bar under
    the axle, to the right for counter-clockwise (positive) torque, reaching 0.45 of the width at |u| = 2."""
    scale = size / 4.4
    centre = size // 2
    frame = np.full((size, size, 3), 255, dtype=np.uint8)
    bar = round(abs(u) / MAX_TORQUE * size * 0.45)
    bar_y = size - 12
    if u >= 0:
        frame[bar_y : bar_y + 4, centre : centre + bar] = (128, 128, 128)
    else:
        frame[bar_y : bar_y + 4, centre - bar : centre] = (128, 128, 128)
    # rod: the pixels within 0.1 m (Gymnasium's rod width 0.2 m) of the segment from the axle to the tip
    tip_x, tip_y = -math.sin(th) * scale, -math.cos(th) * scale  # relative to the axle, image y down
    yy, xx = np.mgrid[0:size, 0:size] - centre
    t = np.clip((xx * tip_x + yy * tip_y) / (scale * scale), 0.0, 1.0)
    rod = (xx - t * tip_x) ** 2 + (yy - t * tip_y) ** 2 <= (0.1 * scale) ** 2
    frame[rod] = (204, 77, 77)
    axle = xx**2 + yy**2 <= (0.05 * scale) ** 2
    frame[axle] = 0
    return frame
