"""GymnasiumEnv against hand-stepped Gymnasium envs; ThrustVectorEnv against SyncVectorEnv (same-step)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from envs_cython.base import Buffers, Env, allocate
from envs_cython.gym_adapter import GymnasiumEnv, ThrustVectorEnv


def reference_rollout(
    env_id: str, num_envs: int, seed: int, actions: np.ndarray, **make_kwargs: Any
) -> list[tuple[np.ndarray, ...]]:
    """Step plain Gymnasium envs by hand with same-step autoreset: per step (obs, rewards, terminals,
    truncations, final_obs), final_obs[i] meaningful only where the episode ended."""
    envs = [gymnasium.make(env_id, **make_kwargs) for _ in range(num_envs)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    out: list[tuple[np.ndarray, ...]] = [(obs.copy(),)]
    for step_actions in actions:
        rewards, terms, truncs = np.zeros(num_envs), np.zeros(num_envs, bool), np.zeros(num_envs, bool)
        final = np.zeros_like(obs)
        for i, env in enumerate(envs):
            obs[i], rewards[i], terms[i], truncs[i], _ = env.step(step_actions[i])
            if terms[i] or truncs[i]:
                final[i] = obs[i]
                obs[i] = env.reset()[0]
        out.append((obs.copy(), rewards, terms, truncs, final))
    for env in envs:
        env.close()
    return out


def thrust_rollout(env: GymnasiumEnv, seed: int, actions: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    env.reset(seed)
    out: list[tuple[np.ndarray, ...]] = [(env.observations.copy(),)]
    for step_actions in actions:
        env.step(step_actions)
        out.append(
            (
                env.observations.copy(),
                env.rewards.copy(),
                env.terminals.copy(),
                env.truncations.copy(),
                env.final_observations.copy(),
            )
        )
    return out


def assert_same_rollout(ours: list[tuple[np.ndarray, ...]], ref: list[tuple[np.ndarray, ...]]) -> None:
    np.testing.assert_array_equal(ours[0][0], ref[0][0])
    for t, ((obs, rew, term, trunc, final), (r_obs, r_rew, r_term, r_trunc, r_final)) in enumerate(
        zip(ours[1:], ref[1:], strict=True)
    ):
        np.testing.assert_array_equal(obs, r_obs, err_msg=f"observations at step {t}")
        np.testing.assert_array_equal(rew, r_rew.astype(np.float32), err_msg=f"rewards at step {t}")
        np.testing.assert_array_equal(term, r_term, err_msg=f"terminals at step {t}")
        np.testing.assert_array_equal(trunc, r_trunc, err_msg=f"truncations at step {t}")
        done = r_term | r_trunc
        np.testing.assert_array_equal(final[done], r_final[done], err_msg=f"final_observations at step {t}")


@pytest.mark.parametrize(("env_id", "max_episode_steps"), [("CartPole-v1", 20), ("Acrobot-v1", 12), ("Pendulum-v1", 7)])
def test_gymnasium_env_matches_gymnasium_across_autoreset_and_truncation(env_id: str, max_episode_steps: int) -> None:
    num_envs, steps = 3, 60
    env = GymnasiumEnv(env_id, num_envs=num_envs, max_episode_steps=max_episode_steps)
    space = env.single_action_space
    space.seed(1)
    actions = np.stack([np.stack([space.sample() for _ in range(num_envs)]) for _ in range(steps)])
    ours = thrust_rollout(env, 11, actions)
    ref = reference_rollout(env_id, num_envs, 11, actions, max_episode_steps=max_episode_steps)
    assert_same_rollout(ours, ref)
    assert env.observations.dtype == np.float32
    truncs = np.stack([r[3] for r in ref[1:]])
    assert truncs.any(), "the rollout must cross a truncation"
    if env_id == "CartPole-v1":
        terms = np.stack([r[2] for r in ref[1:]])
        assert terms.any(), "the CartPole rollout must cross a termination"
    env.close()


def test_gymnasium_env_writes_into_caller_buffers_in_place() -> None:
    probe = GymnasiumEnv("CartPole-v1")
    parent = allocate(probe.single_observation_space, probe.single_action_space, 4)
    probe.close()
    env = GymnasiumEnv("CartPole-v1", num_envs=2, buffers=parent.slice(1, 3))
    env.reset(0)
    env.step(np.array([1, 0]))
    assert np.shares_memory(env.observations, parent.observations)
    np.testing.assert_array_equal(parent.observations[1:3], env.observations)
    np.testing.assert_array_equal(parent.actions[1:3], [1, 0])
    assert parent.rewards[1:3].tolist() == [1.0, 1.0]
    assert not parent.observations[[0, 3]].any(), "agents outside the slice were written"
    with pytest.raises(ValueError, match="buffers hold 4 agents, the env has 2"):
        GymnasiumEnv("CartPole-v1", num_envs=2, buffers=parent)


def test_gymnasium_env_log_counts_finished_episodes_then_clears() -> None:
    env = GymnasiumEnv("CartPole-v1", num_envs=2, max_episode_steps=5)
    env.reset(0)
    assert env.log() == {}
    for t in range(12):  # alternating pushes keep the pole up: every episode is truncated at 5 steps
        env.step(np.full(2, t % 2))
    assert env.log() == {"episode_return": 5.0, "episode_length": 5.0, "n": 4}
    assert env.log() == {}
    env.step(np.zeros(2))
    env.step(np.ones(2))
    env.step(np.zeros(2))
    assert env.log() == {"episode_return": 5.0, "episode_length": 5.0, "n": 2}


def test_gymnasium_env_first_unseeded_reset_uses_constructor_seed() -> None:
    a, b = GymnasiumEnv("CartPole-v1", num_envs=2, seed=3), GymnasiumEnv("CartPole-v1", num_envs=2)
    a.reset()
    b.reset(3)
    np.testing.assert_array_equal(a.observations, b.observations)
    a.reset()  # later unseeded resets continue the RNG instead of replaying the seed
    assert not np.array_equal(a.observations, b.observations)


def test_gymnasium_env_close_is_idempotent() -> None:
    env = GymnasiumEnv("CartPole-v1", num_envs=2)
    env.close()
    env.close()


def test_unknown_env_id_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError, match="unknown Gymnasium env id 'NoSuchEnv-v0'") as info:
        GymnasiumEnv("NoSuchEnv-v0")
    assert "\n" not in str(info.value)


def test_non_box_observation_space_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"'Blackjack-v1' has observation space Tuple.*allowed: Box"):
        GymnasiumEnv("Blackjack-v1")


def test_num_envs_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        GymnasiumEnv("CartPole-v1", num_envs=0)


class _EchoEnv(gymnasium.Env[np.ndarray, Any]):
    """Float64 observations that echo the action received; the action space is a constructor argument."""

    def __init__(self, action_space: gymnasium.Space[Any]) -> None:
        self.observation_space = gymnasium.spaces.Box(-10.0, np.array([10.0, 0.1]), dtype=np.float64)
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.array([0.0, 0.1]), {}

    def step(self, action: Any) -> Any:
        assert self.action_space.contains(action), action
        return np.array([float(np.sum(action)), 0.1]), 1.0, False, False, {}


@pytest.fixture
def echo_env_id() -> Iterator[str]:
    env_id = "ThrustTest/Echo-v0"
    gymnasium.register(id=env_id, entry_point=lambda **kwargs: _EchoEnv(**kwargs))
    yield env_id
    del gymnasium.registry[env_id]


def test_discrete_start_is_offset_and_float64_observations_become_float32(echo_env_id: str) -> None:
    env = GymnasiumEnv(echo_env_id, num_envs=3, action_space=gymnasium.spaces.Discrete(3, start=-1))
    assert env.single_action_space == gymnasium.spaces.Discrete(3)
    obs_space = env.single_observation_space
    assert obs_space.dtype == np.float32 and env.observations.dtype == np.float32
    np.testing.assert_array_equal(obs_space.high, np.array([10.0, 0.1], dtype=np.float32))
    env.reset(0)
    env.step(np.array([0, 1, 2]))
    np.testing.assert_array_equal(env.observations[:, 0], [-1.0, 0.0, 1.0])
    assert all(obs_space.contains(o) for o in env.observations)


def test_float64_box_actions_reach_the_env_as_float32(echo_env_id: str) -> None:
    space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float64)
    env = GymnasiumEnv(echo_env_id, num_envs=2, action_space=space)
    assert env.single_action_space.dtype == np.float32 and env.actions.dtype == np.float32
    env.reset(0)
    env.step(np.array([[0.25, 0.5], [-1.0, 0.0]]))
    np.testing.assert_array_equal(env.observations[:, 0], [0.75, -1.0])


def test_unsupported_action_space_is_rejected(echo_env_id: str) -> None:
    with pytest.raises(ValueError, match=r"'ThrustTest/Echo-v0' has action space MultiDiscrete.*Discrete, Box"):
        GymnasiumEnv(echo_env_id, action_space=gymnasium.spaces.MultiDiscrete([2, 2]))


# ThrustVectorEnv


def check_vector_env(vec: ThrustVectorEnv, steps: int, seed: int = 0) -> int:
    """Gymnasium vector-env expectations for same-step autoreset; returns the number of finished episodes."""
    n = vec.num_envs
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, infos = vec.reset(seed=seed)
    again, _ = vec.reset(seed=seed)
    np.testing.assert_array_equal(obs, again, err_msg="reset with the same seed must be deterministic")
    assert obs.dtype == vec.observation_space.dtype and obs.shape == vec.observation_space.shape
    assert vec.observation_space.contains(obs) and infos == {}
    vec.action_space.seed(seed)
    returns, lengths, finished = np.zeros(n), np.zeros(n, dtype=int), 0
    for _ in range(steps):
        kept = obs
        obs, rewards, terms, truncs, infos = vec.step(vec.action_space.sample())
        assert vec.observation_space.contains(obs), "observations outside observation_space"
        assert not np.shares_memory(obs, kept), "step must return copies"
        assert rewards.shape == terms.shape == truncs.shape == (n,)
        assert terms.dtype == truncs.dtype == np.bool_
        returns += rewards
        lengths += 1
        dones = terms | truncs
        if not dones.any():
            assert infos == {}
            continue
        finished += int(dones.sum())
        np.testing.assert_array_equal(infos["_final_obs"], dones)
        np.testing.assert_array_equal(infos["_final_info"], dones)
        assert infos["final_obs"].dtype == object
        for i in range(n):
            if dones[i]:
                assert vec.single_observation_space.contains(infos["final_obs"][i])
            else:
                assert infos["final_obs"][i] is None
        if vec.episode_statistics:
            np.testing.assert_array_equal(infos["_episode"], dones)
            np.testing.assert_allclose(infos["episode"]["r"], np.where(dones, returns, 0.0), rtol=1e-6)
            np.testing.assert_array_equal(infos["episode"]["l"], np.where(dones, lengths, 0))
        returns[dones], lengths[dones] = 0.0, 0
    return finished


def test_thrust_vector_env_matches_sync_vector_env_same_step() -> None:
    n, steps, seed = 3, 50, 5
    vec = ThrustVectorEnv(GymnasiumEnv("CartPole-v1", num_envs=n, max_episode_steps=15))
    ref = RecordEpisodeStatistics(
        gymnasium.make_vec(
            "CartPole-v1",
            num_envs=n,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            max_episode_steps=15,
        )
    )
    assert vec.observation_space == ref.observation_space and vec.action_space == ref.action_space
    obs, _ = vec.reset(seed=seed)
    np.testing.assert_array_equal(obs, ref.reset(seed=seed)[0])
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(steps):
        actions = rng.integers(0, 2, size=n)
        ours, theirs = vec.step(actions), ref.step(actions)
        for name, a, b in zip(("obs", "rewards", "terms", "truncs"), ours[:4], theirs[:4], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} at step {t}")
        infos, ref_infos = ours[4], theirs[4]
        assert infos.keys() == ref_infos.keys(), f"info keys at step {t}"
        if infos:
            ended += 1
            np.testing.assert_array_equal(infos["_final_obs"], ref_infos["_final_obs"])
            for a, b in zip(infos["final_obs"], ref_infos["final_obs"], strict=True):
                np.testing.assert_array_equal(a, b)  # None == None where no episode ended
            np.testing.assert_array_equal(infos["episode"]["r"], ref_infos["episode"]["r"])
            np.testing.assert_array_equal(infos["episode"]["l"], ref_infos["episode"]["l"])
            np.testing.assert_array_equal(infos["_episode"], ref_infos["_episode"])
    assert ended > 0
    vec.close()
    ref.close()


def test_thrust_vector_env_passes_vector_env_checks_on_gymnasium_env() -> None:
    env = GymnasiumEnv("CartPole-v1", num_envs=4, max_episode_steps=25)
    vec = ThrustVectorEnv(env)
    assert check_vector_env(vec, steps=80) > 0
    vec.close()
    vec.close()
    assert vec.closed and env._closed


def test_thrust_vector_env_works_under_record_episode_statistics() -> None:
    vec = RecordEpisodeStatistics(
        ThrustVectorEnv(GymnasiumEnv("CartPole-v1", num_envs=2, max_episode_steps=4), episode_statistics=False)
    )
    vec.reset(seed=0)
    for t in range(8):
        infos = vec.step(np.full(2, t % 2))[4]
    np.testing.assert_array_equal(infos["episode"]["l"], [4, 4])
    assert vec.episode_count == 4


def test_thrust_vector_env_rejects_reset_options_and_out_of_range_actions() -> None:
    vec = ThrustVectorEnv(GymnasiumEnv("CartPole-v1", num_envs=2))
    with pytest.raises(ValueError, match="no reset options"):
        vec.reset(seed=0, options={"reset_mask": np.array([True, False])})
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 2\)"):
        vec.step(np.array([0, 2]))


class _DriftEnv(Env):
    """A NumPy Thrust env with Box actions: position += action; ends past |2| (terminal) or at 4 steps."""

    def __init__(self, num_envs: int, buffers: Buffers | None = None, seed: int = 0) -> None:
        self.single_observation_space = gymnasium.spaces.Box(-3.0, 3.0, shape=(1,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._init_buffers(num_envs, buffers)
        self._steps = np.zeros(num_envs, dtype=int)

    def reset(self, seed: int | None = None) -> None:
        self.observations[:] = 0.0
        self._steps[:] = 0

    def step(self, actions: np.ndarray | None = None) -> None:
        if actions is not None:
            self.actions[:] = actions
        self.observations += self.actions
        self._steps += 1
        self.rewards[:] = -np.abs(self.observations[:, 0])
        self.terminals[:] = np.abs(self.observations[:, 0]) > 2.0
        self.truncations[:] = ~self.terminals & (self._steps >= 4)
        dones = self.terminals | self.truncations
        self.final_observations[dones] = self.observations[dones]
        self.observations[dones] = 0.0
        self._steps[dones] = 0

    def log(self) -> dict[str, float]:
        return {}


def test_thrust_vector_env_with_box_actions_reports_the_last_observation_as_final_obs() -> None:
    vec = ThrustVectorEnv(_DriftEnv(num_envs=2))
    assert check_vector_env(vec, steps=40) > 0
    vec.reset(seed=0)
    actions = np.array([[0.625], [0.25]])  # agent 0 passes 2.0 at its 4th step, agent 1 is truncated there
    for _ in range(3):
        assert vec.step(actions)[4] == {}
    obs, rewards, terms, truncs, infos = vec.step(actions)
    assert terms.tolist() == [True, False] and truncs.tolist() == [False, True]
    np.testing.assert_array_equal(rewards, [-2.5, -1.0])
    np.testing.assert_array_equal(obs, [[0.0], [0.0]])
    np.testing.assert_array_equal(np.stack(infos["final_obs"]), [[2.5], [1.0]])
    np.testing.assert_array_equal(infos["episode"]["l"], [4, 4])
    np.testing.assert_array_equal(infos["episode"]["r"], [-6.25, -2.5])


def test_thrust_vector_env_passes_vector_env_checks_on_c_cartpole() -> None:
    # An unbuilt envs_cython/cartpole folder imports as an empty namespace package: skip on either.
    cartpole_module = pytest.importorskip("envs_cython.cartpole", reason="the C CartPole is not built")
    cartpole = getattr(cartpole_module, "CartPole", None)
    if cartpole is None:
        pytest.skip("the C CartPole is not built")
    vec = ThrustVectorEnv(cartpole(num_envs=8, buffers=None, seed=0))
    assert check_vector_env(vec, steps=300) > 0
    vec.close()
