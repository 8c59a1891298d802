"""`thrust serve`: every endpoint of thrust_cli.web.app, its input validation, analytics under concurrent writers,
the WebSocket live tail (also of a real `thrust train`), and the CLI in a subprocess.

One tiny CartPole run (debug=fast) is trained and exported once per session and reused by every test.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

import httpx
import uvicorn

with warnings.catch_warnings():  # starlette 1.x: "Using `httpx` with `starlette.testclient` is deprecated"
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from thrust_cli.commands.serve import WEB_EXTRA, ServeError, bind
from thrust_cli.commands.serve import serve as serve_fn
from thrust_cli.web import GAMES
from thrust_cli.web import app as web_app
from thrust_cli.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
RUN_ID = "2026-01-02/03-04-05"
RUN_MODEL = "run-2026-01-02_03-04-05"


def _env() -> dict[str, str]:
    """Subprocess environment that imports this checkout's thrust_cli whatever is installed."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1"}


def _thrust(*args: str) -> list[str]:
    return [sys.executable, "-m", "thrust_cli.cli", *args]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished, exported CartPole run under ``runs/`` and a demo models dir built from its export."""
    from thrust_cli.commands.export import export_safetensors

    base = tmp_path_factory.mktemp("serve")
    runs = base / "runs"
    run_dir = runs / RUN_ID
    done = subprocess.run(
        _thrust("train", "env=cartpole", "debug=fast", "logger=none", f"hydra.run.dir={run_dir}"),
        cwd=base,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    export_safetensors(run_dir)
    models = base / "models"
    (models / "cartpole").mkdir(parents=True)
    shutil.copy(run_dir / "export" / "policy.safetensors", models / "cartpole" / "policy.safetensors")
    (models / "cartpole" / "policy.onnx").write_bytes(b"not really onnx")
    info = {"id": "demo-cartpole", "game": "cartpole", "architecture": "mlp", "title": "CartPole (tiny)"}
    info |= {"eval": {"mean_return": 25.0, "episodes": 10}, "random": {"mean_return": 22.0}}
    (models / "cartpole" / "model.json").write_text(json.dumps(info))
    return {"base": base, "runs": runs, "run": run_dir, "models": models}


@pytest.fixture
def client(trained: dict[str, Path], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(trained["runs"], tmp_path / "a.sqlite3", trained["models"])) as c:
        yield c


class Live:
    """The app under a real uvicorn in a thread (what `thrust serve` runs), on a free port."""

    def __init__(self, runs: Path, db: Path, models: Path | None = None) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(runs, db, models), log_level="warning", lifespan="off", ws_max_size=64 * 1024
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def ws(self, path: str) -> ClientConnection:
        return ws_connect(f"ws://127.0.0.1:{self.port}{path}", open_timeout=5, close_timeout=2)

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """A request with ``path`` sent byte for byte (no client-side normalisation of ``..`` or ``%2e``)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            if body is not None and "Content-Length" not in (headers or {}):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> float:
        """Shut down; return how long it took."""
        start = time.monotonic()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "uvicorn did not shut down"
        return time.monotonic() - start


@pytest.fixture
def live(trained: dict[str, Path], tmp_path: Path) -> Iterator[Live]:
    server = Live(trained["runs"], tmp_path / "live.sqlite3", trained["models"])
    yield server
    server.stop()


def _fake_run(root: Path, run_id: str, rows: int = 0, partial: str = "") -> Path:
    run = root / run_id
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("env:\n  name: snake\npolicy:\n  name: lstm\n")
    if rows or partial:
        lines = "".join(json.dumps({"global_step": 100 * (i + 1), "sps": 1.0}) + "\n" for i in range(rows))
        (run / "metrics.jsonl").write_text(lines + partial)
    return run


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)
        f.flush()


# health, pages, wasm


def test_health_names_the_version_and_games(client: TestClient) -> None:
    from thrust_cli import __version__

    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__, "games": list(GAMES)}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/openapi.json").json()["paths"]["/api/analytics/events"]["post"]["requestBody"]


