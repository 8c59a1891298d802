"""``thrust serve``: the web app of :mod:`thrust_cli.web.app` under uvicorn, on localhost by default.

The port is bound here, before uvicorn starts, with the options uvicorn uses (``SO_REUSEADDR``: a port left in
TIME_WAIT by a previous server is free, one a running server listens on is not), and the bound socket is handed to
uvicorn, so a taken port is one clear line and nothing can take the port between the check and the start.
fastapi and uvicorn are imported only here (the ``web`` extra), never at ``thrust --help``.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

WEB_EXTRA = "thrust serve needs the web extra: pip install 'thrust-rl[web]'"
WS_MAX_BYTES = 64 * 1024  # uvicorn closes larger frames itself (1009); the app refuses those over 4 KB
GRACEFUL_S = 5  # shutdown waits at most this long for requests in flight


class ServeError(Exception):
    """A reason ``thrust serve`` cannot start, in one line."""


def _print(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def default_db() -> Path:
    """``$THRUST_CACHE_DIR/analytics.sqlite3``, or ``~/.cache/thrust/analytics.sqlite3``."""
    root = os.environ.get("THRUST_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "thrust") / "analytics.sqlite3"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), set up as uvicorn sets up its own.

    Raises:
        ServeError: the host does not resolve, the port is in use or may not be bound.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(f"cannot listen on '{host}': {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use (another server?); choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise ServeError(f"no permission to listen on port {port}; use a port above 1023") from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _build_wasm(echo: Callable[..., Any]) -> None:
    """Build the games' wasm modules now unless cached, so that no page waits for the compiler."""
    from thrust_cli.web import wasm_build

    if not all(wasm_build.is_cached(game) for game in wasm_build.GAMES):
        folder = wasm_build.cache_dir() / "wasm"
        echo(f"building the games' wasm modules into {folder} (once per version, ~15 s the first time)", err=True)
    wasm_build.build_all()


def url(sock: socket.socket) -> str:
    """The ``http://host:port/`` address a listening socket serves (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    host: str,
    port: int,
    runs_dir: Path,
    db_path: Path | None = None,
    models_dir: Path | None = None,
    echo: Callable[..., Any] = _print,
) -> int:
    """Serve until Ctrl-C (or SIGTERM); return the exit code (0, or 130 after Ctrl-C).

    Args:
        host: the address to listen on, a name or an IP (`thrust serve` defaults to 127.0.0.1).
        port: the TCP port; 0 picks a free one (the URL printed names it).
        runs_dir: the runs the dashboard lists. A directory that does not exist yet is not an error: the list is
            empty until training creates it (``thrust serve`` started before the first ``thrust train``).
        db_path: the analytics database (default :func:`default_db`).
        models_dir: demo models (default: thrust_cli/web/models).
        echo: prints a line: ``echo(text)`` to stdout, ``echo(text, err=True)`` to stderr (typer.echo fits).

    Raises:
        ServeError: fastapi/uvicorn are missing, a path is not a directory, the database or port is unusable.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ServeError(WEB_EXTRA) from None
    from thrust_cli.web.app import create_app

    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ServeError(f"--runs '{runs_dir}' is not a directory")
    if models_dir is not None and not Path(models_dir).is_dir():
        raise ServeError(f"--models '{models_dir}' is not a directory")
    db_path = Path(db_path) if db_path is not None else default_db()
    try:
        app = create_app(runs_dir, db_path, models_dir)
    except (sqlite3.Error, OSError) as exc:
        raise ServeError(f"cannot open the analytics database '{db_path}': {exc}") from None
    sock = bind(host, port)
    where = url(sock)
    try:  # the pages' wasm modules: built once per source version into the cache (zig's first build ~15 s)
        _build_wasm(echo)
    except (RuntimeError, OSError) as exc:
        sock.close()
        raise ServeError(str(exc).splitlines()[0]) from None
    if not runs_dir.is_dir():
        echo(f"note: '{runs_dir}' does not exist yet; the dashboard lists runs once training creates it", err=True)

    class Server(uvicorn.Server):
        """uvicorn's server, printing the URL once it has started."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            """Start as uvicorn does, then print the URLs of the site, dashboard and API docs."""
            await super().startup(sockets)
            if self.started:
                echo(f"serving {where} (dashboard {where}dashboard, API {where}docs); Ctrl-C stops")

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws_max_size=WS_MAX_BYTES,
        timeout_graceful_shutdown=GRACEFUL_S,
        lifespan="off",
        server_header=False,
    )
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the SIGINT it caught
        return 130
    finally:
        sock.close()
    return 0
