"""ONNX and safetensors export: onnxruntime against torch, the recurrent h/c convention, the failing check,
the safetensors round trip from metadata alone, Gaussian (Box-action) policies in both formats, and the one-line
messages for missing packages."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import safetensors.torch
import torch
from omegaconf import OmegaConf
from torch import nn

from thrust_cli.commands.export import (
    DEFAULT_OPSET,
    ONNX_MISSING,
    SAFETENSORS_MISSING,
    TOLERANCE,
    check_observations,
    export_onnx,
    export_policy_onnx,
    export_safetensors,
    format_output,
    is_recurrent,
    load_safetensors_policy,
    read_safetensors_metadata,
)
from thrust_cli.commands.train import train
from thrust_cli.learn.optim import Adam
from thrust_cli.learn.policies import make_policy
from thrust_cli.run.checkpoint import latest_run, load_policy, save_checkpoint
from thrust_cli.run.config import compose_config, run_part

OBS_SHAPE = (4,)
NUM_ACTIONS = 2


def make_run(run_dir: Path, overrides: list[str], step: int = 4096) -> Path:
    """A run directory holding one checkpoint shaped like train()'s, after a few optimizer steps."""
    cfg = run_part(compose_config(overrides, with_hydra=False))
    torch.manual_seed(0)
    policy = make_policy(OBS_SHAPE, NUM_ACTIONS, cfg.policy)
    optimizer = Adam(policy.parameters(), lr=0.05, eps=1e-5)
    for _ in range(3):  # move the weights off their init so the heads' outputs are not all near zero
        logits, values = policy(torch.randn(64, *OBS_SHAPE))
        loss = (logits.logsumexp(-1) - logits[:, 0]).mean() + (values - 1.0).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = {
        "policy": policy.state_dict(),
        "optimizer": optimizer.state_dict(),
        "global_step": step,
        "update": 4,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "spaces": {"obs_shape": list(OBS_SHAPE), "obs_dtype": "float32", "num_actions": NUM_ACTIONS},
    }
    save_checkpoint(run_dir, state, step)
    return run_dir


def torch_outputs(run_dir: Path, obs: np.ndarray) -> list[np.ndarray]:
    policy, _, _ = load_policy(run_dir)
    with torch.no_grad():
        return [t.numpy() for t in policy(torch.from_numpy(obs))]


@pytest.mark.parametrize(
    "overrides",
    [
        ["policy.shared=false"],
        ["policy.shared=true"],
        ["policy.shared=false", "policy.activation=gelu", "policy.num_layers=3", "policy.hidden_size=32"],
        ["policy.shared=true", "policy.activation=relu"],
    ],
    ids=["stacked-tanh", "shared-tanh", "stacked-gelu-3-layers", "shared-relu"],
)
def test_onnx_export_of_mlp_run_matches_torch_in_onnxruntime(tmp_path: Path, overrides: list[str]) -> None:
    run_dir = make_run(tmp_path / "run", overrides)
    report = export_onnx(run_dir)

    assert report.path == run_dir / "export" / "policy.onnx"
    assert report.path.is_file() and not Path(f"{report.path}.data").exists()  # one self-contained file
    assert [p.name for p in report.path.parent.iterdir()] == ["policy.onnx"]  # no temporary file left
    assert report.max_abs_diff <= TOLERANCE and report.opset == DEFAULT_OPSET and not report.recurrent
    assert report.inputs == {"observations": ["batch", 4]}
    assert report.outputs == {"logits": ["batch", 2], "values": ["batch"]}

    model = onnx.load(str(report.path))
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {DEFAULT_OPSET}
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["architecture"] == "mlp" and meta["num_actions"] == "2" and meta["global_step"] == "4096"
    assert meta["recurrent"] == "false" and meta["observation_dtype"] == "float32"
    assert json.loads(meta["observation_shape"]) == [4]
    assert json.loads(meta["action_space"]) == {"type": "Discrete", "n": 2} and "squash" not in meta
    obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)  # a batch size the check did not use
    logits, values = session.run(["logits", "values"], {"observations": obs})
    expected_logits, expected_values = torch_outputs(run_dir, obs)
    assert logits.shape == (5, 2) and values.shape == (5,)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(values, expected_values, atol=1e-5, rtol=0)


