"""Integrations of baseplate with application frameworks (Thrift, Pyramid).

The package also keeps 0.28's :class:`WrappedRequestContext`, the view of a context object
that local spans see.
"""

from __future__ import annotations

from typing import Any

from baseplate._span import LocalSpanContext


class WrappedRequestContext(LocalSpanContext):
    """A view of a framework's context object that can shadow some of its attributes.

    Reading and setting attributes reads and sets those of the wrapped ``context``, except
    the attributes shadowed with :meth:`shadow_context_attr`, which exist on this view only
    (baseplate shadows ``trace`` and the ``add_to_context`` objects of a local span this
    way). It is a :class:`~baseplate.core.LocalSpanContext`, the class baseplate gives local
    spans as their context; unlike 0.28, a server span's context is the framework's own
    context object, unwrapped.

    ``trace`` is accepted and, as in 0.28, not used: shadow it explicitly.
    """

    def __init__(self, context: Any, trace: Any = None) -> None:
        super().__init__(context)

    def shadow_context_attr(self, attr: str, value: Any) -> None:
        """Set ``attr`` on this view only, leaving the wrapped context object as it is."""
        self.set_local(attr, value)

    def clone(self) -> WrappedRequestContext:
        """Return a new view of the same wrapped context object, with nothing shadowed."""
        return WrappedRequestContext(self._context)


__all__ = ["WrappedRequestContext"]
