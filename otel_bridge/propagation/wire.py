"""What every format shares: reading a field off the wire and turning it into a context.

Extract side: the first value of a header, decimal and hex ids within
:mod:`otel_bridge.ids`' bounds, and the remote span context a propagator puts in the
extracted context (with the upstream parent and the "sampling undecided" mark of
:mod:`otel_bridge.context`). Inject side: the span and parent id to write. And the precedence
:class:`~otel_bridge.propagation.composite.CompositePropagator` applies when formats disagree.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, get_value, set_value
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from otel_bridge.context import SAMPLING_UNDECIDED_KEY, UPSTREAM_PARENT_KEY
from otel_bridge.ids import SPAN_ID_LIMIT, TRACE_ID_LIMIT
from otel_bridge.semconv import FLAG_DEBUG, TRACE_STATE_FLAGS

# Precedence when formats disagree (lower wins): a propagator's ``rank`` attribute, read by
# the composite. Propagators without one rank RANK_OTHER.
#: W3C ``traceparent``.
RANK_W3C = 0
#: Baseplate's own headers.
RANK_BASEPLATE = 1
#: B3, multi or single header.
RANK_B3 = 2
#: Anything else.
RANK_OTHER = 3

_HEX = frozenset("0123456789abcdefABCDEF")
# Longer than any id below TRACE_ID_LIMIT: no point converting it.
_MAX_DECIMAL_DIGITS = 40


def first_value(getter: Getter[Any], carrier: Any, key: str) -> str | None:
    """The first value of header ``key``, stripped; None when missing or blank."""
    values = getter.get(carrier, key)
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    return value or None


def parse_decimal_id(text: str | None, limit: int = SPAN_ID_LIMIT) -> int | None:
    """Parse an unsigned decimal id below ``limit``; None when missing or invalid."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > _MAX_DECIMAL_DIGITS:
        return None
    value = int(text)
    return value if value < limit else None


def parse_hex_id(text: str | None, widths: tuple[int, ...]) -> int | None:
    """Parse a hex id of exactly one of ``widths`` digits; None when missing or invalid."""
    if text is None or len(text) not in widths or not _HEX.issuperset(text):
        return None
    return int(text, 16)


def is_hex_b3_trace_id(text: str | None) -> bool:
    """Whether ``text`` has the shape of a standard B3 trace id (16 or 32 hex digits)."""
    return text is not None and len(text) in (16, 32) and _HEX.issuperset(text)


def is_hex_b3_span_id(text: str | None) -> bool:
    """Whether ``text`` has the shape of a standard B3 span id (16 hex digits)."""
    return text is not None and len(text) == 16 and _HEX.issuperset(text)


def same_id(first: str, second: str) -> bool:
    """Whether two header values name the same id (decimal, or hex for the second)."""
    if first == second:
        return True
    as_decimal = parse_decimal_id(first, TRACE_ID_LIMIT)
    return as_decimal is not None and (
        parse_decimal_id(second, TRACE_ID_LIMIT) == as_decimal
        or parse_hex_id(second, (16, 32)) == as_decimal
    )


def _trace_state_for(flags: int) -> TraceState:
    if not flags:
        return TraceState()
    return TraceState([(TRACE_STATE_FLAGS, str(flags))])


def remote_context(
    context: Context | None,
    trace_id: int,
    span_id: int,
    sampled: bool,
    flags: int,
    upstream_parent: int | None = None,
    undecided: bool = False,
) -> Context:
    """``context`` with the caller's span as the current (remote) span.

    The debug flag forces sampling; ``upstream_parent`` is the caller's parent id (baseplate
    headers); ``undecided`` marks a caller that left sampling to this service (B3 deferred).
    """
    debug = bool(flags & FLAG_DEBUG)
    span_context = SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled or debug else TraceFlags.DEFAULT),
        trace_state=_trace_state_for(flags),
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context), context)
    if upstream_parent is not None:
        ctx = set_value(UPSTREAM_PARENT_KEY, upstream_parent, ctx)
    if undecided and not debug:
        ctx = set_value(SAMPLING_UNDECIDED_KEY, True, ctx)
    return ctx


def span_and_parent(context: Context | None) -> tuple[SpanContext, int]:
    """The span context to inject and its parent span id (0 for a root)."""
    span = trace.get_current_span(context)
    span_context = span.get_span_context()
    parent = getattr(span, "parent", None)
    if isinstance(parent, SpanContext) and parent.is_valid:
        return span_context, parent.span_id
    upstream = get_value(UPSTREAM_PARENT_KEY, context)
    return span_context, upstream if isinstance(upstream, int) else 0


__all__ = [
    "RANK_B3",
    "RANK_BASEPLATE",
    "RANK_OTHER",
    "RANK_W3C",
    "first_value",
    "is_hex_b3_span_id",
    "is_hex_b3_trace_id",
    "parse_decimal_id",
    "parse_hex_id",
    "remote_context",
    "same_id",
    "span_and_parent",
]
