"""What a training run is made of besides the learner: the config (composition, typed schemas, validation),
checkpoints, the metrics log with its backends (TensorBoard, W&B, Neptune) and the live dashboard.

Layer 3: may import :mod:`thrust_cli.learn` and :mod:`thrust_cli.vector`; never the commands or the CLI.
"""
