"""Advantage estimators as pure functions of tensors: GAE and V-trace.

Time is the LAST axis and row t describes the transition t → t+1; the full index convention (which step a
reward, terminal or truncation belongs to, and where ``next_values`` comes from at a truncation) is written once,
in :mod:`thrust_cli.learn.rollout`.

:func:`gae` and :func:`vtrace` run CPU float32/float64 tensors through the C loops of
:mod:`thrust_cli.kernels.advantage` (no GIL, one pass per row) and everything else (CUDA, half precision,
tensors that need gradients) through :func:`gae_torch` / :func:`vtrace_torch`, a loop over T of vectorized ops,
except CUDA float32 tensors when triton imports: those take one launch of the fused Triton kernels of
:mod:`thrust_cli.kernels.triton_advantage` (:func:`gae_triton` / :func:`vtrace_triton`). All paths compute the
same numbers to rounding (tests/unit/test_advantage.py, tests/unit/test_triton_advantage.py).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from thrust_cli.kernels.advantage import gae as _gae_kernel  # compiled by setup.py, like the env bindings
from thrust_cli.kernels.advantage import vtrace as _vtrace_kernel

_KERNEL_DTYPES = (torch.float32, torch.float64)


def gae_torch(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gae` in vectorized torch ops (any device, differentiable); the reference of the C kernel."""
    dtype = values.dtype
    not_terminal = 1.0 - terminals.to(dtype)
    not_done = 1.0 - dones.to(dtype)
    deltas = rewards.to(dtype) + gamma * not_terminal * next_values.to(dtype) - values
    decay = (gamma * gae_lambda) * not_done
    # time first and contiguous, so each step of the loop reads one block (no copy for a rollout's .T)
    deltas, decay = _time_first(deltas), _time_first(decay)
    advantages = torch.empty_like(deltas)
    lastgaelam = deltas.new_zeros(deltas.shape[1:])
    for t in range(deltas.shape[0] - 1, -1, -1):
        lastgaelam = deltas[t] + decay[t] * lastgaelam
        advantages[t] = lastgaelam
    advantages = advantages.movedim(0, -1)
    return advantages, advantages + values


