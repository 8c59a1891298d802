"""The multiprocessing vectorizer: sync mode equals Serial bit for bit, async mode serves every agent with its own
trajectory, and every fault (kill -9, an exception in an env, Ctrl-C, a dead parent) ends fast and clean. Also
the Busy test env it is benchmarked with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import envs_cython.busy
from envs_cython.base import Buffers
from envs_cython.busy import Busy
from envs_cython.cartpole import CartPole
from envs_cython.gym_adapter import GymnasiumEnv
from thrust_cli.vector.multiprocessing import Multiprocessing, VectorizerError
from thrust_cli.vector.serial import Serial

ROOT = Path(__file__).resolve().parents[2]


class Faulty(CartPole):
    """CartPole whose object seeded ``fail_seed`` raises in its ``fail_at``-th step (or in its constructor)."""

    def __init__(
        self,
        num_envs: int = 1,
        buffers: Buffers | None = None,
        seed: int = 0,
        fail_seed: int = -1,
        fail_at: int = 3,
        in_init: bool = False,
    ) -> None:
        if in_init and seed == fail_seed:
            raise ValueError("boom in the constructor")
        super().__init__(num_envs, buffers, seed)
        self.fail_at = fail_at if seed == fail_seed else -1
        self.steps = 0

    def step(self, actions: np.ndarray | None = None) -> None:
        self.steps += 1
        if self.steps == self.fail_at:
            raise ValueError(f"boom at step {self.steps}, t={time.time():.6f}")
        super().step(actions)


def pid_gone(pid: int, timeout: float = 2.0, zombie_ok: bool = False) -> bool:
    """Process ``pid`` has exited and been reaped (or, with ``zombie_ok``, at least exited) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if zombie_ok and state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def thrust_shm_entries() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if "thrust" in name}


def random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2, n).astype(np.int32)


