"""Fixtures of the browser tests: one demo server and one headless Chromium per session, a fresh page per test.

Without Playwright or Chromium the tests skip with the reason, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from harness import browser_missing, demo_models_dir, games_with_models, launch, serve


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The running demo server: ``url``, its ``runs`` dir (``<work>/outputs``, so a ``thrust train`` started in
    ``work`` appears on the dashboard), ``db`` and ``models`` paths, and the ``games`` that have a demo model."""
    if browser_missing() is not None:  # skip before building wasm or starting anything
        pytest.skip(browser_missing() or "")
    work = tmp_path_factory.mktemp("site")
    runs = work / "outputs"
    runs.mkdir()
    models = demo_models_dir()
    with serve(runs, work / "analytics.sqlite3", models) as url:
        yield {"url": url, "work": work, "runs": runs, "models": models, "games": games_with_models(models)}


class Page:
    """A browser page that records console errors and uncaught exceptions (``errors``)."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.url = base_url
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def goto(self, path: str) -> Any:
        return self.page.goto(self.url + path)


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    wrapped = Page(context.new_page(), site["url"])
    yield wrapped
    context.close()


@pytest.fixture
def model_game(site: dict[str, Any], request: pytest.FixtureRequest) -> str:
    """The parametrized ``game``, skipped when the store has no demo model for it."""
    game = str(request.param)
    if game not in site["games"]:
        pytest.skip(f"no demo model for {game} in {site['models']} (thrust demo build --game {game})")
    return game
