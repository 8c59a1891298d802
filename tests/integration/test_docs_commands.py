"""Every ``thrust ...`` command in README.md and docs/*.md runs as written, with a short budget (issue 11).

The commands are extracted from the Markdown: lines of fenced shell blocks, and inline code spans that carry
arguments. Each runs through the real CLI in a scratch directory laid out as the docs assume: a trained run at
``outputs/2026-11-27/10-42-07`` (also what ``outputs/<date>/<time>``, ``<run>`` and ``<run-dir>`` stand for),
copies of it where the docs name other runs, and ``my_search.yaml``. Budget options are appended (a later
option or override wins): one short update per training run, two trials per Optuna study, 0.05 s per bench
measurement. Placeholders are the only edits.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrust_cli.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = "outputs/2026-11-27/10-42-07"
OTHER_RUNS = [f"{RUN}_2", "outputs/cartpole-seed1", "outputs/cartpole-seed2", "outputs/cartpole-seed3", "outputs/a",
              "outputs/b"]  # fmt: skip
PLACEHOLDERS = [
    (re.compile(r"outputs/[^\s]*/checkpoints/step_\d+\.pt"), "CHECKPOINT"),
    (re.compile(r"outputs/<date>/<other>"), f"{RUN}_2"),
    (re.compile(r"outputs/<date>/<time>|<run-dir>|<run>"), RUN),
    (re.compile(r"\bseed=S\b"), "seed=1"),
]
TRAIN_BUDGET = ["train.total_timesteps=1", "algo.num_steps=16", "algo.update_epochs=1", "train.progress=none"]
BUDGET = {
    "train": TRAIN_BUDGET,
    "sweep": TRAIN_BUDGET,
    "bench": ["--seconds", "0.05", "--train-steps", "0", "--vec-envs", "0"],
    # the CartPole demo only, trained for one short update, into the scratch dir (not the package's store)
    "demo": [
        "--game",
        "cartpole",
        "--out",
        "demo_models",
        "--override",
        "debug=fast",
        "--override",
        "train.progress=none",
    ],
}
# an Optuna study refuses overrides of the keys it searches: only the step budget, and two trials
HPO_BUDGET = ["train.total_timesteps=1", "train.progress=none", "--trials", "2"]


def _commands() -> list[tuple[str, str]]:
    """(where, command) for every thrust command in the Markdown, in order, without duplicates."""
    found: dict[str, str] = {}
    for path in DOCS:
        text = path.read_text()
        for block in re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("thrust "):
                    found.setdefault(line.split(" #")[0].strip(), path.name)
        for span in re.findall(r"`(thrust [^`]+)`", text):
            if re.search(r"[=<\-/]", span):  # a runnable command, not a mention of one (`thrust eval`)
                found.setdefault(span.strip(), path.name)
    return [(where, command) for command, where in found.items()]


COMMANDS = _commands()


def test_the_docs_have_commands_to_check() -> None:
    names = {c.split()[1] for _, c in COMMANDS}
    assert {"train", "eval", "sweep", "export", "bench", "plot"} <= names, names


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory laid out as the docs assume, with one real (tiny) CartPole run."""
    work = tmp_path_factory.mktemp("docs")
    result = CliRunner().invoke(app, ["train", *TRAIN_BUDGET, "logger=none", f"hydra.run.dir={work / RUN}"])
    assert result.exit_code == 0, result.output
    for other in OTHER_RUNS:
        shutil.copytree(work / RUN, work / other)
    shutil.copy(ROOT / "conf" / "hpo" / "cartpole.yaml", work / "my_search.yaml")
    (work / "multirun" / "2026-11-27" / "10-42-07").mkdir(parents=True)
    return work


def _argv(command: str, work: Path) -> list[str]:
    checkpoint = str(next((work / RUN / "checkpoints").glob("step_*.pt")).relative_to(work))
    for pattern, value in PLACEHOLDERS:
        command = pattern.sub(checkpoint if value == "CHECKPOINT" else value, command)
    argv = shlex.split(command)[1:]
    extra = BUDGET.get(argv[0], []) if argv and "--help" not in argv and "--cfg" not in argv else []
    if argv[:1] == ["sweep"] and "--hpo" in argv:
        # Acrobot's episodes run 500 steps: enough steps that one finishes, or the trial has no objective
        extra = ["train.total_timesteps=8192", *HPO_BUDGET[1:]] if "acrobot" in argv else HPO_BUDGET
    if argv[:1] == ["train"] and any(a.startswith("resume=") for a in argv):
        extra = ["train.total_timesteps=1"]  # key=value overrides of the saved config only
    return argv + extra


def _serve_answers_health(argv: list[str], workdir: Path, where: str, command: str) -> None:
    """`thrust serve ...` runs until Ctrl-C: start it on a free port, ask /api/health, then Ctrl-C (exit 130)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "thrust_cli", *argv, "--port", "0", "--db", str(workdir / "analytics.sqlite3")],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        found = re.search(r"serving (http://\S+/)", line)
        assert found, f"{where}: `{command}` printed {line!r}; stderr: {server.stderr.read() if server.stderr else ''}"
        with urllib.request.urlopen(found.group(1) + "api/health", timeout=30) as response:
            assert json.load(response)["status"] == "ok"
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 130, f"{where}: `{command}` did not stop with exit 130 on Ctrl-C"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("where,command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_runs_as_written(
    where: str, command: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    for name, value in (("WANDB_MODE", "offline"), ("NEPTUNE_MODE", "offline")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_DIR", str(workdir))
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(workdir / ".neptune"))
    argv = _argv(command, workdir)
    if argv[:1] == ["serve"] and "--help" not in argv:
        _serve_answers_health(argv, workdir, where, command)
        return
    result = CliRunner().invoke(app, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{where}: `{command}` raised {result.exception!r}\n{result.output}")
    assert result.exit_code == 0, f"{where}: `{command}` (run as thrust {shlex.join(argv)}) exited " + (
        f"{result.exit_code}:\n{result.output[-2000:]}"
    )
