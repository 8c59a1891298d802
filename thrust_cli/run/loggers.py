"""Metric backends: TensorBoard, Weights & Biases and Neptune, behind one small interface.

Every backend receives the same metric dict per log call (:meth:`Backend.log`) and keeps the numbers it can
store. W&B and Neptune are optional packages (extras ``thrust-rl[wandb]``, ``thrust-rl[neptune]``), imported
only when chosen; both default to offline mode and write under the run directory:

- W&B: ``<run>/wandb/offline-run-*/run-<id>.wandb`` (``wandb sync <run>/wandb/offline-run-*`` uploads it). The run
  id is kept in ``<run>/logger_ids.json`` so a resumed run continues the same W&B run; metrics are plotted
  against ``global_step`` (``define_metric``), so a resume that repeats steps never breaks W&B's step order.
- Neptune 1.x: ``<run>/.neptune/offline/run__*`` (its ``NEPTUNE_DATA_DIRECTORY``). The hosted service ended in
  2026; ``neptune sync`` still uploads to a self-hosted server. Offline runs cannot be resumed by id, so each
  resumed segment is its own Neptune run, tagged with the Thrust run name; in async/sync mode the stored
  ``custom_run_id`` continues the same run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import uuid
from pathlib import Path
from typing import Any, Protocol

from thrust_cli.run.config import LOGGER_EXTRAS, ConfigError
from thrust_cli.run.tbwriter import ScalarWriter

IDS_FILE = "logger_ids.json"


class Backend(Protocol):
    """What a metric backend provides: ``log`` one metric dict per update, ``close`` at the end of the run."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Record the numeric entries of ``metrics`` at env step ``step`` (the run's ``global_step``)."""
        ...

    def close(self) -> None:
        """Flush and finish the backend's run."""
        ...


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The int and float entries of ``metrics`` as floats (``None``, booleans, strings and anything else dropped;
    NaN and inf are kept)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def first_line(exc: BaseException) -> str:
    """The first line of text of an exception's message, without colour codes or banner lines."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("--")]
    return lines[0] if lines else type(exc).__name__


def import_extra(backend: str) -> Any:
    """Import the optional package of ``backend``; raise :class:`ConfigError` naming the extra when missing."""
    import importlib

    module, extra = LOGGER_EXTRAS[backend]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"logger.backends has {backend} but {module} cannot be imported ({exc}); "
            f"install it with: pip install 'thrust-rl[{extra}]'"
        ) from None


def _run_id(run_dir: Path, backend: str, make: Any) -> str:
    """The id ``backend`` uses for this run: stored in ``<run>/logger_ids.json`` on first use, then reused."""
    path = run_dir / IDS_FILE
    ids = json.loads(path.read_text()) if path.is_file() else {}
    if backend not in ids:
        ids[backend] = make()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ids, indent=2) + "\n")
        os.replace(tmp, path)
    return str(ids[backend])


class TensorBoardBackend:
    """Scalars to ``events.out.tfevents.*`` in the run directory (our own writer, see tbwriter.py)."""

    def __init__(self, run_dir: Path, resume_step: int | None) -> None:
        purge = None if resume_step is None else resume_step + 1
        self._writer = ScalarWriter(run_dir, purge_step=purge)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Write the numbers of ``metrics`` (except ``global_step``, the x axis) as one event at ``step``."""
        values = scalars(metrics)
        values.pop("global_step", None)
        self._writer.add_scalars(values, step)

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


