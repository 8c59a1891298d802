"""train.compile (issue 15 item 4): torch.compile of the policy's forward passes and of the loss, first-call cost.

The fast tests compile with the ``aot_eager`` backend: TorchDynamo captures the same graphs and AOTAutograd
traces their backward, but no code is generated, so a compile takes a second instead of inductor's ~20 s on
2 cores. The inductor run (what ``train.compile=true`` uses) learns CartPole in the slow suite and on CUDA in the
gpu suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thrust_cli.commands.train import train
from thrust_cli.learn import compile as thrust_compile
from thrust_cli.learn.compile import FirstCallTimer, compile_loss, compile_policy
from thrust_cli.learn.loss import ppo_loss
from thrust_cli.learn.policies import LSTMPolicy, MLPPolicy
from thrust_cli.run.checkpoint import find_checkpoint, load_checkpoint
from thrust_cli.run.config import ConfigError, compose_config

FAST = ["env=cartpole", "train.progress=none", "logger=none"]


@pytest.fixture(autouse=True)
def fresh_dynamo() -> None:
    torch._dynamo.reset()


def test_the_timer_counts_the_calls_that_compile_and_no_others() -> None:
    times: dict[str, float] = {}
    fn = FirstCallTimer(torch.compile(lambda x: torch.tanh(x) * 2, backend="aot_eager"), "f", times)
    x = torch.randn(4, 3)
    assert torch.allclose(fn(x), torch.tanh(x) * 2)
    first = times["f"]
    assert first > 0
    fn(x)
    fn(x + 1)
    assert times["f"] == first  # same shapes: no compile, no time added
    fn(torch.randn(7, 3))  # a new shape recompiles (dynamic): timed and added
    assert times["f"] > first


@pytest.mark.parametrize("recurrent", [False, True])
def test_a_compiled_policy_equals_the_eager_one_and_keeps_its_parameters(recurrent: bool) -> None:
    torch.manual_seed(0)
    policy: torch.nn.Module = LSTMPolicy((4,), 2, hidden_size=16) if recurrent else MLPPolicy(4, 2, hidden_size=16)
    eager = type(policy)((4,), 2, hidden_size=16) if recurrent else MLPPolicy(4, 2, hidden_size=16)
    eager.load_state_dict(policy.state_dict())
    params_before = [id(p) for p in policy.parameters()]
    times: dict[str, float] = {}
    compile_policy(policy, times, backend="aot_eager")
    assert [id(p) for p in policy.parameters()] == params_before
    assert list(policy.state_dict()) == list(eager.state_dict())  # checkpoints and exports are unchanged

    obs = torch.randn(6, 3, 4) if recurrent else torch.randn(12, 4)
    if recurrent:
        state = (torch.randn(1, 6, 16), torch.randn(1, 6, 16))
        resets = torch.rand(6, 3) < 0.3
        resets[:, 0] = False
        out, ref = policy.forward_sequence(obs, state, resets), eager.forward_sequence(obs, state, resets)
        step, step_ref = policy(obs[:, 0], state), eager(obs[:, 0], state)
        assert torch.allclose(step[0], step_ref[0], atol=1e-6) and torch.allclose(step[1], step_ref[1], atol=1e-6)
        assert set(times) == {"policy.forward", "policy.forward_sequence"}
    else:
        out, ref = policy(obs), eager(obs)
        assert set(times) == {"policy.forward"}
    for a, b in zip(out, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    (out[0].square().sum() + out[1].sum()).backward()
    (ref[0].square().sum() + ref[1].sum()).backward()
    for p, q in zip(policy.parameters(), eager.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-5)
    assert all(t > 0 for t in times.values())


def test_the_compiled_loss_equals_the_eager_loss() -> None:
    torch.manual_seed(1)
    args = [torch.randn(32, requires_grad=True), torch.randn(32), torch.randn(32), torch.randn(32, requires_grad=True)]
    args += [torch.randn(32), torch.randn(32), torch.rand(32, requires_grad=True)]
    times: dict[str, float] = {}
    compiled = compile_loss(ppo_loss, times, backend="aot_eager")
    loss, stats = compiled(*args, 0.2, 0.5, 0.01, 0.2, 3.0, 0.1)
    ref, ref_stats = ppo_loss(*args, 0.2, 0.5, 0.01, 0.2, 3.0, 0.1)
    assert torch.allclose(loss, ref, atol=1e-6)
    for a, b in zip(stats.__dict__.values(), ref_stats.__dict__.values(), strict=True):
        assert torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-6)
    assert times["loss"] > 0


def _final_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = find_checkpoint(run_dir)
    assert ckpt is not None
    state = load_checkpoint(ckpt)
    return {k: v for k, v in state["policy"].items()}


@pytest.mark.parametrize("policy", ["mlp", "lstm"])
def test_train_compile_runs_the_same_updates_and_reports_the_first_call_cost(
    policy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two updates with and without train.compile from one seed: the same parameters (to float32 rounding),
    and summary.json names each compiled function's compiling calls' seconds; metrics carry their sum."""
    monkeypatch.setattr(thrust_compile, "BACKEND", "aot_eager")
    overrides = [*FAST, f"policy={policy}", "env.num_envs=8", "algo.num_steps=16", "train.total_timesteps=256"]
    overrides += ["algo.minibatch_size=64", "algo.update_epochs=1"]
    eager = train(compose_config(overrides), tmp_path / "eager")
    compiled = train(compose_config([*overrides, "train.compile=true"]), tmp_path / "compiled")
    assert eager["status"] == compiled["status"] == "completed"
    assert eager["global_step"] == compiled["global_step"] == 256
    assert "compile_first_call_s" not in eager
    first_calls = compiled["compile_first_call_s"]
    expected = {"policy.forward", "loss"} | ({"policy.forward_sequence"} if policy == "lstm" else set())
    assert set(first_calls) == expected and all(s > 0 for s in first_calls.values()), first_calls
    assert compiled["compile_s"] == pytest.approx(sum(first_calls.values()))
    a, b = _final_parameters(tmp_path / "eager"), _final_parameters(tmp_path / "compiled")
    assert list(a) == list(b)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_a_wrong_compile_value_is_one_line() -> None:
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["train.compile=maybe"])
    message = str(excinfo.value)
    assert "\n" not in message and "train.compile" in message, message


@pytest.mark.slow
def test_compiled_cartpole_learns_with_inductor(tmp_path: Path) -> None:
    """The shipped CartPole preset with train.compile=true (inductor, C++ codegen on the CPU) solves it."""
    summary = train(compose_config([*FAST, "train.compile=true"]), tmp_path / "run")
    assert summary["status"] == "completed" and summary["mean_return_last_100"] >= 450
    assert summary["compile_s"] > 0


@pytest.mark.gpu
def test_compiled_cartpole_learns_on_cuda(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    summary = train(compose_config([*FAST, "device=cuda", "train.compile=true"]), tmp_path / "run")
    assert summary["status"] == "completed" and summary["mean_return_last_100"] >= 450
    print(f"compile first calls on CUDA: {summary['compile_first_call_s']}")
