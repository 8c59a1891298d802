"""Vectorizers: many env instances stepped as one batch into buffers the vectorizer owns.

Layer 1 (above ``envs_cython``, which knows nothing of torch): :mod:`~thrust_cli.vector.serial` steps every env
object in this process; :mod:`~thrust_cli.vector.multiprocessing` steps them in worker processes over shared
memory; :mod:`~thrust_cli.vector.envs` maps the ``env`` / ``vec`` config groups to env constructors and
vectorizers. Nothing here imports torch or the learner.
"""
