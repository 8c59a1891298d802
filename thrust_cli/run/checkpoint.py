"""Checkpoints: written atomically (temp file in the same directory, fsync, rename), loaded for eval/resume.

A checkpoint holds the policy weights, the optimizer state, the global step, the run config (as a plain
container) and the spaces needed to rebuild the policy without making the env.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from thrust_cli.learn.policies import make_policy

CHECKPOINT_DIR = "checkpoints"
BEST = "best.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any], step: int, keep_last: int | None = None) -> Path:
    """Write ``state`` to ``run_dir/checkpoints/step_<step>.pt`` atomically and return the path.

    A SIGKILL at any moment leaves either the previous files or the new one complete: the data is fsynced
    under a temporary name, then renamed (atomic on POSIX), and the directory entry fsynced. With
    ``keep_last`` only that many step files remain afterwards (oldest removed first).
    """
    directory = Path(run_dir) / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:012d}.pt"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in directory.glob(".tmp_*.pt"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    if keep_last is not None:
        for old in sorted(directory.glob("step_*.pt"))[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def save_best(run_dir: Path, checkpoint: Path) -> Path:
    """Make ``run_dir/checkpoints/best.pt`` the checkpoint file ``checkpoint`` (a hard link, swapped in atomically
    by rename, so it survives ``keep_last`` removing the step file and a SIGKILL never leaves it half written)."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    best = directory / BEST
    tmp = directory / f".tmp_best_{os.getpid()}.pt"
    tmp.unlink(missing_ok=True)
    try:
        os.link(checkpoint, tmp)
    except OSError:  # no hard links on this filesystem: copy
        import shutil

        shutil.copyfile(checkpoint, tmp)
    os.replace(tmp, best)
    return best


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Resolve a run directory or a checkpoint file to a checkpoint file (the latest step of a run).

    Raises:
        FileNotFoundError: with a one-line message naming what was looked for.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no such run directory or checkpoint: '{path}'")
    candidates = sorted((path / CHECKPOINT_DIR).glob("step_*.pt")) or sorted(path.glob("step_*.pt"))
    if not candidates:
        raise FileNotFoundError(f"no checkpoint in '{path}' (looked for {CHECKPOINT_DIR}/step_*.pt)")
    return candidates[-1]


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the checkpoint at ``path`` (a file or a run directory) onto the CPU."""
    file = find_checkpoint(path)
    try:
        state: dict[str, Any] = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        detail = first if len(first) <= 100 else first[:97] + "..."
        raise ValueError(
            f"checkpoint '{file}' could not be read: not a torch checkpoint, or truncated ({detail})"
        ) from None
    missing = {"policy", "config", "global_step"} - set(state)
    if missing:
        raise ValueError(f"'{file}' is not a Thrust checkpoint (missing {', '.join(sorted(missing))})")
    state["path"] = str(file)
    return state


def load_policy(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Rebuild the policy of a checkpoint; return ``(policy, run config, checkpoint)``."""
    state = load_checkpoint(path)
    cfg = OmegaConf.create(state["config"])
    spaces = state["spaces"]
    action = spaces.get("action", {"type": "Discrete"})
    box = (action["low"], action["high"]) if action["type"] == "Box" else None
    policy = make_policy(tuple(spaces["obs_shape"]), spaces["num_actions"], cfg.policy, spaces.get("num_codes"), box)
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ValueError(
            f"checkpoint '{state['path']}' does not fit this version's {cfg.policy.name} policy: {first}"
        ) from None
    policy.eval()
    return policy, cfg, state


def latest_run(outputs: Path = Path("outputs")) -> Path:
    """The newest run directory under ``outputs`` that has checkpoints, for commands run without one.

    Runs live at ``outputs/<date>/<time>[_n]/checkpoints/step_*.pt`` (``hydra.run.dir``); the newest is the one
    whose latest checkpoint (the one :func:`find_checkpoint` picks) was modified last, so a resumed older run
    that wrote a checkpoint since counts as newer.

    Raises:
        FileNotFoundError: with a one-line message when no run under ``outputs`` has a checkpoint.
    """
    newest: tuple[float, str, Path] | None = None
    for run_dir in Path(outputs).glob("*/*"):
        steps = sorted((run_dir / CHECKPOINT_DIR).glob("step_*.pt"))
        if not steps:
            continue
        try:
            key = (steps[-1].stat().st_mtime, str(run_dir), run_dir)
        except OSError:  # removed meanwhile
            continue
        if newest is None or key[:2] > newest[:2]:
            newest = key
    if newest is None:
        raise FileNotFoundError(
            f"no run with checkpoints under '{outputs}' (looked for {outputs}/<date>/<time>/{CHECKPOINT_DIR}/"
            "step_*.pt): train one first (thrust train) or name a run directory or checkpoint"
        )
    return newest[2]