CREATORS = {
    "cartpole": partial(CartPole, max_steps=50),
    "busy": partial(Busy, work=20, obs_dim=3, max_steps=30),
    "gymnasium": partial(GymnasiumEnv, "CartPole-v1"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("env", list(CREATORS))
def test_sync_mode_equals_serial_bit_for_bit(env: str) -> None:
    creator = CREATORS[env]
    num_envs = 8 if env == "gymnasium" else 64
    serial = Serial(creator, num_envs, num_objects=1, seed=5)
    vec = Multiprocessing(creator, num_envs, num_workers=2, objects_per_worker=2, seed=5)
    rng = np.random.default_rng(0)
    try:
        serial.reset(5)
        vec.reset(5)
        np.testing.assert_array_equal(vec.observations, serial.observations)
        for t in range(200):
            actions = random_actions(rng, num_envs)
            vec.send(actions)
            serial.send(actions)
            obs, rewards, terminals, truncations, infos, agent_ids = vec.recv()
            assert obs.base is not None and np.shares_memory(obs, vec.observations)  # a view, no copy
            np.testing.assert_array_equal(obs, serial.observations, err_msg=f"step {t}")
            np.testing.assert_array_equal(rewards, serial.rewards)
            np.testing.assert_array_equal(terminals, serial.terminals)
            np.testing.assert_array_equal(truncations, serial.truncations)
            done = terminals | truncations
            np.testing.assert_array_equal(vec.final_observations[done], serial.final_observations[done])
            np.testing.assert_array_equal(agent_ids, np.arange(num_envs))
            assert infos == []
        assert serial.terminals.dtype == terminals.dtype and serial.observations.dtype == obs.dtype
        vec_log, serial_log = vec.log(), serial.log()
        assert vec_log["n"] == serial_log["n"] > 0
        assert vec_log == pytest.approx(serial_log)
    finally:
        vec.close()
        serial.close()


@pytest.mark.timeout(60)
def test_sync_mode_equals_serial_after_reseeding_and_direct_send_sequences() -> None:
    """Like Serial, send() may follow reset() or send() directly, and reset(None) continues the PRNGs."""
    serial = Serial(CartPole, 16, num_objects=4, seed=1)
    vec = Multiprocessing(CartPole, 16, num_workers=4, seed=1)
    rng = np.random.default_rng(1)
    try:
        for seed in (None, 9):
            serial.reset(seed)
            vec.reset(seed)
            for _ in range(30):
                actions = random_actions(rng, 16)
                vec.send(actions)
                serial.send(actions)
            vec.recv()
            np.testing.assert_array_equal(vec.observations, serial.observations)
    finally:
        vec.close()
        serial.close()


def action_of(agent: int, t: int) -> int:
    """The action agent ``agent`` takes at its ``t``-th step: deterministic, varied."""
    return (agent * 7919 + t * 104729 + (agent * t) % 13) % 2


@pytest.mark.timeout(60)
def test_async_mode_serves_every_agent_its_own_trajectory() -> None:
    """3 workers, batches of 2 formed in completion order (adjacent workers as views, others gathered): every
    worker keeps being served, agent_ids say whose rows are returned, and each agent's observations equal
    Serial's under the same per-agent action sequence."""
    num_envs, per_worker = 24, 8
    creator = partial(Busy, work=200, max_steps=40)
    vec = Multiprocessing(creator, num_envs, num_workers=3, batch_size=2 * per_worker, seed=3)
    seen: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
    gathered = 0
    try:
        vec.reset(3)
        for _ in range(120):
            obs, rewards, terminals, truncations, _, agent_ids = vec.recv()
            assert len(agent_ids) == 2 * per_worker and np.all(np.diff(agent_ids) > 0)
            blocks = sorted({int(i) // per_worker for i in agent_ids})
            np.testing.assert_array_equal(agent_ids, np.concatenate([np.arange(b * 8, b * 8 + 8) for b in blocks]))
            gathered += not np.shares_memory(obs, vec.observations)
            np.testing.assert_array_equal(obs, vec.observations[agent_ids])
            np.testing.assert_array_equal(rewards, vec.rewards[agent_ids])
            np.testing.assert_array_equal(terminals | truncations, (vec.terminals | vec.truncations)[agent_ids])
            for i, agent in enumerate(agent_ids):
                seen[agent].append(obs[i].copy())
            vec.send(np.array([action_of(int(a), len(seen[a]) - 1) for a in agent_ids], dtype=np.int32))
        assert gathered > 0, "no batch of non-adjacent workers: the gather path went untested"
        counts = [len(s) for s in seen]
        assert min(counts) >= 120 * 2 // 3 // 2, counts  # at least half a fair share: nobody starves
    finally:
        vec.close()

    serial = Serial(creator, num_envs, seed=3)
    serial.reset(3)
    for t in range(max(counts)):
        for agent in range(num_envs):
            if t < counts[agent]:
                np.testing.assert_array_equal(serial.observations[agent], seen[agent][t], err_msg=f"{agent} {t}")
        serial.send(np.array([action_of(a, t) for a in range(num_envs)], dtype=np.int32))


@pytest.mark.timeout(30)
def test_async_mode_protocol_errors_leave_the_vectorizer_open() -> None:
    vec = Multiprocessing(CartPole, 8, num_workers=2, batch_size=4)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            vec.recv()
        vec.reset(0)
        with pytest.raises(RuntimeError, match="recv"):
            vec.send(np.zeros(4, np.int32))
        first = vec.recv()
        assert vec.recv()[5] is first[5]  # recv() again before send(): the same batch
        with pytest.raises(ValueError):
            vec.send(np.zeros(3, np.int32))
        vec.send(np.zeros(4, np.int32))
        np.testing.assert_array_equal(vec.recv()[5], np.arange(4, 8))
        assert not vec.closed
    finally:
        vec.close()


@pytest.mark.timeout(30)
def test_kill_9_of_a_worker_raises_naming_it_within_1_s() -> None:
    vec = Multiprocessing(CartPole, 8192, num_workers=2)
    vec.reset(0)
    for _ in range(3):
        vec.send(np.zeros(8192, np.int32))
        vec.recv()
    pids = vec.worker_pids
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(VectorizerError, match=r"worker 1 \(envs 4096-8191\) died: killed by signal SIGKILL") as err:
        for _ in range(1000):
            vec.send(np.zeros(8192, np.int32))
            vec.recv()
    assert time.monotonic() - start < 1.0
    assert err.value.worker == 1 and "\n" not in str(err.value)
    assert vec.closed and all(pid_gone(pid) for pid in pids)
    vec.close()  # idempotent
    with pytest.raises(VectorizerError, match="closed"):
        vec.recv()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("batch_size", [None, 4])
def test_exception_in_env_step_raises_naming_worker_and_cause(batch_size: int | None) -> None:
    vec = Multiprocessing(partial(Faulty, fail_seed=4), 8, num_workers=2, batch_size=batch_size)
    pids = vec.worker_pids
    vec.reset(None)
    deadline = time.monotonic() + 10  # async mode: worker 1 reaches its third step when the scheduler lets it
    with pytest.raises(VectorizerError) as err:
        while time.monotonic() < deadline:
            _, _, _, _, _, ids = vec.recv()
            vec.send(np.zeros(len(ids), np.int32))
    message = str(err.value)
    assert time.time() - float(message.split("t=")[1].split()[0]) < 1.0, message
    assert "worker 1 (envs 4-7) raised ValueError: boom at step 3, t=" in message, message
    assert "(at test_vector_mp.py:" in message
    assert "in step)" in message and "\n" not in message
    assert "Traceback" in err.value.worker_traceback and "boom at step 3" in err.value.worker_traceback
    assert vec.closed and all(pid_gone(pid) for pid in pids)


@pytest.mark.timeout(30)
def test_exception_in_env_constructor_raises_from_the_constructor() -> None:
    with pytest.raises(VectorizerError, match=r"worker 1 \(envs 4-7\) raised ValueError: boom in the constructor"):
        Multiprocessing(partial(Faulty, fail_seed=4, in_init=True), 8, num_workers=2)


@pytest.mark.timeout(30)
def test_close_is_idempotent_reaps_workers_and_uses_no_named_shared_memory() -> None:
    before = thrust_shm_entries()
    vec = Multiprocessing(CartPole, 64, num_workers=2)
    pids = vec.worker_pids
    vec.reset(0)
    vec.send(np.zeros(64, np.int32))
    obs = vec.recv()[0]
    snapshot = obs.copy()
    maps = Path(f"/proc/{pids[0]}/maps").read_text()
    assert f"thrust_{os.getpid()}_vec" in maps  # the worker maps the parent's memfd
    assert thrust_shm_entries() == before
    vec.close()
    vec.close()
    assert vec.closed and all(pid_gone(pid) for pid in pids)
    np.testing.assert_array_equal(obs, snapshot)  # views stay valid after close: the mapping lives with them
    assert thrust_shm_entries() == before


SCRIPT = """
import multiprocessing, os, signal, sys
from functools import partial
import numpy as np
from envs_cython.busy import Busy
from thrust_cli.vector.multiprocessing import Multiprocessing

# a shell starts background jobs with SIGINT ignored, and Python keeps it so; thrust train installs its own handler
signal.signal(signal.SIGINT, signal.default_int_handler)

vec = Multiprocessing(partial(Busy, work=20000), 64, num_workers=2, batch_size={batch_size}, start_method="{method}")
vec.reset(0)
print(*vec.worker_pids, flush=True)
if sys.argv[1] == "die":
    os.kill(os.getpid(), 9)
try:
    while True:
        _, _, _, _, _, ids = vec.recv()
        vec.send(np.zeros(len(ids), np.int32))
except KeyboardInterrupt:
    vec.close()  # what train() does in its finally
    reaped = []
    for pid in vec.worker_pids:
        try:
            os.waitpid(pid, os.WNOHANG)
            reaped.append(False)
        except ChildProcessError:
            reaped.append(True)
    print("closed", all(reaped), len(multiprocessing.active_children()), flush=True)
    os._exit(130)  # as the CLI ends: no atexit handler runs
"""


def start_script(mode: str, batch_size: int, method: str = "fork") -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT.format(batch_size=batch_size, method=method)), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job: Ctrl-C reaches the workers too
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.communicate()
    return proc, [int(pid) for pid in line.split()]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("batch_size", [64, 32])
def test_ctrl_c_closes_cleanly_without_hang_zombie_or_leak(batch_size: int) -> None:
    before = thrust_shm_entries()
    proc, pids = start_script("run", batch_size)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
    try:
        stdout, stderr = proc.communicate(timeout=30)  # a hang detector: generous for loaded CI machines
    finally:
        if proc.poll() is None:  # never leave a hung script and its workers behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stdout.split() == ["closed", "True", "0"], stderr
    assert all(pid_gone(pid) for pid in pids)
    assert thrust_shm_entries() == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_workers_of_a_parent_killed_with_sigkill_exit_by_themselves(start_method: str) -> None:
    """Even a forkserver's workers, whose direct parent (the server) outlives the main process."""
    before = thrust_shm_entries()
    proc, pids = start_script("die", 64, start_method)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert all(pid_gone(pid, timeout=3.0, zombie_ok=True) for pid in pids)  # reaping them is init's job
    assert thrust_shm_entries() == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_other_start_methods_equal_serial(start_method: str) -> None:
    creator: Any = partial(Busy, work=5, max_steps=10)
    vec = Multiprocessing(creator, 16, num_workers=2, seed=2, start_method=start_method)
    serial = Serial(creator, 16, seed=2)
    try:
        vec.reset(2)
        serial.reset(2)
        for t in range(20):
            actions = np.full(16, t % 2, np.int32)
            vec.send(actions)
            serial.send(actions)
            np.testing.assert_array_equal(vec.recv()[0], serial.observations)
    finally:
        vec.close()


@pytest.mark.timeout(30)
def test_busy_env_steps_without_the_gil() -> None:
    """While one thread is inside a long Busy.step, another keeps running Python."""
    env = Busy(64, work=3_000_000)  # ~0.3 s per step
    env.reset(0)
    done: list[bool] = []
    thread = threading.Thread(target=lambda: (env.step(), done.append(True)))
    ticks = 0
    thread.start()
    while not done:
        ticks += 1
    thread.join()
    # ~10M ticks when the step releases the GIL; holding it, the step would leave this loop one switch
    # interval (5 ms, ~0.2M ticks) at most
    assert ticks > 2_000_000, ticks


@pytest.mark.timeout(120)
def test_busy_c_core_runs_1m_random_steps_clean_under_address_and_ub_sanitizers(run_under_sanitizers) -> None:  # type: ignore[no-untyped-def]
    out = run_under_sanitizers(Path(envs_cython.busy.__file__).parent / "busy_main.c")
    assert "1000000 agent-steps" in out and out.rstrip().endswith("ok")
