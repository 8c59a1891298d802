"""Asteroids in C: a ship, bullets and splitting rocks on a wrap-around field, many envs per object
(docs/envs.md).

The game, the observation and the auto-reset live in ``asteroids.h``; ``asteroids.pyx`` binds it; this module
declares the spaces, owns the game states (a NumPy structured array laid out like the C ``AsteroidsState``) and
renders.
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np
from PIL import Image, ImageDraw

from envs_cython.base import Buffers, CEnv, StateMixin

from .asteroids import OBS_SIZE, STATE_BYTES, CyAsteroids

__all__ = ["ACTIONS", "LARGE", "MEDIUM", "NONE", "POINTS", "RADIUS", "SMALL", "STATE_DTYPE", "Asteroids"]

# Constants of asteroids.h that Python needs.
WIDTH, HEIGHT = 256.0, 192.0
HEADINGS = 32
MAX_BULLETS, MAX_ROCKS = 4, 40
SHIP_RADIUS = 5.0
NONE, SMALL, MEDIUM, LARGE = 0, 1, 2, 3  # rock sizes; NONE marks a free slot
RADIUS = (0.0, 4.0, 8.0, 16.0)  # by size
POINTS = (0, 100, 50, 20)  # by size
# Discrete actions: what each does (asteroids.h's asteroids_actions).
ACTIONS = (
    "noop",
    "thrust",
    "left",
    "right",
    "fire",
    "thrust+left",
    "thrust+right",
    "fire+left",
    "fire+right",
    "thrust+fire",
)

_BULLET = np.dtype([("x", "<f4"), ("y", "<f4"), ("vx", "<f4"), ("vy", "<f4"), ("life", "<i4")])
_ROCK = np.dtype([("x", "<f4"), ("y", "<f4"), ("vx", "<f4"), ("vy", "<f4"), ("size", "<i4"), ("shape", "<i4")])
#: one env's game state, field for field the C ``AsteroidsState`` (asteroids.h documents each field)
STATE_DTYPE = np.dtype(
    [
        ("ship_x", "<f4"),
        ("ship_y", "<f4"),
        ("ship_vx", "<f4"),
        ("ship_vy", "<f4"),
        ("heading", "<i4"),
        ("cooldown", "<i4"),
        ("invulnerable", "<i4"),
        ("lives", "<i4"),
        ("thrusting", "<i4"),
        ("score", "<i4"),
        ("wave", "<i4"),
        ("tick", "<i4"),
        ("bullets", _BULLET, (MAX_BULLETS,)),
        ("rocks", _ROCK, (MAX_ROCKS,)),
    ]
)
if STATE_DTYPE.itemsize != STATE_BYTES:
    raise ImportError(f"STATE_DTYPE has {STATE_DTYPE.itemsize} bytes, asteroids.h's AsteroidsState {STATE_BYTES}")

# render(): outlines of the 4 rock shapes as radii (times the rock's radius) at 11 evenly spaced angles
_SHAPES = np.array(
    [
        [1.0, 0.82, 1.05, 0.9, 0.7, 1.0, 0.95, 0.75, 1.05, 0.85, 0.92],
        [0.9, 1.05, 0.75, 0.95, 1.0, 0.8, 1.05, 0.9, 0.7, 1.0, 0.88],
        [1.05, 0.9, 0.95, 0.72, 1.0, 1.05, 0.8, 0.95, 0.9, 0.75, 1.0],
        [0.8, 1.0, 0.9, 1.05, 0.78, 0.95, 1.0, 0.7, 0.92, 1.05, 0.9],
    ]
)
_SHAPE_ANGLES = np.linspace(0.0, 2 * math.pi, _SHAPES.shape[1], endpoint=False)
# render(): the score's digits as 3x5 bitmaps, rows top to bottom
_DIGITS = (
    ("###", "#.#", "#.#", "#.#", "###"),
    ("..#", "..#", "..#", "..#", "..#"),
    ("###", "..#", "###", "#..", "###"),
    ("###", "..#", "###", "..#", "###"),
    ("#.#", "#.#", "###", "..#", "..#"),
    ("###", "#..", "###", "..#", "###"),
    ("###", "#..", "###", "#.#", "###"),
    ("###", "..#", "..#", "..#", "..#"),
    ("###", "#.#", "###", "#.#", "###"),
    ("###", "#.#", "###", "..#", "###"),
)


class Asteroids(StateMixin, CEnv):
    """``num_envs`` independent games of Asteroids stepped by one C call, one ship each.

    The ship rotates through 32 headings, thrusts with inertia and drag, and fires bullets (a lifetime of 20 steps,
    one shot every 5 steps at most); rocks drift on a 256 x 192 wrap-around field and split large → 2 medium →
    2 small when shot, for 20 / 50 / 100 points. The reward of a step is its points / 100, so an episode's return
    is its score / 100 (up to float32 rounding). Crashing into a rock costs a life (the ship respawns at the centre
    and cannot crash for the next 59 steps); losing the last one terminates the episode, ``max_steps`` truncates
    it. Clearing the field starts a harder wave (one more large rock, up to 10; faster rocks). Ended episodes
    auto-reset inside :meth:`step`.

    Observations are 56 float32 in [-1, 1]: the ship's heading, velocity, cooldown, invulnerability, lives and
    rock count, then the 8 nearest rocks in the ship's frame (layout in docs/envs.md and asteroids.h). Actions are
    ``Discrete(10)``, named in ``ACTIONS``; a value outside [0, 10) acts as noop. :meth:`log` reports the mean
    ``episode_return``, ``episode_length`` and ``score`` of finished episodes.

    Args:
        num_envs: number of envs (one ship each).
        buffers: buffers to write into (e.g. a vectorizer's slice, C-contiguous); allocated when ``None``.
        seed: seeds env ``i``'s PRNG with ``seed + i``; the constructor draws the first fields from it.
        max_steps: time limit of an episode.
        num_lives: lives at the start of an episode.

    Raises:
        ValueError: ``num_envs``, ``max_steps`` or ``num_lives`` below 1, or buffers of the wrong size, dtype or
            layout.

    Attributes:
        state: [num_envs] structured array of ``STATE_DTYPE`` (ship, bullets, rocks, lives, score, wave, step
            count), the very memory the C core steps: writable in place, e.g. ``env.state["rocks"][0, 0] = ...``
            to set up a scene (keep sizes in 0..3 with the rocks in the first slots, since the first free slot
            ends the list; headings in 0..31; positions on the field). Assigning to it copies into the same
            array.
    """

    log_keys = ("episode_return", "episode_length", "score")

    def __init__(
        self,
        num_envs: int = 1,
        buffers: Buffers | None = None,
        seed: int = 0,
        max_steps: int = 4500,
        num_lives: int = 3,
    ) -> None:
        if num_envs < 1 or max_steps < 1 or num_lives < 1:
            raise ValueError(
                "Asteroids needs num_envs, max_steps and num_lives >= 1; got "
                f"num_envs={num_envs}, max_steps={max_steps}, num_lives={num_lives}"
            )
        self.single_observation_space = gymnasium.spaces.Box(-1.0, 1.0, (OBS_SIZE,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(len(ACTIONS))
        self._init_buffers(num_envs, buffers)
        self.max_steps, self.num_lives = max_steps, num_lives
        self._state = np.zeros(num_envs, dtype=STATE_DTYPE)
        self._bind(
            CyAsteroids,
            self._state.view(np.uint8).reshape(num_envs, STATE_BYTES),
            *self._buffer_args(),
            max_steps,
            num_lives,
            layout=f"observations float32 [agents, {OBS_SIZE}], actions int32",
            seed=seed,
        )
        # A valid field from the start, so step() works before reset(). The first reset() without a seed keeps
        # it: that is the field (and PRNG state) it would draw.
        self._c.reset()
        self._fresh = True

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode in every env; writes ``state`` and ``observations``.

        Args:
            seed: reseed env ``i``'s PRNG with ``seed + i`` first; ``None`` continues each env's PRNG (the first
                reset after construction keeps the field the constructor drew from its seed). Statistics of
                finished episodes are kept for :meth:`log`; running episodes are dropped.
        """
        if seed is None and self._fresh:
            self._core()  # raises when closed
            self._fresh = False
            return
        super().reset(seed)
        self._fresh = False

    def step(self, actions: np.ndarray | None = None) -> None:
        """Step every env once: one C call without the GIL, auto-resetting the envs whose episode ends.

        Args:
            actions: [num_envs] ints in [0, 10) (see ``ACTIONS``), copied into ``self.actions``; ``None`` steps
                with what the buffer holds.
        """
        super().step(actions)
        self._fresh = False

    def render(self, scale: int = 2) -> np.ndarray:
        """Draw env 0: rocks as irregular outlines, the ship as a triangle (with a flame while thrusting, dimmed
        while invulnerable), bullets as dots, the score top left and the lives as ships top right.

        Args:
            scale: pixels per field unit.

        Returns:
            [192 * scale, 256 * scale, 3] uint8 RGB image (y up on the field, so row 0 is the top edge).

        Raises:
            ValueError: ``scale < 1``.
        """
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        return _draw(self._state[0], scale)


def _ship_outline(x: float, y: float, angle: float, size: float) -> list[tuple[float, float]]:
    """Nose, left wing, notch, right wing of a ship at (x, y) pointing at ``angle`` (field coordinates)."""
    points = ((1.6, 0.0), (-1.0, 0.9), (-0.5, 0.0), (-1.0, -0.9))
    c, s = math.cos(angle), math.sin(angle)
    return [(x + size * (px * c - py * s), y + size * (px * s + py * c)) for px, py in points]


def _draw(state: np.void, scale: int) -> np.ndarray:
    width, height = round(WIDTH * scale), round(HEIGHT * scale)
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)

    def pixels(points: list[tuple[float, float]], dx: float, dy: float) -> list[tuple[float, float]]:
        return [((x + dx) * scale, (HEIGHT - y - dy) * scale) for x, y in points]

    def copies(x: float, y: float, reach: float) -> list[tuple[float, float]]:
        """The offsets at which something of radius ``reach`` at (x, y) shows on the wrap-around field."""
        xs = [0.0] + ([WIDTH] if x < reach else []) + ([-WIDTH] if x > WIDTH - reach else [])
        ys = [0.0] + ([HEIGHT] if y < reach else []) + ([-HEIGHT] if y > HEIGHT - reach else [])
        return [(dx, dy) for dx in xs for dy in ys]

    for rock in state["rocks"]:
        if rock["size"] == NONE:
            continue
        x, y, radius = float(rock["x"]), float(rock["y"]), RADIUS[int(rock["size"]) & 3]
        radii = radius * _SHAPES[int(rock["shape"]) & 3]
        outline = [(x + r * math.cos(a), y + r * math.sin(a)) for r, a in zip(radii, _SHAPE_ANGLES, strict=True)]
        for dx, dy in copies(x, y, 1.1 * radius):
            draw.polygon(pixels(outline, dx, dy), outline=(200, 200, 200), width=max(1, scale // 2))
    for bullet in state["bullets"]:
        if bullet["life"] > 0:
            bx, by = (float(bullet["x"]) * scale, (HEIGHT - float(bullet["y"])) * scale)
            draw.ellipse((bx - scale, by - scale, bx + scale, by + scale), fill=(255, 255, 255))

    x, y = float(state["ship_x"]), float(state["ship_y"])
    angle = 2 * math.pi * (int(state["heading"]) % HEADINGS) / HEADINGS
    color = (90, 140, 160) if state["invulnerable"] > 0 else (255, 255, 255)
    for dx, dy in copies(x, y, 2 * SHIP_RADIUS):
        if state["thrusting"]:
            c, s = math.cos(angle), math.sin(angle)
            tail = [(x - 2.6 * SHIP_RADIUS * c, y - 2.6 * SHIP_RADIUS * s)]
            wings = _ship_outline(x, y, angle, SHIP_RADIUS)
            flame = [_lerp(wings[1], wings[2], 0.6), *tail, _lerp(wings[3], wings[2], 0.6)]
            draw.polygon(pixels(flame, dx, dy), fill=(255, 150, 40))
        draw.polygon(pixels(_ship_outline(x, y, angle, SHIP_RADIUS), dx, dy), outline=color, width=max(1, scale // 2))

    cell = 2 * scale  # a bitmap pixel is 2 field units
    for k, digit in enumerate(str(int(state["score"]))):
        for row, bits in enumerate(_DIGITS[int(digit)]):
            for col, bit in enumerate(bits):
                if bit == "#":
                    left, top = (2 + 4 * k + col) * cell, (2 + row) * cell
                    draw.rectangle((left, top, left + cell - 1, top + cell - 1), fill=(255, 255, 255))
    for k in range(int(state["lives"])):
        icon = _ship_outline(WIDTH - 8.0 - 9.0 * k, HEIGHT - 8.0, math.pi / 2, 3.5)
        draw.polygon(pixels(icon, 0.0, 0.0), outline=(255, 255, 255))
    return np.asarray(image, dtype=np.uint8)


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
