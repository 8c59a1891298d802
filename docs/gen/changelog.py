"""Copies CHANGELOG.md (repo root) into the site as changelog.md at build time."""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
with mkdocs_gen_files.open("changelog.md", "w") as fh:
    src = ROOT / "CHANGELOG.md"
    fh.write(src.read_text() if src.is_file() else "# Changelog\n\nCHANGELOG.md is missing.\n")
