"""The C Pendulum: bit for bit against Gymnasium Pendulum-v1, truncation and auto-reset, seeding, buffers,
log, rendering, and the C core under the sanitizers."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv

import envs_cython.pendulum
from envs_cython.base import allocate
from envs_cython.pendulum import Pendulum

PENDULUM_DIR = Path(envs_cython.pendulum.__file__).parent


def random_torques(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 torques: mostly uniform in [-3, 3] (a third beyond the ±2 limit), plus the limits themselves,
    the float32 neighbours of the limits, -0.0, huge values and ±inf."""
    torques = rng.uniform(-3.0, 3.0, size=shape).astype(np.float32)
    two_up, two_down = np.nextafter(np.float32(2), np.float32(3)), np.nextafter(np.float32(2), np.float32(0))
    special = np.array([2, -2, two_up, -two_up, two_down, -two_down, -0.0, 0.0, 1e30, -1e30, np.inf, -np.inf])
    mask = rng.random(shape) < 0.05
    torques[mask] = rng.choice(special.astype(np.float32), size=int(mask.sum()))
    return torques


def test_spaces_equal_gymnasium_pendulum_v1() -> None:
    ref = gymnasium.make("Pendulum-v1")
    env = Pendulum(num_envs=3)
    assert env.single_observation_space == ref.observation_space
    assert env.single_action_space == ref.action_space
    assert env.single_observation_space.dtype == np.float32 and env.single_action_space.dtype == np.float32
    assert env.num_agents == 3
    assert env.observations.shape == (3, 3) and env.observations.dtype == np.float32
    assert env.actions.shape == (3, 1) and env.actions.dtype == np.float32
    assert env.state.shape == (3, 2) and env.state.dtype == np.float64


def test_16_envs_in_lockstep_with_gymnasium_match_bit_for_bit_over_10000_agent_steps() -> None:
    """16 C envs and 16 Gymnasium Pendulum-v1 (TimeLimit 200) from the same states, with the same random
    torques (a third beyond ±2, and ±inf): on every step the float64 states and float32 observations are
    equal, the reward is Gymnasium's float64 reward rounded to float32, and the truncation flags agree. At
    each truncation the final observation is Gymnasium's last one; Gymnasium then restarts from the C env's
    new state. No state is ever copied otherwise, so one differing bit would propagate."""
    n, steps = 16, 625
    refs = [gymnasium.make("Pendulum-v1") for _ in range(n)]
    env = Pendulum(num_envs=n, seed=0)
    env.reset()
    for i, ref in enumerate(refs):
        ref.reset(seed=i)
        env.state[i] = ref.unwrapped.state  # type: ignore[attr-defined]
    torques = random_torques(np.random.default_rng(0), (steps, n, 1))
    num_truncations = 0
    for t in range(steps):
        env.step(torques[t])
        for i, ref in enumerate(refs):
            obs, reward, terminated, truncated, _ = ref.step(torques[t, i])
            assert not terminated and not env.terminals[i]
            assert bool(env.truncations[i]) == truncated, f"step {t} env {i}"
            assert env.rewards[i] == np.float32(reward), f"step {t} env {i}: {env.rewards[i]!r} != {reward!r}"
            if truncated:
                assert np.array_equal(env.final_observations[i], obs), f"step {t} env {i}"
                num_truncations += 1
                ref.reset()
                ref.unwrapped.state = env.state[i].copy()  # type: ignore[attr-defined]
            else:
                assert np.array_equal(env.observations[i], obs), f"step {t} env {i}"
                assert np.array_equal(env.state[i], ref.unwrapped.state), f"step {t} env {i}: state"  # type: ignore[attr-defined]
    assert num_truncations == n * 3  # 625 steps: three 200-step episodes each
    assert (np.abs(torques) > 2).mean() > 0.3


@pytest.mark.parametrize("g", [10.0, 9.81])
def test_one_step_from_10000_random_states_matches_gymnasium(g: float) -> None:
    """Angles far outside [-pi, pi] (and exactly on the wrap points), speeds beyond the ±8 clip, torques beyond
    ±2, and the upright rest state: next state, observation and reward equal Gymnasium's for each."""
    n = 10_000
    rng = np.random.default_rng(1)
    states = np.stack([rng.uniform(-20, 20, n), rng.uniform(-12, 12, n)], axis=1)
    edges = [-3 * math.pi, -math.pi, -0.0, 0.0, math.pi, 2 * math.pi, 3 * math.pi, np.nextafter(math.pi, 4.0)]
    states[: len(edges), 0] = edges
    torques = random_torques(rng, (n, 1))
    # Upright at rest the reward is the float32 torque cost alone, -(0.001 * u**2). Gymnasium's u**2 of a
    # float32 scalar is libm powf(u, 2), which differs from u * u for about 1 torque in 1,300: 50 such torques.
    candidates = rng.uniform(-2, 2, 200_000).astype(np.float32)
    tricky = list(itertools.islice((u for u in candidates if u**2 != u * u), 50))
    assert len(tricky) == 50
    states[-50:] = 0.0
    torques[-50:, 0] = tricky
    env = Pendulum(num_envs=n, g=g)
    env.state = states
    env.step(torques)
    ref = gymnasium.make("Pendulum-v1", g=g).unwrapped
    assert isinstance(ref, PendulumEnv)
    ref.reset(seed=0)
    ref_obs = np.empty((n, 3), np.float32)
    ref_reward = np.empty(n, np.float64)
    ref_next = np.empty((n, 2), np.float64)
    for i in range(n):
        ref.state = states[i].copy()
        ref_obs[i], ref_reward[i], _, _, _ = ref.step(torques[i])
        ref_next[i] = ref.state
    np.testing.assert_array_equal(env.state, ref_next)
    np.testing.assert_array_equal(env.observations, ref_obs)
    np.testing.assert_array_equal(env.rewards, ref_reward.astype(np.float32))
    assert (np.abs(ref_next[:, 1]) == 8.0).mean() > 0.1, "the speed clip must be exercised"
    assert not env.terminals.any() and not env.truncations.any()


