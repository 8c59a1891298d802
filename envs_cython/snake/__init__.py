"""Snake in C: many snakes share one board, several boards per object (docs/envs.md).

The rules, the body bookkeeping and the auto-reset live in ``snake.h``; ``snake.pyx`` binds it (stepping every
board in one call without the GIL); this module declares the spaces, owns the padded grids and renders.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from envs_cython.base import Buffers, CEnv

from .snake import CySnake

__all__ = ["BODY", "EMPTY", "FOOD", "HEAD", "WALL", "Snake"]

# Cell codes of the grid and of the observations (snake.h).
EMPTY, WALL, FOOD, BODY, HEAD = 0, 1, 2, 3, 4
ACTIONS = ("up", "down", "left", "right")
# render(): RGB colour and text character of each cell code
_COLORS = np.array([(18, 18, 24), (128, 128, 128), (230, 60, 50), (60, 170, 80), (240, 220, 80)], np.uint8)
_CHARS = np.array([".", "#", "*", "o", "@"])


class Snake(CEnv):
    """``num_envs`` boards with ``num_snakes`` snakes each, all stepped by one C call.

    Agents ``[b * num_snakes, (b + 1) * num_snakes)`` are the snakes of board ``b``. A board is
    ``height`` x ``width`` playable cells inside a wall. Each snake sees the ``(2 * vision + 1)``-square window of
    cell codes centred on its head (``EMPTY 0, WALL 1, FOOD 2, BODY 3, HEAD 4``; bodies and heads of all snakes,
    its own included, so its own head is always at the centre). Actions are absolute directions
    (0 up, 1 down, 2 left, 3 right); reversing into the neck is ignored (the snake goes straight on).
    A snake grows by one cell for each food it eats (reward ``reward_food``; the food reappears elsewhere) and
    dies when it moves into a wall, a body or a head (reward ``reward_death``, ``terminals`` set); every step also
    gives ``reward_step``. Episodes are truncated after ``max_steps`` steps. An ended snake respawns, length 1,
    at a random empty cell in the same step. Snakes move one at a time in agent order, so collisions within a
    step resolve in favour of the lower index. The full rules and their order are in docs/envs.md and snake.h.

    Args:
        num_envs: number of boards.
        buffers: buffers of ``num_envs * num_snakes`` agents to write into (e.g. a vectorizer's slice,
            C-contiguous); allocated when ``None``.
        seed: seeds board ``b``'s PRNG with ``seed + b``; the first :meth:`reset` without a seed draws from it.
        num_snakes: snakes per board.
        width: playable columns per board (default 128: 64 cells per snake for 256 snakes).
        height: playable rows per board.
        num_food: food items kept on each board (default 512: 1 cell in 32, about 4 in an 11x11 view).
        vision: the view reaches this many cells from the head (window side ``2 * vision + 1``).
        max_steps: time limit of a snake's episode.
        reward_food: reward for eating one food.
        reward_death: reward added on the step a snake dies.
        reward_step: reward added on every step (shaping; 0 by default).

    Raises:
        ValueError: a parameter out of range (``num_snakes + num_food`` must fit in half the board, so that
            spawning is quick), or buffers of the wrong size, dtype or layout.

    Attributes:
        grid: [num_envs, height, width] int8, read-only view of the boards' cell codes (without the walls).
    """

    # log(): means of the score, the length and the food eaten of the episodes finished since the last call
    log_keys = ("episode_return", "episode_length", "food_eaten")

    def __init__(
        self,
        num_envs: int = 1,
        buffers: Buffers | None = None,
        seed: int = 0,
        num_snakes: int = 256,
        width: int = 128,
        height: int = 128,
        num_food: int = 512,
        vision: int = 5,
        max_steps: int = 1000,
        reward_food: float = 1.0,
        reward_death: float = -1.0,
        reward_step: float = 0.0,
    ) -> None:
        if num_envs < 1 or num_snakes < 1 or width < 1 or height < 1 or num_food < 0 or max_steps < 1:
            raise ValueError(
                "Snake needs num_envs, num_snakes, width, height, max_steps >= 1 and num_food >= 0; got "
                f"num_envs={num_envs}, num_snakes={num_snakes}, width={width}, height={height}, "
                f"num_food={num_food}, max_steps={max_steps}"
            )
        if not 1 <= vision <= 32:
            raise ValueError(f"vision must be in [1, 32] for Snake, got {vision}")
        if 2 * (num_snakes + num_food) > width * height:
            raise ValueError(
                f"num_snakes + num_food = {num_snakes + num_food} must be at most half the board's "
                f"{width}x{height} = {width * height} cells"
            )
        side = 2 * vision + 1
        self.single_observation_space = gymnasium.spaces.Box(EMPTY, HEAD, (side, side), dtype=np.int8)
        self.single_action_space = gymnasium.spaces.Discrete(4)
        self._init_buffers(num_envs * num_snakes, buffers)
        self.num_envs = num_envs
        self.num_snakes = num_snakes
        self.width, self.height, self.vision = width, height, vision
        self.num_food, self.max_steps = num_food, max_steps
        self.reward_food, self.reward_death, self.reward_step = reward_food, reward_death, reward_step
        padded = (num_envs, height + 2 * vision, width + 2 * vision)
        self._grid = np.zeros(padded, dtype=np.int8)
        self._cell_dirs = np.zeros(padded, dtype=np.uint8)
        self.grid = self._grid[:, vision : vision + height, vision : vision + width]
        self.grid.flags.writeable = False
        self._bind(
            CySnake,
            self._grid,
            self._cell_dirs,
            *self._buffer_args(),
            num_snakes,
            width,
            height,
            vision,
            num_food,
            max_steps,
            reward_food,
            reward_death,
            reward_step,
            layout=f"observations int8 [agents, {side}, {side}], actions int32",
            seed=seed,
        )
        # A valid board from the start, so step() works before reset(). The first reset() without a seed keeps
        # it: that is the board (and PRNG state) it would build.
        self._c.reset()
        self._fresh = True

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode for every snake on every board; writes ``grid`` and ``observations``.

        Args:
            seed: reseed board ``b``'s PRNG with ``seed + b`` first; ``None`` continues each board's PRNG (the
                first reset after construction then uses the constructor's seed). Statistics of finished
                episodes are kept for :meth:`log`; running episodes are dropped.
        """
        if seed is None and self._fresh:
            self._core()  # raises when closed
            self._fresh = False
            return  # the constructor already drew this board from its seed
        super().reset(seed)
        self._fresh = False

    def step(self, actions: np.ndarray | None = None) -> None:
        """Step every snake once: one C call without the GIL, respawning the snakes whose episode ends.

        Args:
            actions: [num_agents] ints in {0, 1, 2, 3} (up, down, left, right), copied into ``self.actions``;
                ``None`` steps with what the buffer holds. A value ``a`` outside [0, 4) acts as ``a & 3``.
        """
        super().step(actions)
        self._fresh = False

    def _agent_state(self) -> tuple[np.ndarray, ...]:
        return self._core().agent_state()

    @property
    def heads(self) -> np.ndarray:
        """[num_agents, 2] int64 (row, column) of each snake's head on its board (a copy)."""
        head = self._agent_state()[0].astype(np.int64)
        stride = self.width + 2 * self.vision
        return np.stack([head // stride - self.vision, head % stride - self.vision], axis=1)

    @property
    def lengths(self) -> np.ndarray:
        """[num_agents] int32 length of each snake, head included (a copy)."""
        return self._agent_state()[2]

    @property
    def directions(self) -> np.ndarray:
        """[num_agents] int32 direction of each snake's last move (0 up, 1 down, 2 left, 3 right; 0 for a snake
        that has not moved yet) (a copy)."""
        return self._agent_state()[5]

    def render(self, mode: str = "rgb_array", cell_px: int = 4) -> np.ndarray | str:
        """Draw board 0 with its walls.

        Args:
            mode: ``"rgb_array"`` for a ``[(height + 2) * cell_px, (width + 2) * cell_px, 3]`` uint8 image, or
                ``"ansi"`` for text (``.`` empty, ``#`` wall, ``*`` food, ``o`` body, ``@`` head; one line a row).
            cell_px: pixels per cell side in ``rgb_array`` mode.

        Raises:
            ValueError: unknown ``mode`` or ``cell_px < 1``.
        """
        v = self.vision
        board = self._grid[0, v - 1 : v + self.height + 1, v - 1 : v + self.width + 1]
        if mode == "ansi":
            return "\n".join("".join(row) for row in _CHARS[board])
        if mode == "rgb_array":
            if cell_px < 1:
                raise ValueError(f"cell_px must be >= 1, got {cell_px}")
            return np.repeat(np.repeat(_COLORS[board], cell_px, axis=0), cell_px, axis=1)
        raise ValueError(f"unknown render mode {mode!r}; allowed: rgb_array, ansi")
