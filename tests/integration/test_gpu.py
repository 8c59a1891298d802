"""The CUDA path: training on the GPU writes the same kind of run, and its checkpoint evaluates on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thrust_cli.config import compose_config
from thrust_cli.evaluate import evaluate
from thrust_cli.train import train


@pytest.mark.gpu
def test_training_on_cuda_learns_and_checkpoint_loads_on_cpu(tmp_path: Path) -> None:
    cfg = compose_config(["device=cuda", "train.progress=none", "train.target_return=150", "train.target_window=20"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "solved", summary
    state = torch.load(next((tmp_path / "checkpoints").glob("step_*.pt")), map_location="cpu")
    assert all(t.device.type == "cpu" for t in state["policy"].values())
    assert evaluate(tmp_path, episodes=10)["mean_return"] > 50
    assert json.loads((tmp_path / "summary.json").read_text())["global_step"] > 0


@pytest.mark.gpu
def test_truncation_bootstrap_runs_on_cuda(tmp_path: Path) -> None:
    """A tiny time limit forces truncations, whose final-observation values are computed on the device."""
    cfg = compose_config(["device=cuda", "env.max_steps=8", "train.total_timesteps=4096", "train.progress=none"])
    assert train(cfg, tmp_path)["global_step"] >= 4096
