"""Every public module, class and function of thrust_cli and envs_cython has a docstring.

The check is interrogate's, with the options of ``[tool.interrogate]`` in pyproject.toml (``fail-under = 100``),
run through its Python API so that a failure names each undocumented object. Same result as
``interrogate thrust_cli envs_cython`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from interrogate import config as interrogate_config  # the dev extra
from interrogate import coverage as interrogate_coverage

ROOT = Path(__file__).resolve().parents[2]
PATHS = ("thrust_cli", "envs_cython")
# pyproject option -> InterrogateConfig field, where the CLI spells them differently
RENAMED = {"style": "docstring_style", "ignore_setters": "ignore_property_setters"}
# options that only shape the report, not what is measured
REPORTING = {"verbose", "quiet", "color", "omit_covered_files", "generate_badge", "badge_format", "badge_style"}


def _pyproject_options() -> dict[str, Any]:
    """``[tool.interrogate]`` with the keys spelled as Python names (``fail-under`` -> ``fail_under``)."""
    options: dict[str, Any] = interrogate_config.parse_pyproject_toml(str(ROOT / "pyproject.toml"))
    return options


def _measure(paths: tuple[str, ...]) -> tuple[float, float, list[str]]:
    """``(percent covered, fail_under, ["path:line name (type)", ...] of the undocumented objects)`` of ``paths``,
    relative to the working directory, measured with the repository's options."""
    options = _pyproject_options()
    excluded = tuple(str(p) for p in options.pop("exclude", ()))
    fields = {a.name for a in interrogate_config.InterrogateConfig.__attrs_attrs__}
    conf_args: dict[str, Any] = {}
    for key, value in options.items():
        if key in REPORTING:
            continue
        name = RENAMED.get(key, key)
        if name not in fields or name in ("ignore_regex", "include_regex"):
            raise AssertionError(f"[tool.interrogate] option {key!r} is not handled by {Path(__file__).name}")
        conf_args[name] = value
    conf = interrogate_config.InterrogateConfig(**conf_args)
    coverage = interrogate_coverage.InterrogateCoverage(paths=list(paths), conf=conf, excluded=excluded)
    results = coverage.get_coverage()
    missed = [
        f"{Path(file_result.filename).as_posix()}:{node.lineno} {node.name} ({node.node_type})"
        for file_result in results.file_results
        for node in file_result.nodes
        if not node.covered
    ]
    return float(results.perc_covered), float(conf.fail_under), sorted(missed)


def test_every_public_object_has_a_docstring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # paths and excludes are relative to the root, as for the CLI
    covered, fail_under, missed = _measure(PATHS)
    assert fail_under == 100.0, f"[tool.interrogate] fail-under is {fail_under}; the project requires 100"
    assert covered >= fail_under and not missed, (
        f"docstring coverage {covered:.1f}% < {fail_under:.0f}%; {len(missed)} without a docstring:\n"
        + "\n".join(missed)
    )


def test_the_check_names_an_undocumented_public_function_and_ignores_private_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "mod.py").write_text(
        '"""A module."""\n\n\ndef public():\n    pass\n\n\ndef _private():\n    pass\n\n\n'
        'def documented():\n    """Has one."""\n'
    )
    monkeypatch.chdir(tmp_path)
    covered, _, missed = _measure(("pkg",))
    assert missed == ["pkg/mod.py:4 public (FunctionDef)"]
    assert covered == pytest.approx(100.0 * 3 / 4)  # two modules and documented() of four objects
