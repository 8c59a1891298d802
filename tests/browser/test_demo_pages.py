"""The demo site in headless Chromium: the landing page, each game page, the model downloads and the dashboard.

Every figure is the page's own (``window.thrustDemo.stats()``, see thrust_cli/web/static/js/play.js), so what is
checked is what a visitor sees. See conftest.py for the server, the browser and when these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import GAMES, REPO, stats, wait_ready

# the speed control for the 5 s frame-rate check: fast enough that episodes of the trained policy finish in it
FPS_SPEED = {"cartpole": 2, "snake": 1, "asteroids": 8}
# trained vs random: (speed, episodes to wait for, at most seconds per policy)
COMPARE = {"cartpole": (8, 100, 10.0), "snake": (4, 200, 10.0), "asteroids": (8, 100, 15.0)}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def test_landing_page_links_to_every_game_and_the_dashboard(page: Any) -> None:
    page.goto("/")
    links = page.page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert {f"/play/{g}" for g in GAMES} | {"/dashboard"} <= set(links)
    for href in {h for h in links if h.startswith("/")}:
        assert page.page.request.get(page.url + href).status == 200, href
    page.page.click("#card-snake")
    page.page.wait_for_url("**/play/snake*")
    wait_ready(page.page)
    page.page.click("text=Dashboard")
    page.page.wait_for_url("**/dashboard*")
    assert page.errors == []


@pytest.mark.parametrize("model_game", GAMES, indirect=True)
def test_game_page_runs_256_agents_within_a_60_fps_frame_and_finishes_episodes(page: Any, model_game: str) -> None:
    """256 trained agents: one frame's stepping (the page's own timer) fits a 60 FPS frame, the page keeps drawing
    and episodes finish. The frame rate itself depends on what else the machine runs, so it is a benchmark
    (tests/browser/measure.py, docs/performance.md), not asserted here beyond "not stalled"."""
    speed = FPS_SPEED[model_game]
    page.goto(f"/play/{model_game}?agents=256&speed={speed}")
    wait_ready(page.page)
    first = stats(page.page)
    assert page.page.evaluate("window.thrustDemo.error") is None
    assert (first["agents"], first["policy"]) == (256, "trained")
    page.page.wait_for_timeout(5000)
    last = stats(page.page)
    fps = 1000 * (last["frames"] - first["frames"]) / (last["time"] - first["time"])
    assert fps >= 10, f"{fps:.1f} FPS over 5 s: the page stalled"
    frame_ms = last["usPerAgentStep"] * 256 * speed / 1000
    assert frame_ms < 1000 / 60, f"one frame's stepping takes {frame_ms:.1f} ms, over the 16.7 ms of a 60 FPS frame"
    assert last["episodes"] > first["episodes"]
    assert page.errors == []


def play_until(page: Any, path: str, episodes: int, timeout_s: float) -> dict[str, Any]:
    """Load a game page and return its stats once ``episodes`` episodes ended (or after ``timeout_s``)."""
    page.goto(path)
    wait_ready(page.page)
    try:
        page.page.wait_for_function(
            f"() => window.thrustDemo.stats().episodes >= {episodes}", timeout=timeout_s * 1000, polling=100
        )
    except Exception as exc:  # the figures so far are still compared; report them if too few
        if "Timeout" not in type(exc).__name__ + str(exc):
            raise
    return stats(page.page)


@pytest.mark.parametrize("model_game", GAMES, indirect=True)
def test_trained_policy_beats_random_on_the_page(page: Any, model_game: str) -> None:
    speed, episodes, timeout_s = COMPARE[model_game]
    base = f"/play/{model_game}?agents=256&seed=3&speed={speed}"
    random = play_until(page, base + "&policy=random", episodes, timeout_s)
    trained = play_until(page, base + "&policy=trained", episodes, timeout_s)
    assert (random["policy"], trained["policy"]) == ("random", "trained")
    assert random["episodes"] >= episodes and trained["episodes"] >= 20, (random, trained)
    assert trained["meanReturn"] > random["meanReturn"], (trained["meanReturn"], random["meanReturn"])
    assert page.errors == []


def test_controls_and_url_parameters_drive_the_simulation(page: Any, site: dict[str, Any]) -> None:
    """?agents/?seed/?policy are applied; at speed 1 every agent steps 60 times per second of wall time; pause
    stops stepping but not drawing; the agents control rebuilds the population."""
    page.goto("/play/cartpole?agents=16&seed=7&policy=random&speed=1")
    wait_ready(page.page)
    s0 = stats(page.page)
    assert (s0["agents"], s0["seed"], s0["policy"], s0["speed"]) == (16, 7, "random", 1)
    page.page.wait_for_timeout(2000)
    s1 = stats(page.page)
    steps_per_s = 1000 * (s1["agentSteps"] - s0["agentSteps"]) / (s1["time"] - s0["time"]) / 16
    assert 60 * 0.85 < steps_per_s < 60 * 1.15, steps_per_s
    page.page.click("#pause")
    page.page.wait_for_timeout(200)
    p0 = stats(page.page)
    page.page.wait_for_timeout(500)
    p1 = stats(page.page)
    assert p1["paused"] and p1["agentSteps"] == p0["agentSteps"] and p1["frames"] > p0["frames"]
    page.page.click("#pause")
    page.page.select_option("#agents", "1")
    page.page.wait_for_timeout(300)
    s2 = stats(page.page)
    assert s2["agents"] == 1 and not s2["paused"] and s2["agentSteps"] > 0
    assert "agents=1" in page.page.url
    if "cartpole" in site["games"]:
        page.page.select_option("#policy", "trained")
        assert stats(page.page)["policy"] == "trained"
    assert page.errors == []


@pytest.mark.parametrize("model_game", GAMES, indirect=True)
def test_model_downloads_load_in_thrust_and_onnxruntime(
    page: Any, model_game: str, site: dict[str, Any], tmp_path: Path
) -> None:
    """The page's download links give the store's files; thrust's safetensors loader rebuilds the policy and
    onnxruntime runs the ONNX file to the same logits."""
    onnxruntime = pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from thrust_cli.commands.safetensors_format import load_safetensors_policy
    from thrust_cli.learn.policies import MLPPolicy

    page.goto(f"/play/{model_game}?agents=1")
    wait_ready(page.page)
    for fmt in ("safetensors", "onnx"):
        with page.page.expect_download() as info:
            page.page.click(f"#download-{fmt}")
        info.value.save_as(tmp_path / f"policy.{fmt}")
        assert (tmp_path / f"policy.{fmt}").read_bytes() == (site["models"] / model_game / f"policy.{fmt}").read_bytes()
    policy = load_safetensors_policy(tmp_path / "policy.safetensors")
    session = onnxruntime.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    (obs_input,) = [i for i in session.get_inputs() if i.name == "observations"]
    shape = [7 if not isinstance(d, int) else d for d in obs_input.shape]
    rng = np.random.default_rng(0)
    if obs_input.type == "tensor(int8)":
        obs = rng.integers(0, 5, size=shape).astype(np.int8)  # snake's cell codes
    else:
        obs = rng.uniform(-1, 1, size=shape).astype(np.float32)
    feeds = {obs_input.name: obs}
    for extra in session.get_inputs():  # an LSTM's state inputs start at zero
        if extra.name != obs_input.name:
            feeds[extra.name] = np.zeros([7 if not isinstance(d, int) else d for d in extra.shape], np.float32)
    logits = session.run(["logits"], feeds)[0]
    assert logits.shape == (7, policy.actor_head.out_features) and np.isfinite(logits).all()
    if isinstance(policy, MLPPolicy):
        with torch.no_grad():
            expected = policy(torch.from_numpy(obs))[0].numpy()
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert page.errors == []


def test_safetensors_reader_parses_thrust_files_and_rejects_others(page: Any, site: dict[str, Any]) -> None:
    """static/js/safetensors.js: the tensors and metadata of a real export, and a clear message for garbage."""
    if not site["games"]:
        pytest.skip("no demo model to parse")
    safetensors = pytest.importorskip("safetensors.numpy")
    game = site["games"][0]
    page.goto(f"/play/{game}?agents=1")
    wait_ready(page.page)
    result = page.page.evaluate(
        """async (url) => {
          const { parseSafetensors } = await import("/static/js/safetensors.js");
          const attempt = (buf) => { try { parseSafetensors(buf); return null; } catch (e) { return e.message; } };
          const file = (header, data) => {
            const h = new TextEncoder().encode(JSON.stringify(header));
            const b = new Uint8Array(8 + h.length + data.length);
            new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
            b.set(h, 8);
            b.set(data, 8 + h.length);
            return b.buffer;
          };
          const real = parseSafetensors(await (await fetch(url)).arrayBuffer());
          const floats = new Uint8Array(new Float32Array([1.5, -2]).buffer);
          const tiny = parseSafetensors(file({ __metadata__: { a: '{"b": [1, 2]}', c: "plain" },
            w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, floats));
          return {
            sums: Object.fromEntries(
              [...real.tensors].map(([k, t]) => [k, [t.shape, t.data.reduce((a, b) => a + b, 0)]])),
            architecture: real.metadata.architecture,
            tiny: [tiny.metadata, Array.from(tiny.tensors.get("w").data)],
            short: attempt(new Uint8Array(4).buffer),
            length: attempt(new Uint8Array(64).fill(255).buffer),
            json: attempt(file({}, new Uint8Array(0)).slice(0, 9)),
            bf16: attempt(file({ w: { dtype: "BF16", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4))),
            offsets: attempt(file({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4))),
          };
        }""",
        f"/api/models/demo-{game}/policy.safetensors",
    )
    tensors = safetensors.load_file(str(site["models"] / game / "policy.safetensors"))
    assert set(result["sums"]) == set(tensors)
    for name, (shape, total) in result["sums"].items():
        assert shape == list(tensors[name].shape)
        assert total == pytest.approx(float(tensors[name].astype(np.float64).sum()), rel=1e-4, abs=1e-4)
    assert result["architecture"] in ("mlp", "lstm")
    assert result["tiny"] == [{"a": {"b": [1, 2]}, "c": "plain"}, [1.5, -2]]
    assert result["short"] == "not a safetensors file: only 4 bytes"
    assert result["length"].startswith("not a safetensors file: header length")
    assert result["json"].startswith("not a safetensors file: header length")
    assert result["bf16"] == "tensor 'w' has dtype BF16; only F32 is supported"
    assert "do not hold 2 float32 values" in result["offsets"]
    assert page.errors == []


def test_game_session_and_page_views_reach_the_analytics(page: Any, site: dict[str, Any]) -> None:
    before = get_json(site["url"] + "/api/analytics")
    page.goto("/play/cartpole?agents=16&speed=8&policy=random")
    wait_ready(page.page)
    page.page.wait_for_timeout(2000)
    page.goto("/")  # pagehide sends the session with navigator.sendBeacon
    deadline = time.monotonic() + 10
    while True:
        after = get_json(site["url"] + "/api/analytics")
        sessions = after["game_sessions"]["by_game"].get("cartpole", {})
        old = before["game_sessions"]["by_game"].get("cartpole", {})
        if sessions.get("sessions", 0) > old.get("sessions", 0) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sessions.get("sessions", 0) == old.get("sessions", 0) + 1
    assert sessions["seconds_total"] - old.get("seconds_total", 0) >= 1.5
    assert sessions["episodes_total"] - old.get("episodes_total", 0) > 0
    views = after["page_views"]["by_page"]
    assert views.get("/play/cartpole", 0) > before["page_views"]["by_page"].get("/play/cartpole", 0)
    assert page.errors == []


def test_dashboard_shows_rows_of_a_run_while_it_trains(page: Any, site: dict[str, Any]) -> None:
    """A `thrust train` started in the served runs dir's parent appears on the dashboard (newest run selected by
    default) and its newest global_step keeps changing as rows are written."""
    page.goto("/dashboard")
    page.page.wait_for_selector("#runs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "thrust_cli", "train", "env=cartpole", "train.total_timesteps=2000000",
           "logger=none", "train.progress=none"]  # fmt: skip
    train = subprocess.Popen(cmd, cwd=site["work"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page.page.wait_for_function(
            "() => document.querySelector('#latest-step').dataset.step", timeout=60_000, polling=100
        )
        first = int(page.page.eval_on_selector("#latest-step", "e => e.dataset.step"))
        page.page.wait_for_function(
            f"() => Number(document.querySelector('#latest-step').dataset.step) > {first}", timeout=30_000, polling=100
        )
        assert train.poll() is None, "the run ended before a second row arrived"
        (run_dir,) = [p.parent for p in site["runs"].glob("*/*/metrics.jsonl")]
        assert page.page.text_content("#run-title") == run_dir.relative_to(site["runs"]).as_posix()
        assert page.page.eval_on_selector_all("#runs tbody tr", "rows => rows.length") >= 1
        assert page.page.eval_on_selector_all("#rows tbody tr", "rows => rows.length") >= 2
    finally:
        train.terminate()
        out, _ = train.communicate(timeout=30)
    assert page.errors == [], out.decode(errors="replace")[-2000:]
