"""The collector under an async vectorizer whose workers run at very different speeds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from envs_cython.cartpole import CartPole
from thrust_cli.learn.collector import Collector
from thrust_cli.learn.policies import MLPPolicy
from thrust_cli.learn.rollout import EpisodeTracker


class SkewedAsync:
    """Two groups of CartPoles behind the async ``recv/send`` API; ``recv`` hands out group 1 only every
    ``ratio``-th call (a starved worker), and records every observation each agent was given."""

    def __init__(self, per_group: int = 4, ratio: int = 7) -> None:
        self.envs = [CartPole(per_group, seed=100 * g) for g in range(2)]
        self.per_group, self.ratio = per_group, ratio
        self.num_agents = 2 * per_group
        self.single_observation_space = self.envs[0].single_observation_space
        self.single_action_space = self.envs[0].single_action_space
        self.final_observations = np.zeros((self.num_agents, 4), dtype=np.float32)
        self.history: list[list[np.ndarray]] = [[] for _ in range(self.num_agents)]
        self.calls = 0

    def reset(self, seed: int | None = None) -> None:
        for g, env in enumerate(self.envs):
            env.reset(None if seed is None else seed + g)
        self.ready, self.current, self.cached = [0, 1], None, None

    def recv(self) -> Any:
        if self.cached is not None:  # no send since the last recv: the same batch again
            return self.cached
        self.calls += 1
        g = 1 if (self.calls % self.ratio == 0 and 1 in self.ready) or self.ready == [1] else 0
        self.ready.remove(g)
        env, ids = self.envs[g], np.arange(g * self.per_group, (g + 1) * self.per_group)
        self.final_observations[ids] = env.final_observations
        for i, agent in enumerate(ids):
            self.history[agent].append(env.observations[i].copy())
        self.current = g
        self.cached = (env.observations, env.rewards, env.terminals, env.truncations, [], ids)
        return self.cached

    def send(self, actions: np.ndarray) -> None:
        assert self.current is not None
        self.envs[self.current].step(actions.astype(np.int32))
        self.ready.append(self.current)
        self.current, self.cached = None, None


def _is_contiguous_run(rows: np.ndarray, history: list[np.ndarray]) -> bool:
    seen = np.stack(history)
    starts = range(len(seen) - len(rows) + 1)
    return any(np.array_equal(seen[start : start + len(rows)], rows) for start in starts)


@pytest.mark.timeout(60)
def test_a_starved_worker_never_stalls_the_collector_and_rollouts_stay_contiguous() -> None:
    torch.manual_seed(0)
    vec = SkewedAsync()
    policy = MLPPolicy(4, 2, hidden_size=8)
    T = 16
    collector = Collector(vec, policy, T, torch.device("cpu"), EpisodeTracker(vec.num_agents, 10), lambda _: False)
    vec.reset(seed=0)
    for _ in range(6):
        buf = collector.collect()
        assert buf is not None
        for agent in range(vec.num_agents):
            assert _is_contiguous_run(buf.obs[:, agent].numpy(), vec.history[agent]), agent
    # the fast group really ran ahead (it stepped far more often than the starved one)
    assert len(vec.history[0]) > 3 * len(vec.history[vec.per_group])
