"""Build script: compiles every ``envs_cython/<env>/<env>.pyx`` and the learner's ``thrust_cli/kernels/*.pyx``
into extension modules.

Flags: -O3 without -ffast-math or -march=native (wheels must run anywhere), and -ffp-contract=off so the
C physics stays bit-exact with the Gymnasium reference (gcc would fuse multiply-adds otherwise).
"""

from __future__ import annotations

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

ROOT = Path(__file__).parent
C_FLAGS = ["-O3", "-ffp-contract=off", "-fno-strict-aliasing"]

extensions = [
    Extension(
        ".".join(pyx.with_suffix("").parts),
        [str(pyx)],
        include_dirs=[str(pyx.parent)],
        extra_compile_args=C_FLAGS,
        libraries=["m"],
    )
    for pyx in [*sorted(Path("envs_cython").glob("*/*.pyx")), *sorted(Path("thrust_cli/kernels").glob("*.pyx"))]
]

setup(
    packages=[
        *find_packages(include=["thrust_cli", "thrust_cli.*", "envs_cython", "envs_cython.*"]),
        "thrust_cli.conf",
    ],
    # conf/ lives at the top level of the repository; it ships inside the package as thrust_cli/conf.
    package_dir={"thrust_cli.conf": "conf"},
    package_data={
        "thrust_cli.conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"],
        "envs_cython": ["*.h", "*.pxi", "*/*.h", "*/*.pyx", "*/*_main.c"],
        "thrust_cli.kernels": ["*.pyx"],
        # the demo site: pages, shipped demo policies, and the C sources its wasm modules are built from
        "thrust_cli.web": ["static/*", "static/*/*", "models/*/*", "wasm/*.c", "wasm/*.h"],
    },
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    zip_safe=False,
)
