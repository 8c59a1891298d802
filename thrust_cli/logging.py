"""Run logging: ``metrics.jsonl`` (always), TensorBoard scalars, and a progress display.

The progress display is a rich live line on a terminal and plain lines (at most one per second) otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .tbwriter import ScalarWriter


class RunLogger:
    """Writes one JSON object per log step to ``metrics.jsonl`` and the same scalars to TensorBoard.

    Args:
        run_dir: the run directory.
        total_steps: planned env steps (for the progress display).
        progress: ``auto`` | ``rich`` | ``plain`` | ``none``.
        tensorboard: also write TensorBoard event files.
        stream: where progress goes (stderr by default, so stdout stays clean for the run path).
        resume_step: when resuming from a checkpoint at this step, drop later metrics of the old segment.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        progress: str = "auto",
        tensorboard: bool = True,
        stream: TextIO | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.total_steps = total_steps
        self.stream = stream or sys.stderr
        metrics_path = self.run_dir / "metrics.jsonl"
        if resume_step is not None and metrics_path.is_file():
            # drop what a killed process logged after its last checkpoint: the series stays continuous
            kept = [
                line
                for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("global_step", 0) <= resume_step
            ]
            metrics_path.write_text("".join(line + "\n" for line in kept))
        self._metrics = open(metrics_path, "a", buffering=1)  # noqa: SIM115
        purge = None if resume_step is None else resume_step + 1
        self._tb = ScalarWriter(self.run_dir, purge_step=purge) if tensorboard else None
        if progress == "auto":
            progress = "rich" if self.stream.isatty() else "plain"
        self.mode = progress
        self._last_plain = 0.0
        self._live: Any = None
        if progress == "rich":
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
        """Record ``metrics`` (must hold ``global_step``); update the progress display."""
        self._metrics.write(json.dumps(metrics) + "\n")
        if self._tb is not None:
            scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "global_step"}
            self._tb.add_scalars(scalars, int(metrics["global_step"]))
        self._show(metrics)

    def _show(self, m: dict[str, Any]) -> None:
        if self.mode == "none":
            return
        ret = m.get("episode_return")
        text = (
            f"step {m['global_step']:>10,}/{self.total_steps:,}  sps {m.get('sps', 0):>9,.0f}  "
            f"return {ret if ret is None else f'{ret:8.2f}'}  t {m.get('time_s', 0):6.1f}s"
        )
        if self._live is not None:
            self._live.update(
                self._task,
                completed=m["global_step"],
                sps=f"{m.get('sps', 0):,.0f}",
                ret="-" if ret is None else f"{ret:.1f}",
                elapsed=f"{m.get('time_s', 0):.1f}s",
            )
        elif time.monotonic() - self._last_plain >= 1.0:
            self._last_plain = time.monotonic()
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._tb is not None:
            self._tb.close()
        if not self._metrics.closed:
            self._metrics.close()
