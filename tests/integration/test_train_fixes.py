"""`thrust train` refuses a run that cannot start before making its run directory: one line, no empty directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from thrust_cli.cli import app
from thrust_cli.commands.train import TrainingError, preflight
from thrust_cli.run.config import compose_config

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="device=cuda is available here")
CANNOT_START = [
    pytest.param(["device=cuda"], "device=cuda but CUDA is not available; allowed here: cpu, auto", marks=NO_CUDA),
    pytest.param(["env=gym", "env.id=NoSuchEnv-v0"], "unknown Gymnasium env id 'NoSuchEnv-v0'"),
    pytest.param(["env=gym", "env.id=a b"], "unknown Gymnasium env id 'a b': Malformed environment ID"),
    pytest.param(["env=gym", "env.id="], "env.id is empty; give a Gymnasium id such as CartPole-v1"),
]


@pytest.mark.parametrize("overrides,message", CANNOT_START)
def test_preflight_rejects_a_run_that_cannot_start(overrides: list[str], message: str) -> None:
    with pytest.raises(TrainingError, match="^" + message.replace("(", r"\(")) as info:
        preflight(compose_config(overrides))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [[], ["env=gym", "env.id=Pendulum-v1"], ["env=snake"], ["env=pendulum"], ["env=memory"], ["env=busy"],
     ["policy=lstm", "algo.bptt_horizon=16"]],
)  # fmt: skip
def test_preflight_accepts_every_env_that_can_start(overrides: list[str]) -> None:
    preflight(compose_config(overrides))  # raises if it refused a run that trains


@pytest.mark.parametrize("overrides,message", CANNOT_START)
def test_a_run_that_cannot_start_fails_in_one_line_without_making_a_run_dir(
    overrides: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", *overrides, "train.progress=none", "logger=none"])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""  # no run directory printed
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}"), line
    assert not (tmp_path / "outputs").exists()
