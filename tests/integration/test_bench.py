"""``thrust bench`` on every env preset, its random actions, and its C reference rows (built, honouring the
config, or skipped with a one-line note), with quick settings (``--seconds 0.05``): a few seconds per test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

import envs_cython
from thrust_cli.cli import app
from thrust_cli.commands.bench import c_reference
from thrust_cli.vector.spaces import random_actions

QUICK = ["--seconds", "0.05", "--train-steps", "0", "--vec-envs", "0"]
# (overrides, has a C driver): every preset of conf/env, busy at the work docs/performance.md quotes too, gym
# with a Discrete and with a Box action space
PRESETS = {
    "cartpole": (["env=cartpole"], True),
    "snake": (["env=snake"], True),
    "pendulum": (["env=pendulum"], True),
    "asteroids": (["env=asteroids"], True),
    "memory": (["env=memory"], False),
    "busy": (["env=busy"], True),
    "busy-work-500": (["env=busy", "env.work=500"], True),
    "gym-discrete": (["env=gym", "env.id=CartPole-v1"], False),
    "gym-box": (["env=gym", "env.id=MountainCarContinuous-v0"], False),
}
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs gcc")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def bench_json(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["bench", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("preset", PRESETS)
def test_bench_json_reports_every_env_preset_with_its_c_reference_or_a_skip_note(
    runner: CliRunner, preset: str
) -> None:
    overrides, has_driver = PRESETS[preset]
    report = bench_json(runner, *QUICK, *overrides)
    assert report["env_steps_per_s"] and all(v > 0 for v in report["env_steps_per_s"].values())
    if has_driver and shutil.which("gcc"):
        assert report["c_reference_steps_per_s"] and all(v > 0 for v in report["c_reference_steps_per_s"].values())
        assert "c_reference_skipped" not in report
    else:
        assert report["c_reference_steps_per_s"] == {}
        assert "\n" not in report["c_reference_skipped"]


@pytest.mark.parametrize("preset", PRESETS)
def test_bench_table_with_vectorizers_and_a_short_training_run_works_on_every_env_preset(
    runner: CliRunner, preset: str
) -> None:
    # the vectorizers' random actions are drawn with the action space's shape: Box envs once failed here
    overrides, _ = PRESETS[preset]
    args = ["--seconds", "0.05", "--train-steps", "2048", "--vec-envs", "64", "--no-reference"]
    result = runner.invoke(app, ["bench", *args, *overrides])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert sum(line.startswith("env ") for line in lines) == (3 if preset.startswith(("gym", "snake")) else 4)
    assert sum(line.startswith("vec ") for line in lines) >= 2
    assert any(line.startswith("training ") and "SPS" in line for line in lines)


def test_random_actions_are_discrete_integers_in_range_with_the_buffer_dtype() -> None:
    draws = random_actions(gymnasium.spaces.Discrete(3, start=1), 1000, 4, np.random.default_rng(0))
    assert len(draws) == 4 and all(a.shape == (1000,) and a.dtype == np.int32 for a in draws)
    assert set(np.unique(np.concatenate(draws))) == {1, 2, 3}


def test_random_actions_are_uniform_in_box_bounds_with_the_space_shape_and_dtype() -> None:
    space = gymnasium.spaces.Box(np.float32([-1.0, 0.0]), np.float32([1.0, 4.0]), dtype=np.float32)
    draws = random_actions(space, 1000, 2, np.random.default_rng(0))
    assert all(a.shape == (1000, 2) and a.dtype == np.float32 for a in draws)
    actions = np.concatenate(draws)
    assert np.all(actions >= space.low) and np.all(actions <= space.high)
    assert np.allclose(actions.mean(axis=0), [0.0, 2.0], atol=0.1)  # uniform: the middle of the bounds
    unbounded = gymnasium.spaces.Box(np.float32([-np.inf, 0.0]), np.float32([np.inf, np.inf]), dtype=np.float32)
    actions = random_actions(unbounded, 1000, 1, np.random.default_rng(0))[0]
    assert np.all(np.isfinite(actions)) and np.all(actions[:, 1] >= 0.0) and actions[:, 0].min() < 0.0


def test_random_actions_refuse_other_spaces_with_a_value_error() -> None:
    with pytest.raises(ValueError, match="Discrete or Box"):
        random_actions(gymnasium.spaces.MultiBinary(3), 4, 1, np.random.default_rng(0))


@needs_gcc
def test_busy_c_reference_runs_its_bench_mode_with_the_configured_work() -> None:
    busy = {"name": "busy", "obs_dim": 4, "max_steps": 100}
    light, skipped = c_reference(OmegaConf.create({**busy, "work": 0}), reps=5)
    assert skipped is None and set(light) == {"plain C loop", "core c_step_all"}
    heavy, skipped = c_reference(OmegaConf.create({**busy, "work": 3000}), reps=5)
    assert skipped is None
    # 3000 chain iterations (~4 us) against a bare step (~15 ns) per env: two orders of magnitude, not noise
    assert heavy["core c_step_all"] * 20 < light["core c_step_all"]


def fake_drivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """Point ``envs_cython`` at ``tmp_path``, whose ``cartpole/cartpole_main.c`` is ``source``."""
    (tmp_path / "cartpole").mkdir()
    (tmp_path / "cartpole" / "cartpole_main.c").write_text(source)
    monkeypatch.setattr(envs_cython, "__file__", str(tmp_path / "__init__.py"))


@needs_gcc
@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("int main(void) { return 2; }\n", "run of cartpole_main.c exited 2"),  # a driver without --bench
        ("int main(void) { return }\n", "build of cartpole_main.c exited 1"),
        ('#include <stdio.h>\nint main(void) { puts("fast"); return 0; }\n', "printed no 'M steps/s' lines"),
    ],
    ids=["no-bench-mode", "does-not-build", "no-figures"],
)
def test_bench_skips_a_c_reference_that_does_not_build_run_or_report_with_one_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, why: str
) -> None:
    fake_drivers(tmp_path, monkeypatch, source)
    result = runner.invoke(app, ["bench", *QUICK, "env=cartpole"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stdout.splitlines() if line.startswith("C reference")]
    assert len(notes) == 1 and notes[0].startswith("C reference skipped: ") and why in notes[0], notes


def test_bench_skips_the_c_reference_without_a_compiler(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    report = bench_json(runner, *QUICK, "env=cartpole")
    assert report["c_reference_steps_per_s"] == {} and report["c_reference_skipped"].startswith("no C compiler")
