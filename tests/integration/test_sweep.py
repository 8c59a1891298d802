"""`thrust sweep`: every point of the sweep is a full run; failures are recorded and the sweep goes on."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrust_cli.cli import app
from thrust_cli.commands.sweep import expand
from thrust_cli.run.config import ConfigError


def test_expand_is_the_product_of_the_sweeps() -> None:
    jobs = expand(["lr=1e-3,3e-4", "env.num_envs=16,32", "seed=1"])
    assert len(jobs) == 4
    assert ["lr=0.001", "env.num_envs=16", "seed=1"] in jobs
    with pytest.raises(ConfigError, match="invalid sweep"):
        expand(["lr=("])
    with pytest.raises(ConfigError) as info:  # the override named, without the grammar's token sets
        expand(["seed=1", "lr=1e-3,"])
    assert str(info.value) == (
        "invalid sweep override 'lr=1e-3,': mismatched input '<EOF>'; allowed: key=value or key=a,b,c "
        "(Hydra's override grammar)"
    )


@pytest.mark.timeout(120)
def test_sweep_writes_one_run_per_job_and_a_summary_with_failed_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "-m", "lr=1e-3,-1", "train.total_timesteps=2048", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    sweep_dir = Path(result.stdout.strip().splitlines()[-1])
    rows = list(csv.DictReader((sweep_dir / "sweep_summary.csv").read_text().splitlines()))
    assert [r["overrides"] for r in rows] == ["lr=0.001 train.total_timesteps=2048", "lr=-1 train.total_timesteps=2048"]
    assert rows[0]["status"] == "completed" and float(rows[0]["objective"]) > 0
    assert (sweep_dir / "0" / "summary.json").is_file() and (sweep_dir / "0" / ".hydra" / "config.yaml").is_file()
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "lr=-1.0 is invalid: must be > 0"


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep_dir / "sweep_summary.csv").read_text().splitlines()))


@pytest.mark.timeout(120)
def test_a_sweep_into_a_dir_holding_another_sweeps_job_reports_the_run_its_job_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # job 0 of an earlier sweep in the same directory: `thrust train` makes the new job's run dir 0_1
    earlier = tmp_path / "D" / "0"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text(
        json.dumps({"status": "completed", "global_step": 999, "sps": 1.0, "mean_return_last_100": 1234.0})
    )
    args = ["sweep", "seed=1", "train.total_timesteps=2048", "logger=none", "--dir", "D"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = _rows(tmp_path / "D")
    assert row["run_dir"] == str(tmp_path / "D" / "0_1") and row["steps"] == "2048"
    assert float(row["objective"]) != 1234.0
    assert json.loads((tmp_path / "D" / "0_1" / "summary.json").read_text())["global_step"] == 2048


def test_a_sweep_into_a_dir_that_holds_a_sweep_is_refused_and_leaves_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its sweep_summary.csv used to be replaced by the new sweep's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "sweep_summary.csv").write_text("job,objective\n0,480\n")
    result = CliRunner().invoke(app, ["sweep", "-m", "seed=1,2", "logger=none", "--dir", "D"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --dir 'D' already holds a sweep (sweep_summary.csv); give a new directory"
    assert (tmp_path / "D" / "sweep_summary.csv").read_text() == "job,objective\n0,480\n"
    assert sorted(p.name for p in (tmp_path / "D").iterdir()) == ["sweep_summary.csv"]


@pytest.mark.timeout(60)
def test_a_sweep_whose_every_job_fails_exits_1_after_the_table_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "lr=abc,xyz", "--dir", "D"])
    assert result.exit_code == 1, result.output
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "D")
    assert result.stderr.strip().splitlines()[-1] == "error: all 2 jobs failed; see sweep_summary.csv for the errors"
    assert "Traceback" not in result.output and "sweep (mean_return_last_100)" in result.stderr
    assert [r["status"] for r in _rows(tmp_path / "D")] == ["failed", "failed"]


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc): the sweep's jobs run in their own sessions."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the sweep's jobs through /proc")
@pytest.mark.timeout(120)
def test_sigint_stops_the_running_job_writes_the_summary_prints_the_dir_and_exits_130(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "D"
    cmd = [sys.executable, "-m", "thrust_cli.cli", "sweep", "lr=1e-3,3e-4,1e-4", "--dir", str(sweep_dir),
           "train.total_timesteps=100000000", "logger=none"]  # fmt: skip
    # background jobs start with SIGINT ignored; the sweep must get it as a Ctrl-C would deliver it
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    jobs: list[int] = []
    try:
        metrics = sweep_dir / "0" / "metrics.jsonl"
        deadline = time.monotonic() + 60
        while not (metrics.is_file() and metrics.stat().st_size):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        jobs = _children(proc.pid)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            jobs += _children(proc.pid)
            proc.kill()
            proc.communicate()
        for pid in jobs:  # never leave a 10^8-step job behind
            with contextlib.suppress(OSError):
                if b"thrust_cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stdout.strip().splitlines()[-1] == str(sweep_dir)
    rows = _rows(sweep_dir)
    assert [r["status"] for r in rows] == ["interrupted", "skipped", "skipped"], rows
    assert rows[0]["run_dir"] == str(sweep_dir / "0") and int(rows[0]["steps"]) > 0 and rows[0]["error"] == ""
    assert json.loads((sweep_dir / "0" / "summary.json").read_text())["status"] == "interrupted"
    assert list((sweep_dir / "0" / "checkpoints").glob("step_*.pt"))
    assert not (sweep_dir / "1").exists()
