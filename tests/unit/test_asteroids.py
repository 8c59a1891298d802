"""The C Asteroids: observations against a NumPy reference of their layout, shooting and splitting with the
arcade's points, swept bullets, wrap-around, bullet lifetime and cooldown, crashes, lives, waves, the two kinds
of episode end, seeding, buffers, log, rendering, and the C core under the sanitizers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

import envs_cython.asteroids
from envs_cython.asteroids import ACTIONS, LARGE, MEDIUM, NONE, POINTS, RADIUS, SMALL, STATE_DTYPE, Asteroids
from envs_cython.base import allocate

ASTEROIDS_DIR = Path(envs_cython.asteroids.__file__).parent
f32 = np.float32
NOOP, THRUST, LEFT, RIGHT, FIRE = 0, 1, 2, 3, 4
SPEED_RANGE = {SMALL: (1.0, 2.0), MEDIUM: (0.6, 1.4), LARGE: (0.3, 0.9)}  # units/step, before the wave factor


def heading_cos_sin(heading: int) -> tuple[np.float32, np.float32]:
    """cos and sin of heading h (angle 2 pi h / 32) rounded to float32, exact zeros where they are zero."""
    angle = 2 * math.pi * heading / 32
    c, s = math.cos(angle), math.sin(angle)
    return f32(0.0 if abs(c) < 1e-9 else c), f32(0.0 if abs(s) < 1e-9 else s)


def delta(a: np.float32, b: np.float32, period: float) -> np.float32:
    d = f32(b - a)
    if d > period / 2:
        d = f32(d - f32(period))
    if d < -period / 2:
        d = f32(d + f32(period))
    return d


def reference_obs(state: np.void, num_lives: int) -> np.ndarray:
    """The observation docs/envs.md describes, computed in float32 NumPy scalars in the core's order of operations:
    it must equal the C core's bit for bit."""
    c, s = heading_cos_sin(int(state["heading"]))
    vx, vy = state["ship_vx"], state["ship_vy"]
    obs = np.zeros(56, np.float32)
    rocks = state["rocks"]
    num_rocks = int(np.argmax(rocks["size"] == NONE)) if (rocks["size"] == NONE).any() else len(rocks)
    obs[:8] = [
        c,
        s,
        f32(f32(vx * c) + f32(vy * s)) / f32(8),
        f32(f32(vy * c) - f32(vx * s)) / f32(8),
        f32(state["cooldown"]) / f32(5),
        f32(state["invulnerable"]) / f32(60),
        f32(state["lives"]) / f32(num_lives),
        f32(num_rocks) / f32(40),
    ]
    dxs = [delta(state["ship_x"], rocks["x"][j], 256.0) for j in range(num_rocks)]
    dys = [delta(state["ship_y"], rocks["y"][j], 192.0) for j in range(num_rocks)]
    d2 = np.array([f32(f32(dx * dx) + f32(dy * dy)) for dx, dy in zip(dxs, dys, strict=True)], np.float32)
    for k, j in enumerate(np.argsort(d2, kind="stable")[:8]):
        dx, dy = dxs[j], dys[j]
        rvx, rvy = f32(rocks["vx"][j] - vx), f32(rocks["vy"][j] - vy)
        obs[8 + 6 * k : 14 + 6 * k] = [
            f32(f32(dx * c) + f32(dy * s)) / f32(160),
            f32(f32(dy * c) - f32(dx * s)) / f32(160),
            f32(f32(rvx * c) + f32(rvy * s)) / f32(12),
            f32(f32(rvy * c) - f32(rvx * s)) / f32(12),
            np.sqrt(d2[j]) / f32(160),
            f32(RADIUS[int(rocks["size"][j])]) / f32(16),
        ]
    return obs


def scene(
    env: Asteroids,
    rocks: list[tuple[float, float, float, float, int]],
    ship: tuple[float, float] = (128.0, 96.0),
    heading: int = 0,
    velocity: tuple[float, float] = (0.0, 0.0),
    **fields: int,
) -> None:
    """Set env 0's field: the ship, and `rocks` as (x, y, vx, vy, size) in slots 0.. (no bullets, timers 0)."""
    state = env.state
    state["ship_x"][0], state["ship_y"][0] = ship
    state["ship_vx"][0], state["ship_vy"][0] = velocity
    state["heading"][0] = heading
    for name in ("cooldown", "invulnerable", "thrusting"):
        state[name][0] = 0
    for name, value in fields.items():
        state[name][0] = value
    state["bullets"][0] = 0
    state["rocks"][0] = 0
    for j, rock in enumerate(rocks):
        state["rocks"][0, j] = (*rock, 0)


