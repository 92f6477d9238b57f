"""Names shared by baseplate spans, the bridge and the exporters.

Every attribute key, trace-state key and instrumentation-scope name that links a
baseplate span to what the processors and exporters do with it is defined here once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanContext, TraceState

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

#: Instrumentation scope of every span made through the baseplate span API. Processors use it
#: to tell baseplate spans from vendor (auto-instrumentation) spans.
TRACER_NAME = "baseplate"

#: Attribute holding a local span's component name (``make_child(local=True, component_name=...)``).
ATTR_COMPONENT = "baseplate.component_name"

#: Attribute set (True) on a server span that reuses its caller's span id: baseplate's
#: Zipkin shared-span model, used when the trace came in baseplate headers. Server spans
#: continuing W3C or B3 callers get a span id of their own and no such attribute.
ATTR_SHARED_SPAN = "baseplate.shared_span"

#: Attribute holding a span event's payload (``Span.log(name, payload)``).
ATTR_LOG_PAYLOAD = "baseplate.payload"

#: Name of the span event a client logs for a failed call, ``span.log("error.object", exc)``;
#: statsd counts ``errors.<payload class>`` for it.
EVENT_ERROR_OBJECT = "error.object"

#: Attribute holding the class name of an ``error.object`` event's payload.
ATTR_LOG_PAYLOAD_TYPE = "baseplate.payload_type"

#: Trace-state entry carrying baseplate's ``Flags`` header value (bit 1 = debug) across
#: process-local children and W3C hops. Present only when the flags are non-zero.
TRACE_STATE_FLAGS = "baseplate"

#: Flags bit that forces sampling.
FLAG_DEBUG = 1


def flags_from_trace_state(trace_state: TraceState | None) -> int:
    """Return the baseplate flags stored in a trace state (0 when absent or malformed)."""
    if not trace_state:
        return 0
    value = trace_state.get(TRACE_STATE_FLAGS)
    if value is None:
        return 0
    try:
        flags = int(value)
    except ValueError:
        return 0
    return flags if 0 <= flags < 2**64 else 0


def flags_of(span_context: SpanContext) -> int:
    """Return the baseplate flags of a span context."""
    return flags_from_trace_state(span_context.trace_state)


def is_debug(span_context: SpanContext) -> bool:
    """Whether the span's trace carries the debug flag."""
    return bool(flags_of(span_context) & FLAG_DEBUG)


def is_baseplate_span(span: ReadableSpan) -> bool:
    """Whether the span was made through the baseplate span API (not a vendor's)."""
    scope = span.instrumentation_scope
    return scope is not None and scope.name == TRACER_NAME
