"""The ``thrust serve`` app: demo pages, WebAssembly modules, models, runs, live metrics and analytics.

Everything is read-only except ``POST /api/analytics/events``. Ids are validated in :mod:`thrust_cli.web.store`;
request bodies are capped at :data:`MAX_BODY_BYTES` on the raw stream (a missing or false Content-Length does not
help), and every error is one JSON object ``{"detail": "<one line>"}`` (422s add ``errors``). The OpenAPI schema is
at ``/openapi.json`` and FastAPI's interactive docs at ``/docs``.

File and SQLite work runs in FastAPI's thread pool (plain ``def`` endpoints) or ``asyncio.to_thread``.

WebSocket ``/ws/runs/{id}?since=k``: messages ``{"type": "rows", "rows": [...], "next": n}`` for the rows of
``metrics.jsonl`` from ``k`` on, then for each new complete line (the file is polled every
:data:`POLL_S`; a run with no ``metrics.jsonl`` yet is waited for), ``{"type": "ping"}`` after
:data:`PING_S` without a message, and ``{"type": "reset", "next": 0}`` when the file is rewritten (a resumed run
drops rows past its checkpoint) before its rows are sent again from 0. The client may send ``{"type": "ping"}``
(answered ``{"type": "pong"}``); other objects are ignored. Close codes: 4404 unknown run, 1008 a bad ``since``,
1003 a binary frame, 1007 a frame that is not a JSON object, 1009 a frame over :data:`MAX_FRAME_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from thrust_cli.web import GAMES
from thrust_cli.web.analytics import Analytics, Event
from thrust_cli.web.store import FORMATS, ModelStore, RunStore, inside, parse_rows, read_safetensors_metadata

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEMO_MODELS_DIR = Path(__file__).resolve().parent / "models"
MAX_BODY_BYTES = 16 * 1024
MAX_FRAME_BYTES = 4 * 1024
POLL_S = 0.2
PING_S = 15.0
MAX_CHUNK_BYTES = 256 * 1024  # metrics.jsonl read per poll, so one message stays well under 1 MiB
MAX_METRICS_LIMIT = 10_000
EVENT: TypeAdapter[Any] = TypeAdapter(Event)
log = logging.getLogger("thrust.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Pure ASGI middleware: reads a request body up to ``max_bytes`` before the app sees it, else answers 413.

    Counts the bytes actually received, so a chunked body or a Content-Length that lies is cut off as well.
    Also adds ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin`` to every response.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
            await send(message)

        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send_with_headers)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _error(send_with_headers, 413, f"request body over {self.max_bytes} bytes")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _error(send_with_headers, 413, f"request body over {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send_with_headers)


async def _error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _one_line(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """A validation error list as one readable line and a JSON-safe list (no echo of the input)."""
    clean = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors
    ]
    parts = [f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in clean[:3]]
    more = f" (+{len(clean) - 3} more)" if len(clean) > 3 else ""
    return "; ".join(parts).replace("\n", " ") + more, clean


def revalidated(request: Request, path: Path, media_type: str) -> Response:
    """``path`` with an ETag (its size and mtime) and ``no-cache``: the browser keeps it and asks each time
    whether it changed; an unchanged file is answered 304 with no body."""
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"cache-control": "no-cache", "etag": etag}
    if etag in [tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def create_app(runs_dir: Path | str, db_path: Path | str, models_dir: Path | str | None = None) -> FastAPI:
    """The web app over the runs under ``runs_dir``, with analytics in SQLite at ``db_path``.

    Args:
        runs_dir: the run directories to list (``thrust serve --runs``); may not exist yet.
        db_path: the analytics database (created if missing, WAL mode).
        models_dir: demo models, ``<dir>/<game>/policy.safetensors`` (default: thrust_cli/web/models).

    Raises:
        sqlite3.Error: the database cannot be opened.
    """
    from thrust_cli import __version__

    runs = RunStore(Path(runs_dir))
    models = ModelStore(Path(models_dir) if models_dir is not None else DEMO_MODELS_DIR, runs)
    analytics = Analytics(Path(db_path))
    wasm_lock = threading.Lock()  # one build at a time (the first one compiles zig's libc)

    app = FastAPI(title="Thrust", version=__version__, summary="Thrust's browser demo and training dashboard.")
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """An HTTP error as ``{"detail": "<one line>"}`` with its status code and headers."""
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with a one-line ``detail`` and the validation ``errors``."""
        detail, errors = _one_line(list(exc.errors()))
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        """Log an unexpected exception with its traceback; answer 500 naming only the exception type."""
        log.exception("unexpected error serving %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    # pages

    def page(name: str) -> FileResponse:
        path = inside(STATIC_DIR, STATIC_DIR / name)
        if path is None or not path.is_file():
            raise HTTPException(404, f"page not built: {name}")
        return FileResponse(path, media_type="text/html")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return page("index.html")

    @app.get("/play/{game}", include_in_schema=False)
    def play(game: str) -> FileResponse:
        if game not in GAMES:
            raise HTTPException(404, f"no game '{game[:64]}'; games: {', '.join(GAMES)}")
        return page("play.html")

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> FileResponse:
        return page("dashboard.html")

    if STATIC_DIR.is_dir():  # StaticFiles refuses paths that leave the directory and symlinks out of it
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/wasm/{game}.wasm", include_in_schema=False)
    def wasm(game: str, request: Request) -> Response:
        if game not in GAMES:
            raise HTTPException(404, f"no game '{game[:64]}'; games: {', '.join(GAMES)}")
        try:
            wasm_build = importlib.import_module("thrust_cli.web.wasm_build")
            with wasm_lock:
                path = Path(wasm_build.wasm_path(game))
        except (ImportError, RuntimeError, ValueError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise HTTPException(503, f"the {game} module cannot be built: {first}") from None
        return revalidated(request, path, "application/wasm")

    # API

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "games": list(GAMES)}

    @app.get("/api/models")
    def list_models() -> dict[str, Any]:
        return {"models": models.list()}

    def find_model(model_id: str) -> tuple[dict[str, Any], dict[str, Path | None]]:
        found = models.find(model_id)
        if found is None:
            raise HTTPException(404, f"no model '{model_id[:200]}'")
        return found

    @app.get("/api/models/{model_id}")
    def get_model(model_id: str) -> dict[str, Any]:
        entry, files = find_model(model_id)
        assert files["safetensors"] is not None
        try:
            metadata = read_safetensors_metadata(files["safetensors"])
        except (OSError, ValueError) as exc:
            raise HTTPException(500, f"model '{model_id}': {exc}") from None
        return {**entry, "metadata": metadata}

    @app.get("/api/models/{model_id}/weights.safetensors")
    def model_weights(model_id: str, request: Request) -> Response:
        """The model's safetensors file for the page to run (inline, revalidated by ETag; not a download)."""
        _, files = find_model(model_id)
        assert files["safetensors"] is not None
        return revalidated(request, files["safetensors"], "application/octet-stream")

    @app.get("/api/models/{model_id}/policy.{fmt}")
    def download_model(model_id: str, fmt: str) -> FileResponse:
        if fmt not in FORMATS:
            raise HTTPException(404, f"no format '{fmt[:32]}'; formats: {', '.join(FORMATS)}")
        _, files = find_model(model_id)
        path = files[fmt]
        if path is None:
            raise HTTPException(404, f"model '{model_id}' has no {fmt} file")
        try:
            analytics.record_download(model_id, fmt, source="server")
        except sqlite3.Error as exc:  # the file is still served
            log.warning("download of %s not recorded: %s", model_id, exc)
        media = "application/octet-stream"
        return FileResponse(path, media_type=media, filename=f"{model_id}.{fmt}", content_disposition_type="attachment")

    @app.get("/api/runs")
    def list_runs() -> dict[str, Any]:
        return {"runs": runs.list()}

    def find_run(run_id: str) -> Path:
        run_dir = runs.resolve(run_id)
        if run_dir is None:
            raise HTTPException(404, f"no run '{run_id[:200]}'".replace("\x00", "\\0"))
        return run_dir

    @app.get("/api/runs/{run_id:path}/metrics")
    def run_metrics(
        run_id: str,
        since: int = Query(0, ge=0, le=2**53, description="First row (line number of metrics.jsonl, from 0)."),
        limit: int = Query(1000, ge=1, le=MAX_METRICS_LIMIT, description="Rows at most."),
    ) -> dict[str, Any]:
        rows, next_row, total = runs.rows(find_run(run_id), since, limit)
        return {"rows": rows, "next": next_row, "total": total}

    @app.get("/api/runs/{run_id:path}")
    def get_run(run_id: str) -> dict[str, Any]:
        run_dir = find_run(run_id)
        config = runs.config(run_dir)
        try:
            entry = runs.entry(run_id, run_dir, config)
        except OSError:
            raise HTTPException(404, f"no run '{run_id[:200]}'") from None
        return {**entry, "config": config, "summary": runs.summary(run_dir)}

    @app.post(
        "/api/analytics/events",
        status_code=201,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
    )
    async def post_event(request: Request) -> dict[str, bool]:
        """Record one analytics event (JSON, at most 16 KB; any content type, so `sendBeacon` works)."""
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"malformed JSON: {exc}") from None
        try:
            event = EVENT.validate_python(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        await asyncio.to_thread(analytics.record, event)
        return {"ok": True}

    @app.get("/api/analytics")
    def analytics_summary() -> dict[str, Any]:
        return analytics.summary()

    @app.websocket("/ws/runs/{run_id:path}")
    async def ws_run(websocket: WebSocket, run_id: str) -> None:
        """Stream a run's metrics rows as they are written, from row ``?since=N`` (default 0).

        Messages are JSON: ``{"type": "rows", "rows": [...], "next": N}``, ``{"type": "reset", "next": 0}`` when
        ``metrics.jsonl`` was replaced or truncated, and ``ping``/``pong``. Closes with 1008 for a bad ``since``
        and 4404 for an unknown run.
        """
        await websocket.accept()
        since = websocket.query_params.get("since", "0")
        if not (since.isascii() and since.isdigit()) or len(since) > 16:
            await websocket.close(1008, "since must be a row number >= 0")
            return
        run_dir = await asyncio.to_thread(runs.resolve, run_id)
        if run_dir is None:
            await websocket.close(4404, "unknown run")
            return
        await _tail(websocket, _Tail(runs, run_dir, int(since)))

    _document_events(app)
    return app


def _document_events(app: FastAPI) -> None:
    """Put the event schema into the OpenAPI document (the endpoint parses its body itself, for 400 vs 422)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        event = EVENT.json_schema(ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(event.pop("$defs", {}))
        body = schema["paths"]["/api/analytics/events"]["post"]["requestBody"]
        body["content"]["application/json"]["schema"] = event
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class _Tail:
    """Reads the complete lines a run's ``metrics.jsonl`` gained since the last call (runs in a thread)."""

    def __init__(self, runs: RunStore, run_dir: Path, since: int) -> None:
        self.runs, self.run_dir, self.since = runs, run_dir, since
        self.pos: int | None = None  # byte offset of line number `count`
        self.count = 0
        self.inode: int | None = None

    def poll(self) -> list[dict[str, Any]]:
        """The messages for what was appended since the last call (none while the file is missing)."""
        try:
            return self._poll()
        except OSError:  # removed or replaced between two calls: the next poll sees the new state
            return []

    def _poll(self) -> list[dict[str, Any]]:
        path = self.runs.metrics_path(self.run_dir)
        if path is None:
            return []
        stat = os.stat(path)
        messages: list[dict[str, Any]] = []
        if self.pos is not None and (stat.st_ino != self.inode or stat.st_size < self.pos):
            self.pos, self.count, self.since = 0, 0, 0
            messages.append({"type": "reset", "next": 0})
        if self.pos is None:  # first read: jump to row `since` with the index
            starts, end = self.runs.index.offsets(path)
            self.pos, self.count = (starts[self.since], self.since) if self.since < len(starts) else (end, len(starts))
        self.inode = stat.st_ino
        while stat.st_size > self.pos:
            with open(path, "rb") as f:
                f.seek(self.pos)
                data = f.read(min(stat.st_size - self.pos, MAX_CHUNK_BYTES))
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) < MAX_CHUNK_BYTES:
                    break  # a line still being written
                cut = len(data)  # a line over MAX_CHUNK_BYTES: skipped in pieces, never sent
            complete = data[:cut] if data[cut - 1 : cut] == b"\n" else b""
            rows, lines = parse_rows(complete, skip=max(0, self.since - self.count))
            self.pos += cut
            self.count += lines
            if rows:
                messages.append({"type": "rows", "rows": rows, "next": self.count})
            if len(messages) >= 4:
                break  # at most ~1 MB per poll; a long backlog goes out over the next polls
        return messages


