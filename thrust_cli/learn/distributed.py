"""Data-parallel training over processes, GPUs and machines with ``torch.distributed`` (docs/distributed.md).

Every rank runs its own envs, vectorizer and rollout; the learners stay identical because every minibatch's
gradient is the sample-weighted mean over the ranks (ONE flattened ``all_reduce`` per minibatch, which also
carries the loss and the minibatch statistics), and the advantage normalization of a minibatch uses the mean and
std of the GLOBAL minibatch (``all_reduce`` of sum, sum of squares and count, once per epoch for all its
minibatches). So N ranks on N rollouts take the same steps as one process on the concatenated rollout
(``tests/unit/test_distributed_update.py``).

Processes are started by ``torchrun`` (c10d rendezvous, elastic restarts) or, for ``thrust train dist.nproc=N``,
by :func:`launch` through ``torch.distributed.launcher.api.elastic_launch`` — the same agent torchrun runs.
"""

from __future__ import annotations

import os
import signal
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch

# rank r seeds its envs with seed + r * RANK_SEED_OFFSET + i (env instance i) and its torch/numpy/python RNGs
# (action sampling) with (seed + r * RANK_SEED_OFFSET) mod 2**32: no two ranks share an env seed below 10**12
# env instances (plus the resumed step, which a restarted run adds to the env seeds)
RANK_SEED_OFFSET = 10**12
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class ElasticEnv:
    """What torchrun (or the elastic agent) tells each worker through its environment.

    Attributes:
        rank: ``RANK``, this worker's global rank (0 is the one that logs and writes checkpoints).
        world_size: ``WORLD_SIZE``, the number of workers in the job.
        local_rank: ``LOCAL_RANK``, the rank on this machine (the GPU index with nccl).
        run_id: ``TORCHELASTIC_RUN_ID``, the rendezvous id, the same for every restart of the job.
        restart_count: ``TORCHELASTIC_RESTART_COUNT``, 0, then 1, 2, ... after each elastic restart.
        max_restarts: ``TORCHELASTIC_MAX_RESTARTS``, the restarts the job allows (0 when unset).
    """

    rank: int
    world_size: int
    local_rank: int
    run_id: str  # TORCHELASTIC_RUN_ID: the rendezvous id, the same for every restart of the job
    restart_count: int  # TORCHELASTIC_RESTART_COUNT: 0, then 1, 2, ... after each elastic restart
    max_restarts: int


def elastic_env(environ: Any = None) -> ElasticEnv | None:
    """The torchrun worker environment of this process, or None when it was not started by torchrun.

    Args:
        environ: the mapping to read (default ``os.environ``); all of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
            ``MASTER_ADDR`` and ``MASTER_PORT`` must be present.
    """
    env = os.environ if environ is None else environ
    if not all(name in env for name in TORCHRUN_VARS):
        return None
    return ElasticEnv(
        rank=int(env["RANK"]),
        world_size=int(env["WORLD_SIZE"]),
        local_rank=int(env["LOCAL_RANK"]),
        run_id=env.get("TORCHELASTIC_RUN_ID", "none"),
        restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
        max_restarts=int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")),
    )


def choose_backend(backend: str, device: str) -> str:
    """``dist.backend``: ``auto`` is nccl for a CUDA device (``device=cuda``, or ``auto`` with CUDA), else gloo."""
    if backend != "auto":
        return backend
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


