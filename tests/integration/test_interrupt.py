"""Ctrl-C never loses a run: the trainer stops at a step boundary, saves a checkpoint and the summary."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.timeout(60)
def test_sigint_saves_checkpoint_and_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "thrust_cli.cli", "train", "train.total_timesteps=100000000", "train.progress=plain"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("outputs/*/*/metrics.jsonl")) or not any(
        p.stat().st_size for p in tmp_path.glob("outputs/*/*/metrics.jsonl")
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    run_dir = Path(stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["global_step"] > 0
    assert list((run_dir / "checkpoints").glob("step_*.pt"))
