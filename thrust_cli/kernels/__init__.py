"""Compiled kernels of the learner (Cython, built by setup.py); import them through the modules that wrap them."""
