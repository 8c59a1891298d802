"""PPO training: ``train(cfg)`` is a plain function of a composed config.

The algorithm reads top to bottom: rollout → bootstrap → advantages → minibatch epochs → log/checkpoint.
Index convention: see :mod:`thrust_cli.rollout`.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .advantage import gae, vtrace
from .checkpoint import load_checkpoint, save_best, save_checkpoint
from .collector import Collector
from .config import validate
from .envs import make_vector
from .logging import RunLogger
from .loss import PPOStats, adapt_kl_coef, ppo_loss
from .optim import Adam
from .policies import make_policy
from .rollout import EpisodeTracker, Rollout
from .vector import VectorizerError


class TrainingError(RuntimeError):
    """Training stopped on a fault (NaN loss, crashed env); the message is one line for the user."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device=cuda but CUDA is not available; allowed here: cpu, auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train a policy as configured and write the run into ``run_dir``.

    Args:
        cfg: a composed config (``conf/config.yaml`` plus overrides); validated here.
        run_dir: directory for ``metrics.jsonl``, TensorBoard events, ``checkpoints/`` and ``summary.json``.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ConfigError: invalid config. TrainingError: a fault stopped training (the last good checkpoint stays).
    """
    run = validate(cfg)
    # plain dataclasses: DictConfig attribute access costs microseconds, too much inside the loops
    algo: Any = OmegaConf.to_object(run.algo)
    tcfg: Any = OmegaConf.to_object(run.train)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if tcfg.torch_threads > 0:
        torch.set_num_threads(tcfg.torch_threads)
    seed_everything(run.seed)
    device = resolve_device(run.device)
    start = time.perf_counter()

    try:
        vec = make_vector(run)
    except VectorizerError as exc:
        raise TrainingError(str(exc)) from None
    obs_space, act_space = vec.single_observation_space, vec.single_action_space
    action = _action_spec(act_space)
    if action is None:
        vec.close()
        raise TrainingError(f"action space {act_space} is not supported; allowed: Discrete, Box (1-d)")
    num_actions, box = action
    num_codes = int(obs_space.high.max()) + 1 if np.issubdtype(obs_space.dtype, np.integer) else None
    try:
        policy = make_policy(obs_space.shape, num_actions, run.policy, num_codes, box).to(device)
    except ValueError as exc:
        vec.close()
        raise TrainingError(str(exc)) from None
    optimizer = Adam(policy.parameters(), lr=run.lr, eps=1e-5)

    T, N = algo.num_steps, vec.num_agents
    batch_size = T * N
    num_updates = max(1, math.ceil(tcfg.total_timesteps / batch_size))
    tracker = EpisodeTracker(N, window=max(tcfg.target_window, 100))
    config_container = OmegaConf.to_container(run, resolve=True)
    spaces = {
        "obs_shape": list(obs_space.shape),
        "obs_dtype": str(obs_space.dtype),
        "num_actions": num_actions,
        "num_codes": num_codes,
        "action": {"type": "Discrete"} if box is None else {"type": "Box", "low": box[0], "high": box[1]},
    }
    learner = LearnerState(kl_coef=algo.kl_coef)
    best: dict[str, Any] = {"value": None}  # the best_metric value of checkpoints/best.pt
    last_metrics: dict[str, Any] = {}
    updates_done = 0
    solved: dict[str, Any] = {"step": None, "s": None}
    interrupted = _InterruptFlag()

    checked_episodes = [-1]

    def stop(global_step: int) -> bool:
        """Checked after every stored step: Ctrl-C, or the target return reached (recomputed only when
        episodes have finished since the last check)."""
        if tcfg.target_return is not None and solved["step"] is None and tracker.episodes != checked_episodes[0]:
            checked_episodes[0] = tracker.episodes
            mean = tracker.mean_return(tcfg.target_window)
            if mean is not None and mean >= tcfg.target_return:
                solved.update(step=global_step, s=time.perf_counter() - start)
        return interrupted.flag or solved["step"] is not None

    recurrent = bool(getattr(policy, "recurrent", False))
    collector = Collector(vec, policy, T, device, tracker, stop, algo.bptt_horizon if recurrent else 1)

    def checkpoint() -> Path:
        value = _best_value(tcfg, tracker, last_metrics)
        sign = 1.0 if tcfg.best_mode == "max" else -1.0
        improved = (
            value is not None and math.isfinite(value) and (best["value"] is None or sign * (value - best["value"]) > 0)
        )
        if improved:
            best["value"] = value
        state = {
            "policy": policy.state_dict(),
            "optimizer": optimizer.state_dict(),
            "global_step": collector.global_step,
            "update": updates_done,
            "learner": asdict(learner),
            "best": best["value"],  # the best `train.best_metric` value so far (that of checkpoints/best.pt)
            "metric_value": value,  # this checkpoint's value of it
            "config": config_container,
            "spaces": spaces,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "episodes": {
                "returns": list(tracker.recent_returns),
                "lengths": list(tracker.recent_lengths),
                "count": tracker.episodes,
            },
        }
        path = save_checkpoint(run_dir, state, collector.global_step, keep_last=tcfg.keep_last)
        if improved:
            save_best(run_dir, path)
        return path

    resume_step: int | None = None
    if run.resume is not None:
        # continue where the last checkpoint left off: weights, optimizer, LR schedule (update count), step,
        # RNG states and the episode window; envs start fresh episodes, seeded from the resumed step
        try:
            updates_done, resume_step = _restore(run_dir, policy, optimizer, collector, tracker, learner, best)
        except BaseException:
            vec.close()
            raise
    try:
        logger = RunLogger(
            run_dir, num_updates * batch_size, tcfg.progress, run.logger, config_container, resume_step=resume_step
        )
    except BaseException:
        vec.close()
        raise
    env_seed = run.seed + (resume_step or 0)
    next_checkpoint = (collector.global_step // tcfg.checkpoint_interval + 1) * tcfg.checkpoint_interval
    vec.reset(seed=env_seed)
    train_start = time.perf_counter()
    timing = collector.timing | {"learn_s": 0.0}
    failure: str | None = None
    params_ok = True
    try:
        for update in range(updates_done + 1, num_updates + 1):
            # rollout (sync or async groups of agents, see collector.py)
            buf = collector.collect()
            learn_begin = time.perf_counter()
            if buf is None:
                break
            progress = (update - 1.0) / num_updates
            if algo.anneal_lr:
                optimizer.param_groups[0]["lr"] = run.lr * (1.0 - progress)
            stats, b_values, b_returns = ppo_update(
                policy, optimizer, buf, algo, collector.global_step, progress, learner
            )
            updates_done = update
            timing.update(collector.timing)
            timing["learn_s"] += time.perf_counter() - learn_begin

            # log and checkpoint
            metrics = _metrics(stats, collector.global_step, start, train_start, tracker, b_values, b_returns, vec)
            metrics.update(update=update, num_updates=num_updates, lr=optimizer.param_groups[0]["lr"])
            if learner.kl_coef is not None:
                metrics["kl_coef"] = learner.kl_coef
            last_metrics = metrics
            logger.log(metrics | {f"time/{k}": v for k, v in timing.items()})
            if collector.global_step >= next_checkpoint:
                checkpoint()
                next_checkpoint += tcfg.checkpoint_interval
    except KeyboardInterrupt:
        interrupted.flag = True
    except (TrainingError, VectorizerError) as exc:
        failure = str(exc)
        params_ok = not isinstance(exc, NonFiniteParameters)
    finally:
        interrupted.restore()
        logger.close()
        vec.close()

    status = "interrupted" if interrupted.flag else "solved" if solved["step"] is not None else "completed"
    if failure is not None:
        status = "failed"
    # a non-finite loss or gradient is caught before it reaches the parameters, which are then the last good
    # ones; non-finite parameters are never saved (the last good checkpoint stays the latest)
    if params_ok:
        checkpoint()
    global_step = collector.global_step
    summary = {
        "status": status,
        "global_step": global_step,
        "wall_time_s": time.perf_counter() - start,
        "sps": global_step / max(time.perf_counter() - train_start, 1e-9),
        "mean_return_last_100": tracker.mean_return(min(100, len(tracker.recent_returns)) or None),
        "episodes": tracker.episodes,
        "solved_at_step": solved["step"],
        "solved_at_s": solved["s"],
        "startup_s": train_start - start,
        **timing,
        "error": failure,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if failure is not None:
        raise TrainingError(f"{failure} (run saved in {run_dir})")
    return summary


def _best_value(tcfg: Any, tracker: EpisodeTracker, metrics: dict[str, Any]) -> float | None:
    """The value of ``train.best_metric`` now: ``episode_return`` is the mean of the last ``target_window``
    episodes; any other name is looked up in the latest logged metrics (e.g. ``env/score``)."""
    if tcfg.best_metric is None:
        return None
    if tcfg.best_metric == "episode_return":
        return tracker.mean_return(min(tcfg.target_window, len(tracker.recent_returns)) or None)
    value = metrics.get(tcfg.best_metric)
    return float(value) if isinstance(value, (int, float)) else None


def _action_spec(space: Any) -> tuple[int, tuple[list[float], list[float]] | None] | None:
    """``(num_actions, None)`` for Discrete, ``(dims, (low, high))`` for a 1-d Box, None otherwise."""
    if hasattr(space, "n"):
        return int(space.n), None
    if getattr(space, "shape", None) is not None and len(space.shape) == 1 and hasattr(space, "low"):
        return int(space.shape[0]), (space.low.astype(float).tolist(), space.high.astype(float).tolist())
    return None


def _restore(
    run_dir: Path,
    policy: Any,
    optimizer: Adam,
    collector: Collector,
    tracker: EpisodeTracker,
    learner: LearnerState,
    best: dict[str, Any],
) -> tuple[int, int]:
    """Load the latest checkpoint of ``run_dir`` into the training state; return (updates done, global step).

    A run killed before its first checkpoint restarts from step 0 in the same directory.
    """
    try:
        state = load_checkpoint(run_dir)
    except FileNotFoundError:
        return 0, 0
    try:
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise TrainingError(f"cannot resume from '{state['path']}': {str(exc).splitlines()[0]}") from None
    collector.global_step = int(state["global_step"])
    if "rng" in state:
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
    episodes = state.get("episodes", {})
    tracker.recent_returns.extend(episodes.get("returns", []))
    tracker.recent_lengths.extend(episodes.get("lengths", []))
    tracker.episodes = int(episodes.get("count", 0))
    learner.kl_coef = state.get("learner", {}).get("kl_coef", learner.kl_coef)
    best["value"] = state.get("best")
    return int(state.get("update", 0)), collector.global_step


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
) -> tuple[list[PPOStats], torch.Tensor, torch.Tensor]:
    """Advantages, then ``update_epochs`` passes of minibatches of the PPO loss over one rollout.

    ``algo.name == "ppo"``: GAE once, from the rollout's values. ``"vtrace"``: at the start of every epoch
    λ-V-trace recomputes advantages and value targets (:func:`thrust_cli.advantage.vtrace`) with the current
    importance ratios — from a no-grad pass of the current policy over the rollout (``algo.ratios=fresh``), or
    from each sample's log-prob when it was last trained on (``seen``, PufferLib 3) — over the values stored at
    collection, as PufferLib 3 does (re-evaluating the values too, IMPALA-style, made the targets chase a critic
    already fitted to this very batch, and learned worse: docs/algorithms.md). Options of both: prioritized
    segment replay (``algo.prio``, REFERENCE.md §5), dual clip, the adaptive KL penalty (``learner.kl_coef``),
    value clipping and clip annealing (by ``progress`` in [0, 1), the fraction of training done).

    Data is handled as segments [S, L]: rows of ``algo.bptt_horizon`` steps of one agent (replayed from their
    stored start state by a recurrent policy, the sampling unit of prioritized replay), or single samples
    (L = 1) for a feed-forward policy without prioritized replay.

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

    def forward(idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Distribution parameters [B, ...] and values [B] of the samples of segments ``idx``."""
        if recurrent:
            params, values = policy.forward_sequence(b_obs[idx], (b_h0[:, idx], b_c0[:, idx]), b_resets[idx])
            return params.flatten(0, 1), values.flatten()
        return policy(b_obs[idx].flatten(0, 1))

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
    for epoch in range(algo.update_epochs):
        if vtrace_algo and epoch > 0:
            with torch.no_grad():
                b_advantages, b_returns = estimate(current_logprobs() if seen_logprobs is None else seen_logprobs)
        if algo.prio:
            priorities = b_advantages.abs().sum(1).pow(algo.prio_alpha) + 1e-8
            probs = priorities / priorities.sum()
        else:
            perm = torch.randperm(S, device=b_obs.device)
        for mb_start in range(0, S - mb_segments + 1, mb_segments):
            if algo.prio:
                mb = torch.multinomial(probs, mb_segments, replacement=False)
                weights = (S * probs[mb]).pow(-beta)
                weights = weights / weights.max()  # Schaul et al.: weights <= 1, bounded by the batch's max
            else:
                mb = perm[mb_start : mb_start + mb_segments]
            params, new_values = forward(mb)
            new_logprobs, entropy = policy.dist.evaluate(params, b_actions[mb].flatten(0, 1))
            if seen_logprobs is not None:
                seen_logprobs[mb] = new_logprobs.detach().view(-1, L)
            mb_advantages = b_advantages[mb].flatten()
            if algo.norm_adv:
                mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
            if algo.prio:
                mb_advantages = mb_advantages * weights.repeat_interleave(L)
            loss, mb_stats = ppo_loss(
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
            if not torch.isfinite(loss):
                _check_parameters(policy, global_step)  # non-finite parameters are the cause to name
                raise TrainingError(f"non-finite loss ({loss.item()}) at global_step {global_step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
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


def _to_segments(x: torch.Tensor, L: int) -> torch.Tensor:
    """[T, N, ...] → [T/L * N, L, ...]: segment k*N + n is rows [k*L, (k+1)*L) of agent n."""
    T, N = x.shape[:2]
    return x.reshape(T // L, L, N, *x.shape[2:]).transpose(1, 2).reshape(T // L * N, L, *x.shape[2:])


def _from_segments(x: torch.Tensor, T: int, N: int) -> torch.Tensor:
    """Inverse of :func:`_to_segments`: [T/L * N, L, ...] → [T, N, ...]."""
    L = x.shape[1]
    return x.reshape(T // L, N, L, *x.shape[2:]).transpose(1, 2).reshape(T, N, *x.shape[2:])


def _metrics(
    stats: list[Any],
    global_step: int,
    start: float,
    train_start: float,
    tracker: EpisodeTracker,
    b_values: torch.Tensor,
    b_returns: torch.Tensor,
    vec: Any,
) -> dict[str, Any]:
    now = time.perf_counter()
    mean_ret, mean_len = tracker.pop_since()
    var_returns = b_returns.var()
    explained_var = (1.0 - (b_returns - b_values).var() / var_returns).item() if var_returns > 0 else float("nan")
    metrics: dict[str, Any] = {
        "global_step": global_step,
        "time_s": now - start,
        "sps": global_step / max(now - train_start, 1e-9),
        "episode_return": mean_ret,
        "episode_length": mean_len,
        "explained_variance": explained_var,
    }
    if stats:
        for key in asdict(stats[0]):
            metrics[key] = float(torch.stack([getattr(s, key) for s in stats]).mean())
    metrics.update({f"env/{k}": v for k, v in vec.log().items()})
    return metrics


class _InterruptFlag:
    """Turns the first Ctrl-C into a flag so the run stops at a step boundary and saves; a second one raises."""

    def __init__(self) -> None:
        self.flag = False
        self._previous: Any = None
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
