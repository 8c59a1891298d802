"""CartPole in C, bit-exact with Gymnasium's CartPole-v1, many envs per object (docs/envs.md).

The physics and the auto-reset live in ``cartpole.h``; ``cartpole.pyx`` binds it; this module declares the
spaces, owns the float64 ``state`` and renders.
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np

from envs_cython.base import Buffers, CEnv, StateMixin

from .cartpole import CyCartPole

__all__ = ["CartPole"]

X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360  # radians, as Gymnasium computes it


class CartPole(StateMixin, CEnv):
    """``num_envs`` independent CartPole-v1 envs stepped by one C call.

    Dynamics, reward, termination and observation are Gymnasium CartPole-v1's, bit for bit (float64 state,
    float32 observation). Episodes are truncated after ``max_steps`` steps, like Gymnasium's ``TimeLimit``:
    ``truncations`` is set at step ``max_steps`` even when that step also terminates (both flags true).
    Ended episodes auto-reset inside :meth:`step` (see docs/envs.md). Actions are [num_envs] ints in {0, 1}
    (0 pushes left); like Gymnasium, any value other than 1 pushes left. :meth:`log` reports equal returns and
    lengths (reward 1.0 per step).

    Args:
        num_envs: number of envs (one agent each).
        buffers: buffers to write into (e.g. a vectorizer's slice, C-contiguous); allocated when ``None``.
        seed: seeds env ``i``'s PRNG with ``seed + i``; the first :meth:`reset` without a seed draws from it.
        max_steps: time limit of an episode (CartPole-v1: 500).

    Raises:
        ValueError: ``num_envs < 1``, ``max_steps < 1``, or buffers of the wrong size, dtype or layout.

    Attributes:
        state: [num_envs, 4] float64 (x, x_dot, theta, theta_dot); writable in place, e.g. to start from
            Gymnasium's state. Assigning to it copies into the same array (the C core holds its pointer).
    """

    def __init__(self, num_envs: int = 1, buffers: Buffers | None = None, seed: int = 0, max_steps: int = 500) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 for CartPole, got {num_envs}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 for CartPole, got {max_steps}")
        # Gymnasium CartPole-v1's bounds: twice the termination thresholds, unbounded velocities.
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        self.single_observation_space = gymnasium.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self._init_buffers(num_envs, buffers)
        self.max_steps = max_steps
        self._state = np.zeros((num_envs, 4), dtype=np.float64)
        self._bind(
            CyCartPole,
            self._state,
            *self._buffer_args(),
            max_steps,
            layout="observations float32, actions int32",
            seed=seed,
        )

    def render(self, mode: str = "rgb_array") -> np.ndarray | str:
        """Draw env 0.

        Args:
            mode: ``"rgb_array"`` for a [160, 240, 3] uint8 image (cart, pole, track), ``"ansi"`` for one line
                of text.

        Raises:
            ValueError: unknown ``mode``.
        """
        x, x_dot, theta, theta_dot = (float(v) for v in self._state[0])
        if mode == "ansi":
            return _render_text(x, x_dot, theta, theta_dot)
        if mode == "rgb_array":
            return _render_rgb(x, theta)
        raise ValueError(f"unknown render mode {mode!r}; allowed: rgb_array, ansi")


def _render_text(x: float, x_dot: float, theta: float, theta_dot: float, width: int = 41) -> str:
    """``|.........[/]......|  x=... `` : the track from -2.4 to 2.4 with the cart and the pole's lean."""
    col = round((min(max(x, -X_THRESHOLD), X_THRESHOLD) / X_THRESHOLD + 1) / 2 * (width - 1))
    pole = "|" if abs(theta) < 0.02 else ("/" if theta > 0 else "\\")
    track = ["."] * width
    track[col] = pole
    state = f"x={x:+.3f} x_dot={x_dot:+.3f} theta={theta:+.3f} theta_dot={theta_dot:+.3f}"
    return f"|{''.join(track)}|  {state}"


def _render_rgb(x: float, theta: float, height: int = 160, width: int = 240) -> np.ndarray:
    """Env 0 as Gymnasium draws it (black cart on a track, 1 m pole), over the observation bounds of x,
    [-4.8, 4.8] m, so a cart that left the track stays in view."""
    scale = width / (X_THRESHOLD * 4)
    frame = np.full((height, width, 3), 255, dtype=np.uint8)
    track_y = int(height * 0.7)
    frame[track_y, :] = 0
    cart_x = round(width / 2 + x * scale)
    cart_w, cart_h = 20, 12
    top, left = track_y - cart_h // 2, cart_x - cart_w // 2
    frame[max(top, 0) : top + cart_h, max(left, 0) : max(left + cart_w, 0)] = 0
    # pole: 60 points from the pivot on top of the cart to the tip, each a 3x3 block
    t = np.linspace(0.0, 1.0, 60)
    px = np.round(cart_x + t * math.sin(theta) * scale).astype(int)
    py = np.round(top - t * math.cos(theta) * scale).astype(int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ok = (py + dy >= 0) & (py + dy < height) & (px + dx >= 0) & (px + dx < width)
            frame[py[ok] + dy, px[ok] + dx] = (202, 152, 101)
    return frame