@dataclass
class DataParallel:
    """The process group of a data-parallel run and the collectives the learner needs.

    Attributes:
        rank: this process's global rank.
        world_size: the number of ranks.
        local_rank: the rank on this machine.
        elastic: the torchrun environment it was started with.
        backend: the ``torch.distributed`` backend in use, ``gloo`` or ``nccl``.
        timing: cumulative seconds in collectives (``allreduce_s``), logged as ``time/allreduce_s``.
    """

    rank: int
    world_size: int
    local_rank: int
    elastic: ElasticEnv
    backend: str
    timing: dict[str, float] = field(default_factory=lambda: {"allreduce_s": 0.0})

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that logs, checkpoints and writes ``summary.json``."""
        return self.rank == 0

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` in place over all ranks (sum or max) and return it; the time goes to ``timing``."""
        import torch.distributed as dist

        began = time.perf_counter()
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        self.timing["allreduce_s"] += time.perf_counter() - began
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """The ``tensor`` of every rank, concatenated along dim 0 in rank order (same shape on every rank)."""
        import torch.distributed as dist

        began = time.perf_counter()
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        self.timing["allreduce_s"] += time.perf_counter() - began
        return torch.cat(parts)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (any picklable object: a path, a checkpoint) on every rank."""
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Make every rank's parameters and buffers rank 0's (one flattened broadcast)."""
        import torch.distributed as dist

        tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
        if not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.broadcast(flat, src=0)
        with torch.no_grad():
            offset = 0
            for t in tensors:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def reduce_gradients(self, params: Sequence[torch.Tensor], weight: float, extras: torch.Tensor) -> torch.Tensor:
        """Replace each ``p.grad`` by ``sum over ranks of weight_r * grad_r``; return ``extras`` reduced alike.

        ``weight`` is this rank's share of the global minibatch (its samples / all ranks' samples, ``1/world``
        for equal minibatches), so the result is the gradient of the loss averaged over the global minibatch.
        ``extras`` (the loss and the minibatch statistics, [K]) travel in the same single ``all_reduce``.
        A parameter without a gradient counts as a zero gradient.
        """
        grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device) for p in params]
        flat = torch.cat([*grads, extras.reshape(-1).to(grads[0].dtype)])
        flat.mul_(weight)
        self.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n
        return flat[offset:]

    def parameter_spread(self, module: torch.nn.Module) -> float:
        """The largest difference of any parameter between two ranks (0.0: every rank holds the same weights)."""
        import torch.distributed as dist

        flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
        high, low = flat.clone(), flat.clone()
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        return float((high - low).max())

    def generator(self, seed: int, device: torch.device) -> torch.Generator:
        """A generator seeded alike on every rank: the minibatch permutation (and prioritized draws) agree."""
        gen = torch.Generator(device=device)
        gen.manual_seed(seed % 2**63)
        return gen

    def close(self) -> None:
        """Leave and destroy the process group (nothing if it is not initialized)."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def init_data_parallel(backend: str, device: str, timeout_s: float, environ: Any = None) -> DataParallel:
    """Join the process group of the torchrun job this process belongs to.

    Args:
        backend: ``dist.backend`` (auto, gloo or nccl); see :func:`choose_backend`.
        device: the run's ``device``; with nccl each process takes GPU ``LOCAL_RANK``.
        timeout_s: ``dist.timeout_s``: a collective that waits longer (a hung or dead rank) raises.
        environ: the environment to read the torchrun variables from (default ``os.environ``).

    Returns:
        The joined group, its backend resolved (``auto`` -> gloo or nccl).

    Raises:
        RuntimeError: not started by torchrun, or the rendezvous failed.
    """
    import torch.distributed as dist

    env = elastic_env(environ)
    if env is None:
        raise RuntimeError("not started by torchrun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT unset")
    name = choose_backend(backend, device)
    if name == "nccl":
        torch.cuda.set_device(env.local_rank)
    timeout = timedelta(seconds=timeout_s)
    environ = os.environ if environ is None else environ
    if environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # the agent's TCPStore outlives an elastic restart and env:// adds no per-attempt prefix to its keys, so
        # a restarted rank could read the address a dead rank of the previous attempt published there (seen:
        # gloo "Connection refused" on restart about one time in three); a prefix per attempt keeps them apart
        base = dist.TCPStore(
            environ["MASTER_ADDR"], int(environ["MASTER_PORT"]), env.world_size, is_master=False, timeout=timeout
        )
        store = dist.PrefixStore(f"thrust/{env.run_id}/attempt_{env.restart_count}", base)
        dist.init_process_group(name, store=store, rank=env.rank, world_size=env.world_size, timeout=timeout)
    else:
        dist.init_process_group(name, timeout=timeout)
    return DataParallel(env.rank, env.world_size, env.local_rank, env, name)


@dataclass
class LaunchResult:
    """How a :func:`launch` ended: ``failure`` is None on success, else one line naming the failed rank."""

    failure: str | None
    rank: int | None = None
    interrupted: bool = False  # Ctrl-C (or SIGTERM) reached the launcher


def launch(
    nproc: int, argv: Sequence[str], max_restarts: int = 0, environ: dict[str, str] | None = None
) -> LaunchResult:
    """Run ``python -m thrust_cli <argv>`` on ``nproc`` local ranks under the elastic agent (what torchrun does
    with ``--standalone --nproc-per-node nproc --max-restarts max_restarts``) and wait for it.

    Args:
        nproc: processes on this machine (``dist.nproc``).
        argv: the ``thrust`` arguments of every worker (``train ...``).
        max_restarts: elastic restarts of the whole group after a worker fails.
        environ: extra environment variables for the workers (set in this process for the launch, then
            restored).

    Returns:
        How it ended; a failure names the rank that caused it (a rank killed by a signal before one that merely
        failed in its next collective).
    """
    import signal
    import sys
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=max_restarts,
        monitor_interval=0.1,
    )
    saved = {k: os.environ.get(k) for k in (environ or {})}
    os.environ.update(environ or {})
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)}
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "thrust_cli", *argv)
    except SignalException:  # the agent's handler: it has stopped the ranks
        return LaunchResult("interrupted", interrupted=True)
    except ChildFailedError as exc:
        # a rank killed by a signal is the cause; the others then fail in their next collective
        # (the agent stops the survivors with SIGTERM, so a SIGTERM'd rank is the cause only if no other one was)
        killed = sorted(
            (f.exitcode == -signal.SIGTERM, f.timestamp, r) for r, f in exc.failures.items() if f.exitcode < 0
        )
        rank, failure = (killed[0][2], exc.failures[killed[0][2]]) if killed else exc.get_first_failure()
        cause = f"exit code {failure.exitcode}"
        if failure.exitcode < 0:
            try:
                cause = f"killed by {signal.Signals(-failure.exitcode).name}"
            except ValueError:
                cause = f"killed by signal {-failure.exitcode}"
        left = f"no restarts left after {max_restarts}" if max_restarts else "no restarts left"
        return LaunchResult(
            f"rank {rank} (local rank {failure.local_rank}, pid {failure.pid}) failed: {cause}; {left} "
            f"(dist.max_restarts={max_restarts})",
            rank,
        )
    finally:
        for sig, handler in handlers.items():  # the agent replaced them (elastic/multiprocessing/api.py)
            if handler is not None:
                signal.signal(sig, handler)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return LaunchResult(None)


def vote_after_rollout(
    dp: DataParallel,
    collector: Any,
    steps_before: int,
    episodes_before: int,
    tracker: Any,
    tcfg: Any,
    interrupted: bool,
) -> dict[str, Any]:
    """After each rollout, every rank: one all_reduce of the steps taken, the episodes finished, the target-return
    window and Ctrl-C flags, so all ranks agree on ``global_step`` (set on ``collector``), the logged episode stats
    (all ranks' episodes), and whether to stop. The target return is checked on the mean of every rank's last
    ``train.target_window`` episodes, once at least ``target_window`` have finished in all.

    Args:
        dp: the process group.
        collector: the rollout collector; its ``global_step`` is read, then set to the all-ranks count.
        steps_before: ``collector.global_step`` before this rollout.
        episodes_before: ``tracker.episodes`` before this rollout.
        tracker: this rank's episode tracker; its since-last-call means are consumed (``pop_since``).
        tcfg: the ``train`` config (``target_return``, ``target_window``).
        interrupted: this rank saw Ctrl-C; any rank's flag stops every rank.

    Returns:
        ``episode_return`` and ``episode_length`` (means over every rank's episodes of this rollout, None if
        none), ``mean_return_last_100`` (mean of every rank's last up to 100 returns), ``episodes`` (all ranks'
        total), ``solved`` and ``stop`` (solved or interrupted on some rank).
    """
    episodes_since = tracker.episodes - episodes_before
    mean_ret, mean_len = tracker.pop_since()
    recent = list(tracker.recent_returns)
    window = recent[-tcfg.target_window :]
    last100 = recent[-100:]
    local = torch.tensor(
        [
            collector.global_step - steps_before,
            (mean_ret or 0.0) * episodes_since,
            (mean_len or 0.0) * episodes_since,
            episodes_since,
            sum(window),
            len(window),
            sum(last100),
            len(last100),
            tracker.episodes,
            float(interrupted),
        ],
        dtype=torch.float64,
    )
    g = dp.all_reduce(local).tolist()
    collector.global_step = steps_before + int(g[0])
    solved = tcfg.target_return is not None and g[5] >= tcfg.target_window and g[4] / g[5] >= tcfg.target_return
    return {
        "episode_return": g[1] / g[3] if g[3] else None,
        "episode_length": g[2] / g[3] if g[3] else None,
        "mean_return_last_100": g[6] / g[7] if g[7] else None,
        "episodes": int(g[8]),
        "solved": bool(solved),
        "stop": bool(solved or g[9] > 0),
    }


class NoLogger:
    """What ranks other than 0 log to: nothing."""

    def log(self, metrics: dict[str, Any]) -> None:
        """Drop ``metrics``."""

    def close(self) -> None:
        """Nothing to close."""


class Terminated(Exception):
    """SIGTERM from the elastic agent: another rank failed and the job stops (or restarts)."""


class TerminateOnSigterm:
    """Data parallel: turns the agent's SIGTERM into :class:`Terminated`, so rank 0 writes ``summary.json``
    (status failed) before it exits; the agent waits 30 s for that before it sends SIGKILL."""

    def __init__(self) -> None:
        self._previous: Any = None
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._previous = None

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        self.restore()
        raise Terminated("stopped by the launcher (SIGTERM): another rank failed")

    def restore(self) -> None:
        """Put back the SIGTERM handler that was installed before this one (once; later calls do nothing)."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
