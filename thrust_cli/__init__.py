"""Thrust: fast reinforcement learning with C environments and a torch PPO learner.

Importing this package is cheap: torch, Hydra and the envs load only where they are used, so
``thrust --help`` starts in a fraction of a second.
"""

from __future__ import annotations

__version__ = "0.1.0"