FAR_ROCK = (20.0, 20.0, 0.0, 0.0, LARGE)  # keeps the field from being cleared, out of every shot's way here


def test_spaces_buffers_defaults_and_the_first_field() -> None:
    env = Asteroids(num_envs=3)
    assert env.single_observation_space == gymnasium.spaces.Box(-1.0, 1.0, (56,), np.float32)
    assert env.single_action_space == gymnasium.spaces.Discrete(10) and len(ACTIONS) == 10
    assert env.num_agents == 3 and env.max_steps == 4500 and env.num_lives == 3
    assert env.observations.shape == (3, 56) and env.observations.dtype == np.float32
    assert env.actions.dtype == np.int32 and env.final_observations.shape == (3, 56)
    assert env.state.shape == (3,) and env.state.dtype == STATE_DTYPE
    state = env.state
    np.testing.assert_array_equal(state["lives"], 3)
    np.testing.assert_array_equal(state["wave"], 1)
    np.testing.assert_array_equal(state["heading"], 8)  # up
    np.testing.assert_array_equal(state["ship_x"], 128.0)
    np.testing.assert_array_equal(state["ship_y"], 96.0)
    sizes = state["rocks"]["size"]
    np.testing.assert_array_equal(sizes[:, :4], LARGE)  # 4 large rocks in the first slots, the rest free
    np.testing.assert_array_equal(sizes[:, 4:], NONE)
    rocks = state["rocks"][:, :4]
    far_x = np.abs((rocks["x"] - 128.0 + 128.0) % 256.0 - 128.0) >= 48
    far_y = np.abs((rocks["y"] - 96.0 + 96.0) % 192.0 - 96.0) >= 48
    assert (far_x | far_y).all(), "the first wave spawns away from the ship"
    speeds = np.hypot(rocks["vx"], rocks["vy"])
    assert ((speeds >= 0.3 * 0.999) & (speeds <= 0.9 * 1.001)).all()
    for i in range(3):
        np.testing.assert_array_equal(env.observations[i], reference_obs(state[i], 3))
        assert env.single_observation_space.contains(env.observations[i])


def test_observations_equal_a_numpy_reference_of_the_layout_bit_for_bit() -> None:
    """The ship block, the 8 nearest rocks in the ship's frame (wrap-aware, nearest first, zeros past the last
    rock), and cos/sin of the heading equal to float32(cos, sin of 2 pi h / 32), over a random rollout."""
    env = Asteroids(num_envs=8, seed=5, max_steps=300, num_lives=2)
    rng = np.random.default_rng(0)
    headings = set()
    for t in range(400):
        env.step(rng.integers(0, 10, size=8))
        for i in range(8):
            expected = reference_obs(env.state[i], 2)
            assert env.observations[i].tobytes() == expected.tobytes(), f"step {t} env {i}"
            headings.add(int(env.state["heading"][i]))
    assert headings == set(range(32))


def test_left_turns_counter_clockwise_and_32_turns_come_back() -> None:
    env = Asteroids(seed=1)
    scene(env, [FAR_ROCK], heading=0, invulnerable=1000)
    env.step(np.array([LEFT]))
    assert env.state["heading"][0] == 1 and env.observations[0, 1] > 0  # sin > 0: turned toward +y
    env.step(np.array([RIGHT]))
    env.step(np.array([RIGHT]))
    assert env.state["heading"][0] == 31
    for _ in range(32):
        env.step(np.array([LEFT]))
    assert env.state["heading"][0] == 31


def test_thrust_accelerates_along_the_heading_with_drag_and_a_speed_limit() -> None:
    env = Asteroids(seed=1)
    scene(env, [FAR_ROCK], heading=8, invulnerable=1000)  # up
    env.step(np.array([THRUST]))
    assert env.state["ship_vx"][0] == 0.0
    assert env.state["ship_vy"][0] == f32(f32(0.25) * f32(0.985))  # thrust, then drag
    assert env.state["ship_y"][0] == f32(96.0) + env.state["ship_vy"][0]
    assert env.state["thrusting"][0] == 1
    for _ in range(100):
        env.step(np.array([THRUST]))
    speed = math.hypot(env.state["ship_vx"][0], env.state["ship_vy"][0])
    assert speed == pytest.approx(6.0, rel=1e-6)
    env.step(np.array([NOOP]))
    assert env.state["thrusting"][0] == 0
    assert env.state["ship_vy"][0] == pytest.approx(6.0 * 0.985, rel=1e-6)  # coasting: drag only


