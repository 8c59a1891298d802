"""The C Snake: observations against a NumPy crop of the grid, every buffer against a slow pure-Python
reference of the rules, deaths, food, truncation, seeding, buffers, log, rendering, and the C core under the
sanitizers."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

import envs_cython.snake
from envs_cython.base import allocate
from envs_cython.snake import BODY, EMPTY, FOOD, HEAD, WALL, Snake

SNAKE_DIR = Path(envs_cython.snake.__file__).parent
MASK64 = (1 << 64) - 1
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right as (d_row, d_col)


def padded(grid: np.ndarray, vision: int) -> np.ndarray:
    return np.pad(grid, vision, constant_values=WALL)


def crop(grid: np.ndarray, head: Any, vision: int) -> np.ndarray:
    """The (2 vision + 1)-square window of ``grid`` (one board, no walls) centred on ``head`` = (row, col), walls
    outside."""
    row, col = int(head[0]), int(head[1])
    return padded(grid, vision)[row : row + 2 * vision + 1, col : col + 2 * vision + 1]


class RefBoard:
    """One board of Snake, written from the rules in docs/envs.md with deques for the bodies: the slow reference.

    It draws from the same splitmix64 stream as the C core, so given the same seed and actions every buffer must
    match exactly.
    """

    def __init__(
        self,
        seed: int,
        num_snakes: int,
        width: int,
        height: int,
        num_food: int,
        vision: int,
        max_steps: int,
        reward_food: float,
        reward_death: float,
        reward_step: float,
    ) -> None:
        self.num_snakes, self.width, self.height = num_snakes, width, height
        self.num_food, self.vision, self.max_steps = num_food, vision, max_steps
        self.reward_food, self.reward_death = np.float32(reward_food), np.float32(reward_death)
        self.reward_step = np.float32(reward_step)
        self.rng = mix64((seed & MASK64) ^ 0xA54FF53A5F1D36F1)
        self.log = {"episode_return": 0.0, "episode_length": 0.0, "food_eaten": 0.0, "n": 0}
        self.reset()

    def next_u64(self) -> int:
        self.rng = (self.rng + 0x9E3779B97F4A7C15) & MASK64
        return mix64(self.rng)

    def find_empty(self) -> tuple[int, int] | None:
        row = col = 0
        for _ in range(64):
            bits = self.next_u64()
            row, col = ((bits >> 32) * self.height) >> 32, ((bits & 0xFFFFFFFF) * self.width) >> 32
            if self.grid[row, col] == EMPTY:
                return row, col
        cells = self.width * self.height
        for k in range(1, cells + 1):
            p = (row * self.width + col + k) % cells
            if self.grid[p // self.width, p % self.width] == EMPTY:
                return p // self.width, p % self.width
        return None

    def spawn(self, i: int) -> None:
        cell = self.find_empty()
        assert cell is not None
        self.grid[cell] = HEAD
        self.bodies[i] = deque([cell])  # tail first, head last
        self.dirs[i], self.ticks[i], self.food[i], self.returns[i] = 0, 0, 0, 0.0

    def spawn_food(self) -> None:
        while self.food_deficit > 0 and (cell := self.find_empty()) is not None:
            self.grid[cell] = FOOD
            self.food_deficit -= 1

    def view(self, i: int) -> np.ndarray:
        return crop(self.grid, self.bodies[i][-1], self.vision)

    def reset(self) -> None:
        self.grid = np.zeros((self.height, self.width), np.int8)
        self.bodies: list[deque[tuple[int, int]]] = [deque() for _ in range(self.num_snakes)]
        self.dirs, self.ticks = [0] * self.num_snakes, [0] * self.num_snakes
        self.food, self.returns = [0] * self.num_snakes, [0.0] * self.num_snakes
        for i in range(self.num_snakes):
            self.spawn(i)
        self.food_deficit = self.num_food
        self.spawn_food()

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        n, side = self.num_snakes, 2 * self.vision + 1
        out: dict[str, Any] = {
            "rewards": np.zeros(n, np.float32),
            "terminals": np.zeros(n, bool),
            "truncations": np.zeros(n, bool),
            "final_observations": {},
        }
        ended = []
        for i in range(n):
            body = self.bodies[i]
            d = int(actions[i]) & 3
            if len(body) > 1 and d == self.dirs[i] ^ 1:
                d = self.dirs[i]
            (row, col), (d_row, d_col) = body[-1], MOVES[d]
            target = (row + d_row, col + d_col)
            inside = 0 <= target[0] < self.height and 0 <= target[1] < self.width
            code = self.grid[target] if inside else WALL
            reward = self.reward_step
            died = False
            if code == FOOD:
                self.grid[body[-1]] = BODY
                body.append(target)
                self.grid[target] = HEAD
                self.food[i] += 1
                self.food_deficit += 1
                reward = np.float32(reward + self.reward_food)
            elif code == EMPTY or target == body[0]:
                self.grid[body.popleft()] = EMPTY
                if body:
                    self.grid[body[-1]] = BODY
                body.append(target)
                self.grid[target] = HEAD
            else:
                died = True
                reward = np.float32(reward + self.reward_death)
            if not died:
                self.dirs[i] = d
            self.ticks[i] += 1
            self.returns[i] += float(reward)
            out["rewards"][i] = reward
            out["terminals"][i] = died
            out["truncations"][i] = self.ticks[i] >= self.max_steps
            if died or self.ticks[i] >= self.max_steps:
                ended.append(i)
        for i in ended:
            out["final_observations"][i] = self.view(i).copy()
            self.log["episode_return"] += self.returns[i]
            self.log["episode_length"] += self.ticks[i]
            self.log["food_eaten"] += self.food[i]
            self.log["n"] += 1
        for i in ended:
            for cell in self.bodies[i]:
                self.grid[cell] = EMPTY
        for i in ended:
            self.spawn(i)
        self.spawn_food()
        out["observations"] = np.stack([self.view(i) for i in range(n)]).reshape(n, side, side)
        return out


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def cautious_actions(observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random move onto food or an empty cell where there is one (snakes grow long and boards fill up)."""
    c = observations.shape[1] // 2
    neighbours = np.stack(
        [observations[:, c - 1, c], observations[:, c + 1, c], observations[:, c, c - 1], observations[:, c, c + 1]],
        axis=1,
    )
    scores = rng.random(neighbours.shape) + 2 * ((neighbours == EMPTY) | (neighbours == FOOD))
    return scores.argmax(axis=1).astype(np.int32)


