"""Triton kernels of :mod:`thrust_cli.learn.advantage`: GAE and λ-V-trace of a whole rollout in one launch each.

Use :func:`thrust_cli.learn.advantage.gae` / :func:`thrust_cli.learn.advantage.vtrace` (which pick these for
CUDA float32 tensors when triton imports) or :func:`~thrust_cli.learn.advantage.gae_triton` /
:func:`~thrust_cli.learn.advantage.vtrace_triton`, which reshape any [..., T] tensors and call these.

Each tensor here is a 2-D [R, T] view (a row is one trajectory) with its own strides: the ``.T`` of a [T, N]
rollout buffer (stride 1 along rows: each step's loads are coalesced), a row-major [R, T] array, or anything
else, read in place. The grid is one program per ``block_size`` rows; a program keeps its rows' running sums in
registers and walks t = T-1 … 0, so the recurrence costs T dependent steps of one fused multiply-add on top of
the loads, and no launch per step as the torch loop has. The math is float32 (the learner's advantage dtype),
in the order of the C kernel, so results agree with it to rounding (tests/unit/test_triton_advantage.py).

Under ``TRITON_INTERPRET=1`` (set before triton is imported) the same kernels run on CPU tensors through
NumPy: that is how the tests check them on machines without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Rows per program bounds: a warp (32 threads) is the smallest useful program, 4 warps the largest we need (a
# program's rows are independent, so bigger blocks only cut the number of programs the GPU can spread out).
_MIN_BLOCK, _MAX_BLOCK = 32, 128


@triton.jit
def _gae_kernel(
    rew, rew_sr, rew_st,
    val, val_sr, val_st,
    nval, nval_sr, nval_st,
    term, term_sr, term_st,
    done, done_sr, done_st,
    adv, adv_sr, adv_st,
    ret, ret_sr, ret_st,
    R, T, gamma, gamma_lambda,
    BLOCK: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = rows < R
    lastgaelam = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(T):
        t = (T - 1 - i).to(tl.int64)
        r = tl.load(rew + rows * rew_sr + t * rew_st, mask=mask, other=0).to(tl.float32)
        v = tl.load(val + rows * val_sr + t * val_st, mask=mask, other=0).to(tl.float32)
        nv = tl.load(nval + rows * nval_sr + t * nval_st, mask=mask, other=0).to(tl.float32)
        terminal = tl.load(term + rows * term_sr + t * term_st, mask=mask, other=0) != 0
        is_done = tl.load(done + rows * done_sr + t * done_st, mask=mask, other=0) != 0
        not_terminal = tl.where(terminal, 0.0, 1.0)
        not_done = tl.where(is_done, 0.0, 1.0)
        lastgaelam = ((r + (gamma * not_terminal) * nv) - v) + (gamma_lambda * not_done) * lastgaelam
        tl.store(adv + rows * adv_sr + t * adv_st, lastgaelam, mask=mask)
        tl.store(ret + rows * ret_sr + t * ret_st, lastgaelam + v, mask=mask)


@triton.jit
def _vtrace_kernel(
    rew, rew_sr, rew_st,
    val, val_sr, val_st,
    nval, nval_sr, nval_st,
    term, term_sr, term_st,
    done, done_sr, done_st,
    mu, mu_sr, mu_st,
    pi, pi_sr, pi_st,
    pg, pg_sr, pg_st,
    vs, vs_sr, vs_st,
    R, T, gamma, gae_lambda, gamma_lambda, rho_bar, c_bar, rho_pg_bar,
    PG_RATIO: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = rows < R
    acc = tl.zeros([BLOCK], dtype=tl.float32)  # acc_{t+1} = v_{t+1} - V(s_{t+1}), 0 past the rollout
    for i in range(T):
        t = (T - 1 - i).to(tl.int64)
        r = tl.load(rew + rows * rew_sr + t * rew_st, mask=mask, other=0).to(tl.float32)
        v = tl.load(val + rows * val_sr + t * val_st, mask=mask, other=0).to(tl.float32)
        nv = tl.load(nval + rows * nval_sr + t * nval_st, mask=mask, other=0).to(tl.float32)
        terminal = tl.load(term + rows * term_sr + t * term_st, mask=mask, other=0) != 0
        is_done = tl.load(done + rows * done_sr + t * done_st, mask=mask, other=0) != 0
        behavior = tl.load(mu + rows * mu_sr + t * mu_st, mask=mask, other=0).to(tl.float32)
        target = tl.load(pi + rows * pi_sr + t * pi_st, mask=mask, other=0).to(tl.float32)
        rho = tl.exp(target - behavior)
        discount = tl.where(terminal, 0.0, gamma)
        not_done = tl.where(is_done, 0.0, 1.0)
        q = nv + (gae_lambda * not_done) * acc
        pg_advantage = (r + discount * q) - v
        if PG_RATIO:
            pg_advantage = tl.minimum(rho, rho_pg_bar) * pg_advantage
        tl.store(pg + rows * pg_sr + t * pg_st, pg_advantage, mask=mask)
        acc = (
            tl.minimum(rho, rho_bar) * ((r + discount * nv) - v)
            + ((gamma_lambda * tl.minimum(rho, c_bar)) * not_done) * acc
        )
        tl.store(vs + rows * vs_sr + t * vs_st, v + acc, mask=mask)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    gae_lambda: float,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    block_size: int | None = None,
) -> None:
    """GAE of every row in one launch; writes ``advantages`` and ``returns`` in place.

    Args:
        rewards: [R, T] reward for the action at t; any float dtype (read as float32), any strides.
        values: [R, T] V(s_t); any float dtype (read as float32), any strides.
        next_values: [R, T] V(s_{t+1}) of the same episode; any float dtype (read as float32), any strides.
        terminals: [R, T] bool, uint8 or float, nonzero meaning true: a terminal state at t.
        dones: [R, T] bool, uint8 or float, nonzero meaning true: the episode ended at t.
        gamma: discount factor, as in :func:`thrust_cli.learn.advantage.gae`.
        gae_lambda: GAE lambda, as in :func:`thrust_cli.learn.advantage.gae`.
        advantages: [R, T] float32 output, any strides (not overlapping the inputs).
        returns: [R, T] float32 output (``advantages + values``), any strides (not overlapping the inputs).
        block_size: rows per program (a power of two); None picks one from R and the GPU's SM count.

    Raises:
        ValueError: the shapes differ, an input is not 2-D, or an output is not float32.
    """
    tensors = (rewards, values, next_values, terminals, dones, advantages, returns)
    _check("gae", values, tensors, (advantages, returns))
    R, T = values.shape
    if R == 0 or T == 0:
        return
    block = _block_size(R, values.device, block_size)
    _gae_kernel[(triton.cdiv(R, block),)](
        *_with_strides(tensors), R, T, float(gamma), float(gamma * gae_lambda), BLOCK=block, num_warps=_warps(block)
    )


def vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    behavior_logprob: torch.Tensor,
    target_logprob: torch.Tensor,
    gamma: float,
    gae_lambda: float,
    rho_bar: float,
    c_bar: float,
    rho_pg_bar: float | None,
    pg_advantages: torch.Tensor,
    value_targets: torch.Tensor,
    block_size: int | None = None,
) -> None:
    """λ-V-trace of every row in one launch (the ratio's exp included); writes the outputs in place.

    Args:
        rewards: as in :func:`gae`.
        values: as in :func:`gae`.
        next_values: as in :func:`gae`.
        terminals: as in :func:`gae`.
        dones: as in :func:`gae`.
        behavior_logprob: [R, T] log mu(a_t | s_t) of the acting policy; any float dtype, any strides.
        target_logprob: [R, T] log pi(a_t | s_t) of the learned policy; any float dtype, any strides.
        gamma: as in :func:`thrust_cli.learn.advantage.vtrace`.
        gae_lambda: as in :func:`thrust_cli.learn.advantage.vtrace`.
        rho_bar: as in :func:`thrust_cli.learn.advantage.vtrace`.
        c_bar: as in :func:`thrust_cli.learn.advantage.vtrace`.
        rho_pg_bar: as in :func:`thrust_cli.learn.advantage.vtrace` (None: the policy-gradient advantage is not
            weighted by a ratio).
        pg_advantages: [R, T] float32 output, any strides (not overlapping the inputs).
        value_targets: [R, T] float32 output, any strides (not overlapping the inputs).
        block_size: as in :func:`gae`.

    Raises:
        ValueError: the shapes differ, an input is not 2-D, or an output is not float32.
    """
    tensors = (
        rewards, values, next_values, terminals, dones, behavior_logprob, target_logprob, pg_advantages,
        value_targets,
    )  # fmt: skip
    _check("vtrace", values, tensors, (pg_advantages, value_targets))
    R, T = values.shape
    if R == 0 or T == 0:
        return
    block = _block_size(R, values.device, block_size)
    _vtrace_kernel[(triton.cdiv(R, block),)](
        *_with_strides(tensors),
        R,
        T,
        float(gamma),
        float(gae_lambda),
        float(gamma * gae_lambda),
        float(rho_bar),
        float(c_bar),
        1.0 if rho_pg_bar is None else float(rho_pg_bar),
        PG_RATIO=rho_pg_bar is not None,
        BLOCK=block,
        num_warps=_warps(block),
    )


def _check(
    name: str, values: torch.Tensor, tensors: tuple[torch.Tensor, ...], outputs: tuple[torch.Tensor, ...]
) -> None:
    if values.ndim != 2 or any(x.shape != values.shape for x in tensors):
        shapes = ", ".join(str(tuple(x.shape)) for x in tensors)
        raise ValueError(f"{name}: all tensors need one 2-D shape [R, T], got {shapes}")
    if any(x.dtype != torch.float32 for x in outputs):
        raise ValueError(f"{name}: the outputs must be float32, got {[x.dtype for x in outputs]}")


def _with_strides(tensors: tuple[torch.Tensor, ...]) -> list[object]:
    """``x, x.stride(0), x.stride(1)`` for each tensor: the kernel's (pointer, row stride, time stride) triples."""
    return [a for x in tensors for a in (x, *x.stride())]


def _block_size(R: int, device: torch.device, block_size: int | None) -> int:
    """Rows per program: enough programs for about two per SM, each between one and four warps wide."""
    if block_size is not None:
        if block_size < 1 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {block_size}")
        return block_size
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1
    return min(_MAX_BLOCK, max(_MIN_BLOCK, triton.next_power_of_2(triton.cdiv(R, 2 * sms))))


def _warps(block: int) -> int:
    """One thread per row (a program of fewer than 32 rows, as tests use, still takes a whole warp)."""
    return max(1, block // 32)
