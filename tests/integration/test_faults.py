"""Faults during training end in one clear line, never a traceback or a lost run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import thrust_cli.learn.ppo as ppo_module
from thrust_cli.commands.evaluate import evaluate
from thrust_cli.commands.train import train
from thrust_cli.learn.ppo import TrainingError
from thrust_cli.run.config import compose_config


def children_of(pid: int) -> list[int]:
    """Child process ids from /proc (no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def test_nan_loss_stops_with_the_step_and_keeps_a_loadable_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = ppo_module.ppo_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss, stats = real_loss(*args, **kwargs)
        return (loss * float("nan") if calls["n"] > 20 else loss), stats

    monkeypatch.setattr(ppo_module, "ppo_loss", poisoned)
    cfg = compose_config(["train.progress=none", "train.total_timesteps=100000"])
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at global_step \d+ \(run saved in"):
        train(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite loss" in summary["error"]
    state = torch.load(next((tmp_path / "checkpoints").glob("step_*.pt")), weights_only=False)
    assert all(torch.isfinite(t).all() for t in state["policy"].values())
    assert evaluate(tmp_path, episodes=2)["episodes"] == 2


@pytest.mark.timeout(60)
def test_killed_worker_ends_training_with_one_line_naming_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thrust_cli.cli",
            "train",
            "vec=multiprocessing",
            "vec.num_workers=2",
            "train.total_timesteps=100000000",
            "train.progress=plain",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size for p in tmp_path.glob("outputs/*/*/metrics.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    children = children_of(proc.pid)
    assert len(children) == 2, children
    os.kill(children[1], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "worker 1" in errors[0] and "SIGKILL" in errors[0], stderr
    run_dir = Path(stdout.strip().splitlines()[-1])
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    assert list((run_dir / "checkpoints").glob("step_*.pt"))
