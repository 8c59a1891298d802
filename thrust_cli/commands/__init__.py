"""One module per ``thrust`` command, each a plain function apart from the CLI: :func:`train.train`,
:func:`evaluate.evaluate`, :mod:`sweep` (and :mod:`hpo` for ``--hpo``), :mod:`export` (ONNX, with
:mod:`safetensors_format`), :mod:`bench`, :mod:`plot`.

Layer 4: imports the run, learn and vector layers; :mod:`thrust_cli.cli` (Typer) is the only module above it.
"""
