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


def test_loss_scaler_skips_when_any_of_several_gradients_overflows() -> None:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    for p, g in zip(params, ([4.0, 4.0], [float("nan"), 0.0], [2.0, 2.0]), strict=True):
        p.grad = torch.tensor(g)
    scaler = LossScaler(scale=2.0)
    assert not scaler.unscale(params) and scaler.scale == 1.0
    assert torch.equal(params[0].grad, torch.tensor([4.0, 4.0]))  # untouched: the step is skipped


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16])
def test_rollout_inference_runs_under_the_updates_autocast(amp: torch.dtype) -> None:
    """The stored log-probs and values come from the autocast forward that the update repeats (so its first
    ratio is 1 up to batch-size effects, here exactly), not from a float32 forward that differs by ~1e-4."""
    from functools import partial

    from envs_cython.cartpole import CartPole
    from thrust_cli.learn.collector import Collector
    from thrust_cli.learn.policies import MLPPolicy
    from thrust_cli.learn.rollout import EpisodeTracker
    from thrust_cli.vector.serial import Serial

    torch.manual_seed(0)
    policy = MLPPolicy(4, 2, hidden_size=64)
    with torch.no_grad():  # larger weights: logits of a few units, where low precision shows
        for p in policy.parameters():
            p.mul_(8.0)
    vec = Serial(partial(CartPole), num_envs=8, seed=0)
    cpu = torch.device("cpu")
    coll = Collector(vec, policy, 32, cpu, EpisodeTracker(8, 10), lambda _: False, autocast_dtype=amp)
    vec.reset(seed=0)
    buf = coll.collect()
    vec.close()
    assert buf is not None and buf.logprobs.dtype == buf.values.dtype == torch.float32
    obs, actions = buf.obs.flatten(0, 1), buf.actions.flatten()
    with torch.no_grad():
        with torch.autocast("cpu", amp):
            logits, values = policy(obs)  # all 256 rows at once, as a minibatch would
        same = policy.dist.evaluate(logits.float(), actions)[0]
        full = policy.dist.evaluate(policy(obs)[0], actions)[0]
    assert torch.allclose(buf.logprobs.flatten(), same, atol=1e-6)
    assert torch.allclose(buf.values.flatten(), values.float(), atol=1e-6)
    assert (buf.logprobs.flatten() - full).abs().max() > 1e-5  # float32 inference would have stored these


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
