"""The live training dashboard (rich), and snapshots of it as text or SVG.

:func:`render` turns one metrics dict (a line of ``metrics.jsonl``) into a rich renderable: progress, SPS,
update k of n, elapsed and remaining time, where the time goes (env, inference, copy, learn), the PPO losses,
episode statistics and the env's own ``env/*`` statistics. Missing keys show as ``-``.
:class:`Dashboard` redraws it at most ``max_fps`` times a second; :func:`snapshot` records it to text and SVG
(``python -m thrust_cli.run.dashboard RUN_DIR --svg out.svg --text out.txt`` for the last line of a run).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

# cumulative seconds per phase, in the order shown; ``rollout`` is the undivided env + inference + copy time
TIME_PARTS = ("env", "inference", "copy", "rollout", "learn")
LOSSES = {
    "policy_loss": "policy loss",
    "value_loss": "value loss",
    "entropy": "entropy",
    "approx_kl": "approx kl",
    "clipfrac": "clipfrac",
    "explained_variance": "explained var",
}


def fmt(value: Any) -> str:
    """A short human form of a metric value: thousands separators for big numbers, 4 significant digits else."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or (isinstance(value, int) and abs(value) >= 1000):
        return f"{value:,.0f}"
    if abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def hms(value: float | None) -> str:
    """Seconds as ``h:mm:ss`` (``-`` when unknown)."""
    if value is None or not math.isfinite(value) or value < 0:
        return "-"
    s = round(value)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def seconds(value: float) -> str:
    """A duration with a unit that keeps 2-3 significant digits: ``830 µs``, ``24.8 ms``, ``1.25 s``, ``312 s``."""
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s" if value < 100 else f"{value:,.0f} s"