def test_onnx_export_paths_next_to_checkpoint_file_and_into_output_directory(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", [])
    checkpoint = next((run_dir / "checkpoints").glob("step_*.pt"))
    assert export_onnx(checkpoint).path == checkpoint.with_suffix(".onnx")
    (tmp_path / "out").mkdir()
    assert export_onnx(run_dir, output=tmp_path / "out").path == tmp_path / "out" / "policy.onnx"
    assert export_onnx(run_dir, output=tmp_path / "a" / "b.onnx").path.is_file()


class StandInLSTMPolicy(nn.Module):
    """The recurrent interface issue 4's LSTM policy will have: ``initial_state`` and ``forward(obs, (h, c))``."""

    recurrent = True

    def __init__(self, obs_dim: int = 4, hidden_size: int = 16, num_layers: int = 2, num_actions: int = 3) -> None:
        super().__init__()
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.encoder = nn.Linear(obs_dim, hidden_size)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers)
        self.actor_head = nn.Linear(hidden_size, num_actions)
        self.critic_head = nn.Linear(hidden_size, 1)

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.zeros(self.num_layers, batch, self.hidden_size)
        return h, torch.zeros_like(h)

    def forward(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = torch.tanh(self.encoder(obs.flatten(1).float()))
        out, (h, c) = self.lstm(x.unsqueeze(0), state)  # one time step: [1, B, H]
        out = out.squeeze(0)
        return self.actor_head(out), self.critic_head(out).squeeze(-1), (h, c)


def test_recurrent_policy_exports_h_c_and_matches_torch_over_a_50_step_rollout(tmp_path: Path) -> None:
    torch.manual_seed(0)
    policy = StandInLSTMPolicy()
    report = export_policy_onnx(policy, (4,), tmp_path / "lstm.onnx")

    assert report.recurrent and report.max_abs_diff <= TOLERANCE
    assert report.inputs == {"observations": ["batch", 4], "h_in": [2, "batch", 16], "c_in": [2, "batch", 16]}
    assert report.outputs == {
        "logits": ["batch", 3],
        "values": ["batch"],
        "h_out": [2, "batch", 16],
        "c_out": [2, "batch", 16],
    }
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    h, c = policy.initial_state(7)
    h_onnx, c_onnx = h.numpy(), c.numpy()
    worst = 0.0
    for _ in range(50):  # each side feeds its own state back, so errors would compound
        obs = rng.normal(size=(7, 4)).astype(np.float32)
        with torch.no_grad():
            logits, values, (h, c) = policy(torch.from_numpy(obs), (h, c))
        logits_onnx, values_onnx, h_onnx, c_onnx = session.run(
            ["logits", "values", "h_out", "c_out"], {"observations": obs, "h_in": h_onnx, "c_in": c_onnx}
        )
        for a, b in ((logits_onnx, logits), (values_onnx, values), (h_onnx, h), (c_onnx, c)):
            assert a.shape == tuple(b.shape)
            worst = max(worst, float(np.abs(a - b.numpy()).max()))
    assert worst < 1e-5
    assert float(np.abs(c_onnx).max()) > 0.1  # the state really evolved


def test_a_wrongly_declared_output_shape_is_replaced_by_the_one_torch_computes(tmp_path: Path) -> None:
    """torch 2.11's exporter declared h_out/c_out [2, 1, batch, 16] for [2, batch, 16] tensors (the values right);
    the export rewrites every output's declaration from two traced batch sizes, so any exporter's is fixed."""
    from thrust_cli.commands.export import _declare_output_shapes, _Recurrent

    policy = StandInLSTMPolicy()
    model = onnx.load(str(export_policy_onnx(policy, (4,), tmp_path / "lstm.onnx").path))
    for value in model.graph.output:  # what torch 2.11 wrote, roughly: an extra axis, the batch lost
        dims = value.type.tensor_type.shape
        dims.ClearField("dim")
        for size in (2, 1, 5):
            dims.dim.add().dim_value = size
    samples = [[torch.zeros(b, 4), *policy.initial_state(b)] for b in (1, 3)]
    _declare_output_shapes(model, _Recurrent(policy), samples)
    declared = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output}
    assert declared == {
        "logits": ["batch", 3],
        "values": ["batch"],
        "h_out": [2, "batch", 16],
        "c_out": [2, "batch", 16],
    }
    onnx.checker.check_model(model)


