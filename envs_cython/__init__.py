"""Thrust environments: C cores with Cython bindings that step many agents per call.

Every env follows the API in :mod:`envs_cython.base` (documented in docs/envs.md). This package knows nothing
of torch.
"""

from __future__ import annotations