def test_truncation_at_200_steps_auto_resets_in_the_same_step_and_logs_the_episode() -> None:
    env = Pendulum(num_envs=1, seed=3)
    env.reset()
    twin = Pendulum(num_envs=1, seed=3)  # draws the same initial states
    twin.reset()
    twin.reset()  # the state env's second episode starts from
    unlimited = Pendulum(num_envs=1, max_steps=2**31 - 1)  # the same episode without the time limit
    unlimited.state = env.state
    torques = random_torques(np.random.default_rng(2), (200, 1, 1))
    returns = 0.0
    for t in range(200):
        env.step(torques[t])
        unlimited.step(torques[t])
        returns += float(env.rewards[0])
        assert env.rewards[0] == unlimited.rewards[0] and not env.terminals[0], f"step {t}"
        assert bool(env.truncations[0]) == (t == 199), f"step {t}"
        if t < 199:
            assert env.log() == {}
    # the last observation of the truncated episode, then the next episode's first observation
    np.testing.assert_array_equal(env.final_observations[0], unlimited.observations[0])
    np.testing.assert_array_equal(env.observations[0], twin.observations[0])
    np.testing.assert_array_equal(env.state[0], twin.state[0])
    assert env.log() == {"episode_return": returns, "episode_length": 200.0, "n": 1}
    # the new episode runs its full 200 steps again
    for t in range(200):
        env.step(np.zeros((1, 1), np.float32))
        assert bool(env.truncations[0]) == (t == 199), f"episode 2 step {t}"


def rollout(env: Pendulum, actions: np.ndarray) -> np.ndarray:
    out = [env.observations.copy()]
    for step_actions in actions:
        env.step(step_actions)
        out.append(env.observations.copy())
    return np.stack(out)


def test_same_seed_same_trajectories_different_seed_or_env_different() -> None:
    actions = random_torques(np.random.default_rng(3), (300, 16, 1))
    a = Pendulum(num_envs=16, seed=7, max_steps=50)
    a.reset()
    b = Pendulum(num_envs=16, seed=7, max_steps=50)
    b.reset()
    c = Pendulum(num_envs=16, seed=8, max_steps=50)
    c.reset()
    traj_a, traj_b, traj_c = rollout(a, actions), rollout(b, actions), rollout(c, actions)
    np.testing.assert_array_equal(traj_a, traj_b)
    assert not np.array_equal(traj_a, traj_c)
    assert len({tuple(row) for row in traj_a[0]}) == 16  # envs within one object start apart
    # reset(seed) reseeds; reset() continues the PRNG
    b.reset(seed=7)
    np.testing.assert_array_equal(b.observations, traj_a[0])
    b.reset()
    assert not np.array_equal(b.observations, traj_a[0])


def test_env_i_of_seed_s_follows_env_0_of_seed_s_plus_i() -> None:
    actions = random_torques(np.random.default_rng(4), (300, 8, 1))
    whole = Pendulum(num_envs=8, seed=5, max_steps=40)
    whole.reset()
    part = Pendulum(num_envs=4, seed=9, max_steps=40)
    part.reset()
    np.testing.assert_array_equal(rollout(whole, actions)[:, 4:], rollout(part, actions[:, 4:]))


def test_reset_draws_theta_in_minus_pi_pi_and_theta_dot_in_minus_1_1_uniformly() -> None:
    env = Pendulum(num_envs=20_000, seed=11)
    env.reset()
    th, thdot = env.state[:, 0], env.state[:, 1]
    assert th.min() >= -math.pi and th.max() < math.pi and thdot.min() >= -1 and thdot.max() < 1
    assert th.min() < -3.1 and th.max() > 3.1 and thdot.min() < -0.99 and thdot.max() > 0.99
    assert abs(th.mean()) < 0.05 and abs(thdot.mean()) < 0.02
    expected = np.stack([np.cos(th), np.sin(th), thdot], axis=1).astype(np.float32)
    np.testing.assert_array_equal(env.observations, expected)


