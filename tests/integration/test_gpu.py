"""The CUDA path: training on the GPU writes the same kind of run, and its checkpoint evaluates on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thrust_cli.commands.evaluate import evaluate
from thrust_cli.commands.train import train
from thrust_cli.run.config import compose_config


@pytest.mark.gpu
def test_training_on_cuda_learns_and_checkpoint_loads_on_cpu(tmp_path: Path) -> None:
    cfg = compose_config(["device=cuda", "train.progress=none", "train.target_return=150", "train.target_window=20"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "solved", summary
    state = torch.load(next((tmp_path / "checkpoints").glob("step_*.pt")), map_location="cpu", weights_only=False)
    assert all(t.device.type == "cpu" for t in state["policy"].values())
    assert evaluate(tmp_path, episodes=10)["mean_return"] > 50
    assert json.loads((tmp_path / "summary.json").read_text())["global_step"] > 0


@pytest.mark.gpu
def test_truncation_bootstrap_runs_on_cuda(tmp_path: Path) -> None:
    """A tiny time limit forces truncations, whose final-observation values are computed on the device."""
    cfg = compose_config(["device=cuda", "env.max_steps=8", "train.total_timesteps=4096", "train.progress=none"])
    assert train(cfg, tmp_path)["global_step"] >= 4096


@pytest.mark.gpu
@pytest.mark.parametrize(
    "options",
    [
        ["algo=vtrace", "algo.prio=true"],
        ["algo.kl_coef=1.0", "algo.target_kl=0.01", "algo.dual_clip_c=3", "algo.anneal_clip=true"],
        ["policy=lstm", "algo=vtrace", "algo.bptt_horizon=8"],
        ["env=pendulum", "algo.num_steps=64", "policy.squash=true"],
        ["env=snake", "env.num_envs=1", "policy=lstm", "algo.num_steps=16", "train.amp=bf16"],
        ["policy=lstm", "env.max_steps=8", "train.amp=fp16"],
    ],
    ids=["vtrace-prio", "kl-dual-anneal", "lstm-vtrace", "pendulum-squash", "snake-lstm-bf16", "lstm-fp16-trunc"],
)
def test_algo_options_and_gaussian_head_train_on_cuda(tmp_path: Path, options: list[str]) -> None:
    cfg = compose_config(["device=cuda", *options, "train.total_timesteps=8192", "train.progress=none", "logger=none"])
    assert train(cfg, tmp_path)["status"] == "completed"
    assert evaluate(tmp_path, episodes=3)["episodes"] == 3
