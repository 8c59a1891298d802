"""The C CartPole: bit for bit against Gymnasium CartPole-v1, auto-reset, seeding, buffers, log, and the C
core under the sanitizers."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

import envs_cython.cartpole
from envs_cython.base import allocate
from envs_cython.cartpole import CartPole

CARTPOLE_DIR = Path(envs_cython.cartpole.__file__).parent


def gym_cartpole(seed: int) -> tuple[gymnasium.Env, CartPoleEnv]:
    """Gymnasium's CartPole-v1 (with its TimeLimit), reset with ``seed``, and the unwrapped env inside."""
    env = gymnasium.make("CartPole-v1")
    env.reset(seed=seed)
    assert isinstance(env.unwrapped, CartPoleEnv)
    return env, env.unwrapped


def test_spaces_equal_gymnasium_cartpole_v1() -> None:
    ref = gymnasium.make("CartPole-v1")
    env = CartPole(num_envs=3)
    assert env.single_observation_space == ref.observation_space
    assert isinstance(ref.observation_space, gymnasium.spaces.Box)
    np.testing.assert_array_equal(env.single_observation_space.high, ref.observation_space.high)
    assert env.single_observation_space.dtype == np.float32
    assert env.single_action_space == ref.action_space
    assert env.num_agents == 3
    assert env.observations.shape == (3, 4) and env.observations.dtype == np.float32
    assert env.actions.dtype == np.int32
    assert env.state.shape == (3, 4) and env.state.dtype == np.float64


def test_random_rollout_matches_gymnasium_bit_for_bit_over_10000_steps() -> None:
    """Same state, same action: identical float32 observations, float64 states, rewards and terminals on every
    step; where Gymnasium terminates, both restart from Gymnasium's reset state."""
    _, ref = gym_cartpole(seed=0)
    env = CartPole(num_envs=1, seed=0, max_steps=2**31 - 1)  # no time limit, like the unwrapped env
    env.reset()
    env.state[0] = ref.state
    actions = np.random.default_rng(0).integers(0, 2, size=10_000)
    num_terminals = 0
    for t, action in enumerate(actions):
        ref_obs, ref_reward, ref_terminal, _, _ = ref.step(int(action))
        env.actions[0] = action
        env.step()
        assert bool(env.terminals[0]) == ref_terminal, f"step {t}"
        assert env.rewards[0] == ref_reward == 1.0, f"step {t}"
        assert not env.truncations[0]
        if ref_terminal:
            assert np.array_equal(env.final_observations[0], ref_obs), f"step {t}"
            num_terminals += 1
            ref.reset()
            env.state[0] = ref.state
        else:
            assert np.array_equal(env.observations[0], ref_obs), f"step {t}"
            assert ref.state is not None and np.array_equal(env.state[0], ref.state), f"step {t}: state"
    assert num_terminals > 300, "the rollout must cross many terminations"


def test_one_step_from_10000_random_states_matches_gymnasium() -> None:
    """States spread over (and past) the termination region, velocities up to ±3: next state, observation and
    terminal flag equal Gymnasium's for each."""
    n = 10_000
    rng = np.random.default_rng(1)
    states = rng.uniform(-1, 1, size=(n, 4)) * [2.6, 3.0, 0.25, 3.0]
    actions = rng.integers(0, 2, size=n)
    env = CartPole(num_envs=n)
    env.state = states
    env.step(actions)
    _, ref = gym_cartpole(seed=0)
    ref_obs = np.empty((n, 4), np.float32)
    ref_next = np.empty((n, 4), np.float64)
    ref_terminal = np.empty(n, bool)
    for i in range(n):
        ref.state = states[i].copy()
        ref.steps_beyond_terminated = None
        ref_obs[i], _, ref_terminal[i], _, _ = ref.step(int(actions[i]))
        ref_next[i] = ref.state
    np.testing.assert_array_equal(env.terminals, ref_terminal)
    assert 0.1 < ref_terminal.mean() < 0.9
    live = ~ref_terminal
    np.testing.assert_array_equal(env.state[live], ref_next[live])
    np.testing.assert_array_equal(env.observations[live], ref_obs[live])
    np.testing.assert_array_equal(env.final_observations[ref_terminal], ref_obs[ref_terminal])


