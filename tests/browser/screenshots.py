"""Screenshots of the demo site for the docs: docs/images/demo_{index,cartpole,snake,asteroids,dashboard}.png.

    python tests/browser/screenshots.py [--out docs/images] [--runs outputs]

Starts the demo server (thrust_cli/web/models, or $THRUST_WEB_TEST_MODELS; see harness.py) on a free port and
photographs each page in headless Chromium at 1280 x 860. The dashboard shows the most recent run under --runs;
without one, a short CartPole run is trained into a temporary directory first (about 10 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import GAMES, REPO, demo_models_dir, launch, serve, wait_ready

VIEWPORT = {"width": 1280, "height": 860}
# what each game page shows: enough agents to fill the view, a fixed seed, and time for play to get going
GAME_URLS = {
    "cartpole": "/play/cartpole?agents=16&seed=1&speed=4",
    "snake": "/play/snake?agents=256&seed=1&speed=1",
    "asteroids": "/play/asteroids?agents=16&seed=1&speed=2",
}
SETTLE_MS = 4000


def train_cartpole(work: Path) -> Path:
    """A short CartPole run under ``work/outputs``; returns that runs dir."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "thrust_cli", "train", "env=cartpole", "logger=none", "train.progress=none"]
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    return work / "outputs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--runs", type=Path, default=None, help="runs dir for the dashboard (default: train one)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = args.runs if args.runs is not None else train_cartpole(work)
        with serve(runs, work / "analytics.sqlite3", demo_models_dir()) as url, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + "/")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=args.out / "demo_index.png")
            for game in GAMES:
                page.goto(url + GAME_URLS[game])
                wait_ready(page)
                page.wait_for_timeout(SETTLE_MS)
                page.screenshot(path=args.out / f"demo_{game}.png")
            page.goto(url + "/dashboard")
            page.wait_for_function("() => document.querySelector('#latest-step').dataset.step", timeout=20_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=args.out / "demo_dashboard.png", full_page=True)
            page.goto(url + "/")  # end the game pages' sessions before the server stops
            browser.close()
    for name in ("index", *GAMES, "dashboard"):
        print(args.out / f"demo_{name}.png")


if __name__ == "__main__":
    main()
