"""The CLI as a user runs it, through Typer's CliRunner in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrust_cli.cli import app

FAST = [
    "train.total_timesteps=4096",
    "env.num_envs=16",
    "algo.num_steps=64",
    "train.checkpoint_interval=2048",
]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def train_run(runner: CliRunner, *overrides: str) -> Path:
    result = runner.invoke(app, ["train", *overrides])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir()
    return run_dir


def test_train_writes_the_run_directory_and_eval_reads_it(runner: CliRunner, tmp_path: Path) -> None:
    run_dir = train_run(runner, *FAST)
    assert run_dir.is_relative_to(tmp_path / "outputs")
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        assert (run_dir / ".hydra" / name).is_file()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    required = {
        "global_step",
        "time_s",
        "sps",
        "episode_return",
        "episode_length",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clipfrac",
        "explained_variance",
    }
    assert lines and all(required <= set(m) for m in lines)
    assert [m["global_step"] for m in lines] == sorted(m["global_step"] for m in lines)
    assert list(run_dir.glob("events.out.tfevents.*"))
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    assert len(checkpoints) >= 2  # one at the interval, one at the end
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {
        "global_step",
        "wall_time_s",
        "sps",
        "mean_return_last_100",
        "solved_at_step",
        "solved_at_s",
    } <= set(summary)
    assert summary["global_step"] == 4096

    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 5 and report["mean_return"] > 0 and report["std_return"] >= 0


def test_eval_is_reproducible_from_a_fixed_seed(runner: CliRunner) -> None:
    run_dir = train_run(runner, *FAST)
    a = runner.invoke(app, ["eval", str(run_dir), "-n", "4", "--json", "--stochastic"]).stdout
    b = runner.invoke(app, ["eval", str(run_dir), "-n", "4", "--json", "--stochastic"]).stdout
    assert json.loads(a)["mean_return"] == json.loads(b)["mean_return"]


def test_gymnasium_env_id_trains_through_the_adapter(runner: CliRunner) -> None:
    run_dir = train_run(
        runner,
        "env=gym",
        "env.id=Acrobot-v1",
        "env.num_envs=4",
        "algo.num_steps=64",
        "train.total_timesteps=512",
    )
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 512


def test_target_return_stops_the_run_and_records_when(runner: CliRunner) -> None:
    run_dir = train_run(runner, *FAST, "train.target_return=5", "train.target_window=5")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "solved"
    assert summary["solved_at_step"] == summary["global_step"] < 4096
    assert summary["solved_at_s"] > 0


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train", "lr=-1"], "lr=-1.0 is invalid"),
        (["train", "env.num_envs=0"], "env.num_envs=0 is invalid"),
        (["train", "env=nope"], "unknown option env=nope"),
        (["train", "train.nope=3"], "unknown config key 'train.nope'"),
        (["eval", "does/not/exist"], "no such run directory or checkpoint"),
    ],
)
def test_errors_are_one_line_without_traceback(runner: CliRunner, args: list[str], expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert len(errors) == 1 and expected in errors[0], result.output


def test_cfg_job_prints_the_composed_config(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "lr=1e-3", "--cfg", "job"])
    assert result.exit_code == 0
    assert "lr: 0.001" in result.stdout and "hydra" not in result.stdout


def test_help_does_not_import_torch() -> None:
    code = "import sys; from thrust_cli import cli; print('torch' in sys.modules, 'hydra' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_bench_reports_env_vectorizer_and_training_throughput(runner: CliRunner) -> None:
    args = ["bench", "--json", "--seconds", "0.05", "--train-steps", "2048", "--vec-envs", "64", "--no-reference"]
    result = runner.invoke(app, [*args, "env.num_envs=16", "algo.num_steps=64"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report["env_steps_per_s"]) == {"1", "64", "1024", "4096"}
    assert all(v > 0 for v in report["env_steps_per_s"].values())
    assert len(report["vectorizers_steps_per_s"]) == 3 and all(
        v > 0 for v in report["vectorizers_steps_per_s"].values()
    )
    assert report["train_steps"] >= 2048 and report["train_sps"] > 0


def test_export_writes_onnx_and_safetensors_for_a_trained_run(runner: CliRunner) -> None:
    pytest.importorskip("onnxruntime")
    run_dir = train_run(runner, *FAST)
    result = runner.invoke(app, ["export", str(run_dir), "--onnx", "--safetensors"])
    assert result.exit_code == 0, result.output
    assert "max abs diff" in result.stdout
    assert (run_dir / "export" / "policy.onnx").is_file() and (run_dir / "export" / "policy.safetensors").is_file()
    missing = runner.invoke(app, ["export", str(run_dir)])
    assert missing.exit_code == 2 and "choose a format" in missing.output


def test_eval_gif_writes_an_animation_and_refuses_envs_that_do_not_render(runner: CliRunner, tmp_path: Path) -> None:
    from PIL import Image

    run_dir = train_run(runner, *FAST)
    result = runner.invoke(app, ["eval", str(run_dir), "-n", "2", "--gif", str(tmp_path / "cartpole.gif")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "cartpole.gif") as gif:
        assert gif.n_frames > 5 and gif.size == (240, 160)
    memory = train_run(runner, "env=memory", "train.total_timesteps=1024", "algo.num_steps=16")
    refused = runner.invoke(app, ["eval", str(memory), "--gif", str(tmp_path / "m.gif")])
    assert refused.exit_code == 2 and "does not render" in refused.output