def test_slices_of_caller_buffers_are_written_in_place() -> None:
    probe = Pendulum()
    big = allocate(probe.single_observation_space, probe.single_action_space, 12)
    env = Pendulum(num_envs=4, buffers=big.slice(4, 8), seed=1, max_steps=10)
    env.reset()
    assert np.shares_memory(env.observations, big.observations)
    for t in range(10):
        big.actions[4:8] = t % 3 - 1.0  # the vectorizer writes actions into its own buffer
        env.step()
    assert big.truncations[4:8].all()
    assert np.all(big.rewards[4:8] < 0)
    assert np.all(np.abs(big.final_observations[4:8, :2]).max(axis=1) > 0)
    for name in ("observations", "rewards", "terminals", "truncations", "final_observations"):
        rest = np.concatenate([getattr(big, name)[:4], getattr(big, name)[8:]])
        assert not rest.any(), f"{name} written outside the env's slice"


def test_state_assignment_writes_into_the_array_the_core_reads() -> None:
    env = Pendulum(num_envs=2)
    state = env.state
    env.state = np.zeros((2, 2))
    assert env.state is state
    env.step(np.full((2, 1), 2.0, np.float32))
    # upright at rest, torque 2: thdot = (3 * 2) * 0.05, th = thdot * 0.05; reward -(0.001 * 4) in float32
    thdot = 6.0 * 0.05
    np.testing.assert_array_equal(env.state, [[thdot * 0.05, thdot]] * 2)
    assert env.rewards[0] == np.float32(-np.float32(0.001) * np.float32(4))


def test_log_aggregates_finished_episodes_then_clears() -> None:
    n, steps = 8, 100
    env = Pendulum(num_envs=n, seed=4, max_steps=30)
    env.reset()
    actions = random_torques(np.random.default_rng(5), (steps, n, 1))
    running = np.zeros(n)
    returns: list[float] = []
    for t in range(steps):
        env.step(actions[t])
        running += env.rewards.astype(np.float64)
        returns.extend(running[env.truncations].tolist())
        running[env.truncations] = 0.0
    stats = env.log()
    assert stats["n"] == len(returns) == 3 * n
    assert stats["episode_length"] == 30.0
    assert stats["episode_return"] == pytest.approx(np.mean(returns), rel=1e-12)
    assert env.log() == {}


def test_invalid_arguments_and_buffers_raise_one_line_value_errors() -> None:
    probe = Pendulum()
    big = allocate(probe.single_observation_space, probe.single_action_space, 8)
    strided = big.slice(0, 8)
    strided.observations, strided.actions = big.observations[::2], big.actions[::2]
    strided.rewards, strided.terminals = big.rewards[::2], big.terminals[::2]
    strided.truncations, strided.final_observations = big.truncations[::2], big.final_observations[::2]
    discrete = allocate(probe.single_observation_space, gymnasium.spaces.Discrete(2), 4)  # int32 [N] actions
    cases = [
        (dict(num_envs=0), "num_envs must be >= 1 for Pendulum, got 0"),
        (dict(max_steps=0), "max_steps must be >= 1 for Pendulum, got 0"),
        (dict(g=float("nan")), "g must be finite for Pendulum, got nan"),
        (dict(num_envs=4, buffers=big), "buffers hold 8 agents, the env has 4"),
        (dict(num_envs=4, buffers=strided), "C-contiguous"),
        (dict(num_envs=4, buffers=discrete), "actions float32"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            Pendulum(**kwargs)  # type: ignore[arg-type]
        assert "\n" not in str(err.value), kwargs


def test_close_is_idempotent_and_stepping_a_closed_env_raises() -> None:
    env = Pendulum(num_envs=2)
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step()


def test_render_draws_env_0_as_image_and_text() -> None:
    env = Pendulum(num_envs=2, seed=0)
    env.state = np.zeros((2, 2))  # upright: the rod goes straight up from the centre
    env.actions[:] = 0.0
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    red = np.all(frame == (204, 77, 77), axis=-1)
    assert red[45:75, 80].all() and not red[85:, :].any()
    assert np.all(frame[80, 80] == 0)  # the axle
    env.state[0] = [math.pi / 2, 0.0]  # a quarter turn counter-clockwise: the rod points left
    env.actions[0] = 2.0
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    red = np.all(frame == (204, 77, 77), axis=-1)
    assert red[80, 50:75].all() and not red[:, 85:].any()
    assert (np.all(frame == 128, axis=-1)[:, 85:]).any()  # the torque bar, to the right
    text = env.render("ansi")
    assert isinstance(text, str) and "theta=+1.571" in text and "torque=+2.000" in text
    with pytest.raises(ValueError, match="unknown render mode"):
        env.render("human")


def test_c_core_runs_1m_random_steps_clean_under_address_and_ub_sanitizers(run_under_sanitizers) -> None:  # type: ignore[no-untyped-def]
    out = run_under_sanitizers(PENDULUM_DIR / "pendulum_main.c")
    assert "1000000 agent-steps" in out and out.rstrip().endswith("ok")
