"""`thrust export` as a user runs it: every env preset exports to ONNX and safetensors and both match torch on
the env's own observations; unwritable outputs, output directories and the latest-run default; and every Python
example of docs/export.md runs as written against a real export."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from thrust_cli.cli import app
from thrust_cli.commands.export import gaussian_head, is_recurrent, load_safetensors_policy
from thrust_cli.commands.train import train
from thrust_cli.run.checkpoint import load_policy
from thrust_cli.run.config import compose_config
from thrust_cli.vector.envs import agents_per_env, make_env

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

# One update of a few hundred steps: the point is the checkpoint's shapes and dtypes, not learning.
TINY = ["train.total_timesteps=256", "algo.num_steps=16", "algo.minibatch_size=32", "algo.update_epochs=1"]
TINY += ["train.progress=none", "logger=none"]
SMALL_SNAKE = ["env.num_envs=1", "env.num_snakes=8", "env.width=16", "env.height=16", "env.num_food=8"]
# What a user would type (the docs quote these), then what shrinks it for the test.
PRESETS: dict[str, tuple[list[str], list[str]]] = {
    "cartpole": (["env=cartpole"], ["env.num_envs=4"]),
    "snake-mlp": (["env=snake"], SMALL_SNAKE),
    "snake-lstm": (["env=snake", "policy=lstm"], SMALL_SNAKE),
    "pendulum": (["env=pendulum"], ["env.num_envs=4"]),
    "asteroids": (["env=asteroids"], ["env.num_envs=4"]),
    "asteroids-lstm": (["env=asteroids", "policy=lstm"], ["env.num_envs=4"]),
    "memory": (["env=memory"], ["env.num_envs=4"]),
    "memory-lstm": (["env=memory", "policy=lstm"], ["env.num_envs=4"]),
    "busy": (["env=busy"], ["vec=serial", "env.num_envs=4", "env.work=10"]),
    "gym-discrete": (["env=gym", "env.id=Acrobot-v1"], ["env.num_envs=4"]),
    "gym-box": (["env=gym", "env.id=Pendulum-v1"], ["env.num_envs=4"]),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(preset)``: the run directory of a tiny run of that preset, trained once per module."""
    runs: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in runs:
            user, shrink = PRESETS[preset]
            run_dir = tmp_path_factory.mktemp(preset) / "run"
            train(compose_config([*user, *shrink, *TINY]), run_dir)
            runs[preset] = run_dir
        return runs[preset]

    return get


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def torch_step(policy: Any, obs: np.ndarray, state: Any) -> tuple[list[np.ndarray], Any, np.ndarray]:
    """The ONNX outputs as torch computes them (observations in the env's dtype, as `thrust eval` feeds them),
    the next state, and the greedy env action."""
    with torch.no_grad():
        if state is None:
            head, values = policy(torch.from_numpy(obs))
        else:
            head, values, state = policy(torch.from_numpy(obs), state)
        dist = gaussian_head(policy)
        if dist is None:
            outputs, action = [head, values], head.argmax(-1).int()
        else:
            action = dist.to_env(dist.mode(head))
            outputs = [action, head, values, dist.log_std]
    return [t.detach().numpy() for t in [*outputs, *(state or ())]], state, action.numpy()