def test_onnx_check_failure_raises_one_line_and_leaves_no_file(tmp_path: Path, monkeypatch: Any) -> None:
    run_dir = make_run(tmp_path / "run", [])
    run = ort.InferenceSession.run

    def corrupted(self: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return [out + 10 * TOLERANCE for out in run(self, *args, **kwargs)]

    monkeypatch.setattr(ort.InferenceSession, "run", corrupted)
    with pytest.raises(ValueError, match=r"onnxruntime differs from torch by 0\.001 \(> 0\.0001\)") as info:
        export_onnx(run_dir)
    assert "\n" not in str(info.value)
    assert not any((run_dir / "export").iterdir())


def test_onnx_export_of_policy_torch_cannot_export_raises_one_line_value_error(tmp_path: Path) -> None:
    class DataDependent(nn.Module):
        def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if obs.sum() > 0:  # data-dependent control flow: torch.export refuses it
                return obs[:, :2], obs[:, 0]
            return -obs[:, :2], obs[:, 0]

    with pytest.raises(ValueError, match="ONNX export of DataDependent failed") as info:
        export_policy_onnx(DataDependent(), (4,), tmp_path / "p.onnx")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shared", [False, True], ids=["stacked", "shared"])
def test_safetensors_round_trip_rebuilds_identical_policy_from_metadata_alone(tmp_path: Path, shared: bool) -> None:
    run_dir = make_run(tmp_path / "run", [f"policy.shared={shared}", "policy.activation=relu"])
    obs = np.random.default_rng(3).normal(size=(9, 4)).astype(np.float32)
    expected = torch_outputs(run_dir, obs)
    path = export_safetensors(run_dir, output=tmp_path / "policy.safetensors")
    (next((run_dir / "checkpoints").glob("*.pt"))).unlink()  # no checkpoint, no config: the file alone

    policy = load_safetensors_policy(path)
    with torch.no_grad():
        got = [t.numpy() for t in policy(torch.from_numpy(obs))]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)

    meta = read_safetensors_metadata(path)
    assert meta["format"] == "thrust-policy" and meta["format_version"] == "1" and meta["architecture"] == "mlp"
    assert meta["policy"] == {
        "obs_dim": 4,
        "num_actions": 2,
        "hidden_size": 64,
        "num_layers": 2,
        "layer_sizes": [4, 64, 64],
        "activation": "relu",
        "shared": shared,
    }
    assert meta["observation_space"] == {"type": "Box", "shape": [4], "dtype": "float32", "low": None, "high": None}
    assert meta["action_space"] == {"type": "Discrete", "n": 2}
    assert meta["observation_normalization"] == {"type": "none"}
    assert meta["source"] == {"checkpoint": "step_000000004096.pt", "global_step": 4096}
    tensors = safetensors.torch.load_file(str(path))
    assert set(meta["tensors"]) == set(tensors)
    if not shared:
        assert tensors["trunk.weights.0"].shape == (2, 4, 64)  # [copies, in, out], copy 0 = actor
        assert "copy 0 = actor" in meta["tensors"]["trunk.weights.0"]


def test_safetensors_default_path_and_foreign_file_rejected(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", [])
    assert export_safetensors(run_dir) == run_dir / "export" / "policy.safetensors"
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not a Thrust policy file"):
        load_safetensors_policy(foreign)


@pytest.mark.parametrize("module", ["onnx", "onnxscript", "onnxruntime"])
def test_missing_onnx_package_names_the_extra(tmp_path: Path, monkeypatch: Any, module: str) -> None:
    run_dir = make_run(tmp_path / "run", [])
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError) as info:
        export_onnx(run_dir)
    assert str(info.value) == ONNX_MISSING
    assert not (run_dir / "export").exists()


def test_missing_safetensors_names_the_extra(tmp_path: Path, monkeypatch: Any) -> None:
    run_dir = make_run(tmp_path / "run", [])
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError) as info:
        export_safetensors(run_dir)
    assert str(info.value) == SAFETENSORS_MISSING


