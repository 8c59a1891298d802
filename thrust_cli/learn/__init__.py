"""The learner: policies and their action distributions, the rollout buffer and its collector, advantage
estimators, the PPO/V-trace loss and update, and the optimizer.

Layer 2: imports :mod:`thrust_cli.vector` (through the collector's vectorizer argument) and torch, never the run
layer (config, checkpoints, logging) or the commands. The math is pure functions of tensors.
"""