@pytest.mark.parametrize(
    ("size", "pieces"),
    [(LARGE, MEDIUM), (MEDIUM, SMALL), (SMALL, NONE)],
    ids=["large-splits-into-2-medium-20-points", "medium-into-2-small-50-points", "small-destroyed-100-points"],
)
def test_a_shot_splits_the_rock_and_scores_the_arcade_points(size: int, pieces: int) -> None:
    env = Asteroids(seed=2)
    env.reset()
    scene(env, [FAR_ROCK, (168.0, 96.0, 0.0, 0.0, size)], heading=0)  # straight ahead, 40 units away
    rewards = []
    for t in range(8):
        env.step(np.array([FIRE if t == 0 else NOOP]))  # one shot
        rewards.append(float(env.rewards[0]))
        if env.rewards[0] > 0:
            break
    points = POINTS[size]
    assert env.rewards[0] == f32(points) / f32(100), "reward = points / 100, rounded once to float32"
    assert rewards.count(0.0) == len(rewards) - 1
    state = env.state[0]
    assert state["score"] == points
    assert not (state["bullets"]["life"] > 0).any(), "the bullet that hit is gone"
    rocks = state["rocks"]
    if pieces == NONE:
        assert rocks["size"].tolist() == [LARGE] + [NONE] * 39
    else:
        assert rocks["size"].tolist() == [LARGE, pieces, pieces] + [NONE] * 37
        # both halves start at the rock's centre (they move from the next step on) at a speed of their size
        np.testing.assert_array_equal(rocks["x"][1:3], [168.0, 168.0])
        np.testing.assert_array_equal(rocks["y"][1:3], [96.0, 96.0])
        lo, hi = SPEED_RANGE[pieces]
        speeds = np.hypot(rocks["vx"][1:3], rocks["vy"][1:3])
        assert ((speeds >= lo * 0.999) & (speeds <= hi * 1.001)).all()
    assert not env.terminals[0] and not env.truncations[0]


def test_a_fast_bullet_cannot_tunnel_through_a_small_rock() -> None:
    """A bullet moving 13 units a step lands 6 and 7 units from a small rock's centre (reach 4 + 1) on either
    side: its swept path hits."""
    env = Asteroids(seed=3)
    scene(env, [FAR_ROCK, (119.0, 150.0, 0.0, 0.0, SMALL)], ship=(200.0, 40.0), invulnerable=1000)
    env.state["bullets"][0, 0] = (100.0, 150.0, 13.0, 0.0, 10)
    env.step(np.array([NOOP]))  # to x = 113
    assert env.rewards[0] == 0.0 and env.state["bullets"]["x"][0, 0] == 113.0
    env.step(np.array([NOOP]))  # to x = 126, past the rock
    assert env.rewards[0] == f32(1.0) and env.state["bullets"]["life"][0, 0] == 0
    assert env.state["rocks"]["size"][0].tolist() == [LARGE] + [NONE] * 39


def test_ship_rocks_and_bullets_wrap_around_and_observations_use_the_shortest_displacement() -> None:
    env = Asteroids(seed=4)
    scene(env, [FAR_ROCK, (254.0, 191.5, 3.0, 1.0, SMALL), (1.0, 0.5, -2.0, -1.0, SMALL)], ship=(255.0, 100.0),
          velocity=(2.0, 0.0), invulnerable=1000)  # fmt: skip
    env.state["bullets"][0, :2] = [(250.0, 100.0, 8.0, 0.0, 10), (130.0, 5.0, 0.0, -12.0, 10)]
    env.step(np.array([NOOP]))
    state = env.state[0]
    vx = f32(f32(2.0) * f32(0.985))
    assert state["ship_x"] == f32(f32(255.0) + vx) - f32(256.0)
    assert state["rocks"]["x"][1] == f32(1.0) and state["rocks"]["y"][1] == f32(0.5)
    assert state["rocks"]["x"][2] == f32(255.0) and state["rocks"]["y"][2] == f32(191.5)
    assert state["bullets"]["x"][0] == f32(2.0) and state["bullets"]["y"][1] == f32(185.0)
    # a rock 12 units ahead across the edge is seen 12 units ahead, not 244 behind
    scene(env, [(6.0, 100.0, 0.0, 0.0, LARGE)], ship=(250.0, 100.0), heading=0, invulnerable=1000)
    env.step(np.array([NOOP]))
    assert env.observations[0, 8] == f32(12.0) / f32(160) and env.observations[0, 9] == 0.0
    assert env.observations[0, 12] == f32(12.0) / f32(160)


