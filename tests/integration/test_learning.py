"""Learning runs. The smoke test runs in the fast suite (CI); the full solves carry @pytest.mark.slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrust_cli.config import compose_config
from thrust_cli.evaluate import evaluate
from thrust_cli.train import train


def test_smoke_cartpole_learns_within_a_few_seconds(tmp_path: Path) -> None:
    """A short run must lift the return well above a random policy's ~22."""
    cfg = compose_config(["train.progress=none", "train.target_return=150", "train.target_window=20"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "solved", summary


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shipped_defaults_solve_cartpole(tmp_path: Path, seed: int) -> None:
    """`thrust train env=cartpole` with the shipped defaults: 100-episode eval mean >= 475."""
    cfg = compose_config([f"seed={seed}", "train.progress=none"])
    train(cfg, tmp_path)
    result = evaluate(tmp_path, episodes=100)
    assert result["mean_return"] >= 475, result


@pytest.mark.slow
def test_gym_acrobot_learns(tmp_path: Path) -> None:
    cfg = compose_config(["env=gym", "env.id=Acrobot-v1", "train.total_timesteps=200000", "train.progress=none"])
    train(cfg, tmp_path)
    assert evaluate(tmp_path, episodes=20)["mean_return"] > -150
