"""Read-only views of run directories and model files for the web API; every id is validated here.

A run is a directory under the runs root (``outputs/`` by default, laid out ``<date>/<time>[_n]/`` by
``hydra.run.dir``) that holds ``metrics.jsonl`` or ``.hydra/config.yaml``; its id is its path relative to the
root, POSIX-style (``2026-11-27/10-42-07``). Ids are checked part by part (letters, digits, ``._-``, no leading
dot, so no ``..`` and no hidden directory), then the resolved path must still lie inside the resolved root, so a
symlink pointing out of it is refused. Every file read (``metrics.jsonl``, ``summary.json``, exports) is resolved
and checked the same way.

Rows of ``metrics.jsonl`` are numbered from 0 by line; only complete lines (ending in a newline) count, so a row
the trainer is still writing is never half-read. A line that is not a JSON object keeps its number and is left out
of the rows returned. :class:`MetricsIndex` remembers each file's line offsets and extends them as the file grows.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import time
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Any

from thrust_cli.web import GAMES

RUN_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MODEL_ID = re.compile(r"^[a-z0-9_-]{1,200}$")
MAX_RUN_DEPTH = 4  # outputs/<date>/<time> is 2; multirun/<date>/<time>/<job> under a --runs of "." is 4
MAX_SCANNED_DIRS = 20_000  # bounds the work of one /api/runs on a huge directory tree
RUNNING_WINDOW_S = 120.0  # a run without summary.json whose metrics changed this recently is "running"
MAX_HEADER_BYTES = 16 << 20  # safetensors header JSON; Thrust's are a few KB
FORMATS = ("safetensors", "onnx")


def inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved (symlinks followed) if it exists and lies inside the resolved ``root``, else None."""
    try:
        real = path.resolve(strict=True)
        real.relative_to(root.resolve(strict=True))
    except (OSError, ValueError, RuntimeError):  # missing, outside, a symlink loop
        return None
    return real


def valid_run_id(run_id: str) -> bool:
    """Whether ``run_id`` has the shape of a run id (see the module docstring); says nothing of existence."""
    parts = run_id.split("/")
    return 0 < len(parts) <= MAX_RUN_DEPTH and all(RUN_PART.match(part) for part in parts)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds ``metrics.jsonl`` or ``.hydra/config.yaml`` (what makes a directory a run)."""
    return (path / "metrics.jsonl").is_file() or (path / ".hydra" / "config.yaml").is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class MetricsIndex:
    """Start offsets of the complete lines of ``metrics.jsonl`` files, extended incrementally (thread-safe).

    A file that shrank or was replaced (``thrust train resume=`` rewrites it) is indexed again from the start.
    At most ``max_files`` files are remembered (least recently used dropped).
    """

    def __init__(self, max_files: int = 256) -> None:
        self._files: OrderedDict[str, tuple[int, array[int], int]] = OrderedDict()  # path -> (inode, starts, end)
        self._lock = threading.Lock()
        self.max_files = max_files

    def offsets(self, path: Path) -> tuple[array[int], int]:
        """``(starts, end)``: the byte offset of each complete line and the offset just after the last one.

        Raises:
            OSError: the file cannot be read.
        """
        key = str(path)
        with self._lock, open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            inode, starts, end = self._files.pop(key, (stat.st_ino, array("q"), 0))
            if inode != stat.st_ino or stat.st_size < end:
                inode, starts, end = stat.st_ino, array("q"), 0
            if stat.st_size > end:
                f.seek(end)
                data = f.read(stat.st_size - end)
                pos = 0
                while (newline := data.find(b"\n", pos)) >= 0:
                    starts.append(end + pos)
                    pos = newline + 1
                end += pos
            self._files[key] = (inode, starts, end)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
            return starts, end


def parse_rows(data: bytes, skip: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of the complete lines in ``data`` after the first ``skip``, and how many complete lines
    ``data`` has (skipped ones included)."""
    lines = data.split(b"\n")[:-1]  # the part after the last newline is incomplete
    rows = []
    for line in lines[skip:]:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, len(lines)


def read_safetensors_metadata(path: Path) -> dict[str, Any]:
    """The ``__metadata__`` of a safetensors file with each JSON-encoded value decoded (raw strings kept).

    Reads only the header (u64 little-endian length, then that many bytes of JSON), so no torch is needed.

    Raises:
        ValueError: the file is not safetensors.
    """
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("not a safetensors file (shorter than 8 bytes)")
        (size,) = struct.unpack("<Q", head)
        if not 0 < size <= MAX_HEADER_BYTES:
            raise ValueError(f"not a safetensors file (header length {size})")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise ValueError("not a safetensors file (header is not JSON)") from None
    raw = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(raw, dict):
        return {}
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except (TypeError, ValueError):
            meta[key] = value
    return meta