SMALL = {"num_snakes": 24, "width": 20, "height": 16, "num_food": 30, "vision": 3, "max_steps": 40}
CROWDED = {"num_snakes": 2, "width": 5, "height": 5, "num_food": 10, "vision": 2, "max_steps": 1000}


@pytest.mark.parametrize(
    ("params", "policy"),
    [
        ({**SMALL, "reward_food": 1.0, "reward_death": -1.0, "reward_step": 0.0}, "random"),
        ({**SMALL, "vision": 5, "reward_food": 0.5, "reward_death": -2.0, "reward_step": -0.01}, "cautious"),
        ({**CROWDED, "reward_food": 1.0, "reward_death": -1.0, "reward_step": 0.0}, "cautious"),
    ],
    ids=["random", "vision5-shaped", "crowded-board-fills-up"],
)
def test_every_buffer_matches_the_python_reference_of_the_rules(params: dict[str, Any], policy: str) -> None:
    """Moves in agent order, growth, deaths, truncation, respawns, food, final observations and the log: all
    equal to RefBoard's on every step, for two boards (seeded s and s + 1)."""
    num_envs, seed, steps = 2, 11, 300
    env = Snake(num_envs=num_envs, seed=seed, **params)
    env.reset()
    refs = [RefBoard(seed + b, **params) for b in range(num_envs)]
    s = params["num_snakes"]
    rng = np.random.default_rng(0)
    ended = full = 0
    for t in range(steps):
        if policy == "random":
            # arbitrary int32 values now and then: the core reads a & 3
            actions = rng.integers(-(2**31), 2**31, size=env.num_agents, dtype=np.int64).astype(np.int32)
            actions[rng.random(env.num_agents) < 0.9] &= 3
        else:
            actions = cautious_actions(env.observations, rng)
        env.step(actions)
        for b, ref in enumerate(refs):
            agents = slice(b * s, (b + 1) * s)
            out = ref.step(actions[agents])
            np.testing.assert_array_equal(env.grid[b], ref.grid, err_msg=f"step {t} board {b}")
            for name in ("observations", "rewards", "terminals", "truncations"):
                np.testing.assert_array_equal(getattr(env, name)[agents], out[name], err_msg=f"step {t} {name}")
            for i, final in out["final_observations"].items():
                np.testing.assert_array_equal(env.final_observations[b * s + i], final, err_msg=f"step {t} {i}")
            np.testing.assert_array_equal(env.lengths[agents], [len(body) for body in ref.bodies])
            ended += len(out["final_observations"])
            full += ref.food_deficit > 0
    assert ended > 20, "the rollout must cross many episode ends"
    if params["width"] == 5:
        assert full > 0, "the crowded board must fill up (food cannot respawn)"
    n = sum(ref.log["n"] for ref in refs)
    expected = {k: sum(ref.log[k] for ref in refs) / n for k in ("episode_return", "episode_length", "food_eaten")}
    stats = env.log()
    assert stats["n"] == n
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_observations_equal_a_numpy_crop_of_the_grid_centred_on_each_head() -> None:
    env = Snake(num_envs=2, seed=3, num_snakes=64, width=32, height=24, num_food=40)
    env.reset()
    rng = np.random.default_rng(1)
    for t in range(100):
        env.step(rng.integers(0, 4, size=env.num_agents))
        heads = env.heads
        for a in range(env.num_agents):
            expected = crop(env.grid[a // 64], heads[a], env.vision)
            np.testing.assert_array_equal(env.observations[a], expected, err_msg=f"step {t} agent {a}")
    assert np.all(env.observations[:, 5, 5] == HEAD)
    assert (env.grid == HEAD).sum() == env.num_agents


def test_spaces_buffers_and_defaults() -> None:
    env = Snake(num_envs=2, num_snakes=8)
    assert env.single_observation_space == gymnasium.spaces.Box(0, 4, (11, 11), np.int8)
    assert env.single_action_space == gymnasium.spaces.Discrete(4)
    assert env.num_agents == 16 and env.num_envs == 2
    assert env.observations.shape == (16, 11, 11) and env.observations.dtype == np.int8
    assert env.final_observations.dtype == np.int8 and env.actions.dtype == np.int32
    assert env.grid.shape == (2, 128, 128) and env.grid.dtype == np.int8
    assert (env.grid == FOOD).sum() == 2 * 512 and (env.grid == HEAD).sum() == 16
    assert env.single_observation_space.contains(env.observations[0])
    with pytest.raises(ValueError, match="read-only"):
        env.grid[0, 0, 0] = WALL


def one_snake(**kwargs: int | float) -> Snake:
    params = {"num_envs": 1, "num_snakes": 1, "width": 12, "height": 10, "num_food": 0, **kwargs}
    env = Snake(**params)  # type: ignore[arg-type]
    env.reset()
    return env


def test_death_by_wall_sets_terminal_keeps_the_last_view_and_respawns() -> None:
    env = one_snake(seed=5, reward_death=-3.0)
    row, col = env.heads[0]
    for _ in range(row):  # up to row 0: alive
        env.step(np.array([0]))
        assert not env.terminals[0] and env.rewards[0] == 0.0
    before = env.observations[0].copy()
    np.testing.assert_array_equal(env.heads[0], [0, col])
    env.step(np.array([0]))  # into the wall
    assert env.terminals[0] and not env.truncations[0]
    assert env.rewards[0] == -3.0
    # the snake did not move: its last view is the one it acted on (nothing else is on this board)
    np.testing.assert_array_equal(env.final_observations[0], before)
    assert np.all(env.final_observations[0, :5] == WALL) and env.final_observations[0, 5, 5] == HEAD
    # the new episode: one head at a random cell, its first view in observations
    assert (env.grid[0] == HEAD).sum() == 1 and (env.grid[0] == BODY).sum() == 0
    assert env.lengths[0] == 1
    np.testing.assert_array_equal(env.observations[0], crop(env.grid[0], env.heads[0], 5))
    assert env.log() == {"episode_return": -3.0, "episode_length": row + 1.0, "food_eaten": 0.0, "n": 1}


def toward_food(env: Snake) -> int:
    """A move of snake 0 that brings its head closer to the (only) food without reversing, else a turn."""
    (row, col), (food_row, food_col) = env.heads[0], np.argwhere(env.grid[0] == FOOD)[0]
    distance = abs(row - food_row) + abs(col - food_col)
    closer = [d for d, (dr, dc) in enumerate(MOVES) if abs(row + dr - food_row) + abs(col + dc - food_col) < distance]
    if env.lengths[0] > 1:
        closer = [d for d in closer if d != env.directions[0] ^ 1]
    if closer:
        return closer[0]
    return 0 if row > 0 else 1  # the food is straight behind: turn


def test_eating_food_grows_the_snake_gives_reward_food_and_food_respawns() -> None:
    env = one_snake(seed=2, width=16, height=16, num_food=1, reward_food=0.5)
    eaten = 0
    for _ in range(200):
        (row, col), (food_row, food_col) = env.heads[0], np.argwhere(env.grid[0] == FOOD)[0]
        length = env.lengths[0]
        action = toward_food(env)
        env.step(np.array([action]))
        assert not env.terminals[0], "a snake of length <= 4 that never reverses can only hit its tail (allowed)"
        if (row + MOVES[action][0], col + MOVES[action][1]) == (food_row, food_col):
            eaten += 1
            assert env.rewards[0] == 0.5
            assert env.lengths[0] == length + 1
            assert (env.grid[0] == BODY).sum() == length  # the old head became body, the tail stayed
            assert (env.grid[0] == FOOD).sum() == 1  # a new food elsewhere
        else:
            assert env.rewards[0] == 0.0 and env.lengths[0] == length
        if eaten == 3:
            break
    assert eaten == 3 and env.lengths[0] == 4


def test_reversing_into_the_neck_is_ignored() -> None:
    env = one_snake(seed=4, width=16, height=16, num_food=1)
    while env.lengths[0] < 2:  # walk to the food to get a neck
        env.step(np.array([toward_food(env)]))
    neck = np.argwhere(env.grid[0] == BODY)[0]
    head = env.heads[0]
    forward = head - neck  # the direction of the last move
    assert MOVES[env.directions[0]] == tuple(forward)
    backward = env.directions[0] ^ 1
    env.step(np.array([backward]))
    ahead = head + forward
    if 0 <= ahead[0] < 16 and 0 <= ahead[1] < 16:
        assert not env.terminals[0]
        np.testing.assert_array_equal(env.heads[0], ahead)
    else:
        assert env.terminals[0]  # went straight on, into the wall


def test_truncation_after_max_steps_with_the_view_from_the_last_cell() -> None:
    env = one_snake(seed=6, width=20, height=20, max_steps=5, reward_step=-0.25)
    for t in range(5):
        row, col = env.heads[0]
        action = 1 if row < 10 else 0  # toward the middle rows: never the wall
        env.step(np.array([action]))
        assert env.rewards[0] == -0.25 and not env.terminals[0]
        assert bool(env.truncations[0]) == (t == 4)
    row, col = row + MOVES[action][0], col + MOVES[action][1]
    board = np.zeros((20, 20), np.int8)
    board[row, col] = HEAD
    np.testing.assert_array_equal(env.final_observations[0], crop(board, (row, col), 5))
    assert env.log() == {"episode_return": -1.25, "episode_length": 5.0, "food_eaten": 0.0, "n": 1}


def rollout(env: Snake, actions: np.ndarray) -> np.ndarray:
    out = [env.observations.copy()]
    for step_actions in actions:
        env.step(step_actions)
        out.append(env.observations.copy())
    return np.stack(out)


def test_same_seed_same_trajectories_and_board_b_of_seed_s_is_board_0_of_seed_s_plus_b() -> None:
    params: dict[str, Any] = {"num_snakes": 16, "width": 24, "height": 24, "num_food": 20}
    actions = np.random.default_rng(2).integers(0, 4, size=(300, 48))
    a = Snake(num_envs=3, seed=7, **params)
    a.reset()
    b = Snake(num_envs=3, seed=7, **params)  # never reset: the constructor already built the same boards
    c = Snake(num_envs=3, seed=8, **params)
    c.reset()
    traj_a, traj_b, traj_c = rollout(a, actions), rollout(b, actions), rollout(c, actions)
    np.testing.assert_array_equal(traj_a, traj_b)
    assert not np.array_equal(traj_a, traj_c)
    # so a vectorizer that seeds object k with seed + its first board gets the same boards however it splits them
    part = Snake(num_envs=2, seed=8, **params)
    np.testing.assert_array_equal(traj_a[:, 16:], rollout(part, actions[:, 16:]))
    b.reset(seed=7)  # reseeds
    np.testing.assert_array_equal(b.observations, traj_a[0])
    b.reset()  # continues the stream
    assert not np.array_equal(b.observations, traj_a[0])


def test_slices_of_caller_buffers_are_written_in_place() -> None:
    probe = Snake(num_snakes=4, width=16, height=16, num_food=8)
    big = allocate(probe.single_observation_space, probe.single_action_space, 16)
    env = Snake(num_envs=2, buffers=big.slice(4, 12), seed=1, num_snakes=4, width=16, height=16, num_food=8)
    env.reset()
    assert np.shares_memory(env.observations, big.observations)
    rng = np.random.default_rng(3)
    ended = np.zeros(8, bool)
    for _ in range(300):
        big.actions[4:12] = rng.integers(0, 4, size=8)  # the vectorizer writes actions into its own buffer
        env.step()
        ended |= big.terminals[4:12]
    assert ended.all(), "every random snake must die within 300 steps"
    heads = env.heads
    for a in range(8):
        np.testing.assert_array_equal(big.observations[4 + a], crop(env.grid[a // 4], heads[a], 5))
    for name in ("observations", "rewards", "terminals", "truncations", "final_observations"):
        rest = np.concatenate([getattr(big, name)[:4], getattr(big, name)[12:]])
        assert not rest.any(), f"{name} written outside the env's slice"


def test_log_means_and_counts_match_the_episodes_seen_then_clear() -> None:
    env = Snake(num_envs=2, seed=4, num_snakes=32, width=24, height=24, num_food=60, max_steps=50)
    env.reset()
    rng = np.random.default_rng(4)
    length, ret, food = np.zeros(64), np.zeros(64), np.zeros(64)
    lengths: list[float] = []
    returns: list[float] = []
    foods: list[float] = []
    for _ in range(400):
        env.step(rng.integers(0, 4, size=64))
        length += 1
        ret += env.rewards
        food += env.rewards == 1.0
        done = env.terminals | env.truncations
        lengths += length[done].tolist()
        returns += ret[done].tolist()
        foods += food[done].tolist()
        length[done] = ret[done] = food[done] = 0
    stats = env.log()
    assert stats["n"] == len(lengths) > 100
    assert stats["episode_length"] == pytest.approx(np.mean(lengths), rel=1e-12)
    assert stats["episode_return"] == pytest.approx(np.mean(returns), rel=1e-12)
    assert stats["food_eaten"] == pytest.approx(np.mean(foods), rel=1e-12)
    assert stats["food_eaten"] > 0 and max(lengths) == 50  # food was eaten, some episodes were truncated
    assert env.log() == {}


def test_invalid_arguments_and_buffers_raise_value_error() -> None:
    with pytest.raises(ValueError, match="at most half the board"):
        Snake(num_snakes=256, width=16, height=16)
    with pytest.raises(ValueError, match="vision must be in"):
        Snake(vision=0)
    with pytest.raises(ValueError, match="num_envs"):
        Snake(num_envs=0)
    probe = Snake(num_snakes=4, width=16, height=16, num_food=8)
    big = allocate(probe.single_observation_space, probe.single_action_space, 8)
    with pytest.raises(ValueError, match="buffers hold 8 agents"):
        Snake(num_envs=1, buffers=big, num_snakes=4, width=16, height=16, num_food=8)
    strided = big.slice(0, 8)
    for name in ("observations", "actions", "rewards", "terminals", "truncations", "final_observations"):
        setattr(strided, name, getattr(big, name)[::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        Snake(num_envs=1, buffers=strided, num_snakes=4, width=16, height=16, num_food=8)
    other = allocate(gymnasium.spaces.Box(0, 4, (7, 7), np.int8), probe.single_action_space, 4)
    with pytest.raises(ValueError, match="7"):
        Snake(num_envs=1, buffers=other, num_snakes=4, width=16, height=16, num_food=8)


def test_close_is_idempotent_and_stepping_a_closed_env_raises() -> None:
    env = Snake(num_snakes=4, width=16, height=16, num_food=8)
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step()


def test_render_draws_board_0_as_image_and_text() -> None:
    env = Snake(num_envs=2, seed=0, num_snakes=8, width=30, height=20, num_food=10)
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (22 * 4, 32 * 4, 3) and frame.dtype == np.uint8
    assert env.render(cell_px=1).shape == (22, 32, 3)  # type: ignore[union-attr]
    text = env.render("ansi")
    assert isinstance(text, str)
    lines = text.splitlines()
    assert len(lines) == 22 and all(len(line) == 32 for line in lines)
    assert lines[0] == "#" * 32 and text.count("@") == 8 and text.count("*") == 10
    with pytest.raises(ValueError, match="unknown render mode"):
        env.render("human")


def test_c_core_runs_1m_random_steps_clean_under_address_and_ub_sanitizers(run_under_sanitizers) -> None:  # type: ignore[no-untyped-def]
    out = run_under_sanitizers(SNAKE_DIR / "snake_main.c")
    assert "1000008 agent-steps" in out and out.rstrip().endswith("ok")
    assert "0 steps with a full board" not in out