def vtrace_torch(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    behavior_logprob: torch.Tensor,
    target_logprob: torch.Tensor,
    gamma: float,
    gae_lambda: float = 1.0,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    rho_pg_bar: float | None = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`vtrace` in vectorized torch ops (any device, differentiable); the reference of the C kernel."""
    dtype = values.dtype
    rho = torch.exp(target_logprob.to(dtype) - behavior_logprob.to(dtype))
    rewards, next_values = rewards.to(dtype), next_values.to(dtype)
    discounts = gamma * (1.0 - terminals.to(dtype))
    not_done = 1.0 - dones.to(dtype)
    deltas = rho.clamp(max=rho_bar) * (rewards + discounts * next_values - values)
    decay = ((gamma * gae_lambda) * rho.clamp(max=c_bar)) * not_done
    # acc_t = v_t - V(s_t), the V-trace correction, accumulated backwards from acc_T = 0 (time first, contiguous)
    deltas, decay = _time_first(deltas), _time_first(decay)
    acc = torch.empty_like(deltas)
    running = deltas.new_zeros(deltas.shape[1:])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + decay[t] * running
        acc[t] = running
    acc_next = torch.zeros_like(acc)
    acc_next[:-1] = acc[1:]
    acc, acc_next = acc.movedim(0, -1), acc_next.movedim(0, -1)
    # pg bootstrap q_t = lambda * v_{t+1} + (1 - lambda) * V(s_{t+1}) within the episode, V(s_{t+1}) at its end
    q = next_values + (gae_lambda * not_done) * acc_next
    pg_advantages = rewards + discounts * q - values
    if rho_pg_bar is not None:
        pg_advantages = rho.clamp(max=rho_pg_bar) * pg_advantages
    return pg_advantages, values + acc


def _pg_without_ratio(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    value_targets: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> torch.Tensor:
    """``r_t + gamma (1 - terminal_t) q_t - V(s_t)`` from the V-trace targets: the pg advantage, unweighted."""
    dtype = values.dtype
    acc = value_targets - values
    acc_next = torch.cat([acc[..., 1:], torch.zeros_like(acc[..., :1])], dim=-1)
    q = next_values.to(dtype) + (gae_lambda * (1.0 - dones.to(dtype))) * acc_next
    return rewards.to(dtype) + (gamma * (1.0 - terminals.to(dtype))) * q - values


def _time_first(x: torch.Tensor) -> torch.Tensor:
    """[..., T] → contiguous [T, ...] (a view when ``x`` is the ``.T`` of a contiguous [T, N] buffer)."""
    return x.movedim(-1, 0).contiguous()


def gae_triton(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    gae_lambda: float,
    block_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gae` in one fused Triton launch: float32 math, no gradient, inputs read in place.

    :func:`gae` calls it for CUDA float32 tensors; call it directly to pick it (tests, benchmarks). It runs on
    CUDA tensors, or on CPU ones when ``TRITON_INTERPRET=1`` was set before triton was imported.

    Args:
        block_size: rows per program, a power of two; None picks one from the row count and the GPU.

    Raises:
        ImportError: triton is not installed.
        ValueError: the shapes differ or ``values`` is not float32.
    """
    inputs = (rewards, values, next_values, terminals, dones)
    kernels = _triton_inputs("gae_triton", values, inputs)
    advantages, returns = _triton_outputs(values), _triton_outputs(values)
    T = values.shape[-1]
    if values.numel() == 0:
        return advantages, returns
    kernels.gae(
        *(x.detach().reshape(-1, T) for x in inputs),
        gamma,
        gae_lambda,
        advantages.view(-1, T),
        returns.view(-1, T),
        block_size,
    )
    return advantages, returns


def vtrace_triton(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    behavior_logprob: torch.Tensor,
    target_logprob: torch.Tensor,
    gamma: float,
    gae_lambda: float = 1.0,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    rho_pg_bar: float | None = 1.0,
    block_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`vtrace` in one fused Triton launch (the ratios' exp included); as :func:`gae_triton`."""
    inputs = (rewards, values, next_values, terminals, dones, behavior_logprob, target_logprob)
    kernels = _triton_inputs("vtrace_triton", values, inputs)
    pg_advantages, value_targets = _triton_outputs(values), _triton_outputs(values)
    T = values.shape[-1]
    if values.numel() == 0:
        return pg_advantages, value_targets
    kernels.vtrace(
        *(x.detach().reshape(-1, T) for x in inputs),
        gamma,
        gae_lambda,
        rho_bar,
        c_bar,
        rho_pg_bar,
        pg_advantages.view(-1, T),
        value_targets.view(-1, T),
        block_size,
    )
    return pg_advantages, value_targets


@functools.cache
def _triton_kernels() -> Any:
    """:mod:`thrust_cli.kernels.triton_advantage`, imported on first use (triton is optional); None without it."""
    try:
        from thrust_cli.kernels import triton_advantage
    except ImportError:
        return None
    return triton_advantage


def _triton_inputs(name: str, values: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> Any:
    _check_shapes(name, values, inputs)
    if values.dtype != torch.float32:
        raise ValueError(f"{name}: values must be float32 (the kernel's math and output dtype), got {values.dtype}")
    kernels = _triton_kernels()
    if kernels is None:
        raise ImportError(f"{name} needs triton (pip install triton; CUDA builds of torch ship it)")
    return kernels


def _triton_outputs(values: torch.Tensor) -> torch.Tensor:
    """An output in the layout :func:`gae`'s C path returns: like ``values`` if time-major, else contiguous."""
    return _empty_like_layout(values, _is_time_major(values))


@functools.cache
def _triton_runs_on(device: torch.device) -> bool:
    """Triton compiles for NVIDIA GPUs of compute capability 7.0 and later (torch.utils._triton's rule)."""
    return torch.cuda.get_device_capability(device)[0] >= 7 and _triton_kernels() is not None


def _use_triton(values: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> bool:
    """CUDA float32 tensors on one device that record no gradients go to the Triton kernels, if triton imports."""
    return (
        values.dtype == torch.float32
        and values.numel() > 0
        and values.device.type == "cuda"
        and all(x.device == values.device for x in inputs)
        and not (torch.is_grad_enabled() and any(x.requires_grad for x in inputs))
        and _triton_runs_on(values.device)
    )


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, https://arxiv.org/abs/1506.02438).

    ``delta_t = r_t + gamma * (1 - terminal_t) * V(s_{t+1}) - V(s_t)``
    ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}``

    A truncated step (done, not terminal) bootstraps from ``next_values`` and cuts the trace, which gives the
    same numbers as SB3's "add gamma * V(final obs) to the reward" and TorchRL's done/terminated split.

    Args:
        rewards: reward for the action at t.
        values: V(s_t), computed by the policy that collected the data. Its dtype is the outputs' dtype.
        next_values: V(s_{t+1}) of the same episode (V(final observation) at a truncation).
        terminals: bool, uint8 or float {0, 1}; the episode reached a terminal state at t.
        dones: bool, uint8 or float {0, 1}; the episode ended at t (terminal or truncated).
        gamma: discount factor.
        gae_lambda: GAE lambda.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.

    Raises:
        ValueError: the inputs' shapes differ.

    Shapes:
        all inputs and outputs: [..., T], time on the last axis. Inputs may have any strides; for the ``.T`` of
        a contiguous [T, N] rollout buffer the C kernel reads them in place and returns outputs of the same
        layout (``outputs.T`` is contiguous), otherwise the outputs are contiguous.
    """
    inputs = (rewards, values, next_values, terminals, dones)
    _check_shapes("gae", values, inputs)
    if _use_triton(values, inputs):
        return gae_triton(rewards, values, next_values, terminals, dones, gamma, gae_lambda)
    if not _use_kernel(values, inputs):
        return gae_torch(rewards, values, next_values, terminals, dones, gamma, gae_lambda)
    time_major = _is_time_major(values)
    advantages, returns = _empty_like_layout(values, time_major), _empty_like_layout(values, time_major)
    dtype = values.dtype
    _gae_kernel(
        *(_floats(x, dtype, time_major) for x in (rewards, values, next_values)),
        *(_flags(x, time_major) for x in (terminals, dones)),
        float(gamma),
        float(gae_lambda),
        _as_2d(advantages, time_major),
        _as_2d(returns, time_major),
        time_major,
    )
    return advantages, returns


def vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminals: torch.Tensor,
    dones: torch.Tensor,
    behavior_logprob: torch.Tensor,
    target_logprob: torch.Tensor,
    gamma: float,
    gae_lambda: float = 1.0,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    rho_pg_bar: float | None = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace off-policy targets (Espeholt et al. 2018, https://arxiv.org/abs/1802.01561) with rlax's lambda.

    With ``rho_t = exp(target_logprob_t - behavior_logprob_t)`` (current policy over the one that acted):

    ``delta_t = min(rho_bar, rho_t) * (r_t + gamma * (1 - terminal_t) * V(s_{t+1}) - V(s_t))``
    ``acc_t = delta_t + gamma * lambda * min(c_bar, rho_t) * (1 - done_t) * acc_{t+1}``, ``acc_T = 0``
    ``value_targets_t = V(s_t) + acc_t``
    ``q_t = V(s_{t+1}) + lambda * (1 - done_t) * acc_{t+1}``
    ``pg_advantages_t = min(rho_pg_bar, rho_t) * (r_t + gamma * (1 - terminal_t) * q_t - V(s_t))``

    ``q_t`` is rlax's ``lambda * v_{t+1} + (1 - lambda) * V(s_{t+1})`` written in Thrust's index convention, and
    ``V(s_{t+1})`` alone where the episode ended. ``gae_lambda = 1`` is IMPALA's V-trace; with all ratios 1
    ``(pg_advantages, value_targets)`` equal :func:`gae`'s ``(advantages, returns)`` (PufferLib 3's "puff
    advantage" is this with ``rho_pg_bar = rho_bar``).

    Args:
        rewards: reward for the action at t, as in :func:`gae`.
        values: V(s_t) of the policy that collected the data, as in :func:`gae` (its dtype is the outputs').
        next_values: V(s_{t+1}) of the same episode (V(final observation) at a truncation), as in :func:`gae`.
        terminals: the episode reached a terminal state at t, as in :func:`gae`.
        dones: the episode ended at t (terminal or truncated), as in :func:`gae`.
        gamma: discount factor.
        behavior_logprob: log mu(a_t | s_t) of the policy that collected the data. (TorchRL's functional
            ``vtrace_advantage_estimate`` documents its ``log_pi``/``log_mu`` the other way round.)
        target_logprob: log pi(a_t | s_t) of the policy being learned.
        gae_lambda: lambda of the traces (rlax); 1 gives IMPALA's V-trace.
        rho_bar: clip of the ratio weighting each TD error (the fixed point's policy).
        c_bar: clip of the trace ratios (the speed of convergence).
        rho_pg_bar: clip of the ratio weighting the policy-gradient advantage; None: no such weight (for a
            surrogate loss whose own ratio already weights the action at t, so V-trace corrects only the
            continuation ``q_t``).

    Returns:
        ``(pg_advantages, value_targets)``; compute them without gradient.

    Raises:
        ValueError: the inputs' shapes differ.

    Shapes:
        all inputs and outputs: [..., T], time on the last axis; layouts as in :func:`gae`.
    """
    inputs = (rewards, values, next_values, terminals, dones, behavior_logprob, target_logprob)
    _check_shapes("vtrace", values, inputs)
    if _use_triton(values, inputs):
        return vtrace_triton(
            rewards,
            values,
            next_values,
            terminals,
            dones,
            behavior_logprob,
            target_logprob,
            gamma,
            gae_lambda,
            rho_bar,
            c_bar,
            rho_pg_bar,
        )
    if not _use_kernel(values, inputs):
        return vtrace_torch(
            rewards,
            values,
            next_values,
            terminals,
            dones,
            behavior_logprob,
            target_logprob,
            gamma,
            gae_lambda,
            rho_bar,
            c_bar,
            rho_pg_bar,
        )
    time_major = _is_time_major(values)
    pg_advantages, value_targets = _empty_like_layout(values, time_major), _empty_like_layout(values, time_major)
    dtype = values.dtype
    # the exp in torch (vectorized); the C loop would spend most of its time in a scalar expf
    ratios = torch.exp(target_logprob.detach().to(dtype) - behavior_logprob.detach().to(dtype))
    _vtrace_kernel(
        *(_floats(x, dtype, time_major) for x in (rewards, values, next_values)),
        *(_flags(x, time_major) for x in (terminals, dones)),
        _floats(ratios, dtype, time_major),
        float(gamma),
        float(gae_lambda),
        float(rho_bar),
        float(c_bar),
        1.0 if rho_pg_bar is None else float(rho_pg_bar),
        _as_2d(pg_advantages, time_major),
        _as_2d(value_targets, time_major),
        time_major,
    )
    if rho_pg_bar is None:
        pg_advantages = _pg_without_ratio(
            rewards, values, next_values, terminals, dones, value_targets, gamma, gae_lambda
        )
    return pg_advantages, value_targets


def _check_shapes(name: str, values: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
    if any(x.shape != values.shape for x in inputs) or values.ndim == 0:
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise ValueError(f"{name}: all inputs need one shape [..., T], got {shapes}")


def _use_kernel(values: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> bool:
    """The C kernel takes CPU float32/float64 and records no gradients: anything else goes to torch."""
    return (
        values.dtype in _KERNEL_DTYPES
        and values.numel() > 0
        and all(x.device.type == "cpu" for x in inputs)
        and not (torch.is_grad_enabled() and any(x.requires_grad for x in inputs))
    )


def _is_time_major(values: torch.Tensor) -> bool:
    """``values`` is a [..., T] view of a contiguous [T, ...] buffer (e.g. ``buf.values.T``)."""
    return values.ndim >= 2 and not values.is_contiguous() and values.movedim(-1, 0).is_contiguous()


def _as_2d(x: torch.Tensor, time_major: bool) -> Any:
    """A C-contiguous NumPy view, [T, R] if ``time_major`` else [R, T]; copies only where the layout differs."""
    T = x.shape[-1]
    if time_major:
        return x.movedim(-1, 0).contiguous().view(T, -1).numpy()
    return x.contiguous().view(-1, T).numpy()


def _floats(x: torch.Tensor, dtype: torch.dtype, time_major: bool) -> Any:
    return _as_2d(x.detach().to(dtype), time_major)


def _flags(x: torch.Tensor, time_major: bool) -> Any:
    """Flags as uint8 (the kernel reads nonzero as true): bool and uint8 as they are, other dtypes ``!= 0``."""
    if x.dtype not in (torch.bool, torch.uint8):
        x = x != 0
    return _as_2d(x.view(torch.uint8), time_major)


def _empty_like_layout(values: torch.Tensor, time_major: bool) -> torch.Tensor:
    """An output shaped like ``values``, on its device, with the memory layout the kernel writes."""
    if time_major:
        shape = (values.shape[-1], *values.shape[:-1])
        return torch.empty(shape, dtype=values.dtype, device=values.device).movedim(0, -1)
    return torch.empty(values.shape, dtype=values.dtype, device=values.device)