def time_split(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    """(phase, cumulative seconds) from the ``time/<phase>_s`` keys; ``rollout`` only when it is not split."""
    found = {
        key[5:-2]: float(value)
        for key, value in metrics.items()
        if key.startswith("time/") and key.endswith("_s") and isinstance(value, (int, float))
    }
    if any(part in found for part in ("env", "inference", "copy")):
        found.pop("rollout", None)
    order = [p for p in TIME_PARTS if p in found] + sorted(p for p in found if p not in TIME_PARTS)
    return [(p, found[p]) for p in order]


def render(metrics: dict[str, Any], total_steps: int | None = None, title: str = "thrust") -> Any:
    """The dashboard for one metrics dict, as a rich renderable.

    Args:
        metrics: one log step (keys as in ``metrics.jsonl``); any key may be missing.
        total_steps: planned env steps (progress and remaining time); None if unknown.
        title: shown in the frame (the run's name).
    """
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    step = int(metrics.get("global_step") or 0)
    if total_steps:  # never more done than planned: async groups and resumed runs can pass the planned total
        total_steps = max(total_steps, step)
    sps = metrics.get("sps")
    elapsed = metrics.get("time_s")
    remaining = None
    if total_steps and isinstance(sps, (int, float)) and sps > 0:
        remaining = max(total_steps - step, 0) / sps
    head = Text()
    head.append("step ", "dim").append(f"{step:,}", "bold")
    if total_steps:
        head.append(f" / {total_steps:,}  ({100 * min(step / total_steps, 1):.1f}%)", "dim")
    update, num_updates = metrics.get("update"), metrics.get("num_updates")
    if update is not None:
        head.append("   update ", "dim").append(f"{update}", "bold")
        if num_updates is not None:
            head.append(f" / {num_updates}", "dim")
    speed = Text()
    speed.append("SPS ", "dim").append(fmt(sps), "bold cyan")
    speed.append("   elapsed ", "dim").append(hms(elapsed))
    speed.append("   remaining ", "dim").append(hms(remaining))
    bar = ProgressBar(total=float(total_steps or max(step, 1)), completed=float(step))

    def table(name: str) -> Table:
        t = Table(title=name, title_style="bold", box=None, show_header=False, padding=(0, 1))
        t.add_column(style="dim", no_wrap=True, max_width=24, overflow="ellipsis")
        t.add_column(justify="right", no_wrap=True, min_width=8)
        return t

    parts = time_split(metrics)
    total_time = sum(s for _, s in parts)
    timing = table("time")
    timing.add_column(justify="right", no_wrap=True, style="cyan", min_width=4)
    for phase, spent in parts:
        share = f"{100 * spent / total_time:.0f}%" if total_time > 0 else "-"
        timing.add_row(phase, seconds(spent), share)
    if not parts:
        timing.add_row("-", "-", "-")
    else:
        timing.add_row("total", seconds(total_time), "")

    losses = table("losses")
    for key, label in LOSSES.items():
        losses.add_row(label, fmt(metrics.get(key)))

    episodes = table("episodes")
    episodes.add_row("return", Text(fmt(metrics.get("episode_return")), style="bold green"))
    episodes.add_row("length", fmt(metrics.get("episode_length")))
    for key in sorted(k for k in metrics if k.startswith("env/")):
        episodes.add_row(key, fmt(metrics[key]))

    body = _Fit([[timing, losses, episodes], [[timing, losses], [episodes]], [[timing], [losses], [episodes]]])
    return Panel(Group(head, speed, bar, Text(""), body), title=f"[bold]{title}", border_style="blue", padding=(0, 1))


class _Fit:
    """The first of several arrangements of the tables (rows of them) whose natural width fits the terminal."""

    def __init__(self, layouts: list[Any]) -> None:
        self.layouts = layouts

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement
        from rich.table import Table

        grids = []
        for layout in self.layouts:
            rows = layout if isinstance(layout[0], list) else [layout]
            grid = Table.grid(padding=(0, 4))
            for row in rows:
                grid.add_row(*row)
            grids.append(grid)
            if Measurement.get(console, options.update_width(10_000), grid).maximum <= options.max_width:
                break
        yield grids[-1]


def snapshot(
    metrics: dict[str, Any], total_steps: int | None = None, title: str = "thrust", width: int = 100
) -> tuple[str, str]:
    """The dashboard for ``metrics`` recorded off-screen: (plain text, SVG document)."""
    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(render(metrics, total_steps, title))
    text = console.export_text(clear=False)
    return text, console.export_svg(title=f"thrust · {title}")


class Dashboard:
    """The live dashboard on a terminal: :meth:`update` with each metrics dict; redrawn at most ``max_fps``/s."""

    def __init__(self, total_steps: int, stream: TextIO, title: str = "thrust", max_fps: float = 4.0) -> None:
        from rich.console import Console
        from rich.live import Live

        self.total_steps = total_steps
        self.title = title
        self._period = 1.0 / max_fps
        self._last_draw = -math.inf
        self._pending: dict[str, Any] | None = None
        self._live = Live(console=Console(file=stream), auto_refresh=False, redirect_stdout=False)
        self._live.start()

    def update(self, metrics: dict[str, Any]) -> None:
        """Show ``metrics`` (one update's metric dict); redrawn now unless the last draw is under ``1/max_fps`` s old,
        in which case the newest dict waits for the next update or `close`."""
        self._pending = metrics
        now = time.monotonic()
        if now - self._last_draw >= self._period:
            self._draw(now)

    def _draw(self, now: float) -> None:
        if self._pending is not None:
            self._live.update(render(self._pending, self.total_steps, self.title), refresh=True)
            self._pending = None
            self._last_draw = now

    def close(self) -> None:
        """Draw the last metrics (possibly held back by the rate limit) and leave them on screen."""
        self._draw(time.monotonic())
        self._live.stop()


def last_metrics(run_dir: Path) -> dict[str, Any]:
    """The last line of ``<run_dir>/metrics.jsonl``; FileNotFoundError / ValueError when there is none."""
    path = Path(run_dir) / "metrics.jsonl"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty")
    return dict(json.loads(lines[-1]))


def planned_steps(run_dir: Path, metrics: dict[str, Any]) -> int | None:
    """The run's planned env steps: update k of n scaled up, else ``train.total_timesteps`` of its config."""
    step, update, num_updates = metrics.get("global_step"), metrics.get("update"), metrics.get("num_updates")
    if step and update and num_updates:
        return int(step) // int(update) * int(num_updates)
    saved = Path(run_dir) / ".hydra" / "config.yaml"
    if saved.is_file():
        from omegaconf import OmegaConf

        total = OmegaConf.select(OmegaConf.load(saved), "train.total_timesteps")
        return None if total is None else int(total)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m thrust_cli.run.dashboard RUN_DIR [--svg F] [--text F]``: a snapshot of a run's last metrics."""
    parser = argparse.ArgumentParser(prog="python -m thrust_cli.run.dashboard", description=main.__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--svg", type=Path, help="write the snapshot as SVG")
    parser.add_argument("--text", type=Path, help="write the snapshot as plain text")
    parser.add_argument("--title", help="frame title (default: the run directory's name)")
    parser.add_argument("--width", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        metrics = last_metrics(args.run_dir)
    except (OSError, ValueError) as exc:
        parser.error(f"no metrics to show in '{args.run_dir}': {exc}")
    title = args.title or args.run_dir.resolve().name
    text, svg = snapshot(metrics, planned_steps(args.run_dir, metrics), title, args.width)
    if args.svg:
        args.svg.write_text(svg)
    if args.text:
        args.text.write_text(text)
    if not (args.svg or args.text):
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
