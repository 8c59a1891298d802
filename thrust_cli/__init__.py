"""Thrust: fast reinforcement learning with C environments and a torch PPO learner.

The package is arranged in layers, each importing only those below it::

    envs_cython/          C env cores and their Cython bindings (no torch)
    thrust_cli/kernels/   compiled learner kernels (GAE, V-trace)
    thrust_cli/vector/    vectorizers: Serial, Multiprocessing (shared memory), env registry
    thrust_cli/learn/     policies, distributions, rollout, collector, advantage, loss, PPO update, optimizer
    thrust_cli/run/       config, checkpoints, metrics log and backends, dashboard
    thrust_cli/commands/  one module per command: train, evaluate, sweep, hpo, export, bench, plot
    thrust_cli/cli.py     the Typer CLI (``thrust``), the only module that parses the command line

Importing this package is cheap: torch, Hydra and the envs load only where they are used, so ``thrust --help``
starts in a fraction of a second. The names most scripts need are available here and load on first use::

    from thrust_cli import compose_config, train, evaluate
"""

from __future__ import annotations

from typing import Any

__version__ = "1.0.0"

_LAZY = {
    "compose_config": "thrust_cli.run.config",
    "ConfigError": "thrust_cli.run.config",
    "train": "thrust_cli.commands.train",
    "TrainingError": "thrust_cli.learn.ppo",
    "evaluate": "thrust_cli.commands.evaluate",
    "load_policy": "thrust_cli.run.checkpoint",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'thrust_cli' has no attribute {name!r}")
