"""train.amp (issue 15 item 2): autocast of the learner's forward/backward, float32 loss, dynamic loss scaling
for float16. Runs on the CPU (torch's CPU autocast has bfloat16 and float16); the CUDA runs are gpu tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thrust_cli.commands.train import train
from thrust_cli.learn.optim import LossScaler
from thrust_cli.run.config import ConfigError, compose_config


def test_loss_scaler_unscales_skips_overflows_and_grows() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    scaler = LossScaler(scale=8.0, growth_interval=2)
    p.grad = torch.tensor([8.0, 16.0, -8.0])
    assert scaler.unscale([p]) and torch.equal(p.grad, torch.tensor([1.0, 2.0, -1.0]))
    p.grad = torch.tensor([1.0, float("inf"), 0.0])
    assert not scaler.unscale([p]) and scaler.scale == 4.0 and scaler.skipped == 1
    for _ in range(2):
        p.grad = torch.ones(3)
        assert scaler.unscale([p])
    assert scaler.scale == 8.0  # two finite steps in a row doubled it


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_run_learns_cartpole_as_the_float32_one_does(amp: str, tmp_path: Path) -> None:
    """The shipped CartPole preset (150k steps, ~4 s) reaches the same end-of-run return under autocast."""
    overrides = ["env=cartpole", "train.progress=none", "logger=none"]
    reference = train(compose_config(overrides), tmp_path / "fp32")
    summary = train(compose_config([*overrides, f"train.amp={amp}"]), tmp_path / amp)
    assert summary["status"] == "completed"
    assert reference["mean_return_last_100"] >= 450
    assert summary["mean_return_last_100"] >= 450


def test_a_wrong_amp_value_is_one_line() -> None:
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["train.amp=fp32"])
    message = str(excinfo.value)
    assert "\n" not in message and "train.amp" in message and "bf16" in message, message


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cuda_learns_cartpole(amp: str, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    overrides = ["env=cartpole", "device=cuda", f"train.amp={amp}", "train.progress=none", "logger=none"]
    summary = train(compose_config(overrides), tmp_path / amp)
    assert summary["status"] == "completed" and summary["mean_return_last_100"] >= 450
