"""Error reporting as a span processor: unexpected exceptions that end a server span.

:class:`SentrySpanProcessor` looks at every baseplate server span as it ends. When the span
ended because of an exception (``Span.finish(exc_info)``), it hands the exception, the trace
ids and the span's attributes to a ``report`` callable: the raven or sentry-sdk adapter in
``baseplate.diagnostics.sentry``. Vendor spans are not reported: the baseplate server span of
the same request reports the error once.

A reporter that raises is logged (rate-limited); it never reaches application code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from exporters._ratelimit import RateLimitedLog
from otel_bridge.context import ExcInfo, ending_exc_info
from otel_bridge.semconv import is_baseplate_span

logger = logging.getLogger(__name__)

#: ``report(exc_info, tags, extra)``: send one exception to the error tracker.
Reporter = Callable[[ExcInfo, Mapping[str, str], Mapping[str, Any]], None]


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
    """

    def __init__(self, report: Reporter):
        self.report = report
        self.reported = 0
        self.failed = 0
        self._log = RateLimitedLog(logger)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not SpanKind.SERVER or span.status.status_code is not StatusCode.ERROR:
            return
        if not is_baseplate_span(span):
            return
        exc_info = ending_exc_info()
        if exc_info is None:
            return
        context = span.context
        assert context is not None
        tags, extra = report_details(context.trace_id, context.span_id, span.name, span.attributes)
        try:
            self.report(exc_info, tags, extra)
            self.reported += 1
        except Exception as exc:
            self.failed += 1
            self._log.error("error report could not be sent: %s", exc)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