class RunStore:
    """The runs under ``root``: listing, one run's config and summary, its metrics rows.

    Args:
        root: the ``--runs`` directory; it may not exist yet (then there are no runs until it does).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.index = MetricsIndex()

    def resolve(self, run_id: str) -> Path | None:
        """The directory of run ``run_id`` (validated, inside the root, a run), or None."""
        if not valid_run_id(run_id):
            return None
        path = inside(self.root, self.root / run_id)
        return path if path is not None and path.is_dir() and is_run_dir(path) else None

    def file(self, run_dir: Path, name: str) -> Path | None:
        """``run_dir/name`` if it is a regular file inside the root (a symlink out of it is refused)."""
        path = inside(self.root, run_dir / name)
        return path if path is not None and path.is_file() else None

    def run_ids(self) -> list[str]:
        """Ids of every run under the root, newest first by name (``<date>/<time>`` sorts by time)."""
        found: list[str] = []
        root = inside(self.root, self.root)
        if root is None:
            return found
        stack: list[tuple[Path, int]] = [(root, 0)]
        scanned = 0
        while stack and scanned < MAX_SCANNED_DIRS:
            directory, depth = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                scanned += 1
                if not RUN_PART.match(entry.name) or not entry.is_dir(follow_symlinks=False):
                    continue
                path = Path(entry.path)
                if is_run_dir(path):
                    found.append(path.relative_to(root).as_posix())
                elif depth + 1 < MAX_RUN_DEPTH:
                    stack.append((path, depth + 1))
        return sorted(found, reverse=True)

    def metrics_path(self, run_dir: Path) -> Path | None:
        """The run's ``metrics.jsonl`` (resolved, inside the root), or None when it has none (yet)."""
        return self.file(run_dir, "metrics.jsonl")

    def count(self, run_dir: Path) -> int:
        """The number of complete lines (rows) of the run's ``metrics.jsonl``; 0 without one or if unreadable."""
        path = self.metrics_path(run_dir)
        if path is None:
            return 0
        try:
            return len(self.index.offsets(path)[0])
        except OSError:
            return 0

    def rows(self, run_dir: Path, since: int, limit: int) -> tuple[list[dict[str, Any]], int, int]:
        """``(rows, next, total)``: the rows of line numbers ``since .. since+limit-1`` (those that exist)."""
        path = self.metrics_path(run_dir)
        if path is None:
            return [], since, 0
        try:
            starts, end = self.index.offsets(path)
            total = len(starts)
            if since >= total:
                return [], since, total
            stop = min(total, since + limit)
            last = starts[stop] if stop < total else end
            with open(path, "rb") as f:
                f.seek(starts[since])
                data = f.read(last - starts[since])
        except OSError:
            return [], since, 0
        rows, lines = parse_rows(data)
        return rows, since + lines, total

    def last_row(self, run_dir: Path) -> dict[str, Any] | None:
        """The last complete line of ``metrics.jsonl`` as a dict; None without rows, if unreadable, or if that line
        is not a JSON object."""
        path = self.metrics_path(run_dir)
        if path is None:
            return None
        try:
            starts, end = self.index.offsets(path)
            if not starts:
                return None
            with open(path, "rb") as f:
                f.seek(starts[-1])
                rows, _ = parse_rows(f.read(end - starts[-1]))
        except OSError:
            return None
        return rows[0] if rows else None

    def config(self, run_dir: Path) -> dict[str, Any] | None:
        """The run's resolved config (``.hydra/config.yaml``) as plain containers, or None if unreadable."""
        import yaml

        path = self.file(run_dir, ".hydra/config.yaml")
        if path is None:
            return None
        try:
            cfg = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return None
        return cfg if isinstance(cfg, dict) else None

    def summary(self, run_dir: Path) -> dict[str, Any] | None:
        """The run's ``summary.json`` (written when training ends), or None when missing or not a JSON object."""
        path = self.file(run_dir, "summary.json")
        value = _read_json(path) if path is not None else None
        return value if isinstance(value, dict) else None

    def entry(self, run_id: str, run_dir: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run as ``GET /api/runs`` lists it."""
        cfg = self.config(run_dir) if config is None else config
        summary = self.summary(run_dir)
        last = self.last_row(run_dir) or {}
        metrics = self.metrics_path(run_dir)
        updated = max((p.stat().st_mtime for p in (metrics, self.file(run_dir, "summary.json")) if p), default=None)
        if updated is None:
            updated = run_dir.stat().st_mtime
        if summary is not None and isinstance(summary.get("status"), str):
            status = summary["status"]
        else:
            status = "running" if time.time() - updated < RUNNING_WINDOW_S else "incomplete"
        step = last.get("global_step", (summary or {}).get("global_step"))
        return {
            "id": run_id,
            "env": _get(cfg, "env", "name"),
            "policy": _get(cfg, "policy", "name"),
            "status": status,
            "global_step": step if isinstance(step, int) else None,
            "rows": self.count(run_dir),
            "updated": updated,
        }

    def list(self) -> list[dict[str, Any]]:
        """Every run under the root as `entry` gives it, newest first; runs removed while listing are left out."""
        entries = []
        for run_id in self.run_ids():
            run_dir = self.resolve(run_id)
            if run_dir is not None:
                try:
                    entries.append(self.entry(run_id, run_dir))
                except OSError:  # removed while listing
                    continue
        return entries


def _get(cfg: dict[str, Any] | None, group: str, key: str) -> Any:
    node = (cfg or {}).get(group)
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, str) else None


class ModelStore:
    """Policies the browser can download: demo models (``models_dir/<game>/``) and exported runs.

    A demo model is ``models_dir/<game>/policy.safetensors`` (+ ``policy.onnx``, ``model.json``) for a game of
    :data:`~thrust_cli.web.GAMES`. A run becomes model ``run-<id with / as _>`` once it has
    ``export/policy.safetensors`` (``thrust export --safetensors``); runs whose id does not fit
    :data:`MODEL_ID` (e.g. upper-case names) are not listed.
    """

    def __init__(self, models_dir: Path, runs: RunStore) -> None:
        self.root = Path(models_dir)
        self.runs = runs

    def _files(self, root: Path, directory: Path) -> dict[str, Path | None]:
        files: dict[str, Path | None] = {}
        for fmt in FORMATS:
            path = inside(root, directory / f"policy.{fmt}")
            files[fmt] = path if path is not None and path.is_file() else None
        return files

    def _entry(self, model_id: str, files: dict[str, Path | None], fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": model_id,
            **fields,
            "bytes": {fmt: (path.stat().st_size if path else None) for fmt, path in files.items()},
            "urls": {
                **{fmt: (f"/api/models/{model_id}/policy.{fmt}" if path else None) for fmt, path in files.items()},
                # what the page loads: the same safetensors file, not counted as a download, revalidated by ETag
                "weights": f"/api/models/{model_id}/weights.safetensors",
            },
        }

    def _demo(self) -> list[tuple[dict[str, Any], dict[str, Path | None]]]:
        found = []
        for game in GAMES:
            files = self._files(self.root, self.root / game)
            if files["safetensors"] is None:
                continue
            info_path = inside(self.root, self.root / game / "model.json")
            info = _read_json(info_path) if info_path is not None else None
            info = info if isinstance(info, dict) else {}
            given = info.get("id")
            model_id = given if isinstance(given, str) else f"demo-{game}"
            if not MODEL_ID.match(model_id) or model_id.startswith("run-"):
                continue
            architecture = info.get("architecture")
            if not isinstance(architecture, str):
                architecture = _architecture(files["safetensors"])
            fields = {
                "game": game,
                "architecture": architecture,
                "source": "demo",
                "title": info.get("title") if isinstance(info.get("title"), str) else f"{game} demo policy",
                "eval": info.get("eval") if isinstance(info.get("eval"), dict) else None,
                "random": info.get("random") if isinstance(info.get("random"), dict) else None,
            }
            for key in ("trained", "command"):
                if key in info:
                    fields[key] = info[key]
            found.append((self._entry(model_id, files, fields), files))
        return found

    def _from_runs(self) -> list[tuple[dict[str, Any], dict[str, Path | None]]]:
        found = []
        for run_id in self.runs.run_ids():
            model_id = "run-" + run_id.replace("/", "_")
            run_dir = self.runs.resolve(run_id)
            if not MODEL_ID.match(model_id) or run_dir is None:
                continue
            files = self._files(self.runs.root, run_dir / "export")
            if files["safetensors"] is None:
                continue
            cfg = self.runs.config(run_dir)
            env = _get(cfg, "env", "name")
            fields = {
                "game": env,
                "architecture": _architecture(files["safetensors"]) or _get(cfg, "policy", "name"),
                "source": "run",
                "run_id": run_id,
                "title": f"{env or 'unknown env'} run {run_id}",
                "eval": None,
                "random": None,
            }
            found.append((self._entry(model_id, files, fields), files))
        return found

    def list(self) -> list[dict[str, Any]]:
        """Every model as ``GET /api/models`` lists it: the demo models, then the exported runs (newest first)."""
        return [entry for entry, _ in self._demo() + self._from_runs()]

    def find(self, model_id: str) -> tuple[dict[str, Any], dict[str, Path | None]] | None:
        """The entry and files of model ``model_id``, or None (also for an id of the wrong shape)."""
        if not MODEL_ID.match(model_id):
            return None
        candidates = self._from_runs() if model_id.startswith("run-") else self._demo()
        return next(((entry, files) for entry, files in candidates if entry["id"] == model_id), None)


def _architecture(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        value = read_safetensors_metadata(path).get("architecture")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None
