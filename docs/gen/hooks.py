"""MkDocs hooks of the docs site.

The docstrings use Sphinx roles (``:func:`name```), which read well in the source and in ``help()``;
mkdocstrings renders them as ``:func:`` followed by the code span. ``on_page_content`` drops the role, leaving
the code span.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|data|attr|mod|exc|obj|const):(<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    """The page's HTML without the Sphinx role prefixes before code spans."""
    return ROLE.sub(r"\1", html)
