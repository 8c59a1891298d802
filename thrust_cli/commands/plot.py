"""Training curves of one or more runs as a PNG (``thrust plot``), from each run's ``metrics.jsonl``.

matplotlib is imported here only, through its object-oriented API with the Agg canvas: no pyplot, no global
backend switch, nothing shown on screen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_METRICS = ("episode_return", "sps", "policy_loss", "value_loss", "entropy")
TITLES = {
    "episode_return": "episode return",
    "episode_length": "episode length",
    "sps": "steps per second",
    "policy_loss": "policy loss",
    "value_loss": "value loss",
    "approx_kl": "approx KL",
    "explained_variance": "explained variance",
}


class PlotError(ValueError):
    """A run directory or metric that cannot be plotted; the message is one line for the user."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The log steps of ``<run_dir>/metrics.jsonl`` (a torn last line, from a killed run, is skipped).

    Raises:
        PlotError: no such directory, no metrics.jsonl, or no log step in it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"no run directory '{run_dir}'")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"'{run_dir}' has no metrics.jsonl (not a run directory?)")
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "global_step" in row:
            rows.append(row)
    if not rows:
        raise PlotError(f"'{path}' holds no metrics yet")
    return rows


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Legend labels: each directory's name, with as many parent folders as it takes to tell them apart."""
    parts = [Path(d).resolve().parts for d in run_dirs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(d) for d in run_dirs]


def plot_runs(run_dirs: Sequence[Path], out: Path, metrics: Sequence[str] | None = None, dpi: int = 80) -> Path:
    """Draw ``metrics`` against ``global_step``, one panel per metric, every run overlaid; write a PNG.

    Args:
        run_dirs: run directories (each with a metrics.jsonl).
        out: the PNG file to write (its folder is created).
        metrics: keys of metrics.jsonl; each must appear in at least one run. None: those of
            :data:`DEFAULT_METRICS` that appear.
        dpi: resolution of the image (the figure is 4 x 3 inches a panel).

    Returns:
        ``out``.

    Raises:
        PlotError: a run cannot be read, or a metric is in none of the runs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    if not run_dirs:
        raise PlotError("no run directory given")
    if Path(out).suffix.lower() != ".png":
        raise PlotError(f"--out '{out}' must end in .png (the figure is a PNG)")
    runs = [read_metrics(Path(d)) for d in run_dirs]
    available = sorted({k for rows in runs for row in rows for k, v in row.items() if _is_number(v)})
    if metrics is None:
        metrics = [key for key in DEFAULT_METRICS if key in available]
    if not metrics:
        raise PlotError("no metric to plot")
    for key in metrics:
        if key not in available:
            raise PlotError(f"metric '{key}' is in none of the runs; available: {', '.join(available)}")
    labels = run_labels([Path(d) for d in run_dirs])

    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows + 0.5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, key in zip(axes, metrics, strict=False):
        for rows, label in zip(runs, labels, strict=True):
            # updates without a value (no episode finished) are skipped, so the line joins its neighbours
            points = [(row["global_step"], float(row[key])) for row in rows if _is_number(row.get(key))]
            ax.plot([x for x, _ in points], [y for _, y in points], label=label, linewidth=1.3)
        ax.set_title(TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("global step", fontsize=8)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 150k, 2M: long step counts would overlap
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 4), fontsize=8, frameon=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=dpi)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