def step_both_from_zero_state(env: CartPole, ref: gymnasium.Env, steps: int) -> list[tuple[bool, bool]]:
    """Hold both envs at the upright zero state before each step (so nothing terminates) and step; returns
    Gymnasium's (terminated, truncated) per step after checking that the C env's flags equal them."""
    flags = []
    for t in range(steps):
        env.state[0] = 0.0
        ref.unwrapped.state = np.zeros(4)  # type: ignore[attr-defined]
        _, _, terminated, truncated, _ = ref.step(t % 2)
        env.step(np.array([t % 2]))
        assert (bool(env.terminals[0]), bool(env.truncations[0])) == (terminated, truncated), f"step {t}"
        flags.append((terminated, truncated))
    return flags


def test_truncation_at_500_steps_is_a_truncation_and_auto_resets_in_the_same_step() -> None:
    env = CartPole(num_envs=1, seed=3)
    env.reset()
    twin = CartPole(num_envs=1, seed=3)  # draws the same initial states
    twin.reset()
    twin.reset()  # the state env's second episode starts from
    ref, _ = gym_cartpole(seed=0)
    flags = step_both_from_zero_state(env, ref, 500)
    assert flags[:499] == [(False, False)] * 499
    assert flags[499] == (False, True)
    # the last observation of the truncated episode: one step from the zero state with action 1
    last = CartPole(num_envs=1)
    last.step(np.array([1]))
    np.testing.assert_array_equal(env.final_observations[0], last.observations[0])
    # the step already delivers the next episode's first observation
    np.testing.assert_array_equal(env.observations[0], twin.observations[0])
    np.testing.assert_array_equal(env.state[0], twin.state[0])
    assert np.all(np.abs(env.state[0]) < 0.05)
    # the new episode runs its full 500 steps again
    ref.reset()
    assert step_both_from_zero_state(env, ref, 500)[-1] == (False, True)


def test_termination_on_the_500th_step_sets_both_flags_like_gymnasium_time_limit() -> None:
    env = CartPole(num_envs=1)
    env.reset()
    ref, _ = gym_cartpole(seed=0)
    step_both_from_zero_state(env, ref, 499)
    falling = np.array([0.0, 0.0, 0.3, 0.0])
    env.state[0] = falling
    ref.unwrapped.state = falling.copy()  # type: ignore[attr-defined]
    _, _, terminated, truncated, _ = ref.step(0)
    env.step(np.array([0]))
    assert (terminated, truncated) == (True, True)
    assert bool(env.terminals[0]) and bool(env.truncations[0])
    assert env.log() == {"episode_return": 500.0, "episode_length": 500.0, "n": 1}


def test_termination_before_the_time_limit_is_not_a_truncation() -> None:
    env = CartPole(num_envs=1, max_steps=500)
    env.state[0] = [2.399, 1.0, 0.0, 0.0]
    env.step(np.array([1]))
    assert bool(env.terminals[0]) and not env.truncations[0]
    assert env.final_observations[0, 0] > 2.4
    assert np.all(np.abs(env.observations[0]) < 0.05)


def rollout(env: CartPole, actions: np.ndarray) -> np.ndarray:
    out = [env.observations.copy()]
    for step_actions in actions:
        env.step(step_actions)
        out.append(env.observations.copy())
    return np.stack(out)


def test_same_seed_same_trajectories_different_seed_or_env_different() -> None:
    actions = np.random.default_rng(2).integers(0, 2, size=(1000, 16))
    a = CartPole(num_envs=16, seed=7)
    a.reset()
    b = CartPole(num_envs=16, seed=7)
    b.reset()
    c = CartPole(num_envs=16, seed=8)
    c.reset()
    traj_a, traj_b, traj_c = rollout(a, actions), rollout(b, actions), rollout(c, actions)
    np.testing.assert_array_equal(traj_a, traj_b)
    assert not np.array_equal(traj_a, traj_c)
    # envs within one object start apart (every initial observation distinct)
    assert len({tuple(row) for row in traj_a[0]}) == 16
    # reset(seed) reseeds; reset() continues the PRNG
    b.reset(seed=7)
    np.testing.assert_array_equal(b.observations, traj_a[0])
    b.reset()
    assert not np.array_equal(b.observations, traj_a[0])


def test_env_i_of_seed_s_follows_env_0_of_seed_s_plus_i() -> None:
    """So a vectorizer that seeds object k with ``seed + first agent index`` gets the same trajectories
    however it splits the envs into objects."""
    actions = np.random.default_rng(3).integers(0, 2, size=(300, 8))
    whole = CartPole(num_envs=8, seed=5)
    whole.reset()
    part = CartPole(num_envs=4, seed=9)
    part.reset()
    np.testing.assert_array_equal(rollout(whole, actions)[:, 4:], rollout(part, actions[:, 4:]))