def test_bullets_live_20_steps_and_the_cooldown_allows_one_shot_every_5_steps() -> None:
    env = Asteroids(seed=5)
    scene(env, [FAR_ROCK], heading=8)  # firing up, away from the rock
    shots, cooldowns, alive = [], [], []
    previous = np.zeros(4, np.int32)
    for t in range(60):
        env.step(np.array([FIRE]))
        life = env.state["bullets"]["life"][0].copy()
        shots += [t] * int(((life == 20) & (previous != 20)).sum())
        previous = life
        cooldowns.append(float(env.observations[0, 4]))
        alive.append(int((life > 0).sum()))
    assert shots == list(range(0, 60, 5))
    assert cooldowns[:10] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2] * 2)
    assert max(alive) == 4 and alive[25:] == [4] * 35  # each lives 20 steps: 4 in flight at a time
    # a bullet's path: from the nose (5 units ahead), 7 units a step, gone after 20 steps
    env2 = Asteroids(seed=5)
    scene(env2, [FAR_ROCK], heading=8)
    env2.step(np.array([FIRE]))
    ys = []
    for _ in range(25):
        ys.append(float(env2.state["bullets"]["y"][0, 0]) if env2.state["bullets"]["life"][0, 0] > 0 else None)
        env2.step(np.array([NOOP]))
    assert ys[:20] == [(96.0 + 5.0 + 7.0 * (k + 1)) % 192.0 for k in range(20)] and ys[20:] == [None] * 5


def test_a_crash_costs_a_life_respawns_the_ship_invulnerable_and_the_last_life_terminates() -> None:
    env = Asteroids(seed=6, num_lives=2)
    scene(env, [FAR_ROCK, (60.0, 60.0, 0.0, 0.0, LARGE)], ship=(60.0, 60.0), velocity=(1.0, 1.0))
    env.step(np.array([NOOP]))
    state = env.state[0]
    assert state["lives"] == 1 and env.rewards[0] == 0.0, "a crash scores nothing"
    assert not env.terminals[0]
    assert (state["ship_x"], state["ship_y"], state["ship_vx"], state["ship_vy"]) == (128.0, 96.0, 0.0, 0.0)
    assert state["heading"] == 8 and state["invulnerable"] == 60
    assert env.observations[0, 5] == 1.0 and env.observations[0, 6] == 0.5
    assert state["rocks"]["size"].tolist()[:4] == [LARGE, MEDIUM, MEDIUM, NONE], "the rock it hit split"
    # invulnerable: a rock parked on the ship does nothing for 59 steps, then the crash is the last life
    env.state["rocks"][0, 3] = (128.0, 96.0, 0.0, 0.0, SMALL, 0)
    for _ in range(59):
        env.step(np.array([NOOP]))
        assert not env.terminals[0] and env.state["lives"][0] == 1
    env.step(np.array([NOOP]))
    assert env.terminals[0] and not env.truncations[0]
    assert env.final_observations[0, 6] == 0.0 and env.final_observations[0, 5] == 0.0
    state = env.state[0]  # a new episode
    assert state["lives"] == 2 and state["tick"] == 0 and state["score"] == 0 and state["wave"] == 1
    np.testing.assert_array_equal(env.observations[0], reference_obs(state, 2))
    assert env.log() == {"episode_return": 0.0, "episode_length": 61.0, "score": 0.0, "n": 1}


