"""No traceback reaches a user (issue 11): unexpected exceptions, eval overrides and GIF paths, --cfg --resolve,
and the help a user reads (-h, --version, flags without a value placeholder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrust_cli.cli import app, unexpected_error_line

BUDGET = ["train.total_timesteps=1", "algo.num_steps=16", "algo.update_epochs=1", "train.progress=none", "logger=none"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {result.exception!r}: {result.output}")
    return result.exit_code, result.stdout, result.stderr


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "cartpole"
    code, out, err = invoke("train", *BUDGET, f"hydra.run.dir={run}")
    assert code == 0, err
    return Path(out.strip().splitlines()[-1])


# --- an unexpected exception: one line naming the command and the cause; THRUST_DEBUG / --debug show it all ---
RAISE_IN_EVAL = textwrap.dedent(
    """
    import sys
    import thrust_cli.commands.evaluate as evaluate

    def boom(*args, **kwargs):
        raise RuntimeError("boom: the cause\\nsecond line")

    evaluate.evaluate = boom
    sys.argv = ["thrust", *sys.argv[1:]]
    from thrust_cli.cli import main
    main()
    """
)


def _run_main(*args: str, debug_env: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "THRUST_DEBUG"}
    if debug_env:
        env["THRUST_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-c", RAISE_IN_EVAL, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_an_unexpected_exception_is_one_line_naming_the_command_and_cause(cartpole_run: Path) -> None:
    done = _run_main("eval", str(cartpole_run))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line == "error: thrust eval failed: RuntimeError: boom: the cause (THRUST_DEBUG=1 shows the traceback)"


@pytest.mark.parametrize("how", ["env", "flag"])
def test_thrust_debug_or_debug_flag_shows_the_traceback(cartpole_run: Path, how: str) -> None:
    args = ("eval", str(cartpole_run)) if how == "env" else ("--debug", "eval", str(cartpole_run))
    done = _run_main(*args, debug_env=how == "env")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "RuntimeError: boom" in done.stderr


def test_unexpected_error_line_skips_global_options() -> None:
    line = unexpected_error_line(KeyError("k"), ["--debug", "export", "run"])
    assert line.startswith("thrust export failed: KeyError: 'k'")


# --- help -----------------------------------------------------------------------------------------------------
def test_short_help_and_version() -> None:
    code, out, _ = invoke("-h")
    assert code == 0 and "Commands" in out
    code, out, _ = invoke("eval", "-h")
    assert code == 0 and "--episodes" in out
    code, out, _ = invoke("--version")
    from thrust_cli import __version__

    assert code == 0 and out.strip() == f"thrust {__version__}"


def test_help_shows_flags_without_a_value_and_arguments_in_capitals() -> None:
    code, out, _ = invoke("eval", "--help")
    assert code == 0
    assert "<bool>" not in out and "{run}" not in out, out
    assert "Usage: thrust eval [OPTIONS] [RUN]" in out, out


# --- --cfg ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["job", "hydra", "all"])
def test_cfg_resolve_prints_every_part(which: str) -> None:
    code, out, err = invoke("train", "--cfg", which, "--resolve")
    assert code == 0, err
    if which != "hydra":
        assert "seed: 1" in out and "num_envs: 32" in out
    if which != "job":
        assert "run:" in out and "${now:" not in out  # resolved; hydra.job.num stays unset outside a multirun
        assert "subdir: ${hydra.job.num}" in out


# --- eval overrides: they apply or are refused with the reason ------------------------------------------------
def test_eval_with_the_runs_own_env_group_applies(cartpole_run: Path) -> None:
    code, out, err = invoke("eval", str(cartpole_run), "env=cartpole", "-n", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["episodes"] == 2


def test_eval_with_an_env_setting_applies(cartpole_run: Path) -> None:
    code, out, err = invoke("eval", str(cartpole_run), "env.max_steps=5", "-n", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["mean_length"] <= 5


@pytest.mark.parametrize(
    "override,expected",
    [
        ("env=snake", "cannot apply 'env=snake' in eval: the policy was trained on env=cartpole"),
        ("policy=lstm", "cannot apply 'policy=lstm' in eval"),
        ("+env.foo=1", "unknown key 'env.foo'; allowed keys in 'env'"),
        ("~env.max_steps", "cannot apply '~env.max_steps' in eval"),
        ("env.name=pendulum", "env pendulum has observations (3,) float32 and actions Box(1,), but this policy"),
        ("env.name=gym", "unknown key 'env.max_steps'; allowed keys in 'env': name, id, num_envs, kwargs"),
    ],
)
def test_eval_override_that_cannot_apply_is_one_line(cartpole_run: Path, override: str, expected: str) -> None:
    code, _, err = invoke("eval", str(cartpole_run), override, "-n", "2")
    assert code != 0
    assert expected in one_line(err)


def test_eval_of_a_gym_run_on_another_id_says_the_spaces_differ(tmp_path: Path) -> None:
    code, out, err = invoke("train", "env=gym", *BUDGET, f"hydra.run.dir={tmp_path / 'gym'}")
    assert code == 0, err
    code, _, err = invoke("eval", out.strip().splitlines()[-1], "env.id=Acrobot-v1", "-n", "1")
    assert code != 0
    assert "env gym env.id=Acrobot-v1 has observations (6,) float32 and actions Discrete(3)" in one_line(err)


# --- eval --gif ---------------------------------------------------------------------------------------------
def test_gif_under_a_file_fails_before_the_evaluation(cartpole_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, out, err = invoke("eval", str(cartpole_run), "--gif", str(blocker / "x.gif"), "-n", "100000")
    assert code != 0 and out == ""
    assert f"cannot write '{blocker / 'x.gif'}': '{blocker}' is a file, not a directory" in one_line(err)


def test_gif_that_is_a_directory_is_refused(cartpole_run: Path, tmp_path: Path) -> None:
    code, _, err = invoke("eval", str(cartpole_run), "--gif", str(tmp_path), "-n", "1")
    assert code != 0 and "it is a directory" in one_line(err)


def test_gif_of_a_gymnasium_run_draws_its_frames(tmp_path: Path) -> None:
    from PIL import Image

    code, out, err = invoke("train", "env=gym", *BUDGET, f"hydra.run.dir={tmp_path / 'gym'}")
    assert code == 0, err
    gif = tmp_path / "gym.gif"
    code, out, err = invoke("eval", out.strip().splitlines()[-1], "--gif", str(gif), "-n", "1", "--json")
    assert code == 0, err
    json.loads(out)  # stdout is the JSON alone: no pygame banner
    with Image.open(gif) as image:
        assert image.n_frames > 1 and image.size == (600, 400)


# --- eval without a run: the latest one under outputs/ ------------------------------------------------------
def test_eval_without_a_run_uses_the_latest_and_says_so(
    cartpole_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("eval", "-n", "1")
    assert code != 0 and "train one first (thrust train) or name a run" in one_line(err)
    shutil.copytree(cartpole_run, tmp_path / "outputs" / "2026-11-27" / "10-42-07")
    code, out, err = invoke("eval", "env.max_steps=7", "-n", "2", "--json")  # overrides alone: no run named
    assert code == 0, err
    assert err.strip() == "using the latest run: outputs/2026-11-27/10-42-07"
    assert json.loads(out)["mean_length"] <= 7


# --- usage errors through the console script -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["eval", "--episodes", "abc"], "error: Invalid value for '--episodes' / '-n': "),
        (["plot"], "error: Missing argument 'runs'; see `thrust plot --help`"),
        (["nosuch"], "error: No such command 'nosuch'; see `thrust --help`"),
        (["export", "--foo"], "error: No such option: --foo; see `thrust export --help`"),
        (["bench", "--foo"], "error: unknown option '--foo'; see `thrust bench --help`"),
    ],
)
def test_usage_errors_are_one_line_not_a_boxed_panel(args: list[str], expected: str) -> None:
    """Click's usage errors (bad option values, unknown options and commands, missing arguments) reach the user
    as one `error:` line naming the command's help, exit 2, as Thrust's own errors do."""
    run = subprocess.run([sys.executable, "-m", "thrust_cli", *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert one_line(run.stderr).startswith(expected), run.stderr
    assert "╭" not in run.stderr and "Usage:" not in run.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_on_a_missing_gpu_fails_before_benchmarking_anything() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "thrust_cli", "bench", "device=cuda", "--train-steps", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and run.stdout == "", run.stdout
    assert one_line(run.stderr) == "error: device=cuda but CUDA is not available; allowed here: cpu, auto"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--gif", "out.txt"], "error: --gif 'out.txt' must end in .gif, .webp, .png (an animation Pillow writes)"),
        (["--seed", "-5"], "greater than or equal to 0"),  # CliRunner shows click's panel; main() one line
    ],
)
def test_eval_refuses_a_gif_it_cannot_write_and_a_negative_seed(
    cartpole_run: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    code, _, err = invoke("eval", str(cartpole_run), "-n", "1", *args)
    assert code != 0 and not (tmp_path / "out.txt").exists()
    assert expected in err, err


def test_resume_of_a_run_without_checkpoints_says_it_starts_over(cartpole_run: Path, tmp_path: Path) -> None:
    import shutil

    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copytree(cartpole_run / ".hydra", empty / ".hydra")
    code, _, err = invoke("train", f"resume={empty}")
    assert code == 0, err
    assert f"note: '{empty.resolve()}' has no checkpoint yet: it trains from step 0" in err


def test_resume_with_a_policy_that_does_not_fit_names_the_first_mismatch(cartpole_run: Path) -> None:
    code, _, err = invoke("train", f"resume={cartpole_run}", "policy.hidden_size=16")
    line = one_line(err)
    assert code == 1, err
    assert "the checkpoint does not fit this config's policy (size mismatch for " in line and "more)" in line, line


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_a_corrupt_checkpoint_is_named_as_such_in_one_line(cartpole_run: Path, tmp_path: Path, kind: str) -> None:
    bad = tmp_path / "bad.pt"
    good = next((cartpole_run / "checkpoints").glob("step_*.pt")).read_bytes()
    bad.write_bytes(b"garbage\n" if kind == "text" else good[: len(good) // 3])
    code, _, err = invoke("eval", str(bad))
    line = one_line(err)
    assert code != 0 and line.startswith(f"error: checkpoint '{bad}' could not be read: not a torch checkpoint, or"), (
        line
    )
    assert len(line) < 300, line


@pytest.mark.parametrize("override", ["lr=0.1", "algo.num_steps=7", "train.total_timesteps=5"])
def test_eval_refuses_an_override_it_would_ignore(cartpole_run: Path, override: str) -> None:
    code, _, err = invoke("eval", str(cartpole_run), "-n", "1", override)
    assert code == 2, err
    assert one_line(err) == (
        f"error: cannot apply '{override}' in eval: eval uses only the run's policy and its env; "
        "allowed: env.* overrides such as env.max_steps=1000"
    )
