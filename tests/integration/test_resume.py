"""Resume: a run continues from its latest checkpoint — weights, optimizer, LR schedule, step, metrics series."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from thrust_cli.cli import app
from thrust_cli.commands.evaluate import evaluate
from thrust_cli.run.checkpoint import find_checkpoint, load_checkpoint


def steps_in_metrics(run_dir: Path) -> list[int]:
    return [json.loads(line)["global_step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_continues_step_optimizer_schedule_and_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["train", "train.total_timesteps=8192", "train.checkpoint_interval=4096"])
    assert first.exit_code == 0, first.output
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    before = load_checkpoint(run_dir)
    # a line a killed process wrote after its last checkpoint must not survive the resume
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"global_step": 10**9}) + "\n")

    resumed = runner.invoke(app, ["train", f"resume={run_dir}", "train.total_timesteps=16384"])
    assert resumed.exit_code == 0, resumed.output
    assert Path(resumed.stdout.strip().splitlines()[-1]) == run_dir
    after = load_checkpoint(run_dir)
    assert after["global_step"] == 16384 > before["global_step"]
    assert after["update"] == 2 * before["update"]
    assert after["optimizer"]["step"] > before["optimizer"]["step"]
    steps = steps_in_metrics(run_dir)
    assert steps == sorted(set(steps)) and steps[-1] == 16384 and 10**9 not in steps
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2

    bad = runner.invoke(app, ["train", f"resume={run_dir}", "env=gym"])
    assert bad.exit_code == 2 and "cannot change 'env=gym' when resuming" in bad.output


def test_keep_last_retains_only_the_newest_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["train", "train.total_timesteps=8192", "train.checkpoint_interval=1024", "train.keep_last=2"]
    )
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("step_*.pt"))] == [
        "step_000000007168.pt",
        "step_000000008192.pt",
    ]


def test_best_checkpoint_is_the_one_with_the_best_metric_and_survives_keep_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        ["train", "train.total_timesteps=16384", "train.checkpoint_interval=1024", "train.keep_last=1",
         "train.target_window=5", "logger=none"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    # the best value over all checkpoints, recomputed from the logged episode returns at each checkpoint step
    latest = load_checkpoint(run_dir)
    assert best["best"] is not None and best["best"] == best["metric_value"] == latest["best"]
    assert latest["metric_value"] <= best["best"]
    assert len(list((run_dir / "checkpoints").glob("step_*.pt"))) == 1
    assert best["global_step"] <= 16384 and evaluate(run_dir / "checkpoints" / "best.pt", episodes=2)["episodes"] == 2
    bad = CliRunner().invoke(app, ["train", "train.best_mode=median"])
    assert bad.exit_code == 2 and "train.best_mode='median' is invalid: must be one of max, min" in bad.output


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_sigkills_each_resumed_still_solve_cartpole(tmp_path: Path) -> None:
    """SIGKILL at random moments, resume after each: every checkpoint loads, the step count only grows."""
    rng = random.Random(0)
    base = [sys.executable, "-m", "thrust_cli.cli", "train", "train.progress=none", "train.checkpoint_interval=4096"]
    run_dir = tmp_path / "run"
    last_step = 0
    for kill in range(11):
        extra = [f"hydra.run.dir={run_dir}"] if kill == 0 else [f"resume={run_dir}"]
        proc = subprocess.Popen([*base, *extra], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill < 10:
            time.sleep(rng.uniform(1.0, 3.0))
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        try:
            state = load_checkpoint(find_checkpoint(run_dir))
        except FileNotFoundError:
            state = {"global_step": 0}
        assert state["global_step"] >= last_step
        last_step = state["global_step"]
    assert proc.returncode == 0
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] >= 150000
    assert all(torch.isfinite(t).all() for t in load_checkpoint(run_dir)["policy"].values())
    assert evaluate(run_dir, episodes=100)["mean_return"] >= 475


def test_tensorboard_series_continues_without_the_lost_segment(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from thrust_cli.run.tbwriter import ScalarWriter

    first = ScalarWriter(tmp_path)
    for step in (100, 200, 300):  # 300 was logged after the checkpoint at 200, then the process died
        first.add_scalars({"x": step}, step)
    first.close()
    second = ScalarWriter(tmp_path, purge_step=201)
    second.add_scalars({"x": 250.0}, 250)
    second.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.step for e in acc.Scalars("x")] == [100, 200, 250]


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_continues_time_and_reports_the_sps_of_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    # batches of 1,024 steps: an SPS counting the 8,192 steps done before the resume would be ~9x too high
    fast = ["train.checkpoint_interval=4096", "train.progress=none", "algo.num_steps=32"]
    first = runner.invoke(app, ["train", "train.total_timesteps=8192", "logger=none", *fast])
    assert first.exit_code == 0, first.output
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    before = _metrics(run_dir)
    first_summary = json.loads((run_dir / "summary.json").read_text())

    resumed = runner.invoke(app, ["train", f"resume={run_dir}", "train.total_timesteps=16384", *fast])
    assert resumed.exit_code == 0, resumed.output
    after = _metrics(run_dir)[len(before) :]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert after[0]["global_step"] == 8192 + 1024
    assert after[0]["time_s"] > before[-1]["time_s"]  # the run's time goes on from its checkpoint
    assert summary["wall_time_s"] > first_summary["wall_time_s"]
    fastest = max(m["sps"] for m in before)
    assert all(m["sps"] < 3 * fastest for m in after), ([m["sps"] for m in after], fastest)
    assert summary["sps"] < 3 * first_summary["sps"] and summary["resumed_from_step"] == 8192


def test_resuming_a_finished_run_trains_nothing_and_says_it_was_already_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["train", "train.total_timesteps=2048", "train.progress=none", "logger=none"])
    assert first.exit_code == 0, first.output
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    summary = json.loads((run_dir / "summary.json").read_text())

    again = runner.invoke(app, ["train", f"resume={run_dir}", "train.progress=none"])
    assert again.exit_code == 0, again.output
    assert Path(again.stdout.strip().splitlines()[-1]) == run_dir
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("already completed: 2,048 steps in "), line
    assert f"({summary['sps']:,.0f} SPS)" in line  # the SPS measured when it trained
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files  # nothing retrained or written
