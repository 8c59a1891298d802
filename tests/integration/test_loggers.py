"""W&B and Neptune offline runs written by `thrust train`, read back with each tool's own reader and compared
with metrics.jsonl. Skipped when the extra (thrust-rl[wandb], thrust-rl[neptune]) is not installed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thrust_cli.cli import app


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("WANDB_MODE", "WANDB_DIR", "NEPTUNE_MODE", "NEPTUNE_DATA_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def train_run(runner: CliRunner, *overrides: str) -> Path:
    result = runner.invoke(app, ["train", "debug=fast", "train.progress=none", *overrides])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def jsonl(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def finite_numbers(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def wandb_records(run_file: Path) -> list[dict[str, Any]]:
    """The records of a ``.wandb`` transaction log, decoded by W&B's own reader (``wandb leet inspect``)."""
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def wandb_segments(run_dir: Path) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(run id, config, history rows) of each offline W&B run in ``run_dir``, oldest first."""
    segments = []
    for run_file in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        records = wandb_records(run_file)
        [run] = [r["run"] for r in records if r["type"] == "run"]
        history = [r["history"]["item"] for r in records if r["type"] == "history"]
        segments.append((run["run_id"], run["config"]["update"], history))
    return segments


def assert_same_values(logged: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in finite_numbers(expected).items():
        assert logged[key] == pytest.approx(value, rel=1e-12, abs=0), key


def test_wandb_offline_run_reads_back_equal_to_metrics_jsonl_and_resume_continues_it(runner: CliRunner) -> None:
    pytest.importorskip("wandb")
    run_dir = train_run(runner, "logger.backends=[tensorboard,wandb]")
    run_id = json.loads((run_dir / "logger_ids.json").read_text())["wandb"]
    [(first_id, config, history)] = wandb_segments(run_dir)
    assert first_id == run_id
    assert config["algo"]["num_steps"] == 32 and config["logger"]["backends"] == ["tensorboard", "wandb"]
    rows = jsonl(run_dir)
    assert [h["global_step"] for h in history] == [r["global_step"] for r in rows]
    for logged, expected in zip(history, rows, strict=True):
        assert_same_values(logged, expected)
    assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard alongside
    assert not (Path.cwd() / "wandb").exists()  # under the run directory, not the working directory

    resumed = runner.invoke(app, ["train", f"resume={run_dir}", "train.total_timesteps=6144"])
    assert resumed.exit_code == 0, resumed.output
    segments = wandb_segments(run_dir)
    assert [seg_id for seg_id, _, _ in segments] == [run_id, run_id]  # the same W&B run, continued
    rows = jsonl(run_dir)
    later = segments[1][2]
    assert [h["global_step"] for h in later] == [r["global_step"] for r in rows if r["global_step"] > 4096]
    assert_same_values(later[-1], rows[-1])


def neptune_series(run_dir: Path) -> tuple[dict[str, Any], dict[str, list[tuple[int, float]]]]:
    """(assigned fields, float series by key) of the offline Neptune run in ``run_dir``, read with the disk
    queue reader that ``neptune sync`` uses."""
    from neptune.core.components.queue.disk_queue import DiskQueue
    from neptune.internal.operation import LogFloats, Operation

    [container] = (run_dir / ".neptune" / "offline").iterdir()
    fields: dict[str, Any] = {}
    series: dict[str, list[tuple[int, float]]] = {}
    with DiskQueue(container, lambda op: op.to_dict(), Operation.from_dict, threading.RLock()) as queue:
        while batch := queue.get_batch(1000):
            for op in (element.obj for element in batch):
                key = "/".join(op.path)
                if isinstance(op, LogFloats):
                    series.setdefault(key, []).extend((int(v.step), v.value) for v in op.values)
                elif hasattr(op, "value"):
                    fields[key] = op.value
    return fields, series


def test_neptune_offline_run_reads_back_equal_to_metrics_jsonl(runner: CliRunner) -> None:
    pytest.importorskip("neptune")
    run_dir = train_run(runner, "logger=neptune", "logger.run_name=neptune-test")
    assert not (Path.cwd() / ".neptune").exists()  # under the run directory, not the working directory
    fields, series = neptune_series(run_dir)
    assert fields["sys/name"] == "neptune-test" and fields["config/algo/num_steps"] == 32
    rows = jsonl(run_dir)
    for key in ("sps", "policy_loss", "value_loss", "entropy", "time/learn_s"):
        assert series[f"metrics/{key}"] == [(r["global_step"], pytest.approx(r[key], rel=1e-12)) for r in rows]
    assert not list(run_dir.glob("events.out.tfevents.*"))  # logger=neptune: Neptune only
