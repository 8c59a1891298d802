"""The PPO update over one rollout: advantages (GAE or λ-V-trace), then minibatch epochs of the clipped loss.

``ppo_update`` is the learner half of training; :func:`thrust_cli.commands.train.train` calls it once per rollout.
Index convention: see :mod:`thrust_cli.learn.rollout`.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import astuple, dataclass, fields
from functools import partial
from typing import Any

import torch

from thrust_cli.learn.advantage import gae, vtrace
from thrust_cli.learn.distributed import DataParallel
from thrust_cli.learn.loss import PPOStats, adapt_kl_coef, ppo_loss
from thrust_cli.learn.optim import Adam, LossScaler
from thrust_cli.learn.rollout import Rollout


def amp_dtype(amp: str) -> torch.dtype | None:
    """``train.amp``'s autocast dtype (None for ``none``): the rollout's inference and the update use the same."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


class TrainingError(RuntimeError):
    """Training stopped on a fault (NaN loss, crashed env); the message is one line for the user."""


@dataclass
class LearnerState:
    """What the learner carries from one update to the next (and in checkpoints)."""

    kl_coef: float | None = None  # the adaptive KL penalty's current coefficient (None: no penalty)


class NonFiniteParameters(TrainingError):
    """The parameters went non-finite: the run stops without overwriting the last good checkpoint."""


