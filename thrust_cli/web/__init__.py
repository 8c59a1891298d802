"""The browser demo and dashboard behind ``thrust serve``: a FastAPI app (:mod:`thrust_cli.web.app`).

The games play in the browser (one WebAssembly module per game: C env core plus the policy's forward pass,
:mod:`thrust_cli.web.wasm_build`); the server only hands out pages, modules and model files, reads run
directories for the dashboard, and records anonymous analytics in SQLite (:mod:`thrust_cli.web.analytics`).
Importing this package loads no web framework: fastapi and uvicorn are the ``web`` extra, imported by
:mod:`thrust_cli.web.app` and ``thrust serve`` only.
"""

from __future__ import annotations

GAMES = ("cartpole", "snake", "asteroids")
"""The games with a browser module, a play page and a shipped demo model (thrust_cli/web/models)."""
