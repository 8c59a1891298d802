"""Developer sessions: ``nox -s lint typecheck tests slow coverage docs bench``.

Each session installs the project the way the README does (torch pinned to the local CPU wheel).
Run ``nox --no-venv -s tests`` to use the current environment instead of a fresh virtualenv.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

INSTALL = ("torch==2.13.0", "-e", ".[dev]")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(*INSTALL)
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """The fast suite (what CI runs)."""
    session.install(*INSTALL)
    session.run("pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Learning runs and long checks (CartPole solved for 3 seeds, ...)."""
    session.install(*INSTALL)
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """Line coverage of thrust_cli and envs_cython by the fast suite, `thrust` subprocesses included; fails below
    85 % (settings in pyproject's [tool.coverage.*]; Cython-compiled code is not measured)."""
    session.install(*INSTALL)
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine")
    session.run("coverage", "report")


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site, built with ``--strict`` (broken links or references fail), and the docstring coverage."""
    session.install(*INSTALL)
    session.run("interrogate", "thrust_cli", "envs_cython")
    quiet = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}  # Material's banner about MkDocs 2
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env=quiet)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks behind docs/performance.md."""
    session.install(*INSTALL, "stable-baselines3")
    session.run("thrust", "bench", "env=cartpole")
    session.run("pytest", "-m", "bench", "-s", *session.posargs)
