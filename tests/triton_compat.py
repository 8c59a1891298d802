"""Which Triton the tests have, found without importing it (importing picks the interpreter or the compiler)."""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version

HAS_TRITON = importlib.util.find_spec("triton") is not None


def major_minor(dist: str) -> tuple[int, ...]:
    """``(major, minor)`` of an installed distribution; ``()`` when it is missing or its version is not numeric."""
    try:
        return tuple(int(p) for p in version(dist).split("+")[0].split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return ()


# Triton before 3.7 interprets with NumPy calls that NumPy 2.4 removed ("only 0-dimensional arrays can be converted
# to Python scalars"); torch 2.11's CUDA wheels pin triton 3.6. The compiled kernels on CUDA are not affected.
OLD_INTERPRETER = HAS_TRITON and major_minor("triton") < (3, 7) and major_minor("numpy") >= (2, 4)
