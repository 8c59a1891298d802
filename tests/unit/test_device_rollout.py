"""The staged (CUDA-style) transfer path of the collector: same rollout as the plain path, one sync per step."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from envs_cython.cartpole import CartPole
from thrust_cli.learn.collector import Collector, Transfer
from thrust_cli.learn.policies import LSTMPolicy, MLPPolicy
from thrust_cli.learn.rollout import EpisodeTracker
from thrust_cli.vector.serial import Serial

FIELDS = ("obs", "actions", "logprobs", "values", "rewards", "terminals", "dones", "truncated", "final_values")


def _collect(
    staged: bool, device: str = "cpu", recurrent: bool = False, max_steps: int = 500, forbid_sync: bool = False
) -> tuple[Collector, dict[str, torch.Tensor]]:
    """One rollout of T=32 steps of 8 CartPoles; ``max_steps`` small makes truncations (final-value bootstraps).

    ``forbid_sync``: :meth:`Collector.collect` alone runs under CUDA's sync debug mode "error" (the setup's
    ``policy.to(device)`` and the results' ``.cpu()`` are blocking copies by design)."""
    torch.manual_seed(0)
    vec = Serial(partial(CartPole, max_steps=max_steps), num_envs=8, seed=0)
    dev = torch.device(device)
    policy: torch.nn.Module = LSTMPolicy((4,), 2, hidden_size=16) if recurrent else MLPPolicy(4, 2, hidden_size=16)
    policy = policy.to(dev)
    coll = Collector(vec, policy, 32, dev, EpisodeTracker(8, 10), lambda _: False, transfer=Transfer(dev, staged))
    vec.reset(seed=0)
    if forbid_sync:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        buf = coll.collect()
    finally:
        if forbid_sync:
            torch.cuda.set_sync_debug_mode("default")
        vec.close()
    assert buf is not None
    out = {name: getattr(buf, name).cpu().clone() for name in FIELDS}
    if recurrent:
        assert buf.h0 is not None and buf.c0 is not None and coll.state is not None
        out |= {"h0": buf.h0.cpu().clone(), "c0": buf.c0.cpu().clone(), "h": coll.state[0].cpu().clone()}
    return coll, out


@pytest.mark.parametrize("recurrent", [False, True])
def test_staged_transfer_gives_the_same_rollout_with_one_sync_per_step(recurrent: bool) -> None:
    """Same rollout bit for bit (episode ends, truncations and the LSTM's state resets included) with one
    synchronisation and two uploads (observations; rewards and flags as one block) per step."""
    plain, expected = _collect(staged=False, recurrent=recurrent, max_steps=20)
    staged, got = _collect(staged=True, recurrent=recurrent, max_steps=20)
    assert expected["truncated"].any() and expected["terminals"].any()  # both kinds of episode end happened
    assert plain.transfer.syncs == 0 and plain.transfer.uploads == 0
    assert staged.transfer.syncs == 32  # T steps of one group: exactly one synchronisation each
    assert staged.transfer.uploads == 2 * 32 + 1  # + the bootstrap observation after the last step
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name


@pytest.mark.gpu
@pytest.mark.parametrize("recurrent", [False, True])
def test_cuda_step_loop_has_no_implicit_sync(recurrent: bool) -> None:
    """Under sync debug mode "error" any implicit synchronisation in the step loop raises (episodes end by
    termination here; a truncation's final-observation copy is the one plain copy, once per time limit)."""
    coll, _ = _collect(staged=True, device="cuda", recurrent=recurrent, forbid_sync=True)
    assert coll.transfer.pin and coll.transfer.syncs == 32 and coll.transfer.uploads == 2 * 32 + 1