def test_pages_serve_the_static_html_and_404_as_json_when_missing(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    static = tmp_path / "static"
    static.mkdir()
    for name in ("index.html", "play.html", "dashboard.html"):
        (static / name).write_text(f"<title>{name}</title>")
    monkeypatch.setattr(web_app, "STATIC_DIR", static)
    for path, name in (("/", "index"), ("/play/snake", "play"), ("/dashboard", "dashboard")):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f"<title>{name}.html</title>" == r.text
    r = client.get("/play/doom")
    assert r.status_code == 404 and "no game 'doom'" in r.json()["detail"]
    (static / "dashboard.html").unlink()
    r = client.get("/dashboard")
    assert r.status_code == 404 and r.json() == {"detail": "page not built: dashboard.html"}


def test_static_files_are_served_from_inside_the_static_dir_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "js" / "sim.js").write_text("export const x = 1;")
    (tmp_path / "secret.txt").write_text("secret")
    (static / "js" / "link.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setattr(web_app, "STATIC_DIR", static)
    with TestClient(create_app(tmp_path / "runs", tmp_path / "db.sqlite3", tmp_path / "models")) as client:
        r = client.get("/static/js/sim.js")
        assert r.status_code == 200 and r.text == "export const x = 1;"
        assert "javascript" in r.headers["content-type"]
        for path in ("/static/js/link.txt", "/static/js/missing.js", "/static/../secret.txt"):
            r = client.get(path)
            assert r.status_code == 404 and r.json() == {"detail": "Not Found"}, path
        assert client.get("/api/runs").json() == {"runs": []} and client.get("/api/models").json() == {"models": []}


def test_wasm_route_checks_the_game_before_building(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    built: list[str] = []
    module = tmp_path / "cartpole.wasm"
    module.write_bytes(b"\0asm\1\0\0\0")

    def wasm_path(game: str) -> Path:
        built.append(game)
        if game == "snake":
            raise RuntimeError("zig cc failed: snake_demo.c:1: error\nsecond line")
        return module

    monkeypatch.setitem(sys.modules, "thrust_cli.web.wasm_build", types.SimpleNamespace(wasm_path=wasm_path))
    r = client.get("/wasm/cartpole.wasm")
    assert r.status_code == 200 and r.content == module.read_bytes()
    assert r.headers["content-type"] == "application/wasm"
    assert client.get("/wasm/cartpole.wasm", headers={"if-none-match": r.headers["etag"]}).status_code == 304
    assert client.get("/wasm/doom.wasm").status_code == 404
    assert client.get("/wasm/cartpole.js").status_code == 404
    r = client.get("/wasm/snake.wasm")
    assert r.status_code == 503 and r.json() == {
        "detail": "the snake module cannot be built: zig cc failed: snake_demo.c:1: error"
    }
    assert built == ["cartpole", "cartpole", "snake"]


# runs and metrics


def test_runs_list_the_trained_run_with_its_config_and_summary(client: TestClient, trained: dict[str, Path]) -> None:
    runs = client.get("/api/runs").json()["runs"]
    entry = next(r for r in runs if r["id"] == RUN_ID)
    assert entry["env"] == "cartpole" and entry["policy"] == "mlp" and entry["status"] == "completed"
    assert entry["global_step"] == 4096 and entry["rows"] == 4 and entry["updated"] > 0
    detail = client.get(f"/api/runs/{RUN_ID}").json()
    assert {k: detail[k] for k in entry} == entry
    assert detail["config"]["env"]["name"] == "cartpole" and detail["config"]["train"]["total_timesteps"] == 4096
    assert detail["summary"]["status"] == "completed"


def test_metrics_pages_with_since_and_limit(client: TestClient) -> None:
    first = client.get(f"/api/runs/{RUN_ID}/metrics", params={"since": 0, "limit": 3}).json()
    assert [r["global_step"] for r in first["rows"]] == [1024, 2048, 3072]
    assert first["next"] == 3 and first["total"] == 4
    rest = client.get(f"/api/runs/{RUN_ID}/metrics", params={"since": first["next"]}).json()
    assert [r["global_step"] for r in rest["rows"]] == [4096] and rest["next"] == 4
    assert client.get(f"/api/runs/{RUN_ID}/metrics?since=99").json() == {"rows": [], "next": 99, "total": 4}
    for bad in ("since=-1", "limit=0", "limit=10001", "since=abc"):
        r = client.get(f"/api/runs/{RUN_ID}/metrics?{bad}")
        assert r.status_code == 422 and "\n" not in r.json()["detail"], bad


def test_metrics_count_only_complete_lines(client: TestClient, trained: dict[str, Path]) -> None:
    run_id = "2026-01-03/partial"
    run = _fake_run(trained["runs"], run_id, rows=2, partial='{"global_step": 3')
    try:
        body = client.get(f"/api/runs/{run_id}/metrics").json()
        assert [r["global_step"] for r in body["rows"]] == [100, 200] and body["total"] == 2
        _append(run / "metrics.jsonl", '00}\nnot json\n{"global_step": 400}\n')
        body = client.get(f"/api/runs/{run_id}/metrics?since=2").json()
        assert [r["global_step"] for r in body["rows"]] == [300, 400] and body["next"] == 5 and body["total"] == 5
        entry = client.get(f"/api/runs/{run_id}").json()
        assert entry["env"] == "snake" and entry["status"] == "running" and entry["global_step"] == 400
    finally:
        shutil.rmtree(run)


# models


def test_models_list_demo_and_run_exports(client: TestClient, trained: dict[str, Path]) -> None:
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    demo, run = models["demo-cartpole"], models[RUN_MODEL]
    size = (trained["models"] / "cartpole" / "policy.safetensors").stat().st_size
    assert demo["source"] == "demo" and demo["game"] == "cartpole" and demo["architecture"] == "mlp"
    assert demo["bytes"] == {"safetensors": size, "onnx": len(b"not really onnx")}
    assert demo["urls"]["onnx"] == "/api/models/demo-cartpole/policy.onnx"
    assert demo["eval"] == {"mean_return": 25.0, "episodes": 10} and demo["title"] == "CartPole (tiny)"
    assert run["source"] == "run" and run["run_id"] == RUN_ID and run["game"] == "cartpole"
    assert run["bytes"]["onnx"] is None and run["urls"]["onnx"] is None and run["eval"] is None
    meta = client.get(f"/api/models/{RUN_MODEL}").json()["metadata"]
    assert meta["format"] == "thrust-policy" and meta["architecture"] == "mlp"
    assert meta["action_space"] == {"type": "Discrete", "n": 2}


def test_downloaded_safetensors_loads_and_is_counted(client: TestClient, tmp_path: Path) -> None:
    import torch

    from thrust_cli.commands.safetensors_format import load_safetensors_policy

    r = client.get("/api/models/demo-cartpole/policy.safetensors")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    path = tmp_path / "downloaded.safetensors"
    path.write_bytes(r.content)
    policy: Any = load_safetensors_policy(path)
    assert isinstance(policy, torch.nn.Module)
    assert client.get("/api/models/demo-cartpole/policy.onnx").content == b"not really onnx"
    assert client.get(f"/api/models/{RUN_MODEL}/policy.onnx").status_code == 404  # not exported
    assert client.get("/api/models/demo-cartpole/policy.pt").status_code == 404
    downloads = client.get("/api/analytics").json()["downloads"]
    assert downloads["total"] == 2 and downloads["by_model"] == {"demo-cartpole": 2}
    assert downloads["by_format"] == {"onnx": 1, "safetensors": 1}


def test_the_pages_weights_route_is_not_a_download_and_revalidates_with_an_etag(
    client: TestClient, trained: dict[str, Path]
) -> None:
    demo = {m["id"]: m for m in client.get("/api/models").json()["models"]}["demo-cartpole"]
    assert demo["urls"]["weights"] == "/api/models/demo-cartpole/weights.safetensors"
    r = client.get(demo["urls"]["weights"])
    assert r.status_code == 200 and "content-disposition" not in r.headers
    assert r.content == (trained["models"] / "cartpole" / "policy.safetensors").read_bytes()
    assert r.headers["cache-control"] == "no-cache"
    again = client.get(demo["urls"]["weights"], headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get(demo["urls"]["weights"], headers={"if-none-match": '"other"'}).status_code == 200
    assert client.get("/api/models/demo-doom/weights.safetensors").status_code == 404
    assert client.get("/api/analytics").json()["downloads"]["total"] == 0


def test_a_visits_reports_count_as_one_game_session(client: TestClient) -> None:
    for seconds in (30, 30, 4):  # reports every 30 s and one on leaving, all with the visit's id
        r = client.post("/api/analytics/events", json={**SESSION, "seconds": seconds, "session": "a1b2c3d4e5f6"})
        assert r.status_code == 201, r.text
    assert client.post("/api/analytics/events", json=SESSION).status_code == 201  # no id: a session of its own
    assert client.post("/api/analytics/events", json={**SESSION, "session": "x"}).status_code == 422
    games = client.get("/api/analytics").json()["game_sessions"]
    assert games["total"] == 2
    assert games["by_game"]["snake"]["sessions"] == 2 and games["by_game"]["snake"]["seconds_total"] == 65


# bad input

TRAVERSALS = [
    "/api/runs/..%2f..%2fetc%2fpasswd",
    "/api/runs/%2e%2e/%2e%2e/etc/passwd",
    "/api/runs/%2e%2e%2f%2e%2e%2fetc",
    "/api/runs/2026-01-02/..%2f..%2f..",
    "/api/runs/..",
    "/api/runs/.",
    "/api/runs/",
    "/api/runs//etc/passwd",
    "/api/runs/%2fetc%2fpasswd/metrics",
    "/api/runs/2026-01-02%5c03-04-05",
    "/api/runs/2026-01-02/03-04-05%00",
    "/api/runs/2026-01-02/.hydra",
    "/api/runs/2026-01-02/03-04-05/checkpoints",
    "/api/runs/a/b/c/d/e/metrics",
    "/api/models/..%2fcartpole",
    "/api/models/%2e%2e",
    "/api/models/Demo-cartpole",
    "/api/models/demo-cartpole%2f..%2f..%2fcartpole/policy.safetensors",
    "/api/models/run-..%2f..%2f/policy.safetensors",
    "/api/models/" + "a" * 201,
    "/static/..%2f..%2fapp.py",
    "/static/%2e%2e/%2e%2e/app.py",
    "/static/..%5capp.py",
    "/wasm/..%2fcartpole.wasm",
    "/play/..%2f..%2fapp.py",
]


def test_traversal_and_bad_ids_are_json_404s(live: Live) -> None:
    for path in TRAVERSALS:
        status, body = live.raw("GET", path)
        assert status in (400, 404), (path, status)
        assert "detail" in json.loads(body), path
        assert b"root:" not in body and b"create_app" not in body, path


def test_symlinks_out_of_the_runs_dir_are_refused(client: TestClient, trained: dict[str, Path], tmp_path: Path) -> None:
    outside = _fake_run(tmp_path, "secret", rows=3)
    runs = trained["runs"]
    inner = _fake_run(runs, "2026-01-04/linked")
    (runs / "escape").symlink_to(outside, target_is_directory=True)
    (inner / "metrics.jsonl").symlink_to(outside / "metrics.jsonl")
    try:
        assert client.get("/api/runs/escape").status_code == 404
        assert client.get("/api/runs/escape/metrics").status_code == 404
        assert all(r["id"] != "escape" for r in client.get("/api/runs").json()["runs"])
        assert client.get("/api/runs/2026-01-04/linked/metrics").json() == {"rows": [], "next": 0, "total": 0}
    finally:
        (runs / "escape").unlink()
        shutil.rmtree(inner.parent)


def test_only_analytics_is_writable(client: TestClient) -> None:
    for method, path in (
        ("PUT", "/api/analytics/events"),
        ("DELETE", "/api/analytics/events"),
        ("GET", "/api/analytics/events"),
        ("POST", "/api/analytics"),
        ("POST", "/api/runs"),
        ("DELETE", f"/api/runs/{RUN_ID}"),
        ("PUT", "/api/models/demo-cartpole"),
        ("POST", "/api/models/demo-cartpole/policy.safetensors"),
    ):
        r = client.request(method, path, content=b"{}")
        assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}, (method, path)


def test_analytics_summary_counts_every_event(client: TestClient) -> None:
    events = [
        {"type": "page_view", "page": "/"},
        {"type": "page_view", "page": "/play/snake"},
        {"type": "page_view", "page": "/play/snake"},
        {"type": "game_session", "game": "snake", "agents": 256, "seconds": 10.0, "episodes": 40, "mean_fps": 60.0,
         "policy": "trained", "mean_return": 1.5, "model": "demo-snake"},
        {"type": "game_session", "game": "snake", "agents": 64, "seconds": 2.5, "episodes": 2, "mean_fps": 58.0,
         "policy": "random", "mean_return": None},
        {"type": "game_session", "game": "cartpole", "agents": 1, "seconds": 0, "episodes": 0, "mean_fps": 0,
         "policy": "random"},
        {"type": "download", "model": "demo-snake", "format": "onnx"},
    ]  # fmt: skip
    for event in events:
        r = client.post("/api/analytics/events", json=event)
        assert r.status_code == 201 and r.json() == {"ok": True}, r.text
    r = client.post("/api/analytics/events", content=json.dumps(events[0]), headers={"content-type": "text/plain"})
    assert r.status_code == 201  # sendBeacon with a string body
    summary = client.get("/api/analytics").json()
    assert summary["page_views"] == {"total": 4, "by_page": {"/play/snake": 2, "/": 2}}
    games = summary["game_sessions"]
    assert games["total"] == 3
    assert games["by_game"]["snake"] == {
        "sessions": 2, "agents_mean": 160.0, "seconds_total": 12.5, "episodes_total": 42, "mean_fps": 59.0
    }  # fmt: skip
    assert games["by_game"]["cartpole"]["sessions"] == 1
    assert summary["downloads"] == {"total": 0, "by_model": {}, "by_format": {}, "client_reported": 1}


SESSION = {"type": "game_session", "game": "snake", "agents": 1, "seconds": 1, "episodes": 1, "mean_fps": 60,
           "policy": "random"}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"agents": 0},
        {"agents": 65537},
        {"agents": 1.5},
        {"seconds": -1},
        {"seconds": 2e6},
        {"mean_fps": 1e4},
        {"game": "doom"},
        {"policy": "mine"},
        {"mean_return": 1e10},
        {"model": "../x"},
        {"extra": 1},
        {"type": "sql"},
        {"type": None},
    ],
    ids=lambda c: json.dumps(c),
)
def test_events_out_of_bounds_are_422(client: TestClient, change: dict[str, Any]) -> None:
    r = client.post("/api/analytics/events", json=SESSION | change)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str) and "\n" not in r.json()["detail"]


