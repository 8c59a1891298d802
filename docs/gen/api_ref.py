"""API reference: one ``::: module`` page per public Python module of thrust_cli and envs_cython.

Compiled modules (``.pyx``) cannot be read by griffe; each env package's Python wrapper is documented instead.
Source is not shown (pages stay short; each page names the module's file). ``public_modules`` is imported by the test.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def public_modules() -> list[str]:
    """Dotted names of every public Python module (no ``_`` part, not ``__main__``) of the two packages."""
    out = []
    for pkg in ("thrust_cli", "envs_cython"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if any(p.startswith("_") for p in parts) or "static" in parts:
                continue
            out.append(".".join(parts))
    return out


def main() -> None:
    import mkdocs_gen_files

    index = [
        "# API reference",
        "",
        "Generated from the docstrings at build time. Compiled Cython modules",
        "(`*.pyx`) are not readable by the doc tool: their Python-facing wrappers are documented here.",
        "",
    ]
    for name in public_modules():
        with mkdocs_gen_files.open(f"reference/api/{name}.md", "w") as fh:
            fh.write(f"# `{name}`\n\n::: {name}\n")
        index.append(f"- [`{name}`](api/{name}.md)")
    with mkdocs_gen_files.open("reference/api.md", "w") as fh:
        fh.write("\n".join(index) + "\n")


if __name__ in {"__main__", "<run_path>"}:
    main()
