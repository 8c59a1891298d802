"""``python -m thrust_cli ...`` is the ``thrust`` command (torchrun launches it this way)."""

from thrust_cli.cli import main

main()
