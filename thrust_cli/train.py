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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .advantage import gae
from .checkpoint import load_checkpoint, save_checkpoint
from .collector import Collector
from .config import validate
from .envs import make_vector
from .logging import RunLogger
from .loss import PPOStats, ppo_loss
from .optim import Adam
from .policies import evaluate_actions, make_policy
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
    if not hasattr(act_space, "n"):
        vec.close()
        raise TrainingError(f"action space {act_space} is not supported yet; allowed: Discrete")
    num_codes = int(obs_space.high.max()) + 1 if np.issubdtype(obs_space.dtype, np.integer) else None
    policy = make_policy(obs_space.shape, int(act_space.n), run.policy, num_codes).to(device)
    optimizer = Adam(policy.parameters(), lr=run.lr, eps=1e-5)

    T, N = algo.num_steps, vec.num_agents
    batch_size = T * N
    num_updates = max(1, math.ceil(tcfg.total_timesteps / batch_size))
    tracker = EpisodeTracker(N, window=max(tcfg.target_window, 100))
    config_container = OmegaConf.to_container(run, resolve=True)
    spaces = {
        "obs_shape": list(obs_space.shape),
        "obs_dtype": str(obs_space.dtype),
        "num_actions": int(act_space.n),
        "num_codes": num_codes,
    }
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
        state = {
            "policy": policy.state_dict(),
            "optimizer": optimizer.state_dict(),
            "global_step": collector.global_step,
            "update": updates_done,
            "config": config_container,
            "spaces": spaces,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "episodes": {
                "returns": list(tracker.recent_returns),
                "lengths": list(tracker.recent_lengths),
                "count": tracker.episodes,
            },
        }
        return save_checkpoint(run_dir, state, collector.global_step, keep_last=tcfg.keep_last)

    resume_step: int | None = None
    if run.resume is not None:
        # continue where the last checkpoint left off: weights, optimizer, LR schedule (update count), step,
        # RNG states and the episode window; envs start fresh episodes, seeded from the resumed step
        try:
            updates_done, resume_step = _restore(run_dir, policy, optimizer, collector, tracker)
        except BaseException:
            vec.close()
            raise
    logger = RunLogger(run_dir, num_updates * batch_size, tcfg.progress, tcfg.tensorboard, resume_step=resume_step)
    env_seed = run.seed + (resume_step or 0)
    next_checkpoint = (collector.global_step // tcfg.checkpoint_interval + 1) * tcfg.checkpoint_interval
    vec.reset(seed=env_seed)
    train_start = time.perf_counter()
    timing = {"rollout_s": 0.0, "learn_s": 0.0}
    failure: str | None = None
    try:
        for update in range(updates_done + 1, num_updates + 1):
            # rollout (sync or async groups of agents, see collector.py)
            rollout_begin = time.perf_counter()
            buf = collector.collect()
            learn_begin = time.perf_counter()
            timing["rollout_s"] += learn_begin - rollout_begin
            if buf is None:
                break
            if algo.anneal_lr:
                optimizer.param_groups[0]["lr"] = run.lr * (1.0 - (update - 1.0) / num_updates)
            stats, b_values, b_returns = ppo_update(policy, optimizer, buf, algo, collector.global_step)
            updates_done = update
            timing["learn_s"] += time.perf_counter() - learn_begin

            # log and checkpoint
            metrics = _metrics(stats, collector.global_step, start, train_start, tracker, b_values, b_returns, vec)
            logger.log(metrics | {f"time/{k}": v for k, v in timing.items()})
            if collector.global_step >= next_checkpoint:
                checkpoint()
                next_checkpoint += tcfg.checkpoint_interval
    except KeyboardInterrupt:
        interrupted.flag = True
    except (TrainingError, VectorizerError) as exc:
        failure = str(exc)
    finally:
        interrupted.restore()
        logger.close()
        vec.close()

    status = "interrupted" if interrupted.flag else "solved" if solved["step"] is not None else "completed"
    if failure is not None:
        status = "failed"
    # the parameters are the last good ones: a non-finite loss is caught before it reaches them
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


def _restore(
    run_dir: Path, policy: Any, optimizer: Adam, collector: Collector, tracker: EpisodeTracker
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
    return int(state.get("update", 0)), collector.global_step


def ppo_update(
    policy: Any, optimizer: Adam, buf: Rollout, algo: Any, global_step: int
) -> tuple[list[PPOStats], torch.Tensor, torch.Tensor]:
    """GAE on a full rollout, then ``update_epochs`` passes of shuffled minibatches of the PPO loss.

    Returns:
        The per-minibatch statistics, and the flat values and returns (for explained variance).

    Raises:
        TrainingError: a non-finite loss (the parameters are not touched by it).
    """
    # bootstrap value if not done, then GAE (time on the last axis)
    with torch.no_grad():
        advantages, returns = gae(
            buf.rewards.T,
            buf.values.T,
            buf.next_values().T,
            buf.terminals.T,
            buf.dones.T,
            algo.gamma,
            algo.gae_lambda,
        )

    # flatten the batch: samples [B] for a feed-forward policy; segments [S, L] for a recurrent one, each
    # replayed from its stored start state with the stored episode ends (REFERENCE.md §7)
    T = buf.rewards.shape[0]
    recurrent = buf.h0 is not None
    L = T // buf.h0.shape[0] if buf.h0 is not None else 1
    seq = _to_segments if recurrent else _to_samples
    b_obs = seq(buf.obs, L)
    b_actions, b_logprobs, b_values = seq(buf.actions, L), seq(buf.logprobs, L), seq(buf.values, L)
    b_advantages, b_returns = seq(advantages.T, L), seq(returns.T, L)
    if recurrent:
        assert buf.h0 is not None and buf.c0 is not None
        b_h0 = buf.h0.reshape(1, -1, buf.h0.shape[-1])  # [1, S, H], segments ordered like _to_segments
        b_c0 = buf.c0.reshape(1, -1, buf.c0.shape[-1])
        dones = seq(buf.dones, L)
        b_resets = torch.cat([torch.zeros_like(dones[:, :1]), dones[:, :-1]], dim=1)  # step t starts an episode
    batch_size = b_actions.shape[0]  # samples, or segments
    minibatch_size = max(1, min(algo.minibatch_size // L, batch_size))

    # minibatch epochs
    stats: list[PPOStats] = []
    for _epoch in range(algo.update_epochs):
        perm = torch.randperm(batch_size, device=b_obs.device)
        for mb_start in range(0, batch_size - minibatch_size + 1, minibatch_size):
            mb = perm[mb_start : mb_start + minibatch_size]
            if recurrent:
                logits, new_values = policy.forward_sequence(b_obs[mb], (b_h0[:, mb], b_c0[:, mb]), b_resets[mb])
                logits, new_values = logits.flatten(0, 1), new_values.flatten()
            else:
                logits, new_values = policy(b_obs[mb])
            new_logprobs, entropy = evaluate_actions(logits, b_actions[mb].flatten())
            mb_advantages = b_advantages[mb].flatten()
            if algo.norm_adv:
                mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
            loss, mb_stats = ppo_loss(
                new_logprobs,
                b_logprobs[mb].flatten(),
                mb_advantages,
                new_values,
                b_values[mb].flatten(),
                b_returns[mb].flatten(),
                entropy,
                algo.clip_coef,
                algo.vf_coef,
                algo.ent_coef,
                algo.vf_clip_coef,
            )
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({loss.item()}) at global_step {global_step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), algo.max_grad_norm)
            optimizer.step()
            stats.append(mb_stats)
        if algo.target_kl is not None and stats and stats[-1].approx_kl > algo.target_kl:
            break
    return stats, b_values.flatten(), b_returns.flatten()


def _to_samples(x: torch.Tensor, L: int) -> torch.Tensor:
    """[T, N, ...] → [T * N, ...]."""
    return x.reshape(-1, *x.shape[2:])


def _to_segments(x: torch.Tensor, L: int) -> torch.Tensor:
    """[T, N, ...] → [T/L * N, L, ...]: segment k*N + n is rows [k*L, (k+1)*L) of agent n."""
    T, N = x.shape[:2]
    return x.reshape(T // L, L, N, *x.shape[2:]).transpose(1, 2).reshape(T // L * N, L, *x.shape[2:])


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
