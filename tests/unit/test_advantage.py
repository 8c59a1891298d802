"""GAE and V-trace: REFERENCE.md's vectors, slow per-element references on random data, hand-computed clipping,
TorchRL's functional estimators as an independent implementation, and the C kernel ≡ the torch path."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from thrust_cli.learn import advantage
from thrust_cli.learn.advantage import gae, gae_torch, vtrace, vtrace_torch

DATA = json.loads((Path(__file__).parents[1] / "data" / "gae_reference.json").read_text())
GAES = {"c_kernel": gae, "torch": gae_torch}
VTRACES = {"c_kernel": vtrace, "torch": vtrace_torch}
TOL = {torch.float64: 1e-6, torch.float32: 1e-5}
# [..., T] shapes: T = 1, a single trajectory, a batch, and two batch axes
SHAPES = [(1,), (40,), (5, 1), (7, 33), (2, 3, 17)]


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """The same values as a view of a [T, ...] buffer, like ``buf.rewards.T`` in training."""
    return x.movedim(-1, 0).contiguous().movedim(0, -1)


def _strided(x: torch.Tensor) -> torch.Tensor:
    """The same values with stride 2 along time (neither layout the kernel reads directly)."""
    big = x.new_zeros((*x.shape, 2))  # on x's device: .to() of a strided tensor would make it contiguous
    big[..., 0] = x
    return big[..., 0]


LAYOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "contiguous": lambda x: x,
    "time_major": _time_major,
    "strided": _strided,
}


def random_batch(shape: tuple[int, ...], dtype: torch.dtype, seed: int, consistent: bool = False) -> dict[str, Any]:
    """Random rollout data with terminations and truncations. With ``consistent``, ``next_values[t] =
    values[t+1]`` inside an episode (and V(final obs) at a truncation), as a real rollout has."""
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(shape, generator=gen, dtype=dtype)
    values = torch.randn(shape, generator=gen, dtype=dtype)
    next_values = torch.randn(shape, generator=gen, dtype=dtype)
    dones = torch.rand(shape, generator=gen) < 0.15
    terminals = dones & (torch.rand(shape, generator=gen) < 0.5)
    if consistent:
        inside = ~dones[..., :-1]
        next_values[..., :-1] = torch.where(inside, values[..., 1:], next_values[..., :-1])
    behavior = -torch.rand(shape, generator=gen, dtype=dtype) * 2
    target = behavior + torch.randn(shape, generator=gen, dtype=dtype) * 0.5  # ratios about e^±1
    return {
        "rewards": rewards,
        "values": values,
        "next_values": next_values,
        "terminals": terminals,
        "dones": dones,
        "behavior_logprob": behavior,
        "target_logprob": target,
    }


def _gae_args(b: dict[str, Any]) -> list[torch.Tensor]:
    return [b[k] for k in ("rewards", "values", "next_values", "terminals", "dones")]


def _vtrace_args(b: dict[str, Any]) -> list[torch.Tensor]:
    return [*_gae_args(b), b["behavior_logprob"], b["target_logprob"]]


def _rows(x: torch.Tensor) -> list[list[Any]]:
    return x.reshape(-1, x.shape[-1]).tolist()


# ---- slow references: one trajectory of Python floats, each element straight from its formula


def slow_gae(
    r: list[float], v: list[float], nv: list[float], term: list[bool], done: list[bool], gamma: float, lam: float
) -> list[float]:
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


def slow_vtrace(
    r: list[float],
    v: list[float],
    nv: list[float],
    term: list[bool],
    done: list[bool],
    mu: list[float],
    pi: list[float],
    gamma: float,
    lam: float,
    rho_bar: float,
    c_bar: float,
    rho_pg_bar: float,
) -> tuple[list[float], list[float]]:
    """IMPALA's sum form: v_t - V_t = sum_k (prod_{j=t}^{k-1} gamma*lam*c_j) rho_clip_k delta_k over the episode;
    pg_t = rho_pg_clip_t (r_t + gamma_t (lam v_{t+1} + (1-lam) V(s_{t+1})) - V_t), v_{t+1} = V(s_{t+1}) at its end.
    """
    T = len(r)
    rho = [math.exp(pi[t] - mu[t]) for t in range(T)]
    disc = [0.0 if term[t] else gamma for t in range(T)]
    delta = [min(rho_bar, rho[t]) * (r[t] + disc[t] * nv[t] - v[t]) for t in range(T)]
    corr: list[float] = []  # v_t - V(s_t)
    for t in range(T):
        total, weight = 0.0, 1.0
        for k in range(t, T):
            total += weight * delta[k]
            if done[k]:
                break
            weight *= gamma * lam * min(c_bar, rho[k])
        corr.append(total)
    vs = [v[t] + corr[t] for t in range(T)]
    pg = []
    for t in range(T):
        v_next = nv[t] + corr[t + 1] if t + 1 < T and not done[t] else nv[t]  # v_{t+1}, same episode
        q = lam * v_next + (1 - lam) * nv[t]
        pg.append(min(rho_pg_bar, rho[t]) * (r[t] + disc[t] * q - v[t]))
    return pg, vs


# ---- REFERENCE.md §3 vectors


@pytest.mark.parametrize("impl", sorted(GAES))
@pytest.mark.parametrize("case", sorted(DATA["cases"]))
def test_gae_matches_reference_vectors(case: str, impl: str) -> None:
    spec = DATA["cases"][case]
    values = torch.tensor(DATA["values"], dtype=torch.float64)
    next_values = torch.cat([values[1:], torch.tensor([DATA["last_value"]], dtype=torch.float64)])
    if "final_value_at_1" in spec:
        next_values[1] = spec["final_value_at_1"]
    args = (
        torch.tensor(DATA["rewards"], dtype=torch.float64),
        values,
        next_values,
        torch.tensor(spec["terminals"], dtype=torch.bool),
        torch.tensor(spec["dones"], dtype=torch.bool),
    )
    gamma, lam = spec.get("gamma", DATA["gamma"]), spec.get("gae_lambda", DATA["gae_lambda"])
    adv, ret = GAES[impl](*args, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), spec["advantages"], atol=1e-6)
    np.testing.assert_allclose(ret.numpy(), adv.numpy() + DATA["values"], atol=1e-12)
    # V-trace with all ratios 1 is GAE: same vectors
    zeros = torch.zeros(4, dtype=torch.float64)
    pg, vs = VTRACES[impl](*args, zeros, zeros, gamma, lam)
    np.testing.assert_allclose(pg.numpy(), spec["advantages"], atol=1e-6)
    np.testing.assert_allclose(vs.numpy(), ret.numpy(), atol=1e-12)


def test_truncation_bootstraps_instead_of_terminating() -> None:
    """A truncated step keeps gamma * V(final obs); treating it as terminal would drop it."""
    r, v, nv = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([10.0])
    truncated, _ = gae(r, v, nv, torch.tensor([False]), torch.tensor([True]), 0.9, 0.95)
    terminated, _ = gae(r, v, nv, torch.tensor([True]), torch.tensor([True]), 0.9, 0.95)
    assert truncated.item() == pytest.approx(1.0 + 0.9 * 10.0)
    assert terminated.item() == pytest.approx(1.0)


# ---- both paths against the slow references


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("impl", sorted(GAES))
def test_gae_equals_slow_reference_with_ends_and_truncations(
    impl: str, dtype: torch.dtype, shape: tuple[int, ...], layout: str
) -> None:
    b = random_batch(shape, dtype, seed=len(shape) * 100 + shape[-1])
    adv, ret = GAES[impl](*(LAYOUTS[layout](x) for x in _gae_args(b)), 0.97, 0.9)
    assert adv.shape == ret.shape == shape and adv.dtype == ret.dtype == dtype
    rows = [_rows(x) for x in _gae_args(b)]
    expected = [slow_gae(*row, 0.97, 0.9) for row in zip(*rows, strict=True)]
    np.testing.assert_allclose(_rows(adv), expected, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(_rows(ret), np.add(expected, _rows(b["values"])), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("impl", sorted(VTRACES))
def test_vtrace_equals_slow_reference_with_ends_truncations_and_clipping(
    impl: str, dtype: torch.dtype, shape: tuple[int, ...], layout: str
) -> None:
    b = random_batch(shape, dtype, seed=len(shape) * 100 + shape[-1] + 1)
    params = (0.97, 0.9, 1.2, 0.8, 1.5)  # gamma, lambda, rho_bar, c_bar, rho_pg_bar: all three clips bite
    pg, vs = VTRACES[impl](*(LAYOUTS[layout](x) for x in _vtrace_args(b)), *params)
    assert pg.shape == vs.shape == shape and pg.dtype == vs.dtype == dtype
    expected = [slow_vtrace(*row, *params) for row in zip(*(_rows(x) for x in _vtrace_args(b)), strict=True)]
    np.testing.assert_allclose(_rows(pg), [e[0] for e in expected], rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(_rows(vs), [e[1] for e in expected], rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_c_kernel_gives_the_torch_paths_numbers_bit_for_bit(layout: str, dtype: torch.dtype) -> None:
    """Same operations in the same order and precision; the exp of V-trace's ratios is torch's in both."""
    b = {k: LAYOUTS[layout](x) for k, x in random_batch((9, 50), dtype, seed=7).items()}
    for ours, ref in zip(gae(*_gae_args(b), 0.99, 0.95), gae_torch(*_gae_args(b), 0.99, 0.95), strict=True):
        assert torch.equal(ours, ref)
    params = (0.99, 0.95, 1.1, 0.9, 1.3)
    for ours, ref in zip(vtrace(*_vtrace_args(b), *params), vtrace_torch(*_vtrace_args(b), *params), strict=True):
        assert torch.equal(ours, ref)


# ---- properties of V-trace


@pytest.mark.parametrize("gae_lambda", [0.0, 0.95, 1.0])
@pytest.mark.parametrize("impl", sorted(VTRACES))
def test_vtrace_with_ratios_one_is_gae(impl: str, gae_lambda: float) -> None:
    b = random_batch((6, 30), torch.float64, seed=3)
    logp = b["behavior_logprob"]
    pg, vs = VTRACES[impl](*_gae_args(b), logp, logp, 0.98, gae_lambda, 2.0, 2.0, 2.0)  # clips above 1: no effect
    adv, ret = GAES[impl](*_gae_args(b), 0.98, gae_lambda)
    torch.testing.assert_close(pg, adv, rtol=0, atol=1e-12)
    torch.testing.assert_close(vs, ret, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", sorted(VTRACES))
def test_vtrace_lambda_one_ratios_one_is_the_bootstrapped_n_step_return(impl: str) -> None:
    """v_t = sum_{k>=t} gamma^(k-t) r_k + gamma^(T-t) V(s_T) on one episode that runs past the rollout."""
    gen = torch.Generator().manual_seed(5)
    T, gamma = 12, 0.9
    r, v = torch.randn(T, generator=gen, dtype=torch.float64), torch.randn(T + 1, generator=gen, dtype=torch.float64)
    no_end, logp = torch.zeros(T, dtype=torch.bool), torch.randn(T, generator=gen, dtype=torch.float64)
    pg, vs = VTRACES[impl](r, v[:-1], v[1:], no_end, no_end, logp, logp, gamma, 1.0)
    n_step = [
        sum(gamma ** (k - t) * r[k].item() for k in range(t, T)) + gamma ** (T - t) * v[T].item() for t in range(T)
    ]
    np.testing.assert_allclose(vs.numpy(), n_step, atol=1e-12)
    np.testing.assert_allclose(pg.numpy(), np.subtract(n_step, v[:-1].numpy()), atol=1e-12)


@pytest.mark.parametrize("impl", sorted(VTRACES))
def test_vtrace_clips_rho_c_and_rho_pg_separately(impl: str) -> None:
    """Two steps with ratios 2 and 3 and rho_bar 1.5, c_bar 0.5, rho_pg_bar 2.5, computed by hand:
    delta_1 = 1.5 * (2 + 0.9 * 1) = 4.35; delta_0 = 1.5 * 1 = 1.5; v_0 = 1.5 + 0.9 * min(0.5, 2) * 4.35;
    pg_0 = min(2.5, 2) * (1 + 0.9 * (V_1 + 4.35)), pg_1 = min(2.5, 3) * (2 + 0.9 * 1)."""
    f64 = {"dtype": torch.float64}
    r, v, nv = torch.tensor([1.0, 2.0], **f64), torch.zeros(2, **f64), torch.tensor([0.0, 1.0], **f64)
    no_end, mu = torch.zeros(2, dtype=torch.bool), torch.zeros(2, **f64)
    pi = torch.log(torch.tensor([2.0, 3.0], **f64))
    pg, vs = VTRACES[impl](r, v, nv, no_end, no_end, mu, pi, 0.9, 1.0, 1.5, 0.5, 2.5)
    np.testing.assert_allclose(vs.numpy(), [1.5 + 0.9 * 0.5 * 4.35, 4.35], atol=1e-12)
    np.testing.assert_allclose(pg.numpy(), [2.0 * (1 + 0.9 * 4.35), 2.5 * 2.9], atol=1e-12)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("impl", sorted(VTRACES))
def test_vtrace_without_a_pg_ratio_is_the_weighted_advantage_divided_by_the_ratio(impl: str, layout: str) -> None:
    """``rho_pg_bar=None`` leaves the policy-gradient advantage unweighted: times rho it is the advantage with an
    unclipped rho_pg (``rho_pg_bar`` = inf); the value targets do not change."""
    b = random_batch((5, 40), torch.float64, seed=11, consistent=True)
    args = [LAYOUTS[layout](x) for x in _vtrace_args(b)]
    rho = torch.exp(b["target_logprob"] - b["behavior_logprob"])
    pg_none, vs_none = VTRACES[impl](*args, 0.97, 0.9, 1.2, 0.8, None)
    pg_inf, vs_inf = VTRACES[impl](*args, 0.97, 0.9, 1.2, 0.8, math.inf)
    torch.testing.assert_close(pg_none * rho, pg_inf, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(vs_none, vs_inf, rtol=0, atol=0)
    assert not torch.allclose(pg_none, pg_inf)


# ---- TorchRL's functional estimators: an independent implementation ([..., T, 1], time_dim -2). It multiplies
# gamma, lambda and the clips by int/float32 tensors, i.e. rounds them to float32: the constants below are exact
# in float32 so float64 results can agree to 1e-10.


@pytest.fixture(scope="module")
def torchrl_functional() -> Any:
    return pytest.importorskip("torchrl.objectives.value.functional")


@pytest.mark.parametrize("impl", sorted(GAES))
def test_gae_equals_torchrl_generalized_advantage_estimate(impl: str, torchrl_functional: Any) -> None:
    b = random_batch((8, 41), torch.float64, seed=11)
    adv, ret = GAES[impl](*_gae_args(b), 0.96875, 0.9375)
    col = {k: x.unsqueeze(-1) for k, x in b.items()}
    ref_adv, ref_ret = torchrl_functional.generalized_advantage_estimate(
        0.96875, 0.9375, col["values"], col["next_values"], col["rewards"], col["dones"], col["terminals"]
    )
    torch.testing.assert_close(adv, ref_adv.squeeze(-1), rtol=0, atol=1e-10)
    torch.testing.assert_close(ret, ref_ret.squeeze(-1), rtol=0, atol=1e-10)


@pytest.mark.parametrize("impl", sorted(VTRACES))
def test_vtrace_lambda_one_equals_torchrl_vtrace_advantage_estimate(impl: str, torchrl_functional: Any) -> None:
    """TorchRL has no lambda and one clip for TD errors and the pg advantage; it bootstraps the pg term from
    vs[t+1], so the data must be consistent (next_values[t] = values[t+1] inside an episode). Its docstring
    calls log_pi the collecting policy, but its VTrace module passes the current policy's log-prob as log_pi
    (rho = exp(log_pi - log_mu)): log_pi = target, log_mu = behavior."""
    b = random_batch((8, 41), torch.float64, seed=13, consistent=True)
    pg, vs = VTRACES[impl](*_vtrace_args(b), 0.96875, 1.0, 1.25, 0.75, 1.25)
    col = {k: x.unsqueeze(-1) for k, x in b.items()}
    ref_pg, ref_vs = torchrl_functional.vtrace_advantage_estimate(
        0.96875,
        col["target_logprob"],
        col["behavior_logprob"],
        col["values"],
        col["next_values"],
        col["rewards"],
        col["dones"],
        col["terminals"],
        rho_thresh=1.25,
        c_thresh=0.75,
    )
    torch.testing.assert_close(vs, ref_vs.squeeze(-1), rtol=0, atol=1e-10)
    torch.testing.assert_close(pg, ref_pg.squeeze(-1), rtol=0, atol=1e-10)


# ---- dispatch and input handling


def test_cpu_float_tensors_run_the_c_kernel_and_others_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(name: str) -> Callable[..., None]:
        kernel = getattr(advantage, name)

        def counted(*args: Any) -> None:
            calls.append(name)
            kernel(*args)

        return counted

    for name in ("_gae_kernel", "_vtrace_kernel"):
        monkeypatch.setattr(advantage, name, spy(name))
    b = random_batch((4, 10), torch.float32, seed=1)
    gae(*_gae_args(b), 0.99, 0.95)
    vtrace(*_vtrace_args(b), 0.99)
    assert calls == ["_gae_kernel", "_vtrace_kernel"]
    # half precision and tensors that need gradients go to torch (which keeps the graph)
    gae(*(x.half() if x.is_floating_point() else x for x in _gae_args(b)), 0.99, 0.95)
    values = b["values"].clone().requires_grad_()
    adv, _ = gae(b["rewards"], values, b["next_values"], b["terminals"], b["dones"], 0.99, 0.95)
    pg, _ = vtrace(*_vtrace_args({**b, "values": values}), 0.99)
    assert calls == ["_gae_kernel", "_vtrace_kernel"]
    assert adv.grad_fn is not None and pg.grad_fn is not None


def test_flags_may_be_bool_uint8_or_float_and_outputs_take_the_values_dtype() -> None:
    b = random_batch((5, 20), torch.float32, seed=2)
    expected = gae(*_gae_args(b), 0.99, 0.95)
    for flag_dtype in (torch.uint8, torch.float32, torch.float64):
        flags = [b["terminals"].to(flag_dtype), b["dones"].to(flag_dtype)]
        rewards, next_values = b["rewards"].double(), b["next_values"].double()  # cast to float32 like values
        adv, ret = gae(rewards, b["values"], next_values, *flags, 0.99, 0.95)
        assert adv.dtype == ret.dtype == torch.float32
        torch.testing.assert_close(adv, expected[0], rtol=0, atol=0)
        pg, vs = vtrace(rewards, b["values"], next_values, *flags, b["behavior_logprob"], b["target_logprob"], 0.99)
        assert pg.dtype == vs.dtype == torch.float32


def test_mismatched_shapes_are_rejected_before_the_kernel_runs() -> None:
    b = random_batch((4, 10), torch.float32, seed=1)
    with pytest.raises(ValueError, match="one shape"):
        gae(b["rewards"][:, :9], *_gae_args(b)[1:], 0.99, 0.95)
    with pytest.raises(ValueError, match="one shape"):
        vtrace(*_vtrace_args(b)[:-1], b["target_logprob"][:3], 0.99)
    out = np.empty((4, 9), dtype=np.float32)
    arrays = [x.numpy() for x in (b["rewards"], b["values"], b["next_values"])]
    flags = [x.view(torch.uint8).numpy() for x in (b["terminals"], b["dones"])]
    with pytest.raises(ValueError, match="shape of values"):
        advantage._gae_kernel(*arrays, *flags, 0.99, 0.95, out, out)


@pytest.mark.gpu
def test_cuda_tensors_stay_on_the_gpu_and_match_the_c_kernel() -> None:
    b = random_batch((64, 33), torch.float32, seed=4)
    cuda = {k: x.cuda() for k, x in b.items()}
    for ours, ref in zip(gae(*_gae_args(cuda), 0.99, 0.95), gae(*_gae_args(b), 0.99, 0.95), strict=True):
        assert ours.is_cuda
        torch.testing.assert_close(ours.cpu(), ref, rtol=1e-5, atol=1e-5)
    params = (0.99, 0.95, 1.1, 0.9, 1.3)
    for ours, ref in zip(vtrace(*_vtrace_args(cuda), *params), vtrace(*_vtrace_args(b), *params), strict=True):
        assert ours.is_cuda
        torch.testing.assert_close(ours.cpu(), ref, rtol=1e-5, atol=1e-5)