def relative_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Absolute up to magnitude 1, relative above (float32 rounding grows with the magnitude)."""
    assert a.shape == b.shape
    return float((np.abs(a.astype(np.float64) - b) / np.maximum(1.0, np.abs(b))).max(initial=0.0))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_env_preset_exports_onnx_and_safetensors_that_match_torch_on_env_rollouts(
    runner: CliRunner, trained: Callable[[str], Path], preset: str, tmp_path: Path
) -> None:
    run_dir = trained(preset)
    result = runner.invoke(app, ["export", str(run_dir), "--onnx", "--safetensors", "-o", "out/"])
    assert result.exit_code == 0, result.output
    assert "observation space and a random rollout" in result.stdout  # the check ran on the env's observations
    policy: Any = load_policy(run_dir)[0]
    rebuilt: Any = load_safetensors_policy(tmp_path / "out" / "policy.safetensors")
    session = ort.InferenceSession(str(tmp_path / "out" / "policy.onnx"), providers=["CPUExecutionProvider"])

    cfg = load_policy(run_dir)[1]
    env = make_env(cfg.env, 1 if agents_per_env(cfg.env) > 1 else 4, seed=7)
    env.reset(seed=7)
    recurrent = is_recurrent(policy)
    state = rebuilt_state = policy.initial_state(env.num_agents) if recurrent else None
    onnx_state = [t.numpy() for t in state] if state is not None else []
    worst = 0.0
    try:
        for _ in range(20):  # each side carries its own recurrent state, so errors would compound
            obs = env.observations.copy()
            expected, state, action = torch_step(policy, obs, state)
            from_file, rebuilt_state, _ = torch_step(rebuilt, obs, rebuilt_state)
            feeds = {"observations": obs.astype(np.float32)}
            if recurrent:
                feeds.update(h_in=onnx_state[0], c_in=onnx_state[1])
            got = session.run(None, feeds)
            if recurrent:
                onnx_state = got[-2:]
            for ours, theirs, rebuilt_out in zip(got, expected, from_file, strict=True):
                worst = max(worst, relative_diff(ours, theirs))
                np.testing.assert_array_equal(rebuilt_out, theirs)  # safetensors: the same weights exactly
            env.step(action)
    finally:
        env.close()
    assert worst < 1e-4, worst


def test_unwritable_outputs_are_one_line_errors(runner: CliRunner, trained: Callable[[str], Path]) -> None:
    run_dir = str(trained("cartpole"))
    Path("afile").write_text("x")
    cases = [
        (["--safetensors", "-o", "/proc/x.safetensors"], "error: cannot write '/proc/x.safetensors': "),
        (["--onnx", "-o", "afile/p.onnx"], "error: cannot write 'afile/p.onnx': 'afile' is not a directory"),
        (["--onnx", "--safetensors", "-o", "afile/"], "error: cannot write 'afile/policy.onnx': 'afile' is not"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["export", run_dir, *args])
        assert result.exit_code == 1, result.output
        assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output
    assert Path("afile").read_text() == "x"


def test_output_directory_gets_both_files_inside_and_a_file_name_gets_both_extensions(
    runner: CliRunner, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    run_dir = str(trained("cartpole"))
    Path("dir").mkdir()
    for args, written in [
        (["-o", "dir"], ["dir/policy.onnx", "dir/policy.safetensors"]),  # an existing directory
        (["-o", "new/"], ["new/policy.onnx", "new/policy.safetensors"]),  # ending in '/': created
        (["-o", "files/p.onnx"], ["files/p.onnx", "files/p.safetensors"]),  # a file: each with its extension
    ]:
        result = runner.invoke(app, ["export", run_dir, "--onnx", "--safetensors", *args])
        assert result.exit_code == 0, result.output
        directory = Path(written[0]).parent
        assert sorted(str(p) for p in directory.iterdir()) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "files", "new"]  # no dir.safetensors beside


def test_export_without_a_run_uses_the_latest_run_and_says_so(runner: CliRunner) -> None:
    missing = runner.invoke(app, ["export", "--onnx"])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: no run with checkpoints under 'outputs'")
    assert "train one first" in missing.stderr and missing.stderr.count("\n") == 1

    for name in ("2026-01-01/10-00-00", "2026-01-01/09-00-00"):  # the later-trained is the latest, whatever its name
        train(compose_config([*PRESETS["cartpole"][0], *PRESETS["cartpole"][1], *TINY]), Path("outputs", name))
    result = runner.invoke(app, ["export", "--onnx"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "using the latest run: outputs/2026-01-01/09-00-00\n"
    assert Path("outputs/2026-01-01/09-00-00/export/policy.onnx").is_file()
    assert not Path("outputs/2026-01-01/10-00-00/export").exists()


DOCS = Path(__file__).parents[2] / "docs" / "export.md"
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), flags=re.S | re.M)
# Each example's first line names the run and export it is written for, e.g.
# `# policy.onnx of a CartPole run: thrust train env=cartpole && thrust export --onnx -o policy.onnx`
RUN_LINE = re.compile(r"# .*: thrust train (?P<train>.+?) && thrust export (?P<export>.+)")


def test_docs_export_has_python_examples_each_naming_its_run() -> None:
    assert len(PYTHON_BLOCKS) >= 4
    for block in PYTHON_BLOCKS:
        assert RUN_LINE.fullmatch(block.splitlines()[0]), block.splitlines()[0]


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_docs_export_python_example_runs_as_written(
    runner: CliRunner, trained: Callable[[str], Path], index: int
) -> None:
    block = PYTHON_BLOCKS[index]
    match = RUN_LINE.fullmatch(block.splitlines()[0])
    assert match is not None
    user = match["train"].split()
    preset = next((name for name, (overrides, _) in PRESETS.items() if overrides == user), None)
    assert preset is not None, f"no test preset trains `{match['train']}`"
    result = runner.invoke(app, ["export", str(trained(preset)), *match["export"].split()])
    assert result.exit_code == 0, result.output
    exec(compile(block, f"{DOCS}: python example {index + 1}", "exec"), {"__name__": "__docs__"})
