"""PPO training: ``train(cfg)`` is a plain function of a composed config.

The algorithm reads top to bottom: rollout → bootstrap → advantages → minibatch epochs → log/checkpoint.
Index convention: see :mod:`thrust_cli.learn.rollout`. Data parallel (a ``DataParallel`` from torchrun's
environment, docs/distributed.md): every rank runs this same loop on its own envs; the ranks agree after each
rollout (one small all_reduce: global step, episode stats, stop votes) and in every minibatch (ppo_update);
rank 0 alone logs, checkpoints and writes ``summary.json``.
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

from thrust_cli.learn.collector import Collector
from thrust_cli.learn.compile import compile_loss, compile_policy
from thrust_cli.learn.distributed import (
    RANK_SEED_OFFSET,
    DataParallel,
    NoLogger,
    Terminated,
    TerminateOnSigterm,
    vote_after_rollout,
)
from thrust_cli.learn.loss import ppo_loss
from thrust_cli.learn.optim import Adam, LossScaler
from thrust_cli.learn.policies import make_policy
from thrust_cli.learn.ppo import LearnerState, NonFiniteParameters, TrainingError, amp_dtype, ppo_update
from thrust_cli.learn.rollout import EpisodeTracker
from thrust_cli.run.checkpoint import find_checkpoint, load_checkpoint, save_best, save_checkpoint
from thrust_cli.run.config import ConfigError, validate
from thrust_cli.run.logging import RunLogger
from thrust_cli.vector.envs import make_env, make_vector
from thrust_cli.vector.serial import VectorizerError


def resolve_device(name: str) -> torch.device:
    """The torch device ``device=`` names (``auto``: CUDA when available); TrainingError if CUDA is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device=cuda but CUDA is not available; allowed here: cpu, auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def preflight(cfg: DictConfig) -> None:
    """Check, before anything is written, what would stop :func:`train` at its start.

    Validates the config, resolves the device, builds one env instance (no vectorizer) for its spaces and the
    policy for them on the meta device (shapes only), then drops both: ``thrust train`` calls it before creating
    the run directory, so that a run that cannot start leaves no empty directory behind. It costs one env
    instance (a few milliseconds for the C envs) and the config validation.

    Raises:
        ConfigError: invalid config. TrainingError: the device is unavailable, the env cannot be made (e.g. an
            unknown Gymnasium id), its action space is not supported or the policy does not fit its spaces.
    """
    run = validate(cfg)
    resolve_device(run.device)
    try:
        env = make_env(run.env, num_envs=1, seed=run.seed)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    try:
        meta = torch.device("meta")
        with meta:  # shapes only: no memory and no weight initialisation (an orthogonal init costs ~0.1 s)
            _build_policy(env.single_observation_space, env.single_action_space, run.policy, meta)
    finally:
        env.close()


def _build_policy(
    obs_space: Any, act_space: Any, policy_cfg: Any, device: torch.device
) -> tuple[torch.nn.Module, int, tuple[list[float], list[float]] | None, int | None]:
    """The policy for these spaces and ``(num_actions, box, num_codes)``; TrainingError if it cannot be built."""
    action = _action_spec(act_space)
    if action is None:
        raise TrainingError(f"action space {act_space} is not supported; allowed: Discrete, Box (1-d)")
    num_actions, box = action
    num_codes = int(obs_space.high.max()) + 1 if np.issubdtype(obs_space.dtype, np.integer) else None
    try:
        policy = make_policy(obs_space.shape, num_actions, policy_cfg, num_codes, box).to(device)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    return policy, num_actions, box, num_codes


