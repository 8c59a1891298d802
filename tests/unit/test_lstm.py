"""LSTM PPO: the training replay reproduces the rollout exactly, episode ends inside segments included."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from envs_cython.memory import Memory
from thrust_cli.learn.collector import Collector
from thrust_cli.learn.policies import LSTMPolicy, evaluate_actions
from thrust_cli.learn.ppo import _to_segments
from thrust_cli.learn.rollout import EpisodeTracker
from thrust_cli.run.config import ConfigError, compose_config
from thrust_cli.vector.serial import Serial


def collect_one_rollout(T: int = 32, L: int = 8, N: int = 6) -> tuple[LSTMPolicy, object]:
    torch.manual_seed(0)
    vec = Serial(partial(Memory, k=2), num_envs=N, seed=0)  # episodes of 3 steps: they straddle segments
    policy = LSTMPolicy((3,), 2, hidden_size=16)
    with torch.no_grad():  # a trained-like head: the 0.01 init gain would hide state errors in near-uniform probs
        policy.actor_head.weight.mul_(300.0)
    collector = Collector(vec, policy, T, torch.device("cpu"), EpisodeTracker(N, 100), lambda _: False, L)
    vec.reset(seed=0)
    collector.collect()  # the first rollout starts from zero state; the second starts mid-episode
    buf = collector.collect()
    vec.close()
    return policy, buf


def replay_logprobs(policy: LSTMPolicy, buf, L: int, use_dones: bool = True, use_h0: bool = True) -> torch.Tensor:  # type: ignore[no-untyped-def]
    obs, actions, dones = _to_segments(buf.obs, L), _to_segments(buf.actions, L), _to_segments(buf.dones, L)
    resets = torch.cat([torch.zeros_like(dones[:, :1]), dones[:, :-1]], dim=1)
    if not use_dones:
        resets = torch.zeros_like(resets)
    h0 = buf.h0.reshape(1, -1, buf.h0.shape[-1])
    c0 = buf.c0.reshape(1, -1, buf.c0.shape[-1])
    if not use_h0:
        h0, c0 = torch.zeros_like(h0), torch.zeros_like(c0)
    with torch.no_grad():
        logits, _ = policy.forward_sequence(obs, (h0, c0), resets)
        logprobs, _ = evaluate_actions(logits.flatten(0, 1), actions.flatten())
    return logprobs.reshape(actions.shape)


def test_replayed_logprobs_equal_the_rollout_with_episode_ends_inside_segments() -> None:
    policy, buf = collect_one_rollout()
    assert buf.dones.any() and buf.h0.abs().sum() > 0  # episodes end inside segments; start states are non-zero
    rollout = _to_segments(buf.logprobs, 8)
    assert (replay_logprobs(policy, buf, 8) - rollout).abs().max().item() < 1e-5
    # the test can fail: ignoring the stored dones or the stored start state changes the log-probs
    assert (replay_logprobs(policy, buf, 8, use_dones=False) - rollout).abs().max().item() > 1e-3
    assert (replay_logprobs(policy, buf, 8, use_h0=False) - rollout).abs().max().item() > 1e-3


def test_num_steps_must_be_a_multiple_of_bptt_horizon() -> None:
    with pytest.raises(ConfigError, match=r"algo.num_steps=30 must be a multiple of algo.bptt_horizon=16"):
        compose_config(["policy=lstm", "algo.num_steps=30"])


def test_memory_env_rewards_the_remembered_cue() -> None:
    env = Memory(num_envs=2, k=2)
    env.reset(seed=1)
    cue = env.observations[:, 0].copy()
    env.step(np.zeros(2, dtype=np.int32))
    env.step(np.zeros(2, dtype=np.int32))
    assert (env.observations[:, 2] == 1).all()  # the query
    env.step((cue > 0).astype(np.int32))
    assert (env.rewards == 1).all() and env.terminals.all()
    assert env.log() == {"episode_return": 1.0, "n": 2.0}