def test_other_bad_bodies_are_400_or_422(client: TestClient) -> None:
    for body, status in (
        (b"{not json", 400),
        (b"", 400),
        (b"\xff\xfe", 400),
        (b'{"type": "game_session", "game": "snake", "agents": NaN}', 422),
        (b"[1, 2]", 422),
        (json.dumps({"type": "page_view", "page": "/" + "a" * 300}).encode(), 422),
        (json.dumps({"type": "page_view", "page": "no-slash"}).encode(), 422),
        (json.dumps({"type": "page_view", "page": "/<script>"}).encode(), 422),
    ):
        r = client.post("/api/analytics/events", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (body, r.text)
        assert "\n" not in r.json()["detail"]
    assert client.get("/api/analytics").json()["page_views"]["total"] == 0


def test_bodies_over_16kb_are_413_whatever_content_length_says(live: Live) -> None:
    big = json.dumps({"type": "page_view", "page": "/", "pad": "x" * 17_000}).encode()
    status, body = live.raw("POST", "/api/analytics/events", big)
    assert status == 413 and "16384" in json.loads(body)["detail"]

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length at all
        for _ in range(20):
            yield b" " * 1024

    r = httpx.post(f"{live.url}/api/analytics/events", content=chunks(), timeout=10)
    assert r.status_code == 413 and r.json()["detail"].startswith("request body over")
    status, _ = live.raw("POST", "/api/analytics/events", b"{}", {"Content-Length": "-5"})
    assert status in (400, 413)
    r = httpx.post(f"{live.url}/api/analytics/events", json={"type": "page_view", "page": "/ok"}, timeout=10)
    assert r.status_code == 201  # the server kept serving
    assert httpx.get(f"{live.url}/api/analytics").json()["page_views"]["total"] == 1


def test_eight_concurrent_writers_lose_nothing(live: Live) -> None:
    errors: list[str] = []

    def writer(i: int) -> None:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            for k in range(50):
                event = {"type": "page_view", "page": f"/w{i}"} if k % 2 else SESSION | {"agents": i + 1}
                r = http.post("/api/analytics/events", json=event)
                if r.status_code != 201:
                    errors.append(r.text)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    summary = httpx.get(f"{live.url}/api/analytics").json()
    assert summary["page_views"]["total"] == 200
    assert summary["page_views"]["by_page"] == {f"/w{i}": 25 for i in range(8)}
    snake = summary["game_sessions"]["by_game"]["snake"]
    assert snake["sessions"] == 200 and snake["agents_mean"] == pytest.approx(4.5)


# WebSocket


def _recv(ws: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=timeout))
    assert isinstance(message, dict)
    return message


