"""GAE against REFERENCE.md's vectors and against a slow, independent formulation on random data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thrust_cli.advantage import gae

DATA = json.loads((Path(__file__).parents[1] / "data" / "gae_reference.json").read_text())


@pytest.mark.parametrize("case", sorted(DATA["cases"]))
def test_gae_matches_reference_vectors(case: str) -> None:
    spec = DATA["cases"][case]
    values = torch.tensor(DATA["values"], dtype=torch.float64)
    next_values = torch.cat([values[1:], torch.tensor([DATA["last_value"]], dtype=torch.float64)])
    if "final_value_at_1" in spec:
        next_values[1] = spec["final_value_at_1"]
    adv, ret = gae(
        torch.tensor(DATA["rewards"], dtype=torch.float64),
        values,
        next_values,
        torch.tensor(spec["terminals"], dtype=torch.bool),
        torch.tensor(spec["dones"], dtype=torch.bool),
        spec.get("gamma", DATA["gamma"]),
        spec.get("gae_lambda", DATA["gae_lambda"]),
    )
    np.testing.assert_allclose(adv.numpy(), spec["advantages"], atol=1e-6)
    np.testing.assert_allclose(ret.numpy(), adv.numpy() + DATA["values"], atol=1e-12)


def slow_gae(r, v, nv, term, done, gamma, lam):  # type: ignore[no-untyped-def]
    """A_t = sum_l (gamma*lam)^l delta_{t+l}, summed explicitly until the episode's end (no recursion)."""
    T = len(r)
    delta = [r[t] + gamma * (0.0 if term[t] else nv[t]) - v[t] for t in range(T)]
    adv = []
    for t in range(T):
        total, weight = 0.0, 1.0
        for k in range(t, T):
            total += weight * delta[k]
            if done[k]:
                break
            weight *= gamma * lam
        adv.append(total)
    return adv


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_gae_equals_slow_reference_on_random_batches_with_episode_ends(dtype: torch.dtype, tol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    N, T = 7, 33
    rewards = torch.randn(N, T, generator=gen, dtype=dtype)
    values = torch.randn(N, T, generator=gen, dtype=dtype)
    next_values = torch.randn(N, T, generator=gen, dtype=dtype)
    dones = torch.rand(N, T, generator=gen) < 0.15
    terminals = dones & (torch.rand(N, T, generator=gen) < 0.6)
    adv, _ = gae(rewards, values, next_values, terminals, dones, 0.97, 0.9)
    for i in range(N):
        expected = slow_gae(
            rewards[i].tolist(),
            values[i].tolist(),
            next_values[i].tolist(),
            terminals[i].tolist(),
            dones[i].tolist(),
            0.97,
            0.9,
        )
        np.testing.assert_allclose(adv[i].numpy(), expected, rtol=tol, atol=tol)


def test_truncation_bootstraps_instead_of_terminating() -> None:
    """A truncated step keeps gamma * V(final obs); treating it as terminal would drop it."""
    r, v, nv = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([10.0])
    truncated, _ = gae(r, v, nv, torch.tensor([False]), torch.tensor([True]), 0.9, 0.95)
    terminated, _ = gae(r, v, nv, torch.tensor([True]), torch.tensor([True]), 0.9, 0.95)
    assert truncated.item() == pytest.approx(1.0 + 0.9 * 10.0)
    assert terminated.item() == pytest.approx(1.0)
