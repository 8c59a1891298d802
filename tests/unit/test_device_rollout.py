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
    synchronisation and two uploads (observations; rewards and flags as one block) per step, two more (the
    truncated agents' ids and final observations) in a step where some episode hit its time limit."""
    plain, expected = _collect(staged=False, recurrent=recurrent, max_steps=20)
    staged, got = _collect(staged=True, recurrent=recurrent, max_steps=20)
    assert expected["truncated"].any() and expected["terminals"].any()  # both kinds of episode end happened
    assert plain.transfer.syncs == 0 and plain.transfer.uploads == 0
    assert staged.transfer.syncs == 32  # T steps of one group: exactly one synchronisation each
    truncating_steps = int(expected["truncated"].any(dim=1).sum())
    # + the bootstrap observation after the last step
    assert staged.transfer.uploads == 2 * 32 + 1 + 2 * truncating_steps
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name


@pytest.mark.gpu
@pytest.mark.parametrize("recurrent", [False, True])
def test_cuda_step_loop_has_no_implicit_sync(recurrent: bool) -> None:
    """Under sync debug mode "error" any implicit synchronisation in the step loop raises: episodes end by
    termination and by truncation (whose final observations bootstrap), and the LSTM's state resets."""
    coll, out = _collect(staged=True, device="cuda", recurrent=recurrent, max_steps=20, forbid_sync=True)
    truncating_steps = int(out["truncated"].any(dim=1).sum())
    assert truncating_steps > 0 and out["terminals"].any()
    assert coll.transfer.pin and coll.transfer.syncs == 32
    assert coll.transfer.uploads == 2 * 32 + 1 + 2 * truncating_steps


def test_variable_length_uploads_share_one_staging_buffer_of_capacity_rows() -> None:
    """The truncated agents' rows change count every step: one buffer of ``capacity`` rows, a prefix copied."""
    import numpy as np

    transfer = Transfer(torch.device("cpu"), staged=True)
    for n in (3, 1, 5):
        rows = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
        assert torch.equal(transfer.to_device(rows, "cut-obs", capacity=8), torch.from_numpy(rows))
    assert len(transfer._buffers) == 1 and transfer.uploads == 3
    with pytest.raises(ValueError, match="9 rows exceed the staging capacity 8"):
        transfer.to_device(np.zeros((9, 4), dtype=np.float32), "cut-obs", capacity=8)
