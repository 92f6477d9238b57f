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

Work that runs in a greenlet for a while (an exporter encoding a batch of spans in the batch
processor's worker, which under ``baseplate-serve`` shares the requests' event loop) gives the
loop back every :data:`MAX_LOOP_HOLD` seconds with :func:`yielding_the_loop` (or, where the
place to pause is not the start of an item, :class:`LoopHold`)::

    for span in yielding_the_loop(spans):          # pauses only under gevent
        parts.append(encode(span))

gevent is imported only by the functions that need it; the loop helpers never import it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from otel_bridge.context import wrap_in_current_context

if TYPE_CHECKING:
    import gevent
    import gevent.pool

_T = TypeVar("_T")

#: Longest per-item work holds the event loop before it lets other greenlets run (seconds,
#: under gevent).
MAX_LOOP_HOLD = 0.0005
#: How long the work sleeps to give other greenlets a turn: long enough that the event loop
#: polls for I/O (``gevent.sleep(0)`` only runs callbacks that are already due).
_YIELD_SLEEP = 0.0001


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


def gevent_sleep() -> Callable[[float], None] | None:
    """``gevent.sleep`` when gevent has patched ``threading`` or ``time`` (the caller is then
    presumably a greenlet, which must not block its event loop); None otherwise. Never imports
    gevent."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return None
    try:
        patched = monkey.is_module_patched("threading") or monkey.is_module_patched("time")
    except Exception:
        return None
    if not patched:
        return None
    gevent = sys.modules.get("gevent")
    sleep = getattr(gevent, "sleep", None)
    return sleep if callable(sleep) else None


class LoopHold:
    """How long the current work has held the event loop; :meth:`checkpoint` gives it back
    (a cooperative sleep) once that is more than ``max_hold`` seconds. Outside gevent it
    never sleeps and costs one attribute test per checkpoint.

    The clock starts when the object is made.
    """

    def __init__(self, max_hold: float = MAX_LOOP_HOLD) -> None:
        #: ``gevent.sleep`` under gevent (see :func:`gevent_sleep`), else None.
        self.cooperative_sleep = gevent_sleep()
        self.max_hold = max_hold
        self._held_since = time.perf_counter()

    def checkpoint(self) -> None:
        """Let other greenlets run if the loop has been held for longer than ``max_hold``."""
        sleep = self.cooperative_sleep
        if sleep is None or time.perf_counter() - self._held_since <= self.max_hold:
            return
        sleep(_YIELD_SLEEP)  # let the requests waiting on the loop run
        self._held_since = time.perf_counter()


def yielding_the_loop(items: Iterable[_T], max_hold: float = MAX_LOOP_HOLD) -> Iterator[_T]:
    """Iterate over ``items``, giving the event loop back before an item once the work on the
    previous ones has held it for more than ``max_hold`` seconds (under gevent only; outside
    gevent the items come straight through)."""
    hold = LoopHold(max_hold)
    if hold.cooperative_sleep is None:
        yield from items
        return
    for item in items:
        hold.checkpoint()
        yield item


# The loop helpers (MAX_LOOP_HOLD, gevent_sleep, LoopHold, yielding_the_loop) are for the
# exporters and are left out: __all__ is what baseplate.concurrency re-exports.
__all__ = [
    "ContextThreadPoolExecutor",
    "spawn",
    "spawn_in_pool",
    "spawn_later",
    "submit",
    "wrap_in_current_context",
]