def ppo_update(
    policy: Any,
    optimizer: Adam,
    buf: Rollout,
    algo: Any,
    global_step: int,
    progress: float = 0.0,
    learner: LearnerState | None = None,
    dp: DataParallel | None = None,
    amp: str = "none",
    scaler: LossScaler | None = None,
    loss_fn: Any = None,
) -> tuple[list[PPOStats], torch.Tensor, torch.Tensor]:
    """Advantages, then ``update_epochs`` passes of minibatches of the PPO loss over one rollout.

    ``algo.name == "ppo"``: GAE once, from the rollout's values. ``"vtrace"``: at the start of every epoch
    λ-V-trace recomputes advantages and value targets (:func:`thrust_cli.learn.advantage.vtrace`) with the current
    importance ratios — from a no-grad pass of the current policy over the rollout (``algo.ratios=fresh``), or
    from each sample's log-prob when it was last trained on (``seen``, PufferLib 3) — over the values stored at
    collection, as PufferLib 3 does (re-evaluating the values too, IMPALA-style, made the targets chase a critic
    already fitted to this very batch, and learned worse: docs/algorithms.md). Options of both: prioritized
    segment replay (``algo.prio``, REFERENCE.md §5), dual clip, the adaptive KL penalty (``learner.kl_coef``),
    value clipping and clip annealing (by ``progress`` in [0, 1), the fraction of training done).

    Data is handled as segments [S, L]: rows of ``algo.bptt_horizon`` steps of one agent (replayed from their
    stored start state by a recurrent policy, the sampling unit of prioritized replay), or single samples
    (L = 1) for a feed-forward policy without prioritized replay.

    Data parallel (``dp``, docs/distributed.md): ``buf`` is this rank's rollout and ``algo.minibatch_size`` its
    share of a minibatch. Every rank draws the same permutation of its local segments (a generator seeded by
    ``global_step``, equal on all ranks), so minibatch k is the union of every rank's k-th slice; the advantages
    are normalized with that union's mean and std, and the gradient is the union's mean gradient (one
    ``all_reduce`` per minibatch, which also carries the loss and the statistics: the stats returned are those of
    the global minibatch). Prioritized replay all-gathers the segment priorities and every rank draws the same
    global minibatch from them, each training on the drawn segments it holds (weighted by its share). N ranks
    thus equal one process on the concatenated rollout, up to float summation order and the sampling order.

    ``amp`` and ``scaler`` are ``train.amp``'s autocast dtype and fp16 loss scaler; ``loss_fn`` replaces
    :func:`~thrust_cli.learn.loss.ppo_loss` (same arguments; ``train.compile`` passes a compiled one).

    Returns:
        The per-minibatch statistics, and the flat values and returns (for explained variance).

    Raises:
        TrainingError: a non-finite loss or gradient (the parameters are not touched by it).
        NonFiniteParameters: the parameters became non-finite during the update.
    """
    learner = learner if learner is not None else LearnerState()
    T, N = buf.rewards.shape
    recurrent = buf.h0 is not None
    L = T // buf.h0.shape[0] if buf.h0 is not None else (algo.bptt_horizon if algo.prio else 1)
    seg = partial(_to_segments, L=L)
    b_obs, b_actions, b_logprobs, b_values = seg(buf.obs), seg(buf.actions), seg(buf.logprobs), seg(buf.values)
    if recurrent:
        assert buf.h0 is not None and buf.c0 is not None
        b_h0 = buf.h0.reshape(1, -1, buf.h0.shape[-1])  # [1, S, H], segments ordered like _to_segments
        b_c0 = buf.c0.reshape(1, -1, buf.c0.shape[-1])
        dones = seg(buf.dones)
        b_resets = torch.cat([torch.zeros_like(dones[:, :1]), dones[:, :-1]], dim=1)  # step t starts an episode
    S = b_obs.shape[0]
    mb_segments = max(1, min(algo.minibatch_size // L, S))
    vtrace_algo = algo.name == "vtrace"
    clip_coef = algo.clip_coef * (1.0 - progress) if algo.clip_coef is not None and algo.anneal_clip else algo.clip_coef
    beta = algo.prio_beta0 + (1.0 - algo.prio_beta0) * progress

    autocast_dtype = amp_dtype(amp)
    loss_fn = loss_fn if loss_fn is not None else ppo_loss  # looked up per call (train.compile passes its own)

    def forward(idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Distribution parameters [B, ...] and values [B] of the samples of segments ``idx``, in float32 (with
        ``amp``, the policy runs under autocast and only its outputs are cast back: the loss stays float32)."""
        autocast = torch.autocast(b_obs.device.type, autocast_dtype) if autocast_dtype is not None else nullcontext()
        with autocast:
            if recurrent:
                params, values = policy.forward_sequence(b_obs[idx], (b_h0[:, idx], b_c0[:, idx]), b_resets[idx])
                params, values = params.flatten(0, 1), values.flatten()
            else:
                params, values = policy(b_obs[idx].flatten(0, 1))
        return params.float(), values.float()

    def current_logprobs() -> torch.Tensor:
        """log pi(a|s) of every stored action under the current policy, as segments [S, L] (call without grad)."""
        out = torch.empty_like(b_logprobs)
        chunk = max(1, 65536 // L)
        for lo in range(0, S, chunk):
            part = slice(lo, min(S, lo + chunk))
            params, _ = forward(part)
            out[part] = policy.dist.evaluate(params, b_actions[part].flatten(0, 1))[0].view(-1, L)
        return out

    def estimate(target_logprobs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantages, value targets) as segments [S, L]: GAE, or V-trace with ``target_logprobs`` [S, L]."""
        if target_logprobs is None:
            adv, ret = gae(
                buf.rewards.T, buf.values.T, buf.next_values().T, buf.terminals.T, buf.dones.T, algo.gamma,
                algo.gae_lambda,
            )  # fmt: skip
        else:
            adv, ret = vtrace(
                buf.rewards.T, buf.values.T, buf.next_values().T, buf.terminals.T, buf.dones.T,
                buf.logprobs.T, _from_segments(target_logprobs, T, N).T,
                algo.gamma, algo.gae_lambda, algo.rho_clip, algo.c_clip, algo.rho_pg_clip,
            )  # fmt: skip
        return seg(adv.T), seg(ret.T)

    stats: list[PPOStats] = []
    seen_logprobs: torch.Tensor | None = None  # algo.ratios=seen: log pi(a|s) when each sample was last trained on
    with torch.no_grad():
        target_logprobs = current_logprobs() if vtrace_algo else None
        if vtrace_algo and algo.ratios == "seen":
            seen_logprobs = target_logprobs
        b_advantages, b_returns = estimate(target_logprobs)
    gen = dp.generator(global_step, b_obs.device) if dp is not None else None
    for epoch in range(algo.update_epochs):
        if vtrace_algo and epoch > 0:
            with torch.no_grad():
                b_advantages, b_returns = estimate(current_logprobs() if seen_logprobs is None else seen_logprobs)
        if algo.prio:
            priorities = b_advantages.abs().sum(1).pow(algo.prio_alpha) + 1e-8
            if dp is not None:
                priorities = dp.all_gather(priorities)  # [world * S], rank-major: every rank draws alike
            probs = priorities / priorities.sum()
        elif dp is None:
            perm = torch.randperm(S, device=b_obs.device)
        else:
            perm = torch.randperm(S, device=b_obs.device, generator=gen)
        minibatches = range(0, S - mb_segments + 1, mb_segments)
        if dp is not None:
            plan = _parallel_minibatches(
                dp, algo, minibatches, mb_segments, S, L, b_advantages, probs if algo.prio else perm, beta, gen
            )
        for k, mb_start in enumerate(minibatches):
            share, weights = 1.0, None
            if dp is not None:
                mb, weights, norm, share = plan[k]
            elif algo.prio:
                mb = torch.multinomial(probs, mb_segments, replacement=False)
                weights = (S * probs[mb]).pow(-beta)
                weights = weights / weights.max()  # Schaul et al.: weights <= 1, bounded by the batch's max
            else:
                mb = perm[mb_start : mb_start + mb_segments]
            optimizer.zero_grad(set_to_none=True)
            if share > 0:
                params, new_values = forward(mb)
                new_logprobs, entropy = policy.dist.evaluate(params, b_actions[mb].flatten(0, 1))
                if seen_logprobs is not None:
                    seen_logprobs[mb] = new_logprobs.detach().view(-1, L)
                mb_advantages = b_advantages[mb].flatten()
                if dp is not None and algo.norm_adv:
                    mb_advantages = (mb_advantages - norm[0]) / (norm[1] + 1e-8)
                elif algo.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                if weights is not None:
                    mb_advantages = mb_advantages * weights.repeat_interleave(L)
                loss, mb_stats = loss_fn(
                    new_logprobs,
                    b_logprobs[mb].flatten(),
                    mb_advantages,
                    new_values,
                    b_values[mb].flatten(),
                    b_returns[mb].flatten(),
                    entropy,
                    clip_coef,
                    algo.vf_coef,
                    algo.ent_coef,
                    algo.vf_clip_coef,
                    algo.dual_clip_c,
                    learner.kl_coef or 0.0,
                )
                if dp is None and not torch.isfinite(loss):
                    _check_parameters(policy, global_step)  # non-finite parameters are the cause to name
                    raise TrainingError(f"non-finite loss ({loss.item()}) at global_step {global_step}")
                (loss * scaler.scale if scaler is not None else loss).backward()
            if dp is not None:
                # the global minibatch's mean gradient, loss and stats: one all_reduce; every rank sees the same
                local = (
                    torch.stack([loss.detach(), *astuple(mb_stats)])
                    if share > 0
                    else torch.zeros(1 + len(fields(PPOStats)))
                )
                reduced = dp.reduce_gradients(optimizer.params, share, local.to(b_obs.device))
                if not torch.isfinite(reduced[0]):
                    _check_parameters(policy, global_step)
                    raise TrainingError(f"non-finite loss ({reduced[0].item()}) at global_step {global_step}")
                mb_stats = PPOStats(*reduced[1:].to(torch.float32).unbind())
            if scaler is not None and not scaler.unscale(optimizer.params):
                optimizer.zero_grad(set_to_none=True)  # fp16 gradients overflowed: skip this step, halve the scale
                stats.append(mb_stats)
                continue
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), algo.max_grad_norm)
            if not torch.isfinite(grad_norm):
                raise TrainingError(f"non-finite gradient norm ({grad_norm.item()}) at global_step {global_step}")
            optimizer.step()
            stats.append(mb_stats)
        if learner.kl_coef is None and algo.target_kl is not None and stats and stats[-1].approx_kl > algo.target_kl:
            break
    if learner.kl_coef is not None and stats:
        mean_kl = float(torch.stack([s.approx_kl for s in stats]).mean())
        learner.kl_coef = adapt_kl_coef(learner.kl_coef, mean_kl, algo.target_kl)
    _check_parameters(policy, global_step)
    return stats, b_values.flatten(), b_returns.flatten()


def _check_parameters(policy: Any, global_step: int) -> None:
    """Raise :class:`NonFiniteParameters` naming the first parameter holding a NaN or inf."""
    for name, param in policy.named_parameters():
        if not torch.isfinite(param).all():
            raise NonFiniteParameters(f"non-finite parameter '{name}' in the update at global_step {global_step}")


def _parallel_minibatches(
    dp: DataParallel,
    algo: Any,
    minibatches: range,
    mb_segments: int,
    S: int,
    L: int,
    b_advantages: torch.Tensor,
    order: torch.Tensor,
    beta: float,
    gen: torch.Generator | None,
) -> list[tuple[torch.Tensor, torch.Tensor | None, tuple[float, float], float]]:
    """One epoch's minibatches of a data-parallel update: ``(local segments, prio weights, (mean, std) of the
    global minibatch's advantages, this rank's share of its samples)`` each, with ONE all_reduce for all the
    normalization statistics.

    ``order``: the shared permutation of local segments [S], or with ``algo.prio`` the global probabilities
    [world * S] (rank-major) from which every rank draws the same global minibatch of ``world * mb_segments``.
    """
    plan: list[Any] = []
    total = dp.world_size * mb_segments * L  # samples of a global minibatch
    for mb_start in minibatches:
        if algo.prio:
            drawn = torch.multinomial(order, dp.world_size * mb_segments, replacement=False, generator=gen)
            weights = (order.numel() * order[drawn]).pow(-beta)
            weights = weights / weights.max()  # over the global minibatch, as one process would
            mine = drawn // S == dp.rank
            mb, w = drawn[mine] - dp.rank * S, weights[mine]
        else:
            mb, w = order[mb_start : mb_start + mb_segments], None
        plan.append([mb, w, (0.0, 1.0), mb.numel() * L / total])
    if algo.norm_adv:
        sums = torch.zeros(len(plan), 3, dtype=torch.float64, device=b_advantages.device)
        for k, (mb, *_) in enumerate(plan):
            adv = b_advantages[mb].flatten().double()
            sums[k] = torch.stack(
                [
                    adv.sum(),
                    adv.square().sum(),
                    torch.tensor(float(adv.numel()), device=adv.device, dtype=torch.float64),
                ]
            )
        dp.all_reduce(sums)
        for k, (total_sum, total_sq, n) in enumerate(sums.tolist()):
            mean = total_sum / n
            var = max(total_sq - n * mean * mean, 0.0) / max(n - 1.0, 1.0)  # unbiased, like Tensor.std()
            plan[k][2] = (mean, var**0.5)
    return [tuple(p) for p in plan]


def _to_segments(x: torch.Tensor, L: int) -> torch.Tensor:
    """[T, N, ...] → [T/L * N, L, ...]: segment k*N + n is rows [k*L, (k+1)*L) of agent n."""
    T, N = x.shape[:2]
    return x.reshape(T // L, L, N, *x.shape[2:]).transpose(1, 2).reshape(T // L * N, L, *x.shape[2:])


def _from_segments(x: torch.Tensor, T: int, N: int) -> torch.Tensor:
    """Inverse of :func:`_to_segments`: [T/L * N, L, ...] → [T, N, ...]."""
    L = x.shape[1]
    return x.reshape(T // L, N, L, *x.shape[2:]).transpose(1, 2).reshape(T, N, *x.shape[2:])
