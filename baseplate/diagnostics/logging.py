"""Request context in logs: the trace id as the thread name and as log record attributes.

``Baseplate.configure_logging()`` (see :func:`install`) does two things:

* as documented for 0.28, the current thread's (or greenlet's) name is set to the request's
  trace id when its server span is created, so ``%(threadName)s`` shows it; unlike 0.28,
  the thread gets its own name back when the server span finishes, so lines logged between
  requests do not carry the previous request's trace id;
* every log record gets ``trace_id`` and ``span_id`` attributes (decimal, as baseplate writes
  ids; empty strings outside a traced request), usable in format strings such as
  ``"%(asctime)s [%(trace_id)s] %(message)s"``. They come from the current OpenTelemetry span,
  so they are right inside local spans and vendor spans too.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from baseplate._span import BaseplateObserver, ServerSpan, ServerSpanObserver

if TYPE_CHECKING:
    from baseplate.core import Baseplate

_installed_factory: Any = None


def install_record_factory() -> None:
    """Give every log record ``trace_id`` and ``span_id`` attributes (once per process)."""
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is _installed_factory:
        return
    previous = current

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = str(span_context.trace_id)
            record.span_id = str(span_context.span_id)
        else:
            record.trace_id = record.span_id = ""
        return record

    _installed_factory = make_record
    logging.setLogRecordFactory(make_record)


class _ThreadNameObserver(ServerSpanObserver):
    """Names the request's thread after its trace id, and gives the old name back after."""

    def __init__(self, trace_id: int):
        self.name = str(trace_id)
        self.thread: threading.Thread | None = None
        self.previous_name = ""

    def rename(self) -> None:
        thread = threading.current_thread()
        if thread is self.thread:
            return
        self.restore()
        self.thread, self.previous_name = thread, thread.name
        thread.name = self.name

    def restore(self) -> None:
        if self.thread is not None:
            self.thread.name = self.previous_name
            self.thread = None

    def on_start(self) -> None:
        # normally a no-op: the span was created on the thread that handles it
        self.rename()

    def on_finish(self, exc_info: Any) -> None:
        self.restore()


class LoggingBaseplateObserver(BaseplateObserver):
    """Logging observer.

    Adds request context to the thread-local state so that log formatters can give more
    informative logs: the thread name is the current request's trace id, from the moment
    the server span is created until it finishes (then the thread gets its name back).
    """

    def __init__(self) -> None:
        install_record_factory()

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        observer = _ThreadNameObserver(server_span.trace_id)
        observer.rename()
        server_span.register(observer)


def install(baseplate: Baseplate) -> None:
    """Register the logging observer on ``baseplate`` (once)."""
    if any(isinstance(o, LoggingBaseplateObserver) for o in baseplate.observers):
        return
    baseplate.register(LoggingBaseplateObserver())


__all__ = ["LoggingBaseplateObserver", "install", "install_record_factory"]