def test_importing_export_module_loads_no_export_package() -> None:
    code = (
        "import sys, thrust_cli.commands.export; "
        "print([m for m in ('onnx', 'onnxscript', 'onnxruntime', 'safetensors') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_real_lstm_checkpoint_exports_and_matches_torch_over_a_50_step_rollout(tmp_path: Path) -> None:
    """A checkpoint of Thrust's own LSTM policy (trained briefly on Memory), not a stand-in."""
    import onnxruntime as ort

    from thrust_cli.commands.train import train

    run_dir = tmp_path / "run"
    train(compose_config(["env=memory", "policy=lstm", "train.total_timesteps=2048", "train.progress=none"]), run_dir)
    report = export_onnx(run_dir)
    assert report.recurrent and report.max_abs_diff < 1e-4
    policy: Any = load_policy(run_dir)[0]
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    h, c = (t.numpy() for t in policy.initial_state(5))
    th, tc = policy.initial_state(5)
    worst = 0.0
    for _ in range(50):
        obs = rng.uniform(-1, 1, size=(5, 3)).astype(np.float32)
        logits, values, h, c = session.run(None, {"observations": obs, "h_in": h, "c_in": c})
        with torch.no_grad():
            t_logits, t_values, (th, tc) = policy(torch.from_numpy(obs), (th, tc))
        for ours, theirs in ((logits, t_logits), (values, t_values), (h, th), (c, tc)):
            worst = max(worst, float(np.abs(ours - theirs.numpy()).max()))
    assert worst < 1e-5, worst


def test_lstm_safetensors_rebuilds_from_metadata_alone(tmp_path: Path) -> None:
    from thrust_cli.commands.export import export_safetensors, load_safetensors_policy, read_safetensors_metadata
    from thrust_cli.commands.train import train

    run_dir = tmp_path / "run"
    train(compose_config(["env=memory", "policy=lstm", "train.total_timesteps=2048", "train.progress=none"]), run_dir)
    path = export_safetensors(run_dir)
    meta = read_safetensors_metadata(path)
    assert meta["architecture"] == "lstm" and meta["policy"]["hidden_size"] == 128
    original: Any = load_policy(run_dir)[0]
    for checkpoint in (run_dir / "checkpoints").glob("*.pt"):
        checkpoint.unlink()  # the file alone must suffice
    rebuilt: Any = load_safetensors_policy(path)
    obs = torch.randn(4, 3)
    with torch.no_grad():
        a = original(obs, original.initial_state(4))
        b = rebuilt(obs, rebuilt.initial_state(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# Gaussian (Box-action) policies: one short Pendulum run per variant, shared by the tests of that variant.
PENDULUM_VARIANTS = {"mlp-clip": [], "mlp-squash": ["policy.squash=true"], "lstm": ["policy=lstm"]}
PENDULUM_BOX = {"type": "Box", "shape": [1], "low": [-2.0], "high": [2.0]}


@pytest.fixture(scope="module", params=list(PENDULUM_VARIANTS))
def pendulum_run(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4096-step Pendulum run (Box(-2, 2, (1,)) actions); tests write their exports outside it."""
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    overrides = ["env=pendulum", "train.total_timesteps=4096", "algo.num_steps=64", "logger=none"]
    train(compose_config([*overrides, "train.progress=none", *PENDULUM_VARIANTS[request.param]]), run_dir)
    return run_dir


def pendulum_obs(rng: np.random.Generator, batch: int) -> np.ndarray:
    """Pendulum observations: (cos θ, sin θ, θ̇) with θ̇ in [-8, 8]."""
    theta = rng.uniform(-np.pi, np.pi, batch)
    return np.stack([np.cos(theta), np.sin(theta), rng.uniform(-8, 8, batch)], -1).astype(np.float32)


def load_gaussian_policy(run_dir: Path) -> tuple[Any, Any]:
    """``(policy, config)`` of a run, typed loosely: ``policy.dist`` is a Gaussian, which nn.Module hides."""
    policy, cfg, _ = load_policy(run_dir)
    return policy, cfg


def test_gaussian_onnx_outputs_env_action_mean_values_log_std_matching_torch(
    pendulum_run: Path, tmp_path: Path
) -> None:
    report = export_onnx(pendulum_run, output=tmp_path / "policy.onnx")
    policy, cfg = load_gaussian_policy(pendulum_run)
    recurrent = is_recurrent(policy)

    assert report.max_abs_diff <= TOLERANCE and report.recurrent == recurrent
    state_shape: list[int | str] = [1, "batch", 128]
    assert report.outputs == {
        "action": ["batch", 1],
        "action_mean": ["batch", 1],
        "values": ["batch"],
        "log_std": [1],
        **({"h_out": state_shape, "c_out": state_shape} if recurrent else {}),
    }
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["action_space"]) == PENDULUM_BOX
    assert json.loads(meta["squash"]) is bool(cfg.policy.squash) and meta["num_actions"] == "1"

    rng = np.random.default_rng(4)
    state = policy.initial_state(5) if recurrent else None
    feeds_state: dict[str, np.ndarray] = {"h_in": state[0].numpy(), "c_in": state[1].numpy()} if state else {}
    worst = 0.0
    for _ in range(20):  # a recurrent policy carries its state on each side, so errors would compound
        obs = pendulum_obs(rng, 5)
        got = session.run(None, {"observations": obs, **feeds_state})
        with torch.no_grad():
            if state is not None:
                mean, values, state = policy(torch.from_numpy(obs), state)
                feeds_state = {"h_in": got[4], "c_in": got[5]}
            else:
                mean, values = policy(torch.from_numpy(obs))
            action = policy.dist.to_env(policy.dist.mode(mean))  # what `thrust eval` steps the env with
            expected = [action, mean, values, policy.dist.log_std.detach(), *(state or ())]
        for ours, theirs in zip(got, expected, strict=True):
            assert ours.shape == tuple(theirs.shape)
            # relative above 1: float32 rounding of values ~ -20 is already ~2e-6 a step
            worst = max(worst, float((np.abs(ours - theirs.numpy()) / np.maximum(1.0, np.abs(ours))).max()))
        assert (np.abs(got[0]) <= 2.0).all()
    assert worst < 1e-5, worst


def test_gaussian_onnx_action_clips_or_squashes_means_beyond_the_bounds(pendulum_run: Path, tmp_path: Path) -> None:
    """A trained head's means stay well inside [-2, 2]; a scaled-up one shows the graph maps them as documented."""
    policy, cfg = load_gaussian_policy(pendulum_run)
    recurrent = is_recurrent(policy)
    obs = pendulum_obs(np.random.default_rng(5), 64)
    state = policy.initial_state(64) if recurrent else None
    with torch.no_grad():
        policy.actor_head.weight.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(0))
        means = policy(torch.from_numpy(obs), state)[0] if state else policy(torch.from_numpy(obs))[0]
        policy.actor_head.bias -= means.median()  # centre the means on 0, their spread on both sides of the bounds
    report = export_policy_onnx(policy, (3,), tmp_path / "scaled.onnx")
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    feeds = {"observations": obs, **({"h_in": state[0].numpy(), "c_in": state[1].numpy()} if state else {})}
    action, mean = session.run(["action", "action_mean"], feeds)

    assert (mean < -2).any() and (mean > 2).any() and (np.abs(mean) < 2).any()
    if cfg.policy.squash:
        np.testing.assert_allclose(action, -2.0 + (np.tanh(mean) + 1.0) / 2.0 * 4.0, atol=1e-5, rtol=0)
    else:
        np.testing.assert_array_equal(action, np.clip(mean, -2.0, 2.0))


def test_gaussian_safetensors_rebuilds_identical_policy_and_bounds_from_metadata_alone(
    pendulum_run: Path, tmp_path: Path
) -> None:
    path = export_safetensors(pendulum_run, output=tmp_path / "alone" / "policy.safetensors")  # outside the run
    original, cfg = load_gaussian_policy(pendulum_run)
    rebuilt: Any = load_safetensors_policy(path)

    squash = bool(cfg.policy.squash)
    assert rebuilt.dist.squash is squash
    assert torch.equal(rebuilt.dist.low, original.dist.low) and torch.equal(rebuilt.dist.high, original.dist.high)
    assert torch.equal(rebuilt.dist.log_std, original.dist.log_std)
    obs = torch.from_numpy(pendulum_obs(np.random.default_rng(6), 9))
    with torch.no_grad():
        if is_recurrent(original):
            a, b = original(obs, original.initial_state(9)), rebuilt(obs, rebuilt.initial_state(9))
            assert torch.equal(a[2][0], b[2][0]) and torch.equal(a[2][1], b[2][1])
        else:
            a, b = original(obs), rebuilt(obs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # mean, values
    assert torch.equal(original.dist.to_env(a[0]), rebuilt.dist.to_env(b[0]))

    meta = read_safetensors_metadata(path)
    assert meta["action_space"] == PENDULUM_BOX
    assert meta["policy"]["squash"] is squash and meta["policy"]["num_actions"] == 1
    assert meta["tensors"]["dist.log_std"].startswith("dist.log_std [1]: log standard deviation")
    assert "action_mean = " in meta["forward"] and "logits" not in meta["forward"]
    mapping = "low + (tanh(u) + 1) / 2 * (high - low)" if squash else "clip(u, low, high)"
    assert f"env action = {mapping}" in meta["forward"] and "exp(dist.log_std)" in meta["forward"]


def test_gaussian_safetensors_writes_unbounded_dimensions_as_null_and_reads_them_back(tmp_path: Path) -> None:
    """JSON has no infinity: an unbounded Box dimension is null in the metadata, +-inf again after loading."""
    cfg = run_part(compose_config([], with_hydra=False))
    low, high = [-float("inf"), -1.0], [float("inf"), 1.0]
    torch.manual_seed(0)
    policy = make_policy(OBS_SHAPE, 2, cfg.policy, box=(low, high))
    state = {
        "policy": policy.state_dict(),
        "global_step": 8,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "spaces": {
            "obs_shape": [4],
            "obs_dtype": "float32",
            "num_actions": 2,
            "action": {"type": "Box", "low": low, "high": high},
        },
    }
    save_checkpoint(tmp_path / "run", state, 8)
    path = export_safetensors(tmp_path / "run")

    with safetensors.safe_open(str(path), framework="pt") as f:
        raw = f.metadata()["action_space"]

    def no_constants(name: str) -> float:
        raise AssertionError(f"non-standard JSON constant {name}")

    assert json.loads(raw, parse_constant=no_constants) == {
        "type": "Box",
        "shape": [2],
        "low": [None, -1.0],
        "high": [None, 1.0],
    }
    rebuilt: Any = load_safetensors_policy(path)
    assert rebuilt.dist.low.tolist() == low and rebuilt.dist.high.tolist() == high
    mean = torch.tensor([[50.0, 50.0], [-50.0, 0.5]])
    assert rebuilt.dist.to_env(mean).tolist() == [[50.0, 1.0], [-50.0, 0.5]]


class SqrtPolicy(nn.Module):
    """Finite only for observations in [-1, 1] (NaN outside): a stand-in for a policy trained on a bounded space."""

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        root = torch.sqrt(1.0 - obs.float() ** 2)
        return root[:, :2], root[:, 0]


def test_onnx_check_fails_on_nan_outputs_instead_of_dropping_them(tmp_path: Path) -> None:
    """Observations outside the bounds the policy is defined on give NaN on both sides; NaN must fail the check
    (the builtin max dropped it)."""
    with pytest.raises(ValueError, match=r"onnxruntime differs from torch by nan") as info:
        export_policy_onnx(SqrtPolicy(), (4,), tmp_path / "p.onnx")  # no space: standard normal observations
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_onnx_check_draws_float_observations_inside_the_observation_space_bounds(tmp_path: Path) -> None:
    space = gymnasium.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    report = export_policy_onnx(SqrtPolicy(), (4,), tmp_path / "p.onnx", observation_space=space)
    assert report.max_abs_diff <= TOLERANCE and report.path.is_file()


def test_onnx_check_draws_integer_observations_below_the_policys_one_hot_codes(tmp_path: Path) -> None:
    """An LSTM policy one-hot encodes int8 cell codes 0..4 (Snake): codes up to 127 crashed the check."""
    cfg = run_part(compose_config(["policy=lstm"], with_hydra=False))
    torch.manual_seed(0)
    policy = make_policy((3, 3), 4, cfg.policy, num_codes=5)
    report = export_policy_onnx(policy, (3, 3), tmp_path / "p.onnx", obs_dtype="int8")
    assert report.recurrent and report.max_abs_diff <= TOLERANCE


TINY = ["train.total_timesteps=256", "algo.num_steps=16", "algo.minibatch_size=32", "env.num_envs=4"]
TINY += ["algo.update_epochs=1", "train.progress=none", "logger=none"]


def test_onnx_export_check_uses_the_envs_observation_space_and_a_rollout(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(compose_config(["env=memory", *TINY]), run_dir)
    _, cfg, state = load_policy(run_dir)
    space, rollout, source = check_observations(cfg.env, state["spaces"])
    assert space is not None and space.low.tolist() == [-1.0] * 3 and space.high.tolist() == [1.0] * 3
    assert rollout is not None and rollout.shape == (64, 3) and source.startswith("observations from memory's")
    report = export_onnx(run_dir)
    assert report.batch_sizes == (1, 7, 64) and "memory's observation space" in report.summary()


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """``os.umask``, to set the process umask in a test; restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_onnx_and_safetensors_files_get_the_umask_mode(tmp_path: Path, umask: Callable[[int], int], mask: int) -> None:
    run_dir = make_run(tmp_path / "run", [])
    umask(mask)
    onnx_path = export_onnx(run_dir).path
    safetensors_path = export_safetensors(run_dir)
    expected = 0o666 & ~mask
    assert stat.S_IMODE(onnx_path.stat().st_mode) == expected
    assert stat.S_IMODE(safetensors_path.stat().st_mode) == expected


def test_unwritable_outputs_raise_one_line_cannot_write(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", [])
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases: list[tuple[Callable[..., Any], Path, str]] = [
        (export_safetensors, Path("/proc/x.safetensors"), "cannot write '/proc/x.safetensors': "),
        (export_onnx, afile / "p.onnx", f"cannot write '{afile / 'p.onnx'}': '{afile}' is not a directory"),
        (
            export_safetensors,
            afile / "d" / "p.safetensors",
            f"cannot write '{afile / 'd' / 'p.safetensors'}': '{afile}' is not a",
        ),
    ]
    for function, output, message in cases:
        with pytest.raises(ValueError) as info:
            function(run_dir, output=output)
        assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)
    assert afile.read_text() == "x"


def test_an_output_file_without_the_formats_extension_is_refused_and_left_alone(tmp_path: Path) -> None:
    """`-o run/checkpoints/step_*.pt` once replaced the checkpoint being exported by ONNX bytes."""
    run_dir = make_run(tmp_path / "run", [])
    checkpoint = next((run_dir / "checkpoints").glob("step_*.pt"))
    before = checkpoint.read_bytes()
    script = tmp_path / "train.sh"
    script.write_text("echo hi")
    for function, suffix in ((export_onnx, ".onnx"), (export_safetensors, ".safetensors")):
        for output in (checkpoint, script):
            with pytest.raises(ValueError) as info:
                function(run_dir, output=output)
            assert (
                str(info.value)
                == f"output '{output}' must end in {suffix}, or name a directory to write policy{suffix} in"
            )
    assert checkpoint.read_bytes() == before and script.read_text() == "echo hi"
    assert export_onnx(run_dir, output=tmp_path / "Policy.ONNX").path == tmp_path / "Policy.ONNX"  # any case


def test_output_naming_a_directory_or_ending_in_slash_writes_policy_files_inside(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", [])
    (tmp_path / "existing").mkdir()
    assert export_safetensors(run_dir, output=tmp_path / "existing") == tmp_path / "existing" / "policy.safetensors"
    assert export_onnx(run_dir, output=f"{tmp_path}/new/").path == tmp_path / "new" / "policy.onnx"
    assert format_output(f"{tmp_path}/new/", ".safetensors", both=True) == f"{tmp_path}/new/"
    assert format_output(tmp_path / "existing", ".onnx", both=True) == str(tmp_path / "existing")
    assert format_output("a/p.onnx", ".safetensors", both=True) == "a/p.safetensors"
    assert format_output("a/p.onnx", ".onnx", both=True) == "a/p.onnx"
    assert format_output("a/p.bin", ".safetensors", both=False) == "a/p.bin"  # one format: the name as given
    assert format_output(None, ".onnx", both=True) is None


def test_latest_run_is_the_run_whose_latest_checkpoint_is_newest(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    with pytest.raises(FileNotFoundError, match=r"train one first .* or name a run") as info:
        latest_run(outputs)
    assert "\n" not in str(info.value)

    def run(name: str, mtimes: list[float]) -> Path:
        checkpoints = outputs / name / "checkpoints"
        checkpoints.mkdir(parents=True)
        for step, mtime in enumerate(mtimes):
            path = checkpoints / f"step_{step:012d}.pt"
            path.touch()
            os.utime(path, (mtime, mtime))
        return outputs / name

    run("2026-01-02/09-00-00", [100.0, 200.0])
    resumed = run("2026-01-01/09-00-00", [50.0, 300.0])  # older name, but its latest checkpoint is the newest
    run("2026-01-03/09-00-00", [])  # newest directory, no checkpoint yet: skipped
    (outputs / "2026-01-03" / "10-00-00").mkdir()
    assert latest_run(outputs) == resumed
