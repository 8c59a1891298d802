"""The package's layers import only downward: vector ← learn ← run ← commands, web ← cli (thrust_cli/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "thrust_cli"
LAYERS = {"kernels": 0, "vector": 1, "learn": 2, "run": 3, "commands": 4, "web": 4, "cli": 5, "__main__": 5}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if parts[0] == "thrust_cli" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    """Every thrust_cli module ``path`` imports, at the top or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: relative import; write thrust_cli.<layer>.<module>")
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [m for m in found if m.startswith("thrust_cli.")]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_belongs_to_a_layer() -> None:
    for path in MODULES:
        rel = path.relative_to(PACKAGE).with_suffix("")
        assert _layer("thrust_cli." + ".".join(rel.parts)) is not None, f"{rel} is in no layer of {list(LAYERS)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_own_or_lower_layers(path: Path) -> None:
    rel = path.relative_to(PACKAGE).with_suffix("")
    own = _layer("thrust_cli." + ".".join(rel.parts))
    assert own is not None
    for module in _imports(path):
        layer = _layer(module)
        assert layer is not None and layer <= own, f"{rel} (layer {own}) imports {module} (layer {layer})"
