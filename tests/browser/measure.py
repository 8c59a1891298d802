"""Measure the demo pages in headless Chromium on localhost and print a table.

    python tests/browser/measure.py

Per game:
  * load: milliseconds from navigation start to the first frame drawn (``thrustDemo.stats().firstFrameMs``),
    with the wasm module and the weights in the browser cache (median of 5 reloads; target < 100 ms);
  * bytes: the wasm module plus the policy's safetensors, raw and gzipped (target < 200 KB);
  * µs per agent step (act + step, the page's own ``thrustDemo.bench``) at 1, 256 and 4096 agents, for the
    trained policy (env + forward pass) and for uniform random actions (env alone), and the page's FPS over 3 s (trained
    policy, speed 1).

Uses thrust_cli/web/models (or $THRUST_WEB_TEST_MODELS; see harness.py); a game without a model is measured with
random actions only.
"""

from __future__ import annotations

import gzip
import statistics
import tempfile
from pathlib import Path
from typing import Any

from harness import GAMES, demo_models_dir, games_with_models, launch, serve, stats, wait_ready

AGENTS = (1, 256, 4096)
RELOADS = 5
BENCH_MS = 300.0


def bench(page: Any) -> float:
    """Median µs per agent step of three timed runs of about BENCH_MS each."""
    probe = page.evaluate("() => window.thrustDemo.bench(5)")
    steps = max(5, int(BENCH_MS / max(probe["ms"] / 5, 1e-3)))
    runs = [page.evaluate(f"() => window.thrustDemo.bench({steps})")["usPerAgentStep"] for _ in range(3)]
    return statistics.median(runs)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from thrust_cli.web import wasm_build

    models = demo_models_dir()
    with_model = games_with_models(models)
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp), Path(tmp) / "a.sqlite3", models) as url,
        sync_playwright() as p,
    ):
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        print(f"models: {models}")
        print(f"{'game':<10} {'load ms':>8} {'wasm B':>8} {'weights B':>10} {'total KB':>9} {'gzip KB':>8}")
        for game in GAMES:
            path = f"/play/{game}?agents=1"
            page.goto(url + path)  # fills the cache
            wait_ready(page)
            loads = []
            for _ in range(RELOADS):
                page.goto(url + path)
                wait_ready(page)
                loads.append(stats(page)["firstFrameMs"])
            wasm = wasm_build.wasm_path(game).read_bytes()
            weights = (models / game / "policy.safetensors").read_bytes() if game in with_model else b""
            total = len(wasm) + len(weights)
            zipped = len(gzip.compress(wasm)) + len(gzip.compress(weights))
            print(
                f"{game:<10} {statistics.median(loads):8.1f} {len(wasm):8d} {len(weights):10d} "
                f"{total / 1024:9.1f} {zipped / 1024:8.1f}"
            )
        print()
        print(f"{'game':<10} {'agents':>6} {'µs/step trained':>16} {'µs/step random':>15} {'FPS':>6}")
        for game in GAMES:
            for n in AGENTS:
                row = {"trained": float("nan")}
                for policy in ("random", "trained") if game in with_model else ("random",):
                    page.goto(url + f"/play/{game}?agents={n}&policy={policy}&speed=1")
                    wait_ready(page)
                    row[policy] = bench(page)
                first = stats(page)
                page.wait_for_timeout(3000)
                last = stats(page)
                fps = 1000 * (last["frames"] - first["frames"]) / (last["time"] - first["time"])
                print(f"{game:<10} {n:6d} {row['trained']:16.3f} {row['random']:15.3f} {fps:6.1f}")
        page.goto(url + "/")
        browser.close()


if __name__ == "__main__":
    main()
