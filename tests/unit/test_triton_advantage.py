"""The fused Triton GAE / V-trace kernels equal the C kernel and the torch loop, and gae()/vtrace() pick them on CUDA.

Without a GPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``, CPU tensors through NumPy). The
interpreter is chosen when triton is first imported, so it cannot be switched on inside a pytest process that
may already hold (or later need) the compiling triton: :func:`test_triton_kernels_pass_under_the_interpreter`
runs this file's ``interpret`` tests in a child pytest with the variable set, where they are not skipped. The
``gpu`` tests check the compiled kernels on CUDA in the ordinary process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_advantage import DATA, LAYOUTS, _gae_args, _vtrace_args, random_batch
from triton_compat import HAS_TRITON, OLD_INTERPRETER

from thrust_cli.learn import advantage
from thrust_cli.learn.advantage import gae, gae_torch, gae_triton, vtrace, vtrace_torch, vtrace_triton

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
interpret = pytest.mark.skipif(
    not INTERPRETED, reason="runs in the TRITON_INTERPRET=1 child of test_triton_kernels_pass_under_the_interpreter"
)
TOL = {"rtol": 1e-5, "atol": 1e-5}
# [..., T]: T = 1, one trajectory, rows fewer than, not a multiple of, and many times a block, two batch axes
SHAPES = [(1,), (40,), (5, 1), (70, 9), (33, 20), (2, 3, 17)]
VTRACE_PARAMS = {  # gamma, lambda, rho_bar, c_bar, rho_pg_bar
    "clips_bite": (0.97, 0.9, 1.2, 0.8, 1.5),
    "no_pg_ratio": (0.97, 0.9, 1.2, 0.8, None),
    "impala_unclipped": (0.99, 1.0, math.inf, 1.0, math.inf),
}


def _batch(shape: tuple[int, ...], layout: str, seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    return {k: LAYOUTS[layout](x.to(device)) for k, x in random_batch(shape, torch.float32, seed).items()}


def _cpu(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: x.cpu() for k, x in b.items()}


def _assert_gae_matches(b: dict[str, torch.Tensor], block_size: int | None, gamma: float, lam: float) -> None:
    """Triton on ``b``'s device equals the C kernel and the torch loop on the CPU; outputs keep the C path's layout."""
    ours = gae_triton(*_gae_args(b), gamma, lam, block_size=block_size)
    c_kernel = gae(*_gae_args(_cpu(b)), gamma, lam)
    loop = gae_torch(*_gae_args(_cpu(b)), gamma, lam)
    for x, c, t in zip(ours, c_kernel, loop, strict=True):
        assert x.device == b["values"].device and x.dtype == torch.float32 and x.stride() == c.stride()
        torch.testing.assert_close(x.cpu(), c, **TOL)
        torch.testing.assert_close(x.cpu(), t, **TOL)


def _assert_vtrace_matches(b: dict[str, torch.Tensor], block_size: int | None, params: tuple[Any, ...]) -> None:
    ours = vtrace_triton(*_vtrace_args(b), *params, block_size=block_size)
    c_kernel = vtrace(*_vtrace_args(_cpu(b)), *params)
    loop = vtrace_torch(*_vtrace_args(_cpu(b)), *params)
    for x, c, t in zip(ours, c_kernel, loop, strict=True):
        assert x.device == b["values"].device and x.dtype == torch.float32 and x.stride() == c.stride()
        torch.testing.assert_close(x.cpu(), c, **TOL)
        torch.testing.assert_close(x.cpu(), t, **TOL)


# ---- the interpreter run (CPU tensors)


@pytest.mark.skipif(INTERPRETED, reason="this process is the interpreter run")
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'triton>=3.7'; CUDA torch has it)")
@pytest.mark.skipif(OLD_INTERPRETER, reason="triton < 3.7 cannot interpret on numpy >= 2.4 (pip install 'triton>=3.7')")
def test_triton_kernels_pass_under_the_interpreter() -> None:
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "pytest", str(Path(__file__).relative_to(root)), "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([*cmd, "-m", "not gpu"], cwd=root, env=env, capture_output=True, text=True, timeout=240)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    passed = int(summary.split(" passed")[0].split()[-1]) if " passed" in summary else 0
    assert passed >= 40, f"the interpreter run ran too few tests: {summary}"


@interpret
@pytest.mark.parametrize("block_size", [None, 16])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_triton_gae_equals_c_kernel_and_torch_loop(shape: tuple[int, ...], layout: str, block_size: int | None) -> None:
    _assert_gae_matches(_batch(shape, layout, seed=shape[-1] * 7 + len(shape)), block_size, 0.97, 0.9)


@interpret
@pytest.mark.parametrize("params", sorted(VTRACE_PARAMS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_triton_vtrace_equals_c_kernel_and_torch_loop(shape: tuple[int, ...], layout: str, params: str) -> None:
    b = _batch(shape, layout, seed=shape[-1] * 7 + len(shape) + 1)
    _assert_vtrace_matches(b, 16, VTRACE_PARAMS[params])


@interpret
@pytest.mark.parametrize("case", sorted(DATA["cases"]))
def test_triton_gae_matches_reference_vectors(case: str) -> None:
    """REFERENCE.md §3, ends and a truncation with V(final obs) included; V-trace with ratios 1 gives the same."""
    spec = DATA["cases"][case]
    values = torch.tensor(DATA["values"])
    next_values = torch.cat([values[1:], torch.tensor([DATA["last_value"]])])
    if "final_value_at_1" in spec:
        next_values[1] = spec["final_value_at_1"]
    flags = (torch.tensor(spec["terminals"], dtype=torch.bool), torch.tensor(spec["dones"], dtype=torch.bool))
    args = (torch.tensor(DATA["rewards"], dtype=torch.float32), values, next_values, *flags)
    gamma, lam = spec.get("gamma", DATA["gamma"]), spec.get("gae_lambda", DATA["gae_lambda"])
    adv, ret = gae_triton(*args, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), spec["advantages"], atol=1e-5)
    np.testing.assert_allclose(ret.numpy(), np.add(spec["advantages"], DATA["values"]), atol=1e-5)
    zeros = torch.zeros(4)
    pg, vs = vtrace_triton(*args, zeros, zeros, gamma, lam)
    torch.testing.assert_close(pg, adv, rtol=0, atol=1e-6)
    torch.testing.assert_close(vs, ret, rtol=0, atol=1e-6)


@interpret
def test_triton_truncation_bootstraps_and_termination_does_not() -> None:
    r, v, nv = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([10.0])
    truncated, _ = gae_triton(r, v, nv, torch.tensor([False]), torch.tensor([True]), 0.9, 0.95)
    terminated, _ = gae_triton(r, v, nv, torch.tensor([True]), torch.tensor([True]), 0.9, 0.95)
    assert truncated.item() == pytest.approx(1.0 + 0.9 * 10.0)
    assert terminated.item() == pytest.approx(1.0)


@interpret
def test_triton_reads_uint8_and_float_flags_and_float64_inputs_like_bool_float32() -> None:
    b = _batch((6, 11), "time_major", seed=3)
    expected_gae = gae_triton(*_gae_args(b), 0.99, 0.95)
    expected_vtrace = vtrace_triton(*_vtrace_args(b), 0.99, 0.95, 1.1, 0.9, 1.3)
    for flag_dtype in (torch.uint8, torch.float32, torch.float64):
        c = {**b, "terminals": b["terminals"].to(flag_dtype), "dones": b["dones"].to(flag_dtype)}
        c |= {k: c[k].double() for k in ("rewards", "next_values", "behavior_logprob", "target_logprob")}
        for ours, ref in zip(gae_triton(*_gae_args(c), 0.99, 0.95), expected_gae, strict=True):
            torch.testing.assert_close(ours, ref, rtol=0, atol=0)
        for ours, ref in zip(vtrace_triton(*_vtrace_args(c), 0.99, 0.95, 1.1, 0.9, 1.3), expected_vtrace, strict=True):
            torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)  # float64 log-probs: exp of a rounder diff


@interpret
def test_triton_rejects_float64_values_mismatched_shapes_and_odd_blocks() -> None:
    b = _batch((4, 10), "contiguous", seed=1)
    with pytest.raises(ValueError, match="float32"):
        gae_triton(*(x.double() if x.is_floating_point() else x for x in _gae_args(b)), 0.99, 0.95)
    with pytest.raises(ValueError, match="one shape"):
        vtrace_triton(*_vtrace_args(b)[:-1], b["target_logprob"][:3], 0.99)
    with pytest.raises(ValueError, match="power of two"):
        gae_triton(*_gae_args(b), 0.99, 0.95, block_size=24)


@interpret
def test_bench_times_the_fused_kernels_against_the_torch_loop() -> None:
    """`thrust bench device=cuda` prints these (here the same code on CPU tensors, interpreted)."""
    from thrust_cli.commands.bench import bench_device_advantage

    ms = bench_device_advantage(rows=16, horizon=8, repeats=2, device="cpu")
    assert ms is not None and set(ms) == {"gae_triton", "gae_torch_loop", "vtrace_triton", "vtrace_torch_loop"}
    assert all(v > 0 for v in ms.values())


# ---- dispatch, in this process (no triton needed)


def test_cpu_tensors_never_reach_triton_and_missing_triton_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU path is what it was: gae()/vtrace() do not even look for triton; gae_triton says what is missing."""

    def no_lookup() -> None:
        raise AssertionError("the CPU path looked for triton")

    monkeypatch.setattr(advantage, "_triton_kernels", no_lookup)
    b = _batch((4, 10), "time_major", seed=1)
    gae(*_gae_args(b), 0.99, 0.95)
    vtrace(*_vtrace_args(b), 0.99)
    monkeypatch.setattr(advantage, "_triton_kernels", lambda: None)
    with pytest.raises(ImportError, match="needs triton"):
        gae_triton(*_gae_args(b), 0.99, 0.95)
    with pytest.raises(ImportError, match="needs triton"):
        vtrace_triton(*_vtrace_args(b), 0.99)


