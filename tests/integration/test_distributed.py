"""Data-parallel training end to end (docs/distributed.md): torchrun, `thrust train dist.nproc=N`, two "nodes" on
this machine, elastic restarts after a SIGKILL, and failures that end the job quickly in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TINY = ["env=cartpole", "debug=fast", "logger=none", "train.progress=none"]
# long enough to be killed mid-run: ~10 s of CartPole on 2 ranks, a checkpoint every 16k steps
LONG = ["env=cartpole", "logger=none", "train.progress=none", "train.total_timesteps=600000",
        "train.checkpoint_interval=16384", "algo.num_steps=32", "algo.update_epochs=1"]  # fmt: skip
SNAKE_LSTM = ["env=snake", "policy=lstm", "env.num_envs=1", "env.num_snakes=16", "env.width=24", "env.height=24",
              "env.num_food=16", "algo.num_steps=32", "algo.bptt_horizon=16", "algo.minibatch_size=128",
              "algo.update_epochs=1", "train.total_timesteps=2048", "logger=none", "train.progress=none"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TORCHRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env()
    )  # fmt: skip


def _env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _rank_process(launcher: subprocess.Popen[str], rank: int, timeout: float = 60) -> psutil.Process:
    """The worker process of global ``rank`` under ``launcher`` (found by its RANK environment variable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "thrust_cli" in " ".join(child.cmdline()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no worker of rank {rank} under pid {launcher.pid}")


def _wait_for_checkpoint(run_dir: Path, launcher: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not list((run_dir / "checkpoints").glob("step_*.pt")):
        assert launcher.poll() is None, f"the job ended before its first checkpoint: {launcher.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.05)


def test_torchrun_two_ranks_train_with_identical_parameters_and_one_writer(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _torchrun(["--standalone", "--nproc-per-node", "2", "-m", "thrust_cli", "train", *TINY,
                        f"hydra.run.dir={run_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert summary["param_rank_spread"] == 0.0  # every rank holds exactly the same weights at the end
    assert summary["global_step"] >= 4096  # train.total_timesteps counts the steps of both ranks
    steps = [json.loads(line)["global_step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # one writer: rank 0
    assert steps[0] == 2 * 32 * 32  # the first update's global step: 2 ranks x num_steps x num_envs
    assert result.stdout.strip().splitlines() == [str(run_dir)]  # only rank 0 prints the run directory


@pytest.mark.parametrize(
    "overrides",
    [SNAKE_LSTM, [*TINY, "algo=vtrace", "algo.prio=true", "algo.bptt_horizon=8"]],
    ids=["snake-lstm", "cartpole-vtrace-prio"],
)
def test_torchrun_runs_lstm_and_vtrace_policies(overrides: list[str], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _torchrun(["--standalone", "--nproc-per-node", "2", "-m", "thrust_cli", "train", *overrides,
                        f"hydra.run.dir={run_dir}"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "completed" and summary["param_rank_spread"] == 0.0


def test_thrust_train_dist_nproc_starts_the_ranks_itself(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "thrust_cli", "train", "dist.nproc=2", *TINY, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    summary = _summary(run_dir)
    assert summary["world_size"] == 2 and summary["param_rank_spread"] == 0.0
    assert "completed: " in result.stderr


def test_two_launchers_with_c10d_rendezvous_form_one_job(tmp_path: Path) -> None:
    """Two "machines": one torchrun per node, --nnodes 2, meeting at a c10d rendezvous on this host."""
    run_dir = tmp_path / "run"
    args = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "thrust-test",
            "-m", "thrust_cli", "train", *TINY, f"hydra.run.dir={run_dir}"]  # fmt: skip
    nodes = [subprocess.Popen([*TORCHRUN, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(2)]  # fmt: skip
    outputs = [node.communicate(timeout=120) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    summary = _summary(run_dir)
    assert summary["world_size"] == 2 and summary["param_rank_spread"] == 0.0


def test_sigkill_of_a_rank_restarts_the_job_from_the_latest_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1", "-m", "thrust_cli", "train",
         *LONG, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        _wait_for_checkpoint(run_dir, job)
        _rank_process(job, 1).kill()
        out, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["resumed_from_step"] >= 16384  # the restarted ranks went on from a checkpoint
    assert summary["global_step"] >= 600000 and summary["param_rank_spread"] == 0.0
    steps = [json.loads(line)["global_step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # the series continues, no repeats
    assert out.strip().splitlines()[-1] == str(run_dir)


def test_sigkill_without_restarts_left_fails_fast_naming_the_rank(tmp_path: Path) -> None:
    """`thrust train dist.nproc=2`: every process gone within 30 s, one error line naming the rank, status failed."""
    run_dir = tmp_path / "run"
    job = subprocess.Popen(
        [sys.executable, "-m", "thrust_cli", "train", "dist.nproc=2", "dist.max_restarts=0", *LONG,
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        _wait_for_checkpoint(run_dir, job)
        workers = [_rank_process(job, r) for r in (0, 1)]
        workers[1].kill()
        killed = time.monotonic()
        out, err = job.communicate(timeout=60)
        gone = psutil.wait_procs(workers, timeout=max(0.0, 30 - (time.monotonic() - killed)))[1]
        assert not gone and time.monotonic() - killed < 30, "ranks still running 30 s after the failure"
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: rank 1 ") and "SIGKILL" in last and "no restarts left" in last, err[-2000:]
    assert _summary(run_dir)["status"] == "failed"
    assert out.strip().splitlines()[-1] == str(run_dir)


def test_torchrun_without_restarts_rank0_writes_failed_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "thrust_cli", "train", *LONG,
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        _wait_for_checkpoint(run_dir, job)
        _rank_process(job, 1).send_signal(signal.SIGKILL)
        killed = time.monotonic()
        job.communicate(timeout=60)
        assert time.monotonic() - killed < 30
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    summary = _summary(run_dir)
    assert summary["status"] == "failed" and summary["error"]


def test_a_hung_rank_is_caught_by_the_collective_timeout(tmp_path: Path) -> None:
    """SIGSTOP of rank 1: rank 0 gives up after dist.timeout_s and records why; the job ends."""
    run_dir = tmp_path / "run"
    job = subprocess.Popen(
        [sys.executable, "-m", "thrust_cli", "train", "dist.nproc=2", "dist.timeout_s=5", *LONG,
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    stopped = None
    try:
        _wait_for_checkpoint(run_dir, job)
        stopped = _rank_process(job, 1)
        stopped.suspend()
        began = time.monotonic()
        deadline = began + 60
        while not (run_dir / "summary.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (run_dir / "summary.json").is_file(), "rank 0 did not give up on the hung rank"
        assert time.monotonic() - began < 30
        stopped.resume()  # lets the agent's SIGTERM reach it
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    summary = _summary(run_dir)
    assert summary["status"] == "failed" and "dist.timeout_s" in summary["error"]
    assert job.returncode == 1 and err.strip().splitlines()[-1].startswith("error: rank ")


@pytest.mark.parametrize(
    "override,message",
    [
        ("dist.backend=nccl", "error: dist.backend=nccl needs device=cuda"),
        ("dist.nproc=0", "error: dist.nproc=0 is invalid: must be > 0"),
        ("dist.backend=mpi", "error: dist.backend='mpi' is invalid: must be one of auto, gloo, nccl"),
        ("dist.timeout_s=0", "error: dist.timeout_s=0.0 is invalid: must be > 0"),
        ("+dist.nodes=2", "error: unknown key 'dist.nodes'; allowed keys in 'dist': nproc, backend, timeout_s"),
    ],
)
def test_a_wrong_dist_setting_fails_at_start_in_one_line(override: str, message: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from thrust_cli.cli import app

    result = CliRunner().invoke(app, ["train", override, *TINY, f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert not (tmp_path / "run").exists()


def test_torchrun_environment_is_read_from_the_launcher_variables() -> None:
    from thrust_cli.learn.distributed import choose_backend, elastic_env

    assert elastic_env({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1",
           "TORCHELASTIC_RUN_ID": "job", "TORCHELASTIC_RESTART_COUNT": "2"}  # fmt: skip
    got = elastic_env(env)
    assert got is not None and (got.rank, got.world_size, got.local_rank, got.run_id, got.restart_count) == (
        3, 4, 1, "job", 2
    )  # fmt: skip
    assert choose_backend("auto", "cpu") == "gloo" and choose_backend("auto", "cuda") == "nccl"
    assert choose_backend("gloo", "cuda") == "gloo"