def _close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(5):
            ws.recv(timeout=3)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_websocket_sends_rows_since_then_appended_rows_within_a_second(live: Live, trained: dict[str, Path]) -> None:
    run_id = "2026-01-05/tail"
    run = _fake_run(trained["runs"], run_id, rows=3)
    try:
        with live.ws(f"/ws/runs/{run_id}?since=1") as ws:
            first = _recv(ws)
            rows = [{"global_step": 200, "sps": 1.0}, {"global_step": 300, "sps": 1.0}]
            assert first == {"type": "rows", "rows": rows, "next": 3}
            _append(run / "metrics.jsonl", '{"global_step": 4')  # half a line: not sent
            time.sleep(0.5)
            start = time.monotonic()
            _append(run / "metrics.jsonl", "00}\n")
            message = _recv(ws, timeout=2)
            assert time.monotonic() - start <= 1.0
            assert message == {"type": "rows", "rows": [{"global_step": 400}], "next": 4}
            ws.send(json.dumps({"type": "ping"}))
            assert _recv(ws) == {"type": "pong"}
            (run / "metrics.jsonl").write_text('{"global_step": 1}\n')  # rewritten, as a resume does
            assert _recv(ws) == {"type": "reset", "next": 0}
            assert _recv(ws) == {"type": "rows", "rows": [{"global_step": 1}], "next": 1}
    finally:
        shutil.rmtree(run)


