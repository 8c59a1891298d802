"""``thrust sweep``: a Hydra-style multirun over override sweeps (``lr=1e-3,3e-4 policy=mlp``).

Sweeps are expanded with Hydra's own override grammar (the cartesian product of every ``key=a,b,...``, as
Hydra's basic sweeper does). Each job is a full ``thrust train`` run in its own process, with its run directory
at ``<sweep dir>/<job number>`` (``<job number>_1`` and so on when that exists already: the directory a job
reports is the one its ``thrust train`` printed), so a job that crashes, diverges or gets a bad value is recorded
as failed and the sweep goes on. At the end: ``sweep_summary.csv`` in the sweep directory and a table.

Ctrl-C reaches the sweep alone (jobs run in their own session): it asks the running jobs to stop once (SIGINT,
so each saves its checkpoint and summary, and is recorded as ``interrupted``), starts no more (the rest are
recorded as ``skipped``) and still writes the summary; a second Ctrl-C kills the running jobs. Bayesian search
(``thrust sweep --hpo``, :mod:`thrust_cli.commands.hpo`) runs its trials through the same :func:`run_job`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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

    parser = OverridesParser.create()
    for override in overrides:  # name the one that does not parse, in words, not the grammar's token sets
        try:
            parser.parse_overrides([override])
        except HydraException as exc:
            why = str(exc).splitlines()[0].split(" expecting {")[0]
            raise ConfigError(
                f"invalid sweep override '{override}': {why}; allowed: key=value or key=a,b,c "
                "(Hydra's override grammar)"
            ) from None
    try:
        parsed = parser.parse_overrides(list(overrides))
        return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    except HydraException as exc:
        raise ConfigError(f"invalid sweep: {str(exc).splitlines()[0]}") from None


class Jobs:
    """The ``thrust train`` processes of one sweep, and the stop of them all on Ctrl-C.

    Each job runs in its own session, so a Ctrl-C at the terminal reaches the sweep alone; :meth:`wait` then
    sends each running job exactly one SIGINT (it stops at a step boundary and saves), and :meth:`run` starts
    no more.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()

    def run(self, cmd: list[str]) -> subprocess.CompletedProcess[str] | None:
        """Run ``cmd`` to its end and return it; None (not started) once the sweep is stopping."""
        with self._lock:  # so that stop() either sees the process or it is never started
            if self.stopping:
                return None
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self._running.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Start no more jobs and send ``sig`` to the running ones."""
        with self._lock:
            self.stopping = True
            for proc in self._running:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    def wait(self, futures: Iterable[Future[Any]]) -> bool:
        """Wait for every future; return whether a Ctrl-C came meanwhile.

        The first Ctrl-C stops the running jobs with SIGINT (they save and end), a later one kills them.
        """
        interrupted = False
        for future in futures:
            while True:
                try:
                    future.result()
                    break
                except KeyboardInterrupt:
                    self.stop(signal.SIGKILL if interrupted else signal.SIGINT)
                    interrupted = True
        return interrupted


def run_job(
    job: int, overrides: list[str], run_dir: Path, objective: str, running: Jobs | None = None
) -> dict[str, Any]:
    """Run one ``thrust train`` in a subprocess and summarise it (never raises for a failed job).

    Args:
        job: the job's number (the row's ``job``).
        overrides: its overrides.
        run_dir: its ``hydra.run.dir``; ``thrust train`` picks ``<run_dir>_1`` (and so on) if that exists, and the
            row's ``run_dir`` is the one it printed (empty when it stopped before making one).
        objective: the ``summary.json`` key reported as the row's ``objective``.
        running: the sweep's :class:`Jobs` (stopped together on Ctrl-C); a job asked to stop is ``interrupted``,
            one never started because the sweep was stopping is ``skipped``.
    """
    cmd = [sys.executable, "-m", "thrust_cli.cli", "train", *overrides, f"hydra.run.dir={run_dir}"]
    if not any(o.split("=", 1)[0].lstrip("+") == "train.progress" for o in overrides):
        cmd.append("train.progress=none")
    running = running or Jobs()
    begin = time.perf_counter()
    proc = running.run(cmd)
    row: dict[str, Any] = {"job": job, "overrides": " ".join(overrides), "error": ""}
    if proc is None:
        return row | {"status": "skipped", "run_dir": ""} | dict.fromkeys(("objective", "sps", "steps", "seconds"))
    row["seconds"] = round(time.perf_counter() - begin, 2)
    # the last line `thrust train` prints on stdout is its run directory, once it has made one
    printed = proc.stdout.strip().splitlines()[-1:]
    actual = Path(printed[0]) if printed and Path(printed[0]).is_dir() else None
    row["run_dir"] = "" if actual is None else str(actual)
    summary: dict[str, Any] = {}
    if actual is not None and (actual / "summary.json").is_file():
        with contextlib.suppress(ValueError):  # half written by a job killed at a second Ctrl-C
            summary = json.loads((actual / "summary.json").read_text())
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    # stopped by the sweep's Ctrl-C (or a SIGINT of its own) rather than by an error of its own
    interrupted = proc.returncode != 0 and not errors and (running.stopping or summary.get("status") == "interrupted")
    if proc.returncode == 0:
        row["status"] = summary.get("status", "failed")
    else:
        row["status"] = "interrupted" if interrupted else "failed"
    row["objective"] = summary.get(objective)
    row["sps"] = round(summary["sps"]) if summary.get("sps") else None
    row["steps"] = summary.get("global_step")
    if proc.returncode != 0 and not interrupted:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        row["error"] = (errors or last)[-1].removeprefix("error: ")
    elif proc.returncode == 0 and not summary:
        row["error"] = "no summary.json in the run directory it printed"
    return row


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: one row per job, in job order, and whether a Ctrl-C stopped it."""

    sweep_dir: Path
    rows: list[dict[str, Any]]
    interrupted: bool = False


