"""Run logging: ``metrics.jsonl`` (always), the chosen metric backends, and a progress display.

Backends (the ``logger`` config group, :mod:`thrust_cli.run.loggers`): TensorBoard, W&B, Neptune, several at once;
each receives the same metric dict per log call. The display is the live dashboard (:mod:`thrust_cli.run.dashboard`)
on a terminal, a one-line rich progress bar there with ``logger.dashboard=false``, and plain lines (at most one
per second) otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from thrust_cli.run.config import LoggerConfig
from thrust_cli.run.loggers import Backend, make_backends


class RunLogger:
    """Writes one JSON object per log step to ``metrics.jsonl`` and the same dict to every backend.

    Args:
        run_dir: the run directory.
        total_steps: planned env steps (for the progress display).
        progress: ``auto`` | ``rich`` | ``plain`` | ``none`` (``train.progress``).
        logger: the ``logger`` config (:class:`~thrust_cli.run.config.LoggerConfig` or its DictConfig); None: defaults.
        run_config: the run's config as plain containers, stored by W&B and Neptune with the run.
        stream: where progress goes (stderr by default, so stdout stays clean for the run path).
        resume_step: when resuming from a checkpoint at this step, drop later metrics of the old segment.

    Raises:
        ConfigError: a backend's package is missing or the backend failed to start.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        progress: str = "auto",
        logger: Any = None,
        run_config: Any = None,
        stream: TextIO | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.total_steps = total_steps
        self.stream = stream or sys.stderr
        cfg = logger if logger is not None else LoggerConfig()
        metrics_path = self.run_dir / "metrics.jsonl"
        if resume_step is not None and metrics_path.is_file():
            # drop what a killed process logged after its last checkpoint: the series stays continuous
            kept = [
                line
                for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("global_step", 0) <= resume_step
            ]
            metrics_path.write_text("".join(line + "\n" for line in kept))
        self.backends: list[Backend] = make_backends(self.run_dir, cfg, run_config, resume_step)
        self._metrics = open(metrics_path, "a", buffering=1)  # noqa: SIM115
        if progress == "auto":
            progress = "rich" if self.stream.isatty() else "plain"
        self.mode = progress
        self._last_plain = 0.0
        self._live: Any = None
        self._dashboard: Any = None
        if progress == "rich" and cfg.dashboard:
            from thrust_cli.run.dashboard import Dashboard

            env = run_config.get("env", {}).get("name") if isinstance(run_config, dict) else None
            title = " · ".join(t for t in (env, cfg.run_name or self.run_dir.name) if t)
            self._dashboard = Dashboard(total_steps, self.stream, title=title)
        elif progress == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._live = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[cyan]{task.fields[sps]} SPS"),
                TextColumn("return [green]{task.fields[ret]}"),
                TextColumn("{task.fields[elapsed]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                refresh_per_second=4,
            )
            self._task = self._live.add_task("train", total=total_steps, sps="-", ret="-", elapsed="")
            self._live.start()

    def log(self, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` (must hold ``global_step``) everywhere; update the progress display."""
        self._metrics.write(json.dumps(metrics) + "\n")
        step = int(metrics["global_step"])
        for backend in self.backends:
            backend.log(metrics, step)
        self._show(metrics)

    def _show(self, m: dict[str, Any]) -> None:
        if self.mode == "none":
            return
        step = int(m["global_step"])
        # the planned total is a round number of updates; groups of agents stepping ahead (async collection)
        # or a resumed run can pass it, and a progress display never shows more done than planned
        self.total_steps = max(self.total_steps, step)
        if self._dashboard is not None:
            self._dashboard.total_steps = self.total_steps
            self._dashboard.update(m)
            return
        ret = m.get("episode_return")  # None until an episode ends: shown as "-"
        if self._live is not None:
            self._live.update(
                self._task,
                completed=step,
                total=self.total_steps,
                sps=f"{m.get('sps', 0):,.0f}",
                ret="-" if ret is None else f"{ret:.1f}",
                elapsed=f"{m.get('time_s', 0):.1f}s",
            )
        elif time.monotonic() - self._last_plain >= 1.0:
            self._last_plain = time.monotonic()
            shown_ret = "-" if ret is None else f"{ret:.2f}"
            text = (
                f"step {step:>10,}/{self.total_steps:,}  sps {m.get('sps', 0):>9,.0f}  "
                f"return {shown_ret:>8}  t {m.get('time_s', 0):6.1f}s"
            )
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the display and close every backend and ``metrics.jsonl`` (safe to call twice)."""
        if self._dashboard is not None:
            self._dashboard.close()
            self._dashboard = None
        if self._live is not None:
            self._live.stop()
            self._live = None
        backends, self.backends = self.backends, []
        errors: list[Exception] = []
        for backend in backends:
            try:
                backend.close()
            except Exception as exc:  # close the others and metrics.jsonl first
                errors.append(exc)
        if not self._metrics.closed:
            self._metrics.close()
        if errors:
            raise errors[0]
