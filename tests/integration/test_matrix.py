"""Every command on every env preset, as a user runs them (issue 11): the command × env matrix.

Each combination trains once (one short update) through the CLI; then eval, eval --gif, export --onnx
--safetensors (checked against torch in onnxruntime by the export itself) and plot run on that run directory.
A combination that cannot work (a GIF of an env with no renderer) must end in one line naming what is allowed.
The bench column of the matrix is tests/integration/test_bench.py (every preset, quick settings).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrust_cli.cli import app

ENVS = {
    "cartpole": ["env=cartpole"],
    "snake": ["env=snake"],
    "pendulum": ["env=pendulum"],
    "asteroids": ["env=asteroids"],
    "memory": ["env=memory"],
    "busy": ["env=busy", "env.work=100"],
    "gym-discrete": ["env=gym", "env.id=Acrobot-v1"],
    "gym-box": ["env=gym", "env.id=MountainCarContinuous-v0"],
}
VARIANTS = {
    "cartpole-lstm": ["env=cartpole", "policy=lstm"],
    "cartpole-vtrace": ["env=cartpole", "algo=vtrace"],
    "cartpole-multiprocessing": ["env=cartpole", "vec=multiprocessing", "vec.num_workers=2"],
    "snake-lstm": ["env=snake", "policy=lstm"],
    "snake-vtrace": ["env=snake", "algo=vtrace"],
    "snake-multiprocessing": ["env=snake", "vec=multiprocessing", "vec.num_workers=2"],
    "asteroids-lstm": ["env=asteroids", "policy=lstm"],
}
COMBOS = ENVS | VARIANTS
RENDER = {"cartpole", "snake", "pendulum", "asteroids", "gym-discrete", "gym-box"}  # the rest refuse --gif in one line
# the policy is what export depends on; vtrace and the vectorizer change no weights
EXPORT = [*ENVS, "cartpole-lstm", "snake-lstm", "asteroids-lstm"]
# one update of 16 steps per agent, one epoch: seconds per combination
BUDGET = ["train.total_timesteps=1", "algo.num_steps=16", "algo.update_epochs=1", "train.progress=none", "logger=none"]


def invoke(args: list[str]) -> tuple[int, str, str]:
    """Run ``thrust <args>`` in-process; any exception but a clean exit fails the test (no tracebacks)."""
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"thrust {' '.join(args)} raised {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train every combination once; later tests share the run directories."""
    root = tmp_path_factory.mktemp("matrix")
    made = {}
    for name, overrides in COMBOS.items():
        code, out, err = invoke(["train", *overrides, *BUDGET, f"hydra.run.dir={root / name}"])
        assert code == 0, (name, err)
        made[name] = Path(out.strip().splitlines()[-1])
    return made


@pytest.mark.parametrize("name", COMBOS)
def test_train_writes_a_complete_run(runs: dict[str, Path], name: str) -> None:
    run = runs[name]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] > 0
    assert list((run / "checkpoints").glob("step_*.pt"))
    assert (run / "metrics.jsonl").read_text().strip()


@pytest.mark.parametrize("name", COMBOS)
def test_eval_runs_the_requested_episodes(runs: dict[str, Path], name: str) -> None:
    code, out, err = invoke(["eval", str(runs[name]), "--episodes", "2", "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["episodes"] == 2 and result["mean_length"] > 0


@pytest.mark.parametrize("name", ENVS)
def test_eval_gif_draws_the_env_or_says_which_envs_render(runs: dict[str, Path], name: str, tmp_path: Path) -> None:
    gif = tmp_path / "deep" / "eval.gif"
    code, _, err = invoke(["eval", str(runs[name]), "--episodes", "1", "--gif", str(gif)])
    if name in RENDER:
        from PIL import Image

        assert code == 0, err
        with Image.open(gif) as image:
            assert image.n_frames > 1 and image.size[0] >= 32
    else:
        assert code != 0 and not gif.exists()
        assert "--gif works for: cartpole, snake, pendulum, asteroids" in one_line_error(err)


@pytest.mark.parametrize("name", EXPORT)
def test_export_onnx_and_safetensors_into_a_directory(runs: dict[str, Path], name: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "exported"
    out_dir.mkdir()
    code, out, err = invoke(["export", str(runs[name]), "--onnx", "--safetensors", "-o", str(out_dir)])
    assert code == 0, err
    assert (out_dir / "policy.onnx").stat().st_size > 0, out
    assert (out_dir / "policy.safetensors").stat().st_size > 0, out


@pytest.mark.parametrize("name", COMBOS)
def test_plot_draws_the_run(runs: dict[str, Path], name: str, tmp_path: Path) -> None:
    png = tmp_path / "curves.png"
    code, _, err = invoke(["plot", str(runs[name]), "--out", str(png)])
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
