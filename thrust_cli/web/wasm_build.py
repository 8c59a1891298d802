"""Build the browser demo's WebAssembly modules: one per game, holding every agent of a page.

Each module is ``thrust_cli/web/wasm/<game>_demo.c``: the game's unchanged C core (``envs_cython/<game>/<game>.h``)
plus the policy forward pass (``policy.h``) and the shared glue (``demo.h``, which documents the exports, the render
layouts and the Snake cell codes). ``zig cc`` (the ``ziglang`` pip package) compiles it for wasm32-wasi as a reactor
with no imports. Built files are cached under ``<cache>/wasm/<game>-<hash12>.wasm``, where the hash covers the
sources, the flags and the zig version, so a module is rebuilt only when one of them changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

GAMES = ("cartpole", "snake", "asteroids")
WASM_DIR = Path(__file__).resolve().parent / "wasm"
FLAGS = (
    "--target=wasm32-wasi",
    "-mexec-model=reactor",
    "-O2",
    "-ffp-contract=off",
    "-msimd128",
    "-s",
    "-Wl,--no-entry",
)
EXPORTS = (
    "init",
    "num_agents",
    "obs_size",
    "num_actions",
    "step",
    "actions_ptr",
    "rewards_ptr",
    "terminals_ptr",
    "truncations_ptr",
    "observations_ptr",
    "stats_ptr",
    "stats_reset",
    "name_buffer",
    "policy_config",
    "policy_tensor",
    "policy_ready",
    "act",
    "logits_ptr",
    "policy_reset_state",
    "render_ptr",
    "render",
)
GAME_EXPORTS = {"snake": ("grid_ptr", "grid_width", "grid_height", "grid_pad")}
BUILD_TIMEOUT_S = 300


def cache_dir() -> Path:
    """The cache root: ``$THRUST_CACHE_DIR``, or ``~/.cache/thrust``."""
    root = os.environ.get("THRUST_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "thrust"


def _envs_dir() -> Path:
    """The ``envs_cython`` source folder (beside ``thrust_cli``, in a checkout and in an installed wheel)."""
    beside = WASM_DIR.parents[2] / "envs_cython"
    if (beside / "thrust_rng.h").is_file():
        return beside
    spec = importlib.util.find_spec("envs_cython")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    raise RuntimeError("cannot find the envs_cython sources (envs_cython/thrust_rng.h) to build the wasm modules")


def _check_game(game: str) -> None:
    if game not in GAMES:
        raise ValueError(f"unknown game '{game}'; allowed: {', '.join(GAMES)}")


def _command(game: str, output: Path) -> list[str]:
    """The ``zig cc`` command line that builds ``game``'s module into ``output``."""
    exports = (*EXPORTS, *GAME_EXPORTS.get(game, ()))
    return [
        sys.executable,
        "-m",
        "ziglang",
        "cc",
        *FLAGS,
        *(f"-Wl,--export={name}" for name in exports),
        "-I",
        str(_envs_dir()),
        "-o",
        str(output),
        str(WASM_DIR / f"{game}_demo.c"),
    ]


def _zig_version() -> str:
    try:
        return importlib.metadata.version("ziglang")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("building the wasm modules needs ziglang: pip install ziglang") from None


def _hash(game: str) -> str:
    """sha256 (first 12 hex digits) of the game's sources, the flags, the exports and the zig version."""
    envs = _envs_dir()
    sources = [
        WASM_DIR / f"{game}_demo.c",
        *sorted(WASM_DIR.glob("*.h")),
        envs / game / f"{game}.h",
        envs / "thrust_rng.h",
    ]
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    exports = (*EXPORTS, *GAME_EXPORTS.get(game, ()))
    digest.update(" ".join((*FLAGS, *exports, _zig_version())).encode())
    return digest.hexdigest()[:12]


def _first_error(stderr: str) -> str:
    """The first line of zig's output that reports an error (else its first line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0]


def build(game: str, out_dir: Path | None = None) -> Path:
    """Build ``game``'s module, unless the cache already holds it for the current sources.

    The compiler writes a temporary file in the target folder, which is then renamed into place (atomic), so
    concurrent builders (e.g. two pytest processes) never see a partial module.

    Args:
        game: one of ``cartpole``, ``snake``, ``asteroids``.
        out_dir: folder to write ``<game>-<hash12>.wasm`` in; default ``cache_dir() / "wasm"``.

    Returns:
        the path of the built module.

    Raises:
        ValueError: unknown game.
        RuntimeError: one line: ziglang is missing, or the build failed (with zig's first error line).
    """
    _check_game(game)
    folder = Path(out_dir) if out_dir is not None else cache_dir() / "wasm"
    target = folder / f"{game}-{_hash(game)}.wasm"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{game}-", suffix=".wasm.tmp", dir=folder)
    except OSError as exc:
        raise RuntimeError(f"cannot write the {game} wasm module in '{folder}': {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            built = subprocess.run(
                _command(game, tmp), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"building the {game} wasm module timed out after {BUILD_TIMEOUT_S} s") from None
        if built.returncode != 0 or tmp.stat().st_size == 0:
            raise RuntimeError(f"building the {game} wasm module failed: {_first_error(built.stderr)}")
        tmp.chmod(0o644)  # mkstemp's 0600 would keep the module from a server run by another user
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def is_cached(game: str, out_dir: Path | None = None) -> bool:
    """Whether :func:`build` would find ``game``'s module for the current sources without compiling."""
    _check_game(game)
    folder = Path(out_dir) if out_dir is not None else cache_dir() / "wasm"
    return (folder / f"{game}-{_hash(game)}.wasm").is_file()


def build_all(out_dir: Path | None = None) -> dict[str, Path]:
    """Build (or find in the cache) every game's module; ``{game: path}``, see :func:`build`."""
    return {game: build(game, out_dir) for game in GAMES}


def wasm_path(game: str) -> Path:
    """The cached module of ``game``, built first when missing (see :func:`build`)."""
    return build(game)
