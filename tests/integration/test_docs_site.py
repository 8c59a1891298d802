"""The docs site builds with ``mkdocs build --strict`` and its generated reference pages cover the code."""

from __future__ import annotations

import html
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_gen_{name}", ROOT / "docs" / "gen" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e .[dev])")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _page(site: Path, rel: str) -> str:
    return html.unescape((site / rel / "index.html").read_text())


def test_cli_reference_lists_every_command_and_option(site: Path) -> None:
    cli = _load("cli_ref")
    page = _page(site, "reference/cli")
    for path, cmd in cli.walk(cli.root()):
        assert path in page, path
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if p.name != "help":
                    assert opt in page, f"{path} {opt}"


def test_config_reference_lists_every_schema_key_with_a_meaning(site: Path) -> None:
    ref = _load("config_ref")
    page = _page(site, "reference/config")
    keys = [k for rows in ref.collect().values() for _, _, ks in rows for k in ks]
    assert keys
    assert [k.path for k in keys if k.path not in page] == []
    assert [k.path for k in keys if not k.meaning] == [], "config keys without a comment in conf/ or the schema"


def test_config_yaml_defaults_agree_with_the_schemas() -> None:
    assert _load("config_ref").default_mismatches() == []


def test_api_reference_has_a_page_per_public_module(site: Path) -> None:
    modules = _load("api_ref").public_modules()
    assert "thrust_cli.run.config" in modules and "envs_cython.cartpole" in modules
    for name in modules:
        page = site / "reference" / "api" / name / "index.html"
        assert page.is_file(), name
        text = page.read_text()
        assert ":func:<code>" not in text and ":class:<code>" not in text, f"{name}: a Sphinx role shows as text"