# ---- the compiled kernels on CUDA


@pytest.mark.gpu
@pytest.mark.parametrize("block_size", [None, 32, 128])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("shape", [*SHAPES, (1000, 33), (4096, 128)], ids=str)
def test_cuda_triton_kernels_equal_c_kernel_and_torch_loop(
    shape: tuple[int, ...], layout: str, block_size: int | None
) -> None:
    b = _batch(shape, layout, seed=shape[-1] + len(shape), device="cuda")
    _assert_gae_matches(b, block_size, 0.97, 0.9)
    for params in VTRACE_PARAMS.values():
        _assert_vtrace_matches(b, block_size, params)


@pytest.mark.gpu
def test_cuda_float32_goes_to_triton_and_float64_or_grad_to_the_torch_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    kernels = advantage._triton_kernels()
    assert kernels is not None, "CUDA torch ships triton: it must import"
    calls: list[str] = []

    def spy(name: str) -> Callable[..., None]:
        kernel = getattr(kernels, name)

        def counted(*args: Any) -> None:
            calls.append(name)
            kernel(*args)

        return counted

    monkeypatch.setattr(kernels, "gae", spy("gae"))
    monkeypatch.setattr(kernels, "vtrace", spy("vtrace"))
    b = _batch((64, 33), "time_major", seed=4, device="cuda")
    adv, ret = gae(*_gae_args(b), 0.99, 0.95)
    pg, vs = vtrace(*_vtrace_args(b), 0.99, 0.95, 1.1, 0.9, 1.3)
    assert calls == ["gae", "vtrace"]
    torch.testing.assert_close(adv.cpu(), gae(*_gae_args(_cpu(b)), 0.99, 0.95)[0], **TOL)
    torch.testing.assert_close(vs.cpu(), vtrace(*_vtrace_args(_cpu(b)), 0.99, 0.95, 1.1, 0.9, 1.3)[1], **TOL)
    assert adv.is_cuda and ret.is_cuda and pg.is_cuda and vs.is_cuda
    gae(*(x.double() if x.is_floating_point() else x for x in _gae_args(b)), 0.99, 0.95)
    values = b["values"].clone().requires_grad_()
    adv, _ = gae(b["rewards"], values, b["next_values"], b["terminals"], b["dones"], 0.99, 0.95)
    assert calls == ["gae", "vtrace"] and adv.grad_fn is not None
