"""``thrust sweep``: a Hydra-style multirun over override sweeps (``lr=1e-3,3e-4 policy=mlp``).

Sweeps are expanded with Hydra's own override grammar (the cartesian product of every ``key=a,b,...``, as
Hydra's basic sweeper does). Each job is a full ``thrust train`` run in its own process, with its run directory
at ``<sweep dir>/<job number>``, so a job that crashes, diverges or gets a bad value is recorded as failed and the
sweep goes on. At the end: ``sweep_summary.csv`` in the sweep directory and a table. Bayesian search
(``thrust sweep --hpo``, :mod:`thrust_cli.commands.hpo`) runs its trials through the same :func:`run_job`.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from thrust_cli.run.config import ConfigError

SUMMARY_FIELDS = ("job", "overrides", "status", "objective", "sps", "steps", "seconds", "run_dir", "error")


def expand(overrides: Sequence[str]) -> list[list[str]]:
    """The jobs of a sweep: one override list per point of the product of the sweep values.

    Raises:
        ConfigError: an override that does not parse, or a sweep type other than a list of values.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    except HydraException as exc:
        raise ConfigError(f"invalid sweep: {str(exc).splitlines()[0]}") from None


def run_job(job: int, overrides: list[str], run_dir: Path, objective: str) -> dict[str, Any]:
    """Run one ``thrust train`` in a subprocess and summarise it (never raises for a failed job)."""
    cmd = [sys.executable, "-m", "thrust_cli.cli", "train", *overrides, f"hydra.run.dir={run_dir}"]
    if not any(o.split("=", 1)[0].lstrip("+") == "train.progress" for o in overrides):
        cmd.append("train.progress=none")
    begin = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row: dict[str, Any] = {
        "job": job,
        "overrides": " ".join(overrides),
        "seconds": round(time.perf_counter() - begin, 2),
        "run_dir": str(run_dir),
    }
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    row["status"] = summary.get("status", "failed") if proc.returncode == 0 else "failed"
    row["objective"] = summary.get(objective)
    row["sps"] = round(summary["sps"]) if summary.get("sps") else None
    row["steps"] = summary.get("global_step")
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        row["error"] = (errors or last)[-1].removeprefix("error: ")
    else:
        row["error"] = ""
    return row


def run_sweep(
    overrides: Sequence[str],
    sweep_dir: Path | None = None,
    objective: str = "mean_return_last_100",
    jobs: int = 1,
    echo: Callable[[str], Any] | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Run every job of the sweep (``jobs`` at a time) and write ``sweep_summary.csv``.

    Args:
        overrides: Hydra overrides, sweeps included (``lr=1e-3,3e-4``).
        sweep_dir: where job directories go (default ``multirun/<date>/<time>``).
        objective: the ``summary.json`` key reported per job.
        jobs: jobs run in parallel (each a separate process).
        echo: called with one line per finished job.

    Returns:
        The sweep directory and one row per job, in job order.
    """
    points = expand(overrides)
    sweep_dir = make_sweep_dir(sweep_dir)
    (sweep_dir / "sweep.json").write_text(json.dumps({"overrides": list(overrides), "jobs": points}, indent=2))

    def one(item: tuple[int, list[str]]) -> dict[str, Any]:
        n, job = item
        row = run_job(n, job, sweep_dir / str(n), objective)
        if echo:
            echo(f"job {n}: {row['status']:9s} {objective}={row['objective']}  {row['overrides']}")
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(one, enumerate(points)))
    write_summary(sweep_dir, rows)
    return sweep_dir, rows


def make_sweep_dir(sweep_dir: Path | None) -> Path:
    """Create (if needed) and return the sweep directory, by default ``multirun/<date>/<time>``."""
    path = Path(sweep_dir or Path("multirun") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]], fields: Sequence[str] = SUMMARY_FIELDS) -> Path:
    """Write ``sweep_summary.csv`` (the ``fields`` columns of each row) into the sweep directory."""
    path = sweep_dir / "sweep_summary.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def print_table(
    rows: list[dict[str, Any]],
    objective: str,
    maximize: bool = True,
    id_column: str = "job",
    overrides_column: str = "overrides",
) -> None:
    """A rich table of the sweep, best objective first (failed jobs last).

    Args:
        rows: one dict per job with the :data:`SUMMARY_FIELDS` keys.
        objective: the name of the objective column.
        maximize: rank high objectives first.
        id_column: the key naming each row (``job``; ``trial`` for a Bayesian search).
        overrides_column: the key of the overrides shown (a Bayesian search shows only the searched ones).
    """
    from rich.console import Console
    from rich.table import Table

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row["objective"]
        if value is None:
            return (1, 0.0)
        return (0, -value if maximize else value)

    table = Table(title=f"sweep ({objective})")
    for column in (id_column, "overrides", "status", objective, "SPS", "steps", "seconds"):
        table.add_column(column)
    for row in sorted(rows, key=key):
        table.add_row(
            str(row[id_column]),
            row[overrides_column],
            row["status"] if not row["error"] else f"failed: {row['error']}",
            "-" if row["objective"] is None else f"{row['objective']:.2f}",
            "-" if row["sps"] is None else f"{row['sps']:,}",
            "-" if row["steps"] is None else f"{row['steps']:,}",
            "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
        )
    Console(stderr=True).print(table)
