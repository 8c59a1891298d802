"""The rollout's index convention at the env boundary: truncations bootstrap from the final observation."""

from __future__ import annotations

import numpy as np
import torch

from thrust_cli.learn.rollout import EpisodeTracker, Rollout


def test_next_values_shift_by_one_and_use_final_values_at_truncations() -> None:
    buf = Rollout.allocate(3, 2, (4,), torch.float32, torch.device("cpu"))
    buf.values.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    buf.truncated[1, 0] = True
    buf.final_values[1, 0] = 9.0
    buf.last_values.copy_(torch.tensor([7.0, 8.0]))
    nv = buf.next_values()
    # row t holds V(s_{t+1}); at the truncation the final observation's value, never the reset one (5.0)
    assert nv.tolist() == [[3.0, 4.0], [9.0, 6.0], [7.0, 8.0]]


def test_episode_tracker_matches_a_per_agent_count() -> None:
    rng = np.random.default_rng(0)
    tracker = EpisodeTracker(num_agents=5, window=1000)
    running = np.zeros(5)
    expected: list[float] = []
    for _ in range(300):
        rewards = rng.normal(size=5).astype(np.float32)
        dones = rng.random(5) < 0.1
        running += rewards
        for i in np.flatnonzero(dones):
            expected.append(running[i])
            running[i] = 0.0
        tracker.step(rewards, dones)
    # the tracker appends episodes in agent order within a step, as the loop above does
    np.testing.assert_allclose(list(tracker.recent_returns), expected, rtol=1e-5)
    assert tracker.episodes == len(expected)
    assert np.isclose(tracker.mean_return(10), np.mean(expected[-10:]))
    assert tracker.mean_return(len(expected) + 1) is None