def run_sweep(
    overrides: Sequence[str],
    sweep_dir: Path | None = None,
    objective: str = "mean_return_last_100",
    jobs: int = 1,
    echo: Callable[[str], Any] | None = None,
) -> SweepResult:
    """Run every job of the sweep (``jobs`` at a time) and write ``sweep_summary.csv`` (also after a Ctrl-C).

    Args:
        overrides: Hydra overrides, sweeps included (``lr=1e-3,3e-4``).
        sweep_dir: where job directories go (default ``multirun/<date>/<time>``).
        objective: the ``summary.json`` key reported per job.
        jobs: jobs run in parallel (each a separate process).
        echo: called with one line per finished job.

    Returns:
        The sweep directory and one row per job, in job order (jobs a Ctrl-C kept from starting: ``skipped``).
    """
    points = expand(overrides)
    if sweep_dir is not None:
        given = Path(sweep_dir)
        if given.exists() and not given.is_dir():
            raise ConfigError(f"--dir '{given}' is a file; give a directory for the sweep's runs")
        held = [name for name in ("sweep.json", "sweep_summary.csv") if (given / name).exists()]
        if held:  # its runs and summary would be overwritten
            raise ConfigError(f"--dir '{given}' already holds a sweep ({held[0]}); give a new directory")
    sweep_dir = make_sweep_dir(sweep_dir)
    (sweep_dir / "sweep.json").write_text(json.dumps({"overrides": list(overrides), "jobs": points}, indent=2))
    running = Jobs()

    def one(n: int, job: list[str]) -> dict[str, Any]:
        row = run_job(n, job, sweep_dir / str(n), objective, running)
        if echo and row["status"] != "skipped":
            echo(f"job {n}: {row['status']:9s} {objective}={row['objective']}  {row['overrides']}")
        return row

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(one, n, job) for n, job in enumerate(points)]
        interrupted = running.wait(futures)
    finally:
        running.stop(signal.SIGKILL)  # nothing is left running unless the sweep itself failed
        pool.shutdown(wait=True)
    rows = [future.result() for future in futures]
    write_summary(sweep_dir, rows)
    return SweepResult(sweep_dir, rows, interrupted)


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
    """A rich table of the sweep, best objective first (jobs that did not finish, then failed ones, last).

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
            return (2, 0.0)
        finished = row["status"] in ("completed", "solved")  # an interrupted job's value is a partial run's
        return (0 if finished else 1, -value if maximize else value)

    table = Table(title=f"sweep ({objective})")
    for column in (id_column, "overrides", "status", objective, "SPS", "steps", "seconds"):
        table.add_column(column)
    for row in sorted(rows, key=key):
        table.add_row(
            str(row[id_column]),
            row[overrides_column],
            f"{row['status']}: {row['error']}" if row["error"] else row["status"],
            "-" if row["objective"] is None else f"{row['objective']:.2f}",
            "-" if row["sps"] is None else f"{row['sps']:,}",
            "-" if row["steps"] is None else f"{row['steps']:,}",
            "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
        )
    Console(stderr=True).print(table)
