"""Helpers that integrate common client libraries with baseplate's diagnostics.

Use them with :meth:`baseplate.core.Baseplate.add_to_context`; a context-aware version of
the client then shows up on the context object during requests, and its calls are client
spans named ``<attribute>.<method>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baseplate.core import ServerSpan


class ContextFactory:
    """An interface for adding stuff to the context object.

    Objects implementing this interface can be passed to ``add_to_context``. The return value
    of :meth:`make_object_for_context` is added to the context object under the given name.
    """

    def make_object_for_context(self, name: str, server_span: ServerSpan) -> Any:
        """Return an object that can be added to the context object."""
        raise NotImplementedError


__all__ = ["ContextFactory"]
