"""The release artifacts: the version is one number, cibuildwheel builds the intended wheels, and the wheel installed
into a fresh virtualenv runs from outside the checkout (packaged conf/, web assets and compiled envs found).

The wheel is built once per source state and cached under ``build/wheel-cache/<hash>/`` (the hash covers every
file the sdist ships), so rerunning the test after an unrelated change skips the compile.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
TORCH = "torch==2.13.0"


def test_package_version_is_the_pyproject_version() -> None:
    from typer.testing import CliRunner

    import thrust_cli
    from thrust_cli.cli import app

    assert thrust_cli.__version__ == VERSION == "1.0.0"
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == "thrust 1.0.0"


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux", {f"cp3{m}-manylinux_{a}" for m in (10, 11, 12, 13) for a in ("x86_64", "aarch64")}),
        ("macos", {f"cp3{m}-macosx_{a}" for m in (10, 11, 12, 13) for a in ("x86_64", "arm64")}),
    ],
)
def test_cibuildwheel_builds_cpython_310_to_313_for_manylinux_and_macos(platform: str, expected: set[str]) -> None:
    exe = shutil.which("cibuildwheel")
    if exe is None:
        pytest.skip("cibuildwheel is not installed (dev extra)")
    out = subprocess.run(
        [exe, "--print-build-identifiers", "--platform", platform],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == expected


def _source_hash() -> str:
    """Hash of the files that go into the wheel (tracked and untracked, generated files left out)."""
    digest = hashlib.sha256()
    roots = ["pyproject.toml", "setup.py", "MANIFEST.in", "conf", "envs_cython", "thrust_cli"]
    for name in roots:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if f.suffix in {".so", ".pyc", ".c"} and not f.name.endswith("_main.c") and "wasm" not in f.parts:
                continue
            if "__pycache__" in f.parts:
                continue
            digest.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def _wheel() -> Path:
    cache = ROOT / "build" / "wheel-cache" / _source_hash()
    wheels = sorted(cache.glob("thrust_rl-*.whl"))
    if not wheels:
        tmp = cache.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        # the sdist first, then the wheel from it: proves the sdist holds what a build needs
        out = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(tmp), str(ROOT)],
            capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        tmp.rename(cache)
        wheels = sorted(cache.glob("thrust_rl-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (no system site-packages) with torch and the wheel's web extra installed."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler to build the wheel")
    wheel = _wheel()
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    out = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", TORCH, f"{wheel}[web]"], capture_output=True, text=True, timeout=1200
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return env_dir


def _run(env_dir: Path, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "COVERAGE_PROCESS_START"}}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # the sdist, a wheel built from it and torch installed into a fresh venv: ~15 min uncached
def test_wheel_in_a_fresh_venv_trains_evaluates_and_serves_outside_the_checkout(
    wheel_venv: Path, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(wheel_venv, work, "python", "-c", "import thrust_cli, envs_cython; print(thrust_cli.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(wheel_venv), where.stdout  # not the checkout

    version = _run(wheel_venv, work, "thrust", "--version")
    assert version.returncode == 0 and version.stdout.strip() == "thrust 1.0.0", version.stdout + version.stderr

    train = _run(wheel_venv, work, "thrust", "train", "debug=fast", "logger=none", "train.torch_threads=1")
    assert train.returncode == 0, train.stderr[-3000:]
    run_dir = Path(train.stdout.strip().splitlines()[-1])
    run_dir = run_dir if run_dir.is_absolute() else work / run_dir
    assert run_dir.is_relative_to(work) and (run_dir / "summary.json").is_file(), train.stdout[-2000:]

    evaluation = _run(wheel_venv, work, "thrust", "eval", str(run_dir), "--episodes", "3", "--json")
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert '"episodes": 3' in evaluation.stdout, evaluation.stdout

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "COVERAGE_PROCESS_START"}}
    env["PATH"] = f"{wheel_venv / 'bin'}{os.pathsep}{env['PATH']}"
    cmd = ["thrust", "serve", "--port", "0", "--db", str(tmp_path / "a.sqlite3")]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + (proc.stderr.read() if proc.stderr else "")
        with urllib.request.urlopen(match.group(1) + "api/health", timeout=30) as response:
            assert response.status == 200
        with urllib.request.urlopen(match.group(1), timeout=30) as response:  # the packaged pages
            assert response.status == 200 and b"<html" in response.read().lower()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 130
    finally:
        proc.kill()
        proc.wait()