def test_truncation_at_max_steps_keeps_the_last_observation_and_starts_a_new_episode() -> None:
    env = Asteroids(seed=7, max_steps=30)
    env.reset()
    scene(env, [FAR_ROCK])
    for t in range(30):
        last = env.observations[0].copy()
        env.step(np.array([NOOP]))
        assert not env.terminals[0] and bool(env.truncations[0]) == (t == 29)
    np.testing.assert_array_equal(env.final_observations[0], last)  # a still scene: same as the step before
    assert env.state["tick"][0] == 0 and env.state["rocks"]["size"][0, :4].tolist() == [LARGE] * 4
    np.testing.assert_array_equal(env.observations[0], reference_obs(env.state[0], 3))
    assert env.log() == {"episode_return": 0.0, "episode_length": 30.0, "score": 0.0, "n": 1}


def test_clearing_the_field_starts_a_harder_wave() -> None:
    env = Asteroids(seed=8)
    for wave, large, factor in ((1, 5, 1.15), (9, 10, 2.0)):
        scene(env, [(168.0, 96.0, 0.0, 0.0, SMALL)], heading=0, wave=wave)
        for _ in range(8):
            env.step(np.array([FIRE]))
            if env.rewards[0] > 0:
                break
        state = env.state[0]
        assert env.rewards[0] == 1.0 and state["wave"] == wave + 1
        rocks = state["rocks"]
        assert rocks["size"].tolist() == [LARGE] * large + [NONE] * (40 - large)
        speeds = np.hypot(rocks["vx"][:large], rocks["vy"][:large])
        assert ((speeds >= 0.3 * factor * 0.999) & (speeds <= 0.9 * factor * 1.001)).all(), speeds
        dx = np.abs((rocks["x"][:large] - state["ship_x"] + 128.0) % 256.0 - 128.0)
        dy = np.abs((rocks["y"][:large] - state["ship_y"] + 96.0) % 192.0 - 96.0)
        assert ((dx >= 48.0) | (dy >= 48.0)).all(), "a new wave spawns away from the ship"


def random_rollout(env: Asteroids, steps: int, rng: np.random.Generator) -> dict[str, Any]:
    """Step with random actions; check every observation against the Box and every reward against the score;
    return the finished episodes' returns, lengths and scores."""
    n = env.num_agents
    space = env.single_observation_space
    ret, length, score = np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64)
    out: dict[str, list[float]] = {"episode_return": [], "episode_length": [], "score": []}
    for _ in range(steps):
        env.step(rng.integers(0, 10, size=n))
        assert np.all(env.observations >= space.low) and np.all(env.observations <= space.high)
        points = np.rint(env.rewards.astype(np.float64) * 100).astype(np.int64)
        assert np.all(points % 10 == 0) and np.all(points >= 0)
        np.testing.assert_array_equal(env.rewards, points.astype(np.float32) / np.float32(100))
        ret += env.rewards
        length += 1
        score += points
        done = env.terminals | env.truncations
        alive = ~done
        np.testing.assert_array_equal(env.state["score"][alive], score[alive])
        if done.any():
            final = env.final_observations[done]
            assert np.all(final >= space.low) and np.all(final <= space.high)
            out["episode_return"] += ret[done].tolist()
            out["episode_length"] += length[done].tolist()
            out["score"] += score[done].tolist()
            ret[done], length[done], score[done] = 0.0, 0, 0
    return out


def test_observations_stay_inside_the_box_and_rewards_are_points_over_a_long_random_rollout() -> None:
    env = Asteroids(num_envs=64, seed=9, max_steps=600)
    episodes = random_rollout(env, 2000, np.random.default_rng(9))
    assert len(episodes["score"]) > 64
    stats = env.log()
    assert stats["n"] == len(episodes["score"])
    for key, values in episodes.items():
        assert stats[key] == pytest.approx(np.mean(values), rel=1e-12), key
    assert stats["episode_return"] == pytest.approx(stats["score"] / 100, rel=1e-6)
    assert max(episodes["episode_length"]) == 600 and min(episodes["episode_length"]) < 600, "both kinds of end"
    assert env.log() == {}


def rollout(env: Asteroids, actions: np.ndarray) -> np.ndarray:
    out = [env.observations.copy()]
    for step_actions in actions:
        env.step(step_actions)
        out.append(env.observations.copy())
    return np.stack(out)


