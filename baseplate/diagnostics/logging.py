"""Request context in logs: the trace id as the thread name and as log record attributes.

``Baseplate.configure_logging()`` (see :func:`install`) does two things:

* as documented for 0.28, the current thread's (or greenlet's) name is set to the request's
  trace id while the request is being handled, so ``%(threadName)s`` shows it;
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

from baseplate.core import BaseplateObserver, ServerSpan, ServerSpanObserver

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
    def __init__(self, trace_id: int):
        self.trace_id = trace_id
        self.previous_name: str | None = None

    def on_start(self) -> None:
        thread = threading.current_thread()
        self.previous_name = thread.name
        thread.name = str(self.trace_id)

    def on_finish(self, exc_info: Any) -> None:
        if self.previous_name is not None:
            threading.current_thread().name = self.previous_name


class LoggingBaseplateObserver(BaseplateObserver):
    """Logging observer.

    Adds request context to the thread-local state so that log formatters can give more
    informative logs: the thread name is the current request's trace id.
    """

    def __init__(self) -> None:
        install_record_factory()

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        server_span.register(_ThreadNameObserver(server_span.trace_id))


def install(baseplate: Baseplate) -> None:
    """Register the logging observer on ``baseplate`` (once)."""
    if any(isinstance(o, LoggingBaseplateObserver) for o in baseplate.observers):
        return
    baseplate.register(LoggingBaseplateObserver())


__all__ = ["LoggingBaseplateObserver", "install", "install_record_factory"]
