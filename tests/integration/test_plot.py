"""`thrust plot`: training curves of several runs overlaid in one PNG; bad input is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from thrust_cli.cli import app
from thrust_cli.commands.plot import plot_runs, run_labels


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def two_runs(runner: CliRunner) -> list[Path]:
    runs = []
    for seed in (1, 2):
        result = runner.invoke(app, ["train", "debug=fast", "train.progress=none", "logger=none", f"seed={seed}"])
        assert result.exit_code == 0, result.output
        runs.append(Path(result.stdout.strip().splitlines()[-1]))
    return runs


def test_plot_of_two_runs_writes_a_png(runner: CliRunner, two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "figs" / "curves.png"
    result = runner.invoke(app, ["plot", *map(str, two_runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip().splitlines()[-1]) == out
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 300


def test_an_out_that_is_not_a_png_is_refused(runner: CliRunner, two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    result = runner.invoke(app, ["plot", str(two_runs[0]), "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.strip() == f"error: --out '{out}' must end in .png (the figure is a PNG)"


def test_chosen_metrics_one_panel_each(runner: CliRunner, two_runs: list[Path], tmp_path: Path) -> None:
    one = plot_runs(two_runs, tmp_path / "one.png", ["sps"])
    many = runner.invoke(app, ["plot", *map(str, two_runs), "-o", "many.png", "-m", "sps,entropy", "-m", "lr"])
    assert many.exit_code == 0, many.output
    with Image.open(one) as a, Image.open(tmp_path / "many.png") as b:
        assert b.width > 2 * a.width  # three panels side by side, one before


def test_legend_labels_tell_runs_apart() -> None:
    assert run_labels([Path("/a/x/12-00"), Path("/a/y/12-00")]) == ["x/12-00", "y/12-00"]
    assert run_labels([Path("/a/seed1"), Path("/a/seed2")]) == ["seed1", "seed2"]


def test_a_torn_last_line_of_a_killed_run_is_skipped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"global_step": 8, "sps": 1.0}) + '\n{"global_st')
    out = plot_runs([run], tmp_path / "c.png")
    with Image.open(out) as image:
        assert image.format == "PNG"


@pytest.mark.parametrize(
    "make,args,expected",
    [
        (None, ["does/not/exist"], "no run directory 'does/not/exist'"),
        ("empty_dir", ["run"], "'run' has no metrics.jsonl"),
        ("empty_file", ["run"], "holds no metrics yet"),
        ("metrics", ["run", "-m", "nope"], "metric 'nope' is in none of the runs; available: global_step, sps"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    runner: CliRunner, make: str | None, args: list[str], expected: str
) -> None:
    if make is not None:
        Path("run").mkdir()
        if make != "empty_dir":
            Path("run/metrics.jsonl").write_text("" if make == "empty_file" else '{"global_step": 1, "sps": 2.0}\n')
    result = runner.invoke(app, ["plot", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output
    assert not Path("curves.png").exists()
