from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture
def run_under_sanitizers(tmp_path: Path) -> Callable[[Path], str]:
    """Compile a standalone ``<env>_main.c`` with ASan/UBSan (warnings as errors), run it, assert it exited 0
    with no sanitizer report, and return its stdout. Skips without gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")

    def run(source: Path) -> str:
        exe = tmp_path / source.stem
        compile_cmd = [
            "gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
            "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-ffp-contract=off",
            str(source), "-lm", "-o", str(exe),
        ]  # fmt: skip
        built = subprocess.run(compile_cmd, capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stderr
        ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "Sanitizer" not in ran.stderr and "runtime error" not in ran.stderr, ran.stderr
        return ran.stdout

    return run
