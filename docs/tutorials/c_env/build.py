"""Compile walk/walk.pyx into walk/walk.*.so, next to its sources: ``python build.py``.

The same flags as Thrust's own envs (setup.py): -O3, no -ffast-math, no -march=native, and -ffp-contract=off.
Thrust's installed ``envs_cython`` package provides thrust_binding.pxi (the shared binding base) and the C
headers (thrust_rng.h, thrust_driver.h).
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

import envs_cython

THRUST = str(Path(envs_cython.__file__).parent)

extension = Extension(
    "walk.walk",
    ["walk/walk.pyx"],
    include_dirs=["walk", THRUST],
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-strict-aliasing"],
)
setup(
    name="walk",
    ext_modules=cythonize(
        [extension],
        include_path=[THRUST],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False},
    ),
    script_args=["build_ext", "--inplace"],
)