def test_websocket_waits_for_metrics_that_do_not_exist_yet(live: Live, trained: dict[str, Path]) -> None:
    run_id = "2026-01-06/new"
    run = _fake_run(trained["runs"], run_id)
    try:
        with live.ws(f"/ws/runs/{run_id}") as ws:
            time.sleep(0.4)
            _append(run / "metrics.jsonl", '{"global_step": 7}\n')
            assert _recv(ws) == {"type": "rows", "rows": [{"global_step": 7}], "next": 1}
    finally:
        shutil.rmtree(run)


def test_websocket_since_past_the_end_sends_only_rows_from_since(live: Live, trained: dict[str, Path]) -> None:
    run_id = "2026-01-06/ahead"
    run = _fake_run(trained["runs"], run_id, rows=3)
    try:
        with live.ws(f"/ws/runs/{run_id}?since=5") as ws:
            time.sleep(0.3)
            _append(run / "metrics.jsonl", 'not json\n{"global_step": 5}\n{"global_step": 6}\n')
            assert _recv(ws) == {"type": "rows", "rows": [{"global_step": 6}], "next": 6}
    finally:
        shutil.rmtree(run)


@pytest.mark.parametrize(
    ("frame", "code"),
    [("not json", 1007), ("[1]", 1007), ("x" * 5000, 1009), (b"\x01\x02", 1003), ("y" * 100_000, 1009)],
    ids=["text", "array", "over-4KB", "binary", "over-ws_max_size"],
)
def test_websocket_bad_frames_close_and_the_server_keeps_serving(live: Live, frame: str | bytes, code: int) -> None:
    with live.ws(f"/ws/runs/{RUN_ID}?since=4") as ws:
        ws.send(frame)
        assert _close_code(ws) == code
    with live.ws(f"/ws/runs/{RUN_ID}?since=3") as ws:
        assert _recv(ws)["rows"][0]["global_step"] == 4096


