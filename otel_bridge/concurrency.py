"""Handing work to greenlets and threads without losing the trace.

A new gevent greenlet, and a thread pool's worker thread, start with an empty
``contextvars`` context: a span started there would begin a new trace instead of joining
the request that asked for the work. The helpers here run the work in a copy of the
caller's context, so its spans (baseplate's and vendor instrumentations') are children of
the span that was current when the work was handed over::

    greenlet = spawn(fetch_profile, user_id)        # gevent.spawn, keeping the trace
    future = submit(executor, resize_image, blob)   # executor.submit, keeping the trace

    with ContextThreadPoolExecutor(max_workers=4) as pool:
        pool.submit(render, page)                   # every submit keeps the trace

Each call copies the context at that moment; the copy is private to the new task, so what
the task changes (spans it makes current) never leaks back into the caller or another task.

gevent is imported only by the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from otel_bridge.context import wrap_in_current_context

if TYPE_CHECKING:
    import gevent
    import gevent.pool

_T = TypeVar("_T")


def spawn(func: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet:
    """Start ``func(*args, **kwargs)`` in a new greenlet that continues the current trace.

    Like :func:`gevent.spawn`, it returns the started :class:`gevent.Greenlet`.
    """
    import gevent

    return gevent.spawn(wrap_in_current_context(func), *args, **kwargs)


def spawn_later(
    seconds: float, func: Callable[..., Any], *args: Any, **kwargs: Any
) -> gevent.Greenlet:
    """Start ``func(*args, **kwargs)`` in a new greenlet after ``seconds``, in the trace that
    is current now (like :func:`gevent.spawn_later`)."""
    import gevent

    return gevent.spawn_later(seconds, wrap_in_current_context(func), *args, **kwargs)


def spawn_in_pool(
    pool: gevent.pool.Group, func: Callable[..., Any], *args: Any, **kwargs: Any
) -> gevent.Greenlet:
    """Start ``func(*args, **kwargs)`` in a greenlet of ``pool`` (a :class:`gevent.pool.Pool`
    or ``Group``) that continues the current trace; blocks while a full pool has no room."""
    return pool.spawn(wrap_in_current_context(func), *args, **kwargs)


def submit(executor: Executor, func: Callable[..., _T], *args: Any, **kwargs: Any) -> Future[_T]:
    """Submit ``func(*args, **kwargs)`` to any :class:`concurrent.futures.Executor` so that it
    runs in the current trace; returns the executor's future."""
    return executor.submit(wrap_in_current_context(func), *args, **kwargs)


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A :class:`~concurrent.futures.ThreadPoolExecutor` whose tasks run in the trace that was
    current when they were submitted (``submit`` and ``map``)."""

    def submit(
        self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> Future[_T]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the caller's context."""
        return super().submit(wrap_in_current_context(fn), *args, **kwargs)


__all__ = [
    "ContextThreadPoolExecutor",
    "spawn",
    "spawn_in_pool",
    "spawn_later",
    "submit",
    "wrap_in_current_context",
]
