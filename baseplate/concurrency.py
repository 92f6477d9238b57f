"""Run work on other greenlets and threads inside the current request's trace.

A greenlet started with plain :func:`gevent.spawn`, or a function handed to a thread pool,
starts with an empty context: its spans would begin new, unrelated traces. Use these
instead so that the work's spans (baseplate's and vendor instrumentations') are children
of the span current when the work was handed over::

    from baseplate.concurrency import ContextThreadPoolExecutor, spawn

    def my_view(request):
        greenlet = spawn(warm_cache, request.matchdict["id"])
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            thumbnails = list(pool.map(make_thumbnail, images))
        greenlet.join()

See :mod:`otel_bridge.concurrency` for details; these are the same objects.
"""

from __future__ import annotations

from otel_bridge.concurrency import (
    ContextThreadPoolExecutor,
    spawn,
    spawn_in_pool,
    spawn_later,
    submit,
    wrap_in_current_context,
)

__all__ = [
    "ContextThreadPoolExecutor",
    "spawn",
    "spawn_in_pool",
    "spawn_later",
    "submit",
    "wrap_in_current_context",
]
