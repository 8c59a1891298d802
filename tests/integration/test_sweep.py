"""`thrust sweep`: every point of the sweep is a full run; failures are recorded and the sweep goes on."""

from __future__ import annotations

import csv
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