async def _tail(websocket: WebSocket, tail: _Tail) -> None:
    """Stream ``tail`` to ``websocket`` until the client leaves, breaks the protocol, or the server shuts down."""
    closed = asyncio.Event()
    lock = asyncio.Lock()
    last_sent = time.monotonic()

    async def send(message: dict[str, Any]) -> None:
        nonlocal last_sent
        async with lock:
            if not closed.is_set():
                await websocket.send_text(json.dumps(message))
                last_sent = time.monotonic()

    async def close(code: int, reason: str) -> None:
        async with lock:
            if not closed.is_set():
                closed.set()
                await websocket.close(code, reason)

    async def read_client() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                closed.set()  # also what uvicorn's shutdown looks like: it fails the connection with 1012
                return
            text = message.get("text")
            if text is None:
                await close(1003, "binary frames are not accepted")
                return
            if len(text.encode()) > MAX_FRAME_BYTES:
                await close(1009, f"frame over {MAX_FRAME_BYTES} bytes")
                return
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                await close(1007, "a frame must be a JSON object")
                return
            if data.get("type") == "ping":
                await send({"type": "pong"})

    reader = asyncio.create_task(read_client())
    try:
        while not closed.is_set() and not reader.done():
            for message in await asyncio.to_thread(tail.poll):
                await send(message)
            if time.monotonic() - last_sent >= PING_S:
                await send({"type": "ping"})
            with contextlib.suppress(asyncio.TimeoutError):  # not the builtin TimeoutError before Python 3.11
                await asyncio.wait_for(closed.wait(), POLL_S)
    except (WebSocketDisconnect, OSError, RuntimeError) as exc:  # the client went away mid-send
        log.debug("websocket closed: %s", exc)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
