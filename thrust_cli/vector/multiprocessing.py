"""Multiprocessing vectorizer: env blocks stepped by worker processes in shared memory, without busy-polling.

Same protocol as :class:`thrust_cli.vector.serial.Serial` (``reset / send / recv / log / close``).

Memory: the parent allocates every buffer (observations, actions, rewards, terminals, truncations,
final_observations, agent ids, and a control row per worker) once, in one anonymous shared block (a Linux
``memfd``; an unlinked temporary file elsewhere). It has no name in ``/dev/shm``, so nothing can leak there,
not even when the parent is killed with SIGKILL: the kernel frees it with the last process that maps it.
Worker ``k`` owns agents ``[k * A, (k + 1) * A)`` and builds its env objects over those rows, so the C envs
write into the block directly and ``recv()`` hands out NumPy views of it with no copy.

Waiting: the parent wakes worker ``k`` by posting its ``go`` semaphore; a worker that finished a command bumps
its ``done`` counter in its control row and posts the single ``done`` semaphore all workers share. A waiting
side first spins, for at most ``spin_us`` (workers, 100 µs) or ``parent_spin_us`` (parent, 20 µs), on
``sem_trywait`` (an atomic in user space, no system call) and ``sched_yield``, then blocks in
``sem_timedwait``. The spin hides the wake-up latency (20-50 µs on the 2-vCPU VM of docs/performance.md, where
blocking at once halves CartPole's throughput); the yield hands the core to a runnable process (two cores,
three processes); and the spin is adaptive: it runs only when the previous wait was short enough for it to
succeed (and on every 16th wait, to notice waits shortening again), so a worker waiting for a busy learner
blocks at once and takes no CPU from it. Blocking waits time out every 0.1 s to check the other side: the
parent checks ``Process.exitcode`` (a worker killed with SIGKILL is reported within 0.1 s), a worker checks
that its parent (or, under a forkserver, the process that started it) is alive and exits if not.

Sync mode (``batch_size == num_envs``) behaves like Serial under any call sequence. Async mode (EnvPool's
semantics): ``recv()`` waits until ``batch_size / envs_per_worker`` workers are ready, takes the first ones to
finish (workers found finished by the same check are ordered round-robin, so none is favoured) and returns
their agents sorted by index; ``send(actions)`` steps exactly that batch while the other workers keep
stepping. Adjacent workers give views; others are gathered into a staging copy. Env statistics are not sent
with every step: ``log()`` asks every worker for its envs' ``log()`` (one round trip per logging interval).

Start method: ``fork`` by default (13 ms to start 2 workers over 8192 CartPoles, against 150-200 ms for
``forkserver`` and ``spawn``, torch imported in the parent). Workers start in the constructor and run only env
code (never torch or OpenMP), so the threads torch may already run in the parent hold no lock a worker needs.
Python >= 3.12 warns about forking a multi-threaded process; ``start_method="forkserver"`` avoids the
question. Under ``spawn``/``forkserver`` the semaphores have names in ``/dev/shm`` (``sem.mp-*``) until
``close()``, or until the resource tracker removes them if the parent is killed with SIGKILL.

Faults: an exception in a worker is caught there and sent to the parent (type, message, the frame that
raised, the full traceback); a dead worker is noticed by its exit code. Either way the call that notices it
stops every worker (SIGTERM, SIGKILL after 0.5 s), joins them, frees the block and raises
:class:`VectorizerError` naming the worker, its env range and the cause. Any exception inside ``send``,
``recv``, ``reset`` or ``log`` (Ctrl-C's KeyboardInterrupt included) closes the vectorizer the same way.
Workers ignore SIGINT: Ctrl-C reaches the whole process group, and the parent decides.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing as mp
import os
import signal
import tempfile
import time
import traceback
import weakref
from multiprocessing import reduction
from pathlib import Path
from typing import Any, NoReturn

import gymnasium
import numpy as np

from envs_cython.base import Buffers, action_dtype
from thrust_cli.vector.serial import EnvCreator, VectorizerError, merge_logs, probe_env

__all__ = ["DEFAULT_PARENT_SPIN_US", "DEFAULT_SPIN_US", "Multiprocessing", "VectorizerError"]

DEFAULT_SPIN_US = 100.0  # workers' spin bound (see the module docstring)
DEFAULT_PARENT_SPIN_US = 20.0  # the parent's: it waits while workers compute, so it spins less
POLL_S = 0.1  # a blocked wait checks the other side this often
GRACE_S = 0.5  # close(): time a worker gets to exit before SIGTERM, and after SIGTERM before SIGKILL
_ALIGN = 64  # cache line: workers' rows never share one
# control row of worker k (int64): the command, its seed, and the worker's completion count and error flag
_CMD, _SEED, _HAS_SEED, _DONE, _ERROR = range(5)
_STEP, _RESET, _LOG, _CLOSE = 1, 2, 3, 4
_sched_yield = getattr(os, "sched_yield", lambda: None)

Batch = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, float]], np.ndarray]


class _Block:
    """Anonymous shared memory: a memfd (Linux) or an unlinked temporary file, mapped once per process.

    Pickled only when a ``spawn`` or ``forkserver`` worker starts: the fd travels with the process (as
    multiprocessing passes a Connection's) and the child maps it; ``fork`` children inherit the mapping.
    """

    def __init__(self, size: int, fd: int | None = None) -> None:
        if fd is None:
            name = f"thrust_{os.getpid()}_vec"
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create(name, os.MFD_CLOEXEC)
            else:  # pragma: no cover - macOS, BSD
                with tempfile.TemporaryFile(prefix=name) as file:
                    fd = os.dup(file.fileno())
            os.ftruncate(fd, size)
        self.fd: int | None = fd
        self.size = size
        self.mmap = mmap.mmap(fd, size)

    def array(self, offset: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(self.mmap, dtype=dtype, count=count, offset=offset).reshape(shape)

    def close_fd(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        """Drop this process's fd and mapping (the mapping stays while NumPy views of it are alive)."""
        self.close_fd()
        with contextlib.suppress(BufferError):  # views still exported: the mapping goes with the last of them
            self.mmap.close()

    def __reduce__(self) -> tuple[Any, ...]:
        if self.fd is None:
            raise RuntimeError("shared block already handed to the workers")
        return (_attach, (self.size, reduction.DupFd(self.fd)))


def _attach(size: int, dup_fd: Any) -> _Block:
    """Unpickle a :class:`_Block` in a ``spawn``/``forkserver`` worker: map the fd it received."""
    return _Block(size, dup_fd.detach())


def _layout(
    obs_space: gymnasium.spaces.Box, act_space: gymnasium.Space[Any], num_agents: int, num_workers: int
) -> tuple[dict[str, tuple[int, tuple[int, ...], np.dtype[Any]]], int]:
    """Offsets, shapes and dtypes of every array in the block, each aligned to a cache line; and its size."""
    obs_shape = (num_agents, *obs_space.shape)
    specs: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {
        "observations": (obs_shape, np.dtype(obs_space.dtype)),
        "actions": ((num_agents, *(act_space.shape or ())), action_dtype(act_space)),
        "rewards": ((num_agents,), np.dtype(np.float32)),
        "terminals": ((num_agents,), np.dtype(np.bool_)),
        "truncations": ((num_agents,), np.dtype(np.bool_)),
        "final_observations": (obs_shape, np.dtype(obs_space.dtype)),
        "agent_ids": ((num_agents,), np.dtype(np.int64)),
        "control": ((num_workers + 1, _ALIGN // 8), np.dtype(np.int64)),  # the last row: any worker failed
    }
    layout, offset = {}, 0
    for name, (shape, dtype) in specs.items():
        layout[name] = (offset, shape, dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        offset += -(-nbytes // _ALIGN) * _ALIGN
    return layout, max(offset, _ALIGN)


def _views(block: _Block, layout: dict[str, tuple[int, tuple[int, ...], np.dtype[Any]]]) -> dict[str, np.ndarray]:
    return {name: block.array(offset, shape, dtype) for name, (offset, shape, dtype) in layout.items()}


def _describe(err: BaseException) -> tuple[str, str]:
    """``raised Type: first line (at file:line in function)`` and the formatted traceback."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    lines = str(err).strip().splitlines()
    return f"raised {type(err).__name__}: {lines[0] if lines else ''}{where}", "".join(traceback.format_exception(err))


class _Waiter:
    """Takes one token of a semaphore: a bounded spin, then a blocking wait that checks the other side.

    The spin calls ``sem_trywait`` (an atomic in user space) and ``sched_yield`` (so a spinning process hands
    its core to a runnable one: two cores, three processes) for at most ``spin_s``; it runs only when the last
    wait was short enough for it to succeed, and on every 16th wait to notice when waits shorten again, so a
    process whose waits are long (a worker while the learner computes) blocks at once and takes no CPU.
    """

    def __init__(self, sem: Any, spin_s: float) -> None:
        self.sem = sem
        self.spin_s = spin_s
        self.last_wait = 0.0
        self.waits = 0

    def wait(self, on_timeout: Any) -> bool:
        """Take a token; every ``POLL_S`` of blocking call ``on_timeout()``, and give up when it returns True."""
        sem = self.sem
        if sem.acquire(False):
            self.last_wait = 0.0
            return True
        start = time.perf_counter()
        self.waits += 1
        if self.spin_s > 0 and (self.last_wait < self.spin_s or self.waits % 16 == 0):
            deadline = start + self.spin_s
            while time.perf_counter() < deadline:
                _sched_yield()
                if sem.acquire(False):
                    self.last_wait = time.perf_counter() - start
                    return True
        while not sem.acquire(timeout=POLL_S):
            if on_timeout():
                return False
        self.last_wait = time.perf_counter() - start
        return True


def _worker(
    index: int,
    env_creator: EnvCreator,
    block: _Block,
    layout: dict[str, tuple[int, tuple[int, ...], np.dtype[Any]]],
    objects: int,
    envs_per_object: int,
    agents_per_object: int,
    seed: int,
    go: Any,
    done: Any,
    conn: Any,
    spin_s: float,
) -> None:
    """Worker ``index``: build its env objects over its rows of the block, then serve commands until CLOSE."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent, main = os.getppid(), mp.parent_process()  # the same, unless a forkserver started us

    def orphaned() -> bool:  # the parent died without closing us
        return os.getppid() != parent or (main is not None and not main.is_alive())

    waiter = _Waiter(go, spin_s)
    block.close_fd()  # the mapping is all a worker needs
    views = _views(block, layout)
    control = views["control"][index]
    first_agent = index * objects * agents_per_object
    buffers = Buffers(**{name: views[name] for name in Buffers.__dataclass_fields__})
    envs = []
    try:
        for j in range(objects):
            lo = first_agent + j * agents_per_object
            object_seed = seed + (index * objects + j) * envs_per_object
            envs.append(
                env_creator(
                    num_envs=envs_per_object, buffers=buffers.slice(lo, lo + agents_per_object), seed=object_seed
                )
            )
    except Exception as err:
        conn.send(("error", *_describe(err)))
        return
    conn.send(("ready", None, ""))
    mine = buffers.slice(first_agent, first_agent + objects * agents_per_object)
    while True:
        if not waiter.wait(orphaned):
            return
        command = int(control[_CMD])
        if command == _CLOSE:
            break
        try:
            if command == _STEP:
                for env in envs:
                    env.step()
            elif command == _RESET:
                base = int(control[_SEED]) if control[_HAS_SEED] else None
                for j, env in enumerate(envs):
                    env.reset(None if base is None else base + (index * objects + j) * envs_per_object)
                mine.rewards[:] = 0
                mine.terminals[:] = False
                mine.truncations[:] = False
            elif command == _LOG:
                conn.send(("log", merge_logs([env.log() for env in envs]), ""))
                continue
        except Exception as err:
            conn.send(("error", *_describe(err)))
            control[_ERROR] = views["control"][-1, 0] = 1
        control[_DONE] += 1  # the parent reads the flag only after taking the token below
        done.release()
    for env in envs:
        env.close()


class _Workers:
    """The processes, semaphores, pipes and block of one vectorizer: what :meth:`shutdown` must release.

    Kept apart from :class:`Multiprocessing` so ``weakref.finalize`` can release them without a reference to
    the vectorizer (the safety net when ``close()`` is never called).
    """

    def __init__(self) -> None:
        self.procs: list[Any] = []
        self.gos: list[Any] = []
        self.conns: list[Any] = []
        self.block: _Block | None = None
        self.control: np.ndarray | None = None

    def shutdown(self, graceful: bool) -> None:
        """Stop every worker (CLOSE, then SIGTERM, then SIGKILL), reap it, free the block. Idempotent."""
        procs = [p for p in self.procs if p.pid is not None]
        if graceful and self.control is not None:
            for k, go in enumerate(self.gos):
                self.control[k, _CMD] = _CLOSE
                go.release()
            deadline = time.monotonic() + GRACE_S
            for p in procs:
                p.join(max(0.0, deadline - time.monotonic()))
        for signal_name in ("terminate", "kill"):
            alive = [p for p in procs if p.exitcode is None]
            for p in alive:
                getattr(p, signal_name)()
            deadline = time.monotonic() + GRACE_S
            for p in alive:
                p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            p.join()  # reap: no zombie survives
            p.close()
        for conn in self.conns:
            conn.close()
        if self.block is not None:
            self.block.release()
        self.procs, self.gos, self.conns, self.block, self.control = [], [], [], None, None


class Multiprocessing:
    """Envs stepped by ``num_workers`` processes, each owning a contiguous block, over shared memory.

    Args:
        env_creator: ``env_creator(num_envs=..., buffers=..., seed=...)`` returns an env over those buffers; it
            must be picklable for ``spawn``/``forkserver`` (a ``functools.partial`` of an env class is).
        num_envs: total number of env instances.
        num_workers: worker processes; each steps ``num_envs / num_workers`` envs.
        batch_size: envs returned by one ``recv()``: ``None`` or ``num_envs`` for sync mode, a multiple of
            ``num_envs / num_workers`` below it for async mode.
        seed: base seed; env object ``j`` of worker ``k`` is seeded with ``seed`` + its first global env index,
            exactly as Serial seeds its objects, so sync mode equals ``Serial(num_objects=num_workers *
            objects_per_worker)`` bit for bit (and Serial with any blocking, for envs seeding env ``i`` with
            ``seed + i`` such as CartPole, Busy and GymnasiumEnv).
        objects_per_worker: env objects per worker, each over a contiguous part of its block.
        start_method: ``"fork"`` (default where available), ``"forkserver"`` or ``"spawn"``; see the module
            docstring.
        spin_us: bound of a worker's spin before it blocks, waiting for the next command, in microseconds.
        parent_spin_us: bound of the parent's spin before it blocks, waiting for workers (0: block at once).

    Raises:
        ValueError: sizes that do not divide, or an unknown start method.
        VectorizerError: a worker failed to build its envs (closed; message names worker and cause).
    """

    def __init__(
        self,
        env_creator: EnvCreator,
        num_envs: int,
        num_workers: int = 2,
        batch_size: int | None = None,
        seed: int = 0,
        objects_per_worker: int = 1,
        start_method: str | None = None,
        spin_us: float = DEFAULT_SPIN_US,
        parent_spin_us: float = DEFAULT_PARENT_SPIN_US,
    ) -> None:
        if num_workers < 1 or objects_per_worker < 1 or num_envs < 1 or num_envs % (num_workers * objects_per_worker):
            raise ValueError(
                f"num_envs={num_envs} must be a positive multiple of num_workers={num_workers} x "
                f"objects_per_worker={objects_per_worker}"
            )
        envs_per_worker = num_envs // num_workers
        batch_size = num_envs if batch_size is None else batch_size
        if not 0 < batch_size <= num_envs or batch_size % envs_per_worker:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of num_envs / num_workers = {envs_per_worker} "
                f"in [{envs_per_worker}, {num_envs}]"
            )
        start_method = start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        if start_method not in mp.get_all_start_methods():
            raise ValueError(f"unknown start_method {start_method!r}; allowed: {mp.get_all_start_methods()}")
        envs_per_object = envs_per_worker // objects_per_worker
        self.single_observation_space, self.single_action_space, agents_per_object = probe_env(
            env_creator, envs_per_object, seed
        )

        self.num_envs = num_envs
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.start_method = start_method
        self.agents_per_worker = agents_per_object * objects_per_worker
        self.num_agents = self.agents_per_worker * num_workers
        self._envs_per_worker = envs_per_worker
        self._workers_per_batch = batch_size // envs_per_worker
        self._sync = self._workers_per_batch == num_workers
        self._sent = [0] * num_workers  # commands sent to worker k that report through `done`
        self._in_flight: list[int] = []  # workers stepping, in the order they were sent
        self._ready: list[int] = []  # workers finished and not yet returned by recv(), in finishing order
        self._turn = 0  # rotates the order of workers found finished together
        self._batch: list[int] | None = None  # workers returned by the last recv(), waiting for send()
        self._result: Batch | None = None
        self._closed = False
        self._was_reset = False
        self._error: str | None = None
        self._last_check = time.monotonic()

        layout, size = _layout(self.single_observation_space, self.single_action_space, self.num_agents, num_workers)
        self._res = _Workers()
        self._finalizer = weakref.finalize(self, self._res.shutdown, False)
        self._res.block = block = _Block(size)
        views = _views(block, layout)
        self.buffers = Buffers(**{name: views[name] for name in Buffers.__dataclass_fields__})
        self.observations = self.buffers.observations
        self.actions = self.buffers.actions
        self.rewards = self.buffers.rewards
        self.terminals = self.buffers.terminals
        self.truncations = self.buffers.truncations
        self.final_observations = self.buffers.final_observations
        self.agent_ids = views["agent_ids"]
        self.agent_ids[:] = np.arange(self.num_agents)
        self._control = self._res.control = views["control"]
        self._stage: dict[str, np.ndarray] = {}  # gathered batches of non-adjacent workers (async mode)

        ctx: Any = mp.get_context(start_method)
        self._done: Any = ctx.Semaphore(0)
        self._waiter = _Waiter(self._done, parent_spin_us * 1e-6)
        try:
            for k in range(num_workers):
                go = ctx.Semaphore(0)
                parent_conn, child_conn = ctx.Pipe(duplex=False)
                args = (k, env_creator, block, layout, objects_per_worker, envs_per_object, agents_per_object, seed)
                proc = ctx.Process(
                    target=_worker,
                    args=(*args, go, self._done, child_conn, spin_us * 1e-6),
                    name=f"thrust-vec-{k}",
                    daemon=True,
                )
                self._res.procs.append(proc)
                self._res.gos.append(go)
                self._res.conns.append(parent_conn)
                proc.start()
                child_conn.close()  # the worker holds the only write end: its death reads as EOF
            block.close_fd()
            for k in range(num_workers):
                self._message(k, "ready")
        except BaseException:
            self.close()
            raise
        self.worker_pids: list[int] = [int(p.pid) for p in self._res.procs]

    # --- protocol -------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Reset every env (object ``j`` of worker ``k`` with ``seed`` + its first env index, as Serial does).

        Waits until all are reset, so ``observations`` holds the first observations on return; the next
        ``recv()`` returns them (in async mode, the first batch of workers).
        """
        self._check_open(need_reset=False)
        if seed is not None and not -(2**63) <= seed < 2**63:
            raise ValueError(f"seed must fit in int64, got {seed}")
        self._guard(self._reset, seed)

    def send(self, actions: np.ndarray) -> None:
        """Hand the actions of the last ``recv()`` batch to its workers, which start stepping.

        In sync mode ``send()`` may also follow ``reset()`` or ``send()`` directly, as with Serial.

        Shapes:
            actions: [B, *act_shape], B the agents of that batch (all agents in sync mode).

        Raises:
            RuntimeError: before ``reset()``, or in async mode when no batch waits for actions.
            ValueError: ``actions`` do not fit the batch (the batch keeps waiting; the vectorizer stays open).
        """
        self._check_open()
        if self._batch is None:
            if not self._sync:
                raise RuntimeError("send() applies to the batch of the last recv(); call recv() first")
            self._guard(self._recv)
        batch = self._batch
        assert batch is not None
        apw = self.agents_per_worker
        if batch[-1] - batch[0] + 1 == len(batch):
            if actions is not self.actions:
                self.actions[batch[0] * apw : (batch[-1] + 1) * apw] = actions
        else:
            actions = np.asarray(actions)
            if actions.shape[:1] != (len(batch) * apw,):
                raise ValueError(f"actions of shape {actions.shape} for a batch of {len(batch) * apw} agents")
            for i, k in enumerate(batch):
                self.actions[k * apw : (k + 1) * apw] = actions[i * apw : (i + 1) * apw]
        self._batch, self._result = None, None
        self._guard(self._start, batch, _STEP)

    def recv(self) -> Batch:
        """``(observations, rewards, terminals, truncations, infos, agent_ids)`` of the next ready batch.

        Views of the shared buffers when the batch's workers are adjacent (always in sync mode), otherwise a
        gathered copy; either is overwritten by the next ``recv()``. ``infos`` is always empty: env
        statistics come from :meth:`log`. Calling ``recv()`` again before ``send()`` returns the same batch.

        Shapes:
            observations: [B, *obs_shape]; rewards: [B] float32; terminals, truncations: [B] bool;
            agent_ids: [B] int64, global indices into the vectorizer's buffers (e.g. ``final_observations``).
        """
        self._check_open()
        return self._guard(self._recv)

    def log(self) -> dict[str, float]:
        """Episode statistics of all workers since the last call, averaged by episode count (like Serial).

        The parent asks: it waits for the workers in flight (their results stay ready for ``recv()``), sends
        each a LOG command and merges the ``env.log()`` dicts they send back. Cost: one round trip, once per
        logging interval.
        """
        self._check_open(need_reset=False)
        return self._guard(self._log)

    def close(self) -> None:
        """Stop the workers (a graceful CLOSE, then SIGTERM/SIGKILL after 0.5 s each), reap them, free the
        shared block. Idempotent; also run when the vectorizer is garbage-collected."""
        self._closed = True
        self._finalizer.detach()
        self._res.shutdown(graceful=self._error is None)
        self._done = None

    @property
    def closed(self) -> bool:
        """True once `close` ran or a worker failure closed the vectorizer."""
        return self._closed

    # --- implementation -------------------------------------------------------------------------------------
    def _check_open(self, need_reset: bool = True) -> None:
        if self._closed:
            raise VectorizerError(f"the vectorizer is closed{f' (after: {self._error})' if self._error else ''}")
        if need_reset and not self._was_reset:
            raise RuntimeError("call reset() first")

    def _guard(self, method: Any, *args: Any) -> Any:
        """Run ``method``; on any exception (a worker's fault, Ctrl-C) close the vectorizer and re-raise."""
        try:
            return method(*args)
        except BaseException:
            if not self._closed:
                self.close()
            raise

    def _reset(self, seed: int | None) -> None:
        self._collect(len(self._in_flight))  # results of steps in flight are dropped
        self._batch, self._result = None, None
        self._control[:, _SEED] = 0 if seed is None else seed
        self._control[:, _HAS_SEED] = seed is not None
        self._start(range(self.num_workers), _RESET)
        self._ready = []
        self._collect(self.num_workers)
        self._ready.sort()
        self._was_reset = True

    def _recv(self) -> Batch:
        if self._result is not None:
            return self._result
        if self._control[-1, 0]:  # a worker raised: say so now, even if others could fill the batch
            self._check_errors()
        if time.monotonic() - self._last_check > POLL_S:  # likewise for a dead worker, within 0.1 s
            self._check_alive()
        need = self._workers_per_batch
        if len(self._ready) < need:
            self._collect(need - len(self._ready))
        batch = sorted(self._ready[:need])
        del self._ready[:need]
        self._batch = batch
        apw = self.agents_per_worker
        if batch[-1] - batch[0] + 1 == need:
            lo, hi = batch[0] * apw, (batch[-1] + 1) * apw
            b = self.buffers
            self._result = (
                b.observations[lo:hi],
                b.rewards[lo:hi],
                b.terminals[lo:hi],
                b.truncations[lo:hi],
                [],
                self.agent_ids[lo:hi],
            )
        else:
            self._result = self._gather(batch)
        return self._result

    def _gather(self, batch: list[int]) -> Batch:
        apw = self.agents_per_worker
        parts = [slice(k * apw, (k + 1) * apw) for k in batch]
        b = self.buffers
        sources = {"observations": b.observations, "rewards": b.rewards, "terminals": b.terminals,
                   "truncations": b.truncations, "agent_ids": self.agent_ids}  # fmt: skip
        if not self._stage:
            self._stage = {name: np.empty_like(array[: len(batch) * apw]) for name, array in sources.items()}
        stage = self._stage
        for name, array in sources.items():
            np.concatenate([array[part] for part in parts], out=stage[name])
        return stage["observations"], stage["rewards"], stage["terminals"], stage["truncations"], [], stage["agent_ids"]

    def _log(self) -> dict[str, float]:
        self._collect(len(self._in_flight))
        for k in range(self.num_workers):
            self._control[k, _CMD] = _LOG
            self._res.gos[k].release()
        return merge_logs([self._message(k, "log") for k in range(self.num_workers)])

    def _start(self, workers: Any, command: int) -> None:
        control, gos = self._control, self._res.gos
        for k in workers:
            control[k, _CMD] = command
            self._sent[k] += 1
            self._in_flight.append(k)
            gos[k].release()

    def _collect(self, count: int) -> None:
        """Move at least ``count`` workers from in flight to ready, in the order they finish.

        Every finished command posts ``done`` once, and every finish the parent claims takes one token: it
        waits for one, then claims all finished workers it sees (a post follows its worker's ``_DONE``
        store, so a token always finds its worker) and takes their remaining tokens.
        """
        control = self._control
        while count > 0:
            self._take_token()
            finished = [k for k in self._in_flight if control[k, _DONE] == self._sent[k]]
            for _ in finished[1:]:
                self._take_token()
            for k in finished:
                self._in_flight.remove(k)
                if control[k, _ERROR]:
                    self._fail(k, *self._error_message(k))
            # workers found by the same check finished "together": order them round-robin, favouring none
            self._ready.extend(sorted(finished, key=lambda k: (k - self._turn) % self.num_workers))
            count -= len(finished)
        self._turn += 1

    def _take_token(self) -> None:
        self._waiter.wait(self._check_alive)

    def _check_errors(self) -> None:
        for k in range(self.num_workers):
            if self._control[k, _ERROR]:
                self._fail(k, *self._error_message(k))

    def _check_alive(self) -> bool:
        self._last_check = time.monotonic()
        for k, proc in enumerate(self._res.procs):
            if proc.exitcode is not None:
                self._fail(k, *self._error_message(k))
        return False

    def _message(self, k: int, expected: str) -> Any:
        """The next message of worker ``k``, which must be of kind ``expected``."""
        conn = self._res.conns[k]
        while not conn.poll(POLL_S):
            self._check_alive()
        try:
            kind, payload, worker_traceback = conn.recv()
        except EOFError:
            kind = "eof"
        if kind == "eof":  # out of the except block: the error names the cause, not an EOFError
            self._fail(k, *self._error_message(k))
        if kind == "error":
            self._fail(k, payload, worker_traceback)
        assert kind == expected, (kind, expected)
        return payload

    def _error_message(self, k: int) -> tuple[str, str]:
        """What happened to worker ``k``: its error message if it sent one, else how it died."""
        conn, proc = self._res.conns[k], self._res.procs[k]
        try:
            while conn.poll(0):
                kind, payload, worker_traceback = conn.recv()
                if kind == "error":
                    return payload, worker_traceback
        except (EOFError, OSError):
            pass
        proc.join(POLL_S)
        code = proc.exitcode
        if code is None:
            return "closed its pipe but is still running", ""
        if code < 0:
            return f"died: killed by signal {signal.Signals(-code).name}", ""
        return f"died: exited with code {code}", ""

    def _fail(self, k: int, cause: str, worker_traceback: str = "") -> NoReturn:
        lo = k * self._envs_per_worker
        self._error = f"worker {k} (envs {lo}-{lo + self._envs_per_worker - 1}) {cause}"
        self.close()
        raise VectorizerError(f"multiprocessing vectorizer: {self._error}", k, worker_traceback)