def test_slices_of_caller_buffers_are_written_in_place() -> None:
    env_probe = CartPole()
    big = allocate(env_probe.single_observation_space, env_probe.single_action_space, 12)
    env = CartPole(num_envs=4, buffers=big.slice(4, 8), seed=1)
    env.reset()
    assert np.shares_memory(env.observations, big.observations)
    ended = np.zeros(4, bool)
    for t in range(200):
        big.actions[4:8] = t % 3 == 0  # the vectorizer writes actions into its own buffer
        env.step()
        ended |= big.terminals[4:8]
    np.testing.assert_array_equal(big.observations[4:8], env.observations)
    np.testing.assert_array_equal(big.observations[4:8], env.state.astype(np.float32))
    assert ended.all(), "every env must end an episode within 200 steps"
    assert np.all(big.rewards[4:8] == 1.0)
    assert np.all(np.abs(big.final_observations[4:8]).max(axis=1) > 0.2)
    for name in ("observations", "rewards", "terminals", "truncations", "final_observations"):
        rest = np.concatenate([getattr(big, name)[:4], getattr(big, name)[8:]])
        assert not rest.any(), f"{name} written outside the env's slice"


def test_state_assignment_writes_into_the_array_the_core_reads() -> None:
    env = CartPole(num_envs=2)
    state = env.state
    env.state = np.full((2, 4), 0.01)
    assert env.state is state
    env.step(np.array([1, 1]))
    assert env.state[0, 0] == 0.01 + 0.02 * 0.01


def test_log_aggregates_finished_episodes_then_clears() -> None:
    n, steps = 16, 2000
    env = CartPole(num_envs=n, seed=4, max_steps=30)  # short limit: both kinds of end occur
    env.reset()
    actions = np.random.default_rng(4).integers(0, 2, size=(steps, n))
    length = np.zeros(n, np.int64)
    lengths: list[int] = []
    truncated = 0
    for t in range(steps):
        env.step(actions[t])
        length += 1
        done = env.terminals | env.truncations
        lengths.extend(length[done].tolist())
        truncated += int(env.truncations.sum())
        length[done] = 0
        if t == steps // 2:
            first = env.log()
            assert first["n"] == len(lengths)
            assert first["episode_length"] == pytest.approx(np.mean(lengths), rel=1e-12)
            lengths = []
    assert truncated > 0
    stats = env.log()
    assert stats["n"] == len(lengths)
    assert stats["episode_length"] == pytest.approx(np.mean(lengths), rel=1e-12)
    assert stats["episode_return"] == stats["episode_length"]  # reward 1.0 per step
    assert env.log() == {}


def test_invalid_arguments_and_buffers_raise_value_error() -> None:
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        CartPole(num_envs=0)
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        CartPole(num_envs=1, max_steps=0)
    probe = CartPole()
    big = allocate(probe.single_observation_space, probe.single_action_space, 8)
    with pytest.raises(ValueError, match="buffers hold 8 agents"):
        CartPole(num_envs=4, buffers=big)
    strided = big.slice(0, 8)
    strided.observations = big.observations[::2]
    strided.rewards, strided.actions = big.rewards[::2], big.actions[::2]
    strided.terminals, strided.truncations = big.terminals[::2], big.truncations[::2]
    strided.final_observations = big.final_observations[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        CartPole(num_envs=4, buffers=strided)


def test_close_is_idempotent_and_stepping_a_closed_env_raises() -> None:
    env = CartPole(num_envs=2)
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step()


def test_render_draws_env_0_as_image_and_text() -> None:
    env = CartPole(num_envs=2, seed=0)
    env.reset()
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (160, 240, 3) and frame.dtype == np.uint8
    assert (frame == 0).any() and (frame == 255).any()
    text = env.render("ansi")
    assert isinstance(text, str) and f"x={env.state[0, 0]:+.3f}" in text
    with pytest.raises(ValueError, match="unknown render mode"):
        env.render("human")


def test_c_core_runs_1m_random_steps_clean_under_address_and_ub_sanitizers(run_under_sanitizers) -> None:  # type: ignore[no-untyped-def]
    out = run_under_sanitizers(CARTPOLE_DIR / "cartpole_main.c")
    assert "1000000 agent-steps" in out and out.rstrip().endswith("ok")
