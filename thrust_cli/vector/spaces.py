"""Random draws from Gymnasium spaces, for benchmarks and export checks (not for learning).

One rule for every Box: uniform where both bounds are finite and within :data:`UNBOUNDED`, an exponential tail
away from a lone bound, standard normal where there is none, as ``gymnasium.spaces.Box.sample`` does; integer
dtypes draw integers in [low, high].
"""

from __future__ import annotations

from typing import Any

import numpy as np

UNBOUNDED = 1e6  # a bound beyond this counts as none (Gymnasium writes float32 max for "unbounded")


def sample_box(space: Any, batch: int, rng: np.random.Generator) -> np.ndarray:
    """``batch`` draws from a Box ``space``.

    Shapes:
        returns [batch, *space.shape] of ``space.dtype``.
    """
    shape = (batch, *space.shape)
    low = np.broadcast_to(space.low, space.shape).astype(np.float64)
    high = np.broadcast_to(space.high, space.shape).astype(np.float64)
    if np.dtype(space.dtype).kind in "biu":
        return rng.integers(low.astype(np.int64), high.astype(np.int64), shape, endpoint=True).astype(space.dtype)
    has_low, has_high = low > -UNBOUNDED, high < UNBOUNDED
    lo, hi = np.where(has_low, low, 0.0), np.where(has_high, high, 0.0)
    tail = rng.exponential(size=shape)
    draws = np.where(
        has_low & has_high,
        lo + rng.random(shape) * (hi - lo),
        np.where(has_low, lo + tail, np.where(has_high, hi - tail, 0.0)),
    )
    draws = np.where(has_low | has_high, draws, rng.standard_normal(shape))
    return draws.astype(space.dtype)


def random_actions(space: Any, num_agents: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` arrays of random actions for ``num_agents`` agents drawn from one agent's action ``space``.

    Discrete: integers in [start, start + n). Box: :func:`sample_box`.

    Shapes:
        each array: [A, *space.shape] of ``space.dtype`` (Discrete: [A] int32, the buffers' dtype).

    Raises:
        ValueError: a space other than Discrete or Box.
    """
    import gymnasium

    if isinstance(space, gymnasium.spaces.Discrete):
        start = int(space.start)
        return [rng.integers(start, start + int(space.n), size=num_agents).astype(np.int32) for _ in range(count)]
    if isinstance(space, gymnasium.spaces.Box):
        return [sample_box(space, num_agents, rng) for _ in range(count)]
    raise ValueError(f"random actions are drawn from Discrete or Box action spaces, not {space}")
