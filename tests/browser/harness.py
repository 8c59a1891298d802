"""What the browser tests, ``screenshots.py`` and ``measure.py`` share: the demo server in a thread and Chromium.

The server is :func:`thrust_cli.web.app.create_app` under ``uvicorn.Server`` on a free localhost port; the browser
is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright's sync API (``playwright install`` cannot
download browsers here; see REFERENCE.md §10).

Demo models: ``thrust_cli/web/models`` when it holds all three games; otherwise the store named by
``$THRUST_WEB_TEST_MODELS`` (laid out the same way: ``<game>/model.json, policy.safetensors, policy.onnx``) if set.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]
REPO = Path(__file__).resolve().parents[2]
GAMES = ("cartpole", "snake", "asteroids")
MODEL_FILES = ("model.json", "policy.safetensors", "policy.onnx")


def games_with_models(models_dir: Path) -> list[str]:
    """The games whose demo model is complete in ``models_dir``."""
    return [g for g in GAMES if all((models_dir / g / name).is_file() for name in MODEL_FILES)]


def demo_models_dir() -> Path:
    """The shipped store if complete, else ``$THRUST_WEB_TEST_MODELS`` if set, else the shipped store."""
    shipped = REPO / "thrust_cli" / "web" / "models"
    if len(games_with_models(shipped)) == len(GAMES):
        return shipped
    override = os.environ.get("THRUST_WEB_TEST_MODELS")
    return Path(override) if override else shipped


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs playwright: pip install playwright (Chromium itself comes from apt: apt-get install chromium)"
    if not CHROMIUM.is_file():
        return f"needs Chromium at {CHROMIUM}: apt-get install chromium"
    return None


def launch(playwright: Any) -> Any:
    """Headless Chromium."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(runs_dir: Path, db_path: Path, models_dir: Path) -> Iterator[str]:
    """Run the demo app on a free localhost port in a thread; yields its base URL (``http://127.0.0.1:<port>``).

    The three wasm modules are built (or found in the cache) first, so no page waits on a compile.
    """
    import uvicorn

    from thrust_cli.web import wasm_build
    from thrust_cli.web.app import create_app

    wasm_build.build_all()
    app = create_app(runs_dir, db_path, models_dir=models_dir)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="thrust-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_ready(page: Any, timeout_ms: float = 20_000) -> None:
    """Wait until the game page drew its first frame or reported an error."""
    page.wait_for_function(
        "() => window.thrustDemo && (window.thrustDemo.ready || window.thrustDemo.error)", timeout=timeout_ms
    )


def stats(page: Any) -> dict[str, Any]:
    """The game page's own figures: ``window.thrustDemo.stats()``."""
    return dict(page.evaluate("() => window.thrustDemo.stats()"))