def train(cfg: DictConfig, run_dir: str | Path, dp: DataParallel | None = None) -> dict[str, Any]:
    """Train a policy as configured and write the run into ``run_dir``.

    Args:
        cfg: a composed config (``conf/config.yaml`` plus overrides); validated here.
        run_dir: directory for ``metrics.jsonl``, TensorBoard events, ``checkpoints/`` and ``summary.json``.
        dp: the process group of a data-parallel run (None: one process; ``dist.nproc`` is the launcher's
            business, not this function's). ``env.num_envs`` and ``algo.minibatch_size`` are per rank,
            ``train.total_timesteps`` and the logged ``global_step`` count all ranks' steps. A run directory
            that has checkpoints (an elastic restart, or ``resume=``) is resumed from its latest one, which rank 0
            reads and broadcasts.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ConfigError: invalid config. TrainingError: a fault stopped training (the last good checkpoint stays).
    """
    run = validate(cfg)
    rank, world = (dp.rank, dp.world_size) if dp is not None else (0, 1)
    main = rank == 0
    if dp is not None and run.env.name == "busy" and run.env.work_per_rank is not None:
        if len(run.env.work_per_rank) != world:
            raise ConfigError(f"env.work_per_rank has {len(run.env.work_per_rank)} entries for {world} ranks")
        run.env.work = run.env.work_per_rank[rank]
    # plain dataclasses: DictConfig attribute access costs microseconds, too much inside the loops
    algo: Any = OmegaConf.to_object(run.algo)
    tcfg: Any = OmegaConf.to_object(run.train)
    run_dir = Path(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if tcfg.torch_threads > 0:
        torch.set_num_threads(tcfg.torch_threads)
    seed_everything(run.seed)  # the same on every rank: the same initial policy
    device = resolve_device(run.device)
    start = time.perf_counter()
    rank_seed = run.seed + rank * RANK_SEED_OFFSET  # rank r's envs and action sampling (distributed.py)

    try:
        vec = make_vector(run, seed=rank_seed)  # one process: rank 0, run.seed
    except VectorizerError as exc:
        raise TrainingError(str(exc)) from None
    obs_space, act_space = vec.single_observation_space, vec.single_action_space
    try:
        policy, num_actions, box, num_codes = _build_policy(obs_space, act_space, run.policy, device)
    except TrainingError:
        vec.close()
        raise
    optimizer = Adam(policy.parameters(), lr=run.lr, eps=1e-5)
    scaler = LossScaler() if tcfg.amp == "fp16" else None  # bf16 keeps float32's exponent range: no scaling
    compile_times: dict[str, float] = {}  # train.compile: seconds of the calls that compiled, per function
    loss_fn: Any = None  # ppo_update's own ppo_loss
    if tcfg.compile:
        compile_policy(policy, compile_times)
        loss_fn = compile_loss(ppo_loss, compile_times)
    if dp is not None:
        dp.broadcast_parameters(policy)
        seed_everything(rank_seed % 2**32)

    T, N = algo.num_steps, vec.num_agents
    batch_size = T * N * world  # the global batch: every rank's rollout
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
    # a resumed run goes on from its checkpoint's step and elapsed time; SPS counts this process's steps only
    step0, time0 = 0, 0.0
    solved: dict[str, Any] = {"step": None, "s": None}
    interrupted = _InterruptFlag()

    checked_episodes = [-1]

    def stop(global_step: int) -> bool:
        """Checked after every stored step: Ctrl-C, or the target return reached (recomputed only when
        episodes have finished since the last check). Data parallel: never (the ranks vote after each rollout)."""
        if dp is not None:
            return False
        if tcfg.target_return is not None and solved["step"] is None and tracker.episodes != checked_episodes[0]:
            checked_episodes[0] = tracker.episodes
            mean = tracker.mean_return(tcfg.target_window)
            if mean is not None and mean >= tcfg.target_return:
                solved.update(step=global_step, s=time0 + time.perf_counter() - start)
        return interrupted.flag or solved["step"] is not None

    recurrent = bool(getattr(policy, "recurrent", False))
    collector = Collector(
        vec, policy, T, device, tracker, stop, algo.bptt_horizon if recurrent else 1, autocast_dtype=amp_dtype(tcfg.amp)
    )

    def checkpoint() -> Path | None:
        if not main:
            return None
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
            "time_s": time0 + time.perf_counter() - start,  # elapsed training time, resumed segments included
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
    if run.resume is not None or dp is not None:
        # continue where the last checkpoint left off: weights, optimizer, LR schedule (update count), step,
        # RNG states and the episode window; envs start fresh episodes, seeded from the resumed step.
        # Data parallel: rank 0 reads the run's latest checkpoint, if it has one, and hands it to every rank.
        try:
            if dp is None:
                state = _load_latest(run_dir)
            else:
                state = dp.broadcast_object(_load_latest(run_dir) if main and _has_checkpoint(run_dir) else None)
            if state is not None or dp is None:
                updates_done, resume_step, time0 = _restore(
                    state, policy, optimizer, collector, tracker, learner, best, restore_episodes=main
                )
                if not main:
                    seed_everything((rank_seed + resume_step) % 2**32)
        except BaseException:
            interrupted.restore()
            vec.close()
            raise
        step0 = resume_step or 0
        if updates_done >= num_updates:  # nothing left to train: report the run as it was
            interrupted.restore()
            vec.close()
            return _already_done(run_dir, collector.global_step, time0, tracker)
    try:
        logger: Any = (
            RunLogger(
                run_dir, num_updates * batch_size, tcfg.progress, run.logger, config_container, resume_step=resume_step
            )
            if main
            else NoLogger()
        )
    except BaseException:
        interrupted.restore()
        vec.close()
        raise
    env_seed = rank_seed + (resume_step or 0)
    next_checkpoint = (collector.global_step // tcfg.checkpoint_interval + 1) * tcfg.checkpoint_interval
    vec.reset(seed=env_seed)
    train_start = time.perf_counter()
    timing = collector.timing | {"learn_s": 0.0}
    failure: str | None = None
    params_ok = True
    shared: dict[str, Any] = {}  # data parallel: the all-ranks episode stats of the latest vote
    terminate = TerminateOnSigterm() if dp is not None else None
    try:  # the outer try: a SIGTERM that arrives while a failure below is being handled
        try:
            for update in range(updates_done + 1, num_updates + 1):
                # rollout (sync or async groups of agents, see collector.py)
                steps_before, episodes_before = collector.global_step, tracker.episodes
                buf = collector.collect()
                learn_begin = time.perf_counter()
                if dp is not None:
                    # every rank: the global step, the episode stats and whether to stop (one small all_reduce)
                    shared = vote_after_rollout(
                        dp, collector, steps_before, episodes_before, tracker, tcfg, interrupted.flag
                    )
                    if shared["solved"] and solved["step"] is None:
                        solved.update(step=collector.global_step, s=time0 + time.perf_counter() - start)
                    if shared["stop"]:
                        interrupted.flag = interrupted.flag or not shared["solved"]
                        break
                if buf is None:
                    break
                progress = (update - 1.0) / num_updates
                if algo.anneal_lr:
                    optimizer.param_groups[0]["lr"] = run.lr * (1.0 - progress)
                stats, b_values, b_returns = ppo_update(
                    policy, optimizer, buf, algo, collector.global_step, progress, learner, dp, tcfg.amp, scaler,
                    loss_fn,
                )  # fmt: skip
                if compile_times:
                    timing["compile_s"] = sum(compile_times.values())
                updates_done = update
                timing.update(collector.timing)
                timing["learn_s"] += time.perf_counter() - learn_begin
                if dp is not None:
                    timing.update(dp.timing)

                # log and checkpoint
                now = time.perf_counter()
                elapsed = (time0 + now - start, now - train_start)
                metrics = _metrics(stats, collector.global_step, step0, *elapsed, tracker, b_values, b_returns, vec)
                if dp is not None:
                    metrics.update(episode_return=shared["episode_return"], episode_length=shared["episode_length"])
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
        except (TrainingError, VectorizerError, Terminated) as exc:
            failure = str(exc)
            # a rank stopped by its launcher may be mid-update: the last interval checkpoint stays the latest
            params_ok = not isinstance(exc, (NonFiniteParameters, Terminated))
        except RuntimeError as exc:
            if dp is None:
                raise
            # a collective failed: another rank died, or hung past dist.timeout_s; this rank may be mid-update
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            first = first.split(". This is typically")[0]  # gloo's advice paragraph
            failure = f"rank {rank}: a collective failed (another rank died or waited past dist.timeout_s): {first}"
            params_ok = False
        finally:
            if terminate is not None:
                terminate.restore()
            interrupted.restore()
            logger.close()
            vec.close()
    except Terminated as exc:
        failure, params_ok = failure or str(exc), False

    status = "interrupted" if interrupted.flag else "solved" if solved["step"] is not None else "completed"
    if failure is not None:
        status = "failed"
    # a non-finite loss or gradient is caught before it reaches the parameters, which are then the last good
    # ones; non-finite parameters are never saved (the last good checkpoint stays the latest)
    if params_ok:
        checkpoint()
    global_step = collector.global_step
    now = time.perf_counter()
    spread = dp.parameter_spread(policy) if dp is not None and failure is None else None
    if not main:
        if failure is not None:
            raise TrainingError(failure)
        return {"status": status, "global_step": global_step, "rank": rank}
    summary = {
        "status": status,
        "global_step": global_step,
        "wall_time_s": time0 + now - start,
        "sps": (global_step - step0) / max(now - train_start, 1e-9),
        "resumed_from_step": resume_step,
        "mean_return_last_100": tracker.mean_return(min(100, len(tracker.recent_returns)) or None),
        "episodes": tracker.episodes,
        "solved_at_step": solved["step"],
        "solved_at_s": solved["s"],
        "startup_s": train_start - start,
        **timing,
        **({"compile_first_call_s": dict(compile_times)} if compile_times else {}),
        "error": failure,
    }
    if dp is not None:  # all ranks' episodes, from the last vote
        summary.update(world_size=world, mean_return_last_100=shared.get("mean_return_last_100"))
        summary.update(param_rank_spread=spread)  # max |difference| of a parameter between ranks: 0.0
        summary.update(episodes=shared.get("episodes", summary["episodes"]))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if failure is not None:
        raise TrainingError(f"{failure} (run saved in {run_dir})")
    return summary


def _already_done(run_dir: Path, global_step: int, time0: float, tracker: EpisodeTracker) -> dict[str, Any]:
    """The summary of a resumed run that had already done all its updates: nothing is trained or written.

    Its ``status`` is ``already completed``; the other values are those of the run's ``summary.json`` (when
    readable), so the SPS is the one measured when the run trained, not a number divided by no time.
    """
    path = run_dir / "summary.json"
    try:
        saved: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    summary: dict[str, Any] = {
        "global_step": global_step,
        "wall_time_s": time0,
        "sps": global_step / time0 if time0 > 0 else 0.0,
        "mean_return_last_100": tracker.mean_return(min(100, len(tracker.recent_returns)) or None),
        "episodes": tracker.episodes,
        "solved_at_step": None,
        "solved_at_s": None,
        "error": None,
    }
    if saved.get("global_step") == global_step:
        summary.update(saved)
    return summary | {"status": "already completed", "resumed_from_step": global_step}


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


def _has_checkpoint(run_dir: Path) -> bool:
    try:
        find_checkpoint(run_dir)
    except FileNotFoundError:
        return False
    return True


def _load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The latest checkpoint of ``run_dir``; None when it has none (killed before its first checkpoint)."""
    try:
        return load_checkpoint(run_dir)
    except FileNotFoundError:
        return None


def _restore(
    state: dict[str, Any] | None,
    policy: Any,
    optimizer: Adam,
    collector: Collector,
    tracker: EpisodeTracker,
    learner: LearnerState,
    best: dict[str, Any],
    restore_episodes: bool = True,
) -> tuple[int, int, float]:
    """Load a checkpoint ``state`` (:func:`_load_latest`) into the training state.

    A run killed before its first checkpoint (``state`` None) restarts from step 0 in the same directory.
    ``restore_episodes``: also the RNG states and the episode window (data parallel: rank 0 only, whose they are).

    Returns:
        (updates done, global step, elapsed seconds; 0 for checkpoints written before it was saved).
    """
    if state is None:
        return 0, 0, 0.0
    try:
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].endswith(":"):  # load_state_dict: "Error(s) in loading ...:" then the keys
            detail = f"the checkpoint does not fit this config's policy ({lines[1].rstrip('.')}"
            detail += f", and {len(lines) - 2} more)" if len(lines) > 2 else ")"
        else:
            detail = lines[0] if lines else type(exc).__name__
        raise TrainingError(f"cannot resume from '{state['path']}': {detail}") from None
    collector.global_step = int(state["global_step"])
    learner.kl_coef = state.get("learner", {}).get("kl_coef", learner.kl_coef)
    best["value"] = state.get("best")
    if not restore_episodes:
        return int(state.get("update", 0)), collector.global_step, float(state.get("time_s", 0.0))
    if "rng" in state:
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
    episodes = state.get("episodes", {})
    tracker.recent_returns.extend(episodes.get("returns", []))
    tracker.recent_lengths.extend(episodes.get("lengths", []))
    tracker.episodes = int(episodes.get("count", 0))
    return int(state.get("update", 0)), collector.global_step, float(state.get("time_s", 0.0))


def _metrics(
    stats: list[Any],
    global_step: int,
    step0: int,
    elapsed: float,
    train_elapsed: float,
    tracker: EpisodeTracker,
    b_values: torch.Tensor,
    b_returns: torch.Tensor,
    vec: Any,
) -> dict[str, Any]:
    """One metrics line: ``time_s`` is the run's elapsed time (resumed segments included); ``sps`` the steps of
    this process (since ``step0``) over its ``train_elapsed`` seconds of training."""
    mean_ret, mean_len = tracker.pop_since()
    var_returns = b_returns.var()
    explained_var = (1.0 - (b_returns - b_values).var() / var_returns).item() if var_returns > 0 else float("nan")
    metrics: dict[str, Any] = {
        "global_step": global_step,
        "time_s": elapsed,
        "sps": (global_step - step0) / max(train_elapsed, 1e-9),
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
