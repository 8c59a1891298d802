"""The staged (CUDA-style) transfer path of the collector: same rollout as the plain path, one sync per step."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from envs_cython.cartpole import CartPole
from thrust_cli.learn.collector import Collector, Transfer
from thrust_cli.learn.policies import MLPPolicy
from thrust_cli.learn.rollout import EpisodeTracker
from thrust_cli.vector.serial import Serial


def _collect(staged: bool, device: str = "cpu") -> tuple[Collector, list[torch.Tensor]]:
    torch.manual_seed(0)
    vec = Serial(partial(CartPole), num_envs=8, seed=0)
    dev = torch.device(device)
    policy = MLPPolicy(4, 2, hidden_size=16).to(dev)
    coll = Collector(vec, policy, 16, dev, EpisodeTracker(8, 10), lambda _: False, transfer=Transfer(dev, staged))
    vec.reset(seed=0)
    buf = coll.collect()
    vec.close()
    assert buf is not None
    return coll, [buf.obs.cpu().clone(), buf.actions.cpu().clone(), buf.rewards.cpu().clone()]


def test_staged_transfer_gives_the_same_rollout_with_one_sync_per_step() -> None:
    plain, expected = _collect(staged=False)
    staged, got = _collect(staged=True)
    assert plain.transfer.syncs == 0
    assert staged.transfer.syncs == 16  # T steps of one group: exactly one synchronisation each
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)


@pytest.mark.gpu
def test_cuda_step_loop_has_no_implicit_sync() -> None:
    """Under sync debug mode "error" any implicit synchronisation in the step loop raises."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        coll, _ = _collect(staged=True, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert coll.transfer.pin and coll.transfer.syncs == 16