def test_same_seed_same_trajectories_and_env_i_of_seed_s_is_env_0_of_seed_s_plus_i() -> None:
    actions = np.random.default_rng(2).integers(0, 10, size=(300, 4))
    a = Asteroids(num_envs=4, seed=7)
    a.reset()  # the first reset keeps the constructor's field
    b = Asteroids(num_envs=4, seed=7)
    c = Asteroids(num_envs=4, seed=8)
    traj_a, traj_b, traj_c = rollout(a, actions), rollout(b, actions), rollout(c, actions)
    np.testing.assert_array_equal(traj_a, traj_b)
    assert not np.array_equal(traj_a, traj_c)
    # so a vectorizer that seeds object k with seed + its first env gets the same envs however it splits them
    np.testing.assert_array_equal(traj_a[:, 1:], rollout(Asteroids(num_envs=3, seed=8), actions[:, 1:]))
    b.reset(seed=7)
    np.testing.assert_array_equal(b.observations, traj_a[0])
    b.reset()  # continues the stream
    assert not np.array_equal(b.observations, traj_a[0])


def test_actions_outside_the_range_act_as_noop() -> None:
    odd = Asteroids(num_envs=1, seed=3)
    noop = Asteroids(num_envs=1, seed=3)
    for value in (10, -1, 2**31 - 1, -(2**31), 1000):
        odd.step(np.array([value], np.int32))
        noop.step(np.array([NOOP]))
        assert odd.state.tobytes() == noop.state.tobytes()


def test_slices_of_caller_buffers_are_written_in_place() -> None:
    probe = Asteroids()
    big = allocate(probe.single_observation_space, probe.single_action_space, 10)
    env = Asteroids(num_envs=4, buffers=big.slice(3, 7), seed=1, max_steps=50)
    assert np.shares_memory(env.observations, big.observations)
    rng = np.random.default_rng(3)
    for _ in range(60):
        big.actions[3:7] = rng.integers(0, 10, size=4)  # the vectorizer writes actions into its own buffer
        env.step()
    for i in range(4):
        np.testing.assert_array_equal(big.observations[3 + i], reference_obs(env.state[i], 3))
    assert big.truncations[3:7].any() or big.final_observations[3:7].any()
    for name in ("observations", "rewards", "terminals", "truncations", "final_observations"):
        rest = np.concatenate([getattr(big, name)[:3], getattr(big, name)[7:]])
        assert not rest.any(), f"{name} written outside the env's slice"


def test_invalid_arguments_and_buffers_raise_value_error() -> None:
    for kwargs in ({"num_envs": 0}, {"max_steps": 0}, {"num_lives": 0}):
        with pytest.raises(ValueError, match="Asteroids needs"):
            Asteroids(**kwargs)  # type: ignore[arg-type]
    probe = Asteroids()
    big = allocate(probe.single_observation_space, probe.single_action_space, 4)
    with pytest.raises(ValueError, match="buffers hold 4 agents"):
        Asteroids(num_envs=2, buffers=big)
    strided = big.slice(0, 4)
    strided.observations = big.observations[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        Asteroids(num_envs=4, buffers=strided)
    small = allocate(gymnasium.spaces.Box(-1, 1, (8,), np.float32), probe.single_action_space, 4)
    with pytest.raises(ValueError, match="56 observation floats"):
        Asteroids(num_envs=4, buffers=small)


def test_close_is_idempotent_and_stepping_a_closed_env_raises() -> None:
    env = Asteroids()
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_render_draws_env_0_with_the_flame_while_thrusting() -> None:
    env = Asteroids(num_envs=2, seed=0)
    frame = env.render()
    assert frame.shape == (384, 512, 3) and frame.dtype == np.uint8
    assert env.render(scale=1).shape == (192, 256, 3)
    assert (frame > 0).any(axis=2).mean() > 0.005, "rocks, ship, score and lives are drawn"
    orange = (frame[..., 0] > 200) & (frame[..., 1] > 100) & (frame[..., 1] < 200) & (frame[..., 2] < 100)
    assert not orange.any()
    env.step(np.array([THRUST, NOOP]))
    thrusting = env.render()
    orange = (thrusting[..., 0] > 200) & (thrusting[..., 1] > 100) & (thrusting[..., 1] < 200)
    assert (orange & (thrusting[..., 2] < 100)).any(), "the flame"
    with pytest.raises(ValueError, match="scale"):
        env.render(scale=0)


def test_c_core_runs_1m_steps_clean_under_address_and_ub_sanitizers(run_under_sanitizers) -> None:  # type: ignore[no-untyped-def]
    out = run_under_sanitizers(ASTEROIDS_DIR / "asteroids_main.c")
    assert "1000000 agent-steps" in out and out.rstrip().endswith("ok")