def test_websocket_unknown_run_and_bad_since_close_with_codes(live: Live) -> None:
    for path, code in (
        ("/ws/runs/2099-01-01/00-00-00", 4404),
        ("/ws/runs/..%2f..%2fetc", 4404),
        (f"/ws/runs/{RUN_ID}?since=-1", 1008),
        (f"/ws/runs/{RUN_ID}?since=abc", 1008),
    ):
        with live.ws(path) as ws:
            assert _close_code(ws) == code, path


def test_shutdown_is_not_blocked_by_an_open_websocket(trained: dict[str, Path], tmp_path: Path) -> None:
    server = Live(trained["runs"], tmp_path / "db.sqlite3")
    with server.ws(f"/ws/runs/{RUN_ID}") as ws:
        assert _recv(ws)["type"] == "rows"
        assert server.stop() < 3.0
        assert _close_code(ws) == 1012  # "service restart"


def test_a_live_thrust_train_streams_rows_while_it_runs(live: Live, trained: dict[str, Path]) -> None:
    run_id = "2026-01-07/live"
    run_dir = trained["runs"] / run_id
    proc = subprocess.Popen(
        _thrust("train", "env=cartpole", "debug=fast", "logger=none", "train.total_timesteps=50000000",
                "train.checkpoint_interval=100000000", f"hydra.run.dir={run_dir}"),
        cwd=trained["base"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / ".hydra" / "config.yaml").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        steps: list[int] = []
        with live.ws(f"/ws/runs/{run_id}") as ws:
            while len(set(steps)) < 20:
                message = _recv(ws, timeout=30)
                if message["type"] == "rows":
                    steps += [row["global_step"] for row in message["rows"]]
                    assert proc.poll() is None, "training ended before the rows arrived"
        assert steps == sorted(steps) and steps[0] == 1024
    finally:
        proc.terminate()
        proc.wait(30)


# the CLI


def test_thrust_serve_cli_starts_and_a_second_one_on_its_port_fails_in_one_line(tmp_path: Path) -> None:
    runs = tmp_path / "no-runs-yet"
    cmd = ["serve", "--port", "0", "--runs", str(runs), "--db", str(tmp_path / "cli.sqlite3")]
    proc = subprocess.Popen(_thrust(*cmd), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:(\d+)/)", line)
        assert match, line + proc.stderr.read() if proc.stderr else line
        assert httpx.get(match.group(1) + "api/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(match.group(1) + "api/runs", timeout=10).json() == {"runs": []}
        second = subprocess.run(
            _thrust("serve", "--port", match.group(2), "--db", str(tmp_path / "b.sqlite3")),
            env=_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        assert second.stderr.strip().count("\n") == 0 and "is in use" in second.stderr, second.stderr
        proc.send_signal(2)  # Ctrl-C
        assert proc.wait(15) == 130
    finally:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "does not exist yet" in err and "Traceback" not in err and err.strip().endswith("stopped")


def test_thrust_help_imports_no_web_framework() -> None:
    code = "import sys, thrust_cli.cli; print([m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_serve_without_the_web_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` raises ImportError
    with pytest.raises(ServeError, match=re.escape(WEB_EXTRA)):
        serve_fn("127.0.0.1", 0, tmp_path, tmp_path / "db")


def test_serve_rejects_a_runs_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ServeError, match="is not a directory"):
        serve_fn("127.0.0.1", 0, tmp_path / "file", tmp_path / "db")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(ServeError, match="is in use"):
            bind("127.0.0.1", busy.getsockname()[1])
    finally:
        busy.close()
