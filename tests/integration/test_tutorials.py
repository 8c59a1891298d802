"""Every tutorial in docs/tutorials/ runs as written, with short budgets (issue 16).

A tutorial's fenced ``bash`` and ``python`` blocks are its source: they are concatenated, in order, into one
bash script (``set -euo pipefail``; each python block becomes ``python - <<'EOF'``), so shell variables such as
``RUN=$(thrust train ... | tail -n 1)`` carry from block to block as they do in the reader's terminal. The
script runs in a scratch directory laid out like a clone of Thrust (``docs/tutorials/c_env/`` is there), in a
folder ``thrust/`` so that a tutorial may work beside it (``../walk-env``).

The only changes to what the reader runs, made by shell functions the script defines first:

- ``thrust train``, ``thrust sweep``, ``thrust eval`` and ``torchrun`` get the test's budget options appended
  (a later Hydra override or option wins), e.g. ``train.total_timesteps=8192``; ``thrust sweep --hpo`` also a
  trial count. ``THRUST_TUTORIALS_FULL=1`` in
  the environment appends nothing: the tutorials run as the reader runs them, which is how their figures were
  measured.
- ``thrust serve`` (which runs until Ctrl-C) is started by a checker on a free port (``--port 0``), which asks
  ``/api/health`` and ``/api/models``, opens every ``/play/<game>?model=<run model>`` page and its weights, writes
  what it saw to ``serve_check.json``, then sends Ctrl-C: the server must exit 130.

A block preceded by ``<!-- test: skip -->`` is not run (``tensorboard --logdir``, which blocks). A block
preceded by ``<!-- file: PATH -->`` shows a file of the repository (e.g. ``docs/tutorials/c_env/walk/walk.h``): it
is not run, and must equal that file. Each test then
checks what its tutorial promises: checkpoints, the curves, the ONNX output equal to torch, the custom env's
logged returns, the data-parallel summary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
NAMES = ["cartpole", "snake-lstm", "c-env", "gym-optuna", "export-onnx", "torchrun"]
FULL = os.environ.get("THRUST_TUTORIALS_FULL") == "1"
# a fence, its language and its body; the HTML comments on the lines right above it are its marks
FENCE = re.compile(
    r"^(?P<marks>(?:<!--[^\n]*-->[ \t]*\n)*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M
)
MARK = re.compile(r"<!--\s*(test|file):\s*(\S+)\s*-->")
PROGRESS = ["train.progress=none", "train.torch_threads=1"]  # no live dashboard in a log; 6 jobs share 2 cores


@dataclass
class Block:
    """One fenced code block of a tutorial."""

    lang: str
    body: str
    line: int
    marks: dict[str, str]


def blocks(name: str) -> list[Block]:
    """The fenced blocks of ``docs/tutorials/<name>.md``, in order, with their ``<!-- key: value -->`` marks."""
    text = (TUTORIALS / f"{name}.md").read_text()
    found = []
    for match in FENCE.finditer(text):
        marks = {key: value for key, value in MARK.findall(match.group("marks"))}
        line = text.count("\n", 0, match.start("lang")) + 1
        found.append(Block(match.group("lang"), match.group("body"), line, marks))
    return found


PRELUDE = r"""
set -euo pipefail
thrust() {
    case "${1:-}" in
        train) command thrust "$@" $TUTORIAL_TRAIN ;;
        sweep) if [[ " $* " == *" --hpo "* ]]; then command thrust "$@" $TUTORIAL_SWEEP $TUTORIAL_HPO;
               else command thrust "$@" $TUTORIAL_SWEEP; fi ;;
        eval) command thrust "$@" $TUTORIAL_EVAL ;;
        serve) tutorial_serve "$@" ;;
        *) command thrust "$@" ;;
    esac
}
torchrun() { command torchrun "$@" $TUTORIAL_TRAIN; }
tutorial_serve() { python "$TUTORIAL_SERVE_CHECK" serve_check.json "$@"; }
"""

SERVE_CHECK = r'''
"""Start `thrust serve ARGS --port 0`, ask what a reader's browser would (health, models, the run models' pages
and weights), write it to REPORT, then Ctrl-C the server, which must exit 130. Usage: serve_check.py REPORT ARGS."""
import json, os, re, signal, subprocess, sys, urllib.request

report, argv = sys.argv[1], sys.argv[2:]
server = subprocess.Popen(["thrust", *argv, "--port", "0", "--db", os.environ["TUTORIAL_DB"]],
                          stdout=subprocess.PIPE, stderr=open("serve.err", "w"), text=True)
try:
    line = server.stdout.readline()
    found = re.search(r"serving (http://\S+/)", line)
    if not found:
        sys.exit(f"thrust serve printed {line!r}: {open('serve.err').read()}")
    url = found.group(1)
    get = lambda path: urllib.request.urlopen(url + path, timeout=60)
    health = json.load(get("api/health"))
    models = json.load(get("api/models"))["models"]
    pages = {}
    for model in models:
        if model["source"] == "run":
            for path in (f"play/{model['game']}?model={model['id']}", model["urls"]["weights"].lstrip("/")):
                with get(path) as page:
                    pages[path] = {"status": page.status, "bytes": len(page.read())}
    server.send_signal(signal.SIGINT)
    code = server.wait(timeout=30)
    json.dump({"url": url, "health": health, "models": models, "pages": pages, "exit": code}, open(report, "w"))
    if code != 130:
        sys.exit(f"thrust serve exited {code} on Ctrl-C, not 130")
finally:
    if server.poll() is None:
        server.kill()
        server.wait()
'''


def script(name: str) -> str:
    """The tutorial as one bash script: the prelude, then every block not marked skip, announced on stderr."""
    parts = [PRELUDE]
    for k, block in enumerate(blocks(name)):
        if block.marks.get("test") == "skip" or "file" in block.marks or block.lang not in ("bash", "python"):
            continue
        parts.append(f'echo "### block {k} ({name}.md line {block.line}) at $SECONDS s" >&2')
        if block.lang == "bash":
            parts.append(block.body)
        else:
            parts.append(f"python - <<'TUTORIAL_PYTHON_EOF'\n{block.body}TUTORIAL_PYTHON_EOF")
    parts.append('echo "### done at $SECONDS s" >&2')
    return "\n".join(parts) + "\n"


def run_tutorial(
    name: str,
    tmp_path: Path,
    train: list[str] | None = None,
    sweep: list[str] | None = None,
    evaluate: list[str] | None = None,
    hpo: list[str] | None = None,
) -> tuple[Path, str]:
    """Run the tutorial's script in ``tmp_path/thrust``; return that directory and the script's output.

    Args:
        name: the tutorial's file name without ``.md``.
        tmp_path: the scratch directory.
        train: options appended to ``thrust train`` and ``torchrun`` (besides ``PROGRESS``).
        sweep: options appended to ``thrust sweep``.
        evaluate: options appended to ``thrust eval``.
        hpo: options appended to ``thrust sweep --hpo`` (after ``sweep``'s).
    """
    work = tmp_path / "thrust"
    shutil.copytree(ROOT / "docs" / "tutorials" / "c_env", work / "docs" / "tutorials" / "c_env")
    (tmp_path / "serve_check.py").write_text(SERVE_CHECK)
    (work / "tutorial.sh").write_text(script(name))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TUTORIAL_TRAIN": " ".join(PROGRESS + ([] if FULL else train or [])),
        "TUTORIAL_SWEEP": " ".join(PROGRESS + ([] if FULL else sweep or [])),
        "TUTORIAL_EVAL": " ".join([] if FULL else evaluate or []),
        "TUTORIAL_HPO": " ".join([] if FULL else hpo or []),
        "TUTORIAL_DB": str(tmp_path / "analytics.sqlite3"),
        "TUTORIAL_SERVE_CHECK": str(tmp_path / "serve_check.py"),
        "OMP_NUM_THREADS": "1",
        "THRUST_DEBUG": "1",  # a fault no command foresaw shows its traceback in the failure message
    }
    ran = subprocess.run(
        ["bash", "tutorial.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=None if FULL else 600
    )
    output = ran.stdout + ran.stderr
    (tmp_path / "tutorial.log").write_text(output)
    assert ran.returncode == 0, f"{name}.md exited {ran.returncode}:\n{output[-4000:]}"
    return work, ran.stdout


def run_dirs(outputs: Path) -> list[Path]:
    """The run directories under ``outputs`` (``<date>/<time>``), oldest first."""
    return sorted(p for p in outputs.glob("*/*") if (p / ".hydra").is_dir())


def summary(run: Path) -> dict[str, Any]:
    """A run's summary.json."""
    return dict(json.loads((run / "summary.json").read_text()))


def metrics(run: Path) -> list[dict[str, Any]]:
    """A run's metrics.jsonl rows."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The lines of ``stdout`` that are JSON objects (``thrust eval --json``, the tutorials' own prints)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{") and line.endswith("}")]


def test_every_tutorial_is_tested_and_has_runnable_blocks() -> None:
    assert sorted(p.stem for p in TUTORIALS.glob("*.md")) == sorted([*NAMES, "index"])
    for name in NAMES:
        langs = [b.lang for b in blocks(name) if b.marks.get("test") != "skip"]
        assert "bash" in langs, name
        index = (TUTORIALS / "index.md").read_text()
        assert f"({name}.md)" in index, f"index.md does not link {name}.md"


def test_shown_files_are_the_shipped_files() -> None:
    shown = [(name, b) for name in NAMES for b in blocks(name) if "file" in b.marks]
    c_env = {"docs/tutorials/c_env/" + f for f in ("walk/walk.h", "walk/walk.pyx", "walk/__init__.py", "build.py")}
    assert {b.marks["file"] for _, b in shown} >= c_env | {"conf/policy/lstm.yaml"}
    for name, block in shown:
        assert block.body == (ROOT / block.marks["file"]).read_text(), f"{name}.md shows an old {block.marks['file']}"


def test_cartpole_tutorial(tmp_path: Path) -> None:
    work, stdout = run_tutorial(
        "cartpole", tmp_path, train=["train.total_timesteps=16384"], evaluate=["--episodes", "16"]
    )
    runs = run_dirs(work / "outputs")
    assert len(runs) == 2, runs
    for run in runs:
        assert summary(run)["status"] in ("completed", "solved")  # the second stops once solved
        assert sorted((run / "checkpoints").glob("step_*.pt")) and (run / "checkpoints" / "best.pt").is_file()
        assert (run / ".hydra" / "config.yaml").is_file() and list(run.glob("events.out.tfevents.*"))
    assert (work / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the tutorial's TensorBoard block prints the last episode_return it read; it is metrics.jsonl's
    first = runs[0]
    logged = [row["episode_return"] for row in metrics(first) if row.get("episode_return") is not None]
    shown = next(d for d in json_lines(stdout) if "tensorboard_last_episode_return" in d)
    assert shown["tensorboard_last_episode_return"] == pytest.approx(logged[-1], rel=1e-6)
    evals = [d for d in json_lines(stdout) if "mean_return" in d]
    assert evals and all(d["episodes"] >= 16 and d["mean_return"] > 0 for d in evals)
    solved = summary(runs[1])
    assert (solved["status"] == "solved") == (solved["solved_at_step"] is not None)
    assert f"{solved['solved_at_step']} " in stdout  # the tutorial prints when it was solved


def test_snake_lstm_tutorial(tmp_path: Path) -> None:
    work, stdout = run_tutorial(
        "snake-lstm", tmp_path, train=["train.total_timesteps=16384", "algo.num_steps=16", "algo.minibatch_size=2048"]
    )
    runs = run_dirs(work / "outputs")
    policies = sorted("name: lstm" in (run / ".hydra" / "config.yaml").read_text() for run in runs)
    assert len(runs) == 2 and policies == [False, True], runs
    for run in runs:
        assert summary(run)["status"] == "completed" and sorted((run / "checkpoints").glob("step_*.pt"))
        assert any(row.get("episode_return") is not None for row in metrics(run))
    evals = [d for d in json_lines(stdout) if "mean_return" in d]
    assert len(evals) == 2 and all(d["episodes"] >= 256 for d in evals)
    assert (work / "snake.png").read_bytes()[:4] == b"\x89PNG"


def test_c_env_tutorial(tmp_path: Path) -> None:
    _, stdout = run_tutorial("c-env", tmp_path, train=["train.total_timesteps=16384"], evaluate=["--episodes", "32"])
    env_dir = tmp_path / "walk-env"
    assert list((env_dir / "walk").glob("walk.*.so")), "the tutorial's build made no extension"
    runs = run_dirs(env_dir / "outputs")
    assert runs, "no run of the custom env"
    run = runs[-1]
    cfg = (run / ".hydra" / "config.yaml").read_text()
    assert "entry_point: walk:Walk" in cfg
    returns = [row["episode_return"] for row in metrics(run) if row.get("episode_return") is not None]
    assert returns and all(-1.0 - 1.0 <= r <= 1.0 for r in returns), returns  # the Walk's returns are logged
    assert returns[-1] > returns[0], returns  # and it learns within the short budget
    assert sorted((run / "checkpoints").glob("step_*.pt"))
    assert "walk_main: 1000000 agent-steps" in stdout and "0 failed checks" in stdout
    evals = [d for d in json_lines(stdout) if "mean_return" in d]
    assert evals and evals[-1]["episodes"] >= 32


def test_gym_optuna_tutorial(tmp_path: Path) -> None:
    budget = ["train.total_timesteps=8192"]  # 512 steps per env: Acrobot episodes (500 steps) finish
    work, stdout = run_tutorial(
        "gym-optuna", tmp_path, train=budget, sweep=budget, hpo=["--trials", "2"], evaluate=["--episodes", "4"]
    )
    (base,) = run_dirs(work / "outputs")
    assert "id: Acrobot-v1" in (base / ".hydra" / "config.yaml").read_text() and summary(base)["status"] == "completed"
    search, seeds, *_ = sorted((work / "multirun").glob("*/*"))  # then the continued study's sweep directory
    n = 12 if FULL else 2  # the search file's n_trials, or the test's --trials
    trials = (search / "sweep_summary.csv").read_text().splitlines()[1:]
    assert len(trials) == n and all(",completed," in row for row in trials), trials
    assert (search / "study.db").is_file() and (search / "best.yaml").is_file()
    study = next(d for d in json_lines(stdout) if "trials" in d)
    assert study["trials"] == n and study["complete"] == n
    copies = (seeds / "sweep_summary.csv").read_text().splitlines()[1:]
    assert [f"seed={s}" in row for row, s in zip(copies, (2, 3, 4), strict=True)] == [True] * 3, copies
    assert all(",completed," in row for row in copies), copies
    best_lr = next(line for line in (search / "best.yaml").read_text().splitlines() if line.startswith("- lr="))
    assert all(best_lr[2:] in row for row in copies)  # the copies run the best trial's values
    evals = [d for d in json_lines(stdout) if "mean_return" in d]
    assert len(evals) == 2 and all(-500 <= d["mean_return"] <= 0 for d in evals)


def test_export_onnx_tutorial(tmp_path: Path) -> None:
    work, stdout = run_tutorial("export-onnx", tmp_path, train=["train.total_timesteps=16384"])
    (run,) = run_dirs(work / "outputs")
    assert (run / "export" / "policy.onnx").is_file() and (run / "export" / "policy.safetensors").is_file()
    compared = next(d for d in json_lines(stdout) if "max_abs_diff_logits" in d)
    assert compared["max_abs_diff_logits"] <= 1e-5 and compared["same_actions"] is True
    assert compared["batch"] >= 1
    served = json.loads((work / "serve_check.json").read_text())
    assert served["health"]["status"] == "ok" and served["exit"] == 130
    model_id = "run-" + "_".join(run.relative_to(work / "outputs").parts)
    assert model_id in {m["id"] for m in served["models"]}
    page = f"play/cartpole?model={model_id}"
    assert served["pages"][page]["status"] == 200
    weights = served["pages"][f"api/models/{model_id}/weights.safetensors"]
    assert weights["bytes"] == (run / "export" / "policy.safetensors").stat().st_size
    assert page in stdout, "the tutorial does not print the page to open"


def test_torchrun_tutorial(tmp_path: Path) -> None:
    work, _ = run_tutorial("torchrun", tmp_path, train=["train.total_timesteps=8192"])
    runs = run_dirs(work / "outputs")
    assert len(runs) == 3, runs  # torchrun, dist.nproc=2, one process
    worlds = sorted(summary(run).get("world_size", 1) for run in runs)
    assert worlds == [1, 2, 2]
    for run in runs:
        assert summary(run)["status"] == "completed" and sorted((run / "checkpoints").glob("step_*.pt"))
        if summary(run).get("world_size") == 2:
            assert summary(run)["param_rank_spread"] == 0.0
