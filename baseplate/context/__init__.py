"""Helpers that integrate common client libraries with baseplate's diagnostics.

Use them with :meth:`baseplate.core.Baseplate.add_to_context`; a context-aware version of
the client then shows up on the context object during requests, and its calls are client
spans named ``<attribute>.<method>``.
"""

from __future__ import annotations

from baseplate._span import ContextFactory

__all__ = ["ContextFactory"]