class WandbBackend:
    """A W&B run in ``<run>/wandb/`` (offline unless ``logger.wandb.mode=online``); resumes by the stored id."""

    def __init__(self, run_dir: Path, cfg: Any, run_name: str, run_config: dict[str, Any] | None) -> None:
        wandb = import_extra("wandb")
        run_id = _run_id(run_dir, "wandb", lambda: uuid.uuid4().hex[:12])
        try:
            self._run = wandb.init(
                project=cfg.wandb.project,
                entity=cfg.wandb.entity,
                mode=cfg.wandb.mode,
                dir=str(run_dir),
                id=run_id,
                resume="allow",
                name=run_name,
                config=run_config,
                # console capture would wrap stdout, whose last line is the run directory
                settings=wandb.Settings(console="off", silent=True),
            )
        except Exception as exc:  # wandb raises many types (UsageError, CommError, ...)
            raise ConfigError(f"logger wandb (mode {cfg.wandb.mode}) failed to start: {first_line(exc)}") from None
        self._run.define_metric("global_step")
        self._run.define_metric("*", step_metric="global_step")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Log the numbers of ``metrics`` with ``global_step`` set to ``step`` (the x axis of every series)."""
        self._run.log(scalars(metrics) | {"global_step": step})

    def close(self) -> None:
        """Finish the W&B run (offline: its ``.wandb`` file is complete and can be synced)."""
        self._run.finish()


class NeptuneBackend:
    """A Neptune 1.x run (offline: ``<run>/.neptune/``); numbers go to ``metrics/<key>`` series by global_step."""

    def __init__(self, run_dir: Path, cfg: Any, run_name: str, run_config: dict[str, Any] | None) -> None:
        neptune = import_extra("neptune")
        from neptune.utils import stringify_unsupported

        # Neptune logs its notices to stdout, whose last line is the run directory
        logging.getLogger("neptune").setLevel(logging.WARNING)
        self._data_dir = os.environ.get("NEPTUNE_DATA_DIRECTORY")
        os.environ["NEPTUNE_DATA_DIRECTORY"] = str(run_dir / ".neptune")  # read when the run starts
        custom_id = _run_id(run_dir, "neptune", lambda: uuid.uuid4().hex)
        try:
            self._run = neptune.init_run(
                project=cfg.neptune.project,
                mode=cfg.neptune.mode,
                name=run_name,
                custom_run_id=custom_id,
                tags=[run_name],
                capture_stdout=False,
                capture_stderr=False,
                capture_hardware_metrics=False,
                capture_traceback=False,
                source_files=[],
                git_ref=False,
            )
        except Exception as exc:  # NeptuneMissingProjectNameException, connection errors, ...
            self._restore_env()
            raise ConfigError(f"logger neptune (mode {cfg.neptune.mode}) failed to start: {first_line(exc)}") from None
        if run_config is not None:
            self._run["config"] = stringify_unsupported(run_config)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Append each finite number of ``metrics`` (not ``global_step``) to ``metrics/<key>`` at ``step``."""
        for key, value in scalars(metrics).items():
            if key != "global_step" and math.isfinite(value):  # Neptune rejects NaN and inf
                self._run[f"metrics/{key}"].append(value, step=step)

    def close(self) -> None:
        """Stop the Neptune run and restore the caller's ``NEPTUNE_DATA_DIRECTORY``."""
        try:
            self._run.stop()
        finally:
            self._restore_env()

    def _restore_env(self) -> None:
        if self._data_dir is None:
            os.environ.pop("NEPTUNE_DATA_DIRECTORY", None)
        else:
            os.environ["NEPTUNE_DATA_DIRECTORY"] = self._data_dir


def make_backends(run_dir: Path, cfg: Any, run_config: Any, resume_step: int | None) -> list[Backend]:
    """The backends named by ``cfg.backends`` (a :class:`~thrust_cli.run.config.LoggerConfig`), in that order.

    Args:
        run_dir: the run directory; every backend writes under it.
        cfg: the ``logger`` config (``backends``, ``run_name``, ``wandb``, ``neptune``).
        run_config: the run's resolved config as a dict, stored by W&B and Neptune (None: none stored).
        resume_step: the ``global_step`` of the checkpoint a resumed run starts from (TensorBoard hides the
            older events after it), or None for a fresh run.

    Raises:
        ConfigError: a backend's package is missing or it failed to start (those already started are closed).
    """
    run_name = cfg.run_name or run_dir.name
    backends: list[Backend] = []
    try:
        for name in cfg.backends:
            if name == "tensorboard":
                backends.append(TensorBoardBackend(run_dir, resume_step))
            elif name == "wandb":
                backends.append(WandbBackend(run_dir, cfg, run_name, run_config))
            elif name == "neptune":
                backends.append(NeptuneBackend(run_dir, cfg, run_name, run_config))
            else:
                raise ConfigError(f"logger.backends has unknown backend {name!r}; allowed: tensorboard, wandb, neptune")
    except BaseException:
        for backend in backends:
            backend.close()
        raise
    return backends
