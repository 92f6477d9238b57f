"""Error reporting as a span processor: unexpected exceptions that end a server span.

:class:`SentrySpanProcessor` looks at every baseplate server span as it ends. When the span
ended because of an exception (``Span.finish(exc_info)``), it hands the exception, the trace
ids and the span's attributes to a ``report`` callable: the raven or sentry-sdk adapter in
``baseplate.diagnostics.sentry``. Vendor spans are not reported: the baseplate server span of
the same request reports the error once.

A :class:`RequestScope` (raven's per-thread context, for instance) is opened by the processor
when a server span starts and closed when it has ended and been reported: the processor is
the one owner of that lifecycle.

A reporter that raises is logged (rate-limited); it never reaches application code. It
runs with OpenTelemetry instrumentation suppressed, so that a client posting the report
through an instrumented HTTP library adds no span to the failed request.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from exporters._ratelimit import RateLimitedLog
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT_MILLIS
from otel_bridge.context import ExcInfo, ending_exc_info, instrumentation_suppressed
from otel_bridge.semconv import is_baseplate_span

logger = logging.getLogger(__name__)

#: ``report(exc_info, tags, extra)``: send one exception to the error tracker.
Reporter = Callable[[ExcInfo, Mapping[str, str], Mapping[str, Any]], None]


class RequestScope(Protocol):
    """Per-request state of an error tracker, open while a server span runs."""

    def begin(self, trace_id: int, span_id: int) -> None:
        """The server span with these ids started (on the thread that handles it)."""

    def end(self) -> None:
        """The server span ended and its error, if any, was reported."""


#: Requests announced (:meth:`SentrySpanProcessor.announce`) but not started, and requests
#: started but not ended, remembered at most (each).
MAX_ANNOUNCED_REQUESTS = 10_000


def report_details(
    trace_id: int, span_id: int, name: str, attributes: Mapping[str, Any] | None
) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``(tags, extra)`` of a report about a span: tags carry ``trace_id`` and
    ``span_id`` (decimal), extra carries the span's name (``span_name``) and attributes."""
    tags = {"trace_id": str(trace_id), "span_id": str(span_id)}
    extra = {"span_name": name, **dict(attributes or {})}
    return tags, extra


class SentrySpanProcessor(SpanProcessor):
    """Report the exception that ended a baseplate server span.

    :param report: Called with ``(exc_info, tags, extra)``; tags carry ``trace_id`` and
        ``span_id`` (decimal), extra carries the span's name and attributes.
    :param scope: Opened when a server span starts, closed once it ended and was reported.
    :param announced_requests_only: Handle only the server spans :meth:`announce` named
        (those of one Baseplate, when several share a tracer provider).
    :param flush: ``flush(timeout)`` waits up to ``timeout`` seconds for the reports the
        client still queues and returns how many are left; used by ``force_flush`` and
        ``shutdown``, so the tracer provider's shutdown budget covers error reports too.
    """

    def __init__(
        self,
        report: Reporter,
        scope: RequestScope | None = None,
        announced_requests_only: bool = False,
        flush: Callable[[float], int] | None = None,
    ):
        self.report = report
        self.scope = scope
        self.flush = flush
        #: Seconds ``shutdown`` waits for queued reports.
        self.shutdown_timeout = DEFAULT_EXPORT_TIMEOUT
        self.announced_requests_only = announced_requests_only
        self.reported = 0
        self.failed = 0
        self._announced: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._open: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._lock = threading.Lock()
        self._log = RateLimitedLog(logger)

    def announce(self, trace_id: int, span_id: int) -> None:
        """Handle the server span with these ids when it starts and ends."""
        with self._lock:
            self._announced[(trace_id, span_id)] = None
            while len(self._announced) > MAX_ANNOUNCED_REQUESTS:
                self._announced.popitem(last=False)

    def _is_request(self, span: ReadableSpan) -> bool:
        return span.kind is SpanKind.SERVER and is_baseplate_span(span)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._is_request(span):
            return
        context = span.context
        key = (context.trace_id, context.span_id)
        if self.announced_requests_only:
            with self._lock:
                if self._announced.pop(key, False) is False:
                    return
                self._open[key] = None
                while len(self._open) > MAX_ANNOUNCED_REQUESTS:  # spans never ended
                    self._open.popitem(last=False)
        if self.scope is not None:
            try:
                self.scope.begin(*key)
            except Exception as exc:
                self._log.error("error reporting could not start a request: %s", exc)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._is_request(span):
            return
        context = span.context
        assert context is not None
        if self.announced_requests_only:
            with self._lock:
                if self._open.pop((context.trace_id, context.span_id), False) is False:
                    return
        try:
            self._report(span)
        finally:
            if self.scope is not None:
                try:
                    self.scope.end()
                except Exception as exc:
                    self._log.error("error reporting could not end a request: %s", exc)

    def _report(self, span: ReadableSpan) -> None:
        if span.status.status_code is not StatusCode.ERROR:
            return
        exc_info = ending_exc_info()
        if exc_info is None:
            return
        context = span.context
        assert context is not None
        tags, extra = report_details(context.trace_id, context.span_id, span.name, span.attributes)
        try:
            with instrumentation_suppressed():
                self.report(exc_info, tags, extra)
            self.reported += 1
        except Exception as exc:
            self.failed += 1
            self._log.error("error report could not be sent: %s", exc)

    def shutdown(self) -> None:
        """Wait up to :attr:`shutdown_timeout` for queued reports; log once how many were
        not sent."""
        if self.flush is None:
            return
        unsent = self._flush(self.shutdown_timeout)
        if unsent:
            logger.warning("%d error reports were not sent before shutdown", unsent)

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Wait up to ``timeout_millis`` for queued reports; whether all were sent."""
        if self.flush is None:
            return True
        return self._flush(timeout_millis / 1000) == 0

    def _flush(self, timeout: float) -> int:
        assert self.flush is not None
        try:
            return self.flush(timeout)
        except Exception as exc:
            self._log.error("could not flush error reports: %s", exc)
            return 0
