"""What every format shares: reading a field off the wire and turning it into a context.

Extract side: the first value of a header, decimal and hex ids within
:mod:`otel_bridge.ids`' bounds, and the remote span context a propagator puts in the
extracted context (with the upstream parent and the "sampling undecided" mark of
:mod:`otel_bridge.context`). Inject side: the span and parent id to write. And the precedence
:class:`~otel_bridge.propagation.composite.CompositePropagator` applies when formats disagree.
"""

from __future__ import annotations

import re
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
# What Python's int() takes as a decimal number, the way reddit's baseplate reads ids: an
# optional sign, ASCII digits, single underscores between digits ("+1234", "0", "1_000").
_DECIMAL = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*")
# Longer than any id below TRACE_ID_LIMIT (sign and underscores included): not converted.
_MAX_DECIMAL_LENGTH = 80
# Baseplate headers carry 64-bit ids (SPAN_ID_LIMIT): wider trace ids are sent truncated.
_LEGACY_MASK = SPAN_ID_LIMIT - 1


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
    """Parse a decimal id from 0 to below ``limit``; None when missing or invalid.

    The syntax is what reddit's baseplate accepts (Python's ``int()`` on ASCII text): an
    optional sign, digits, single underscores between digits, so ``+1234``, ``0`` and
    ``-0`` are ids, ``-1``, ``0x10``, ``1.5`` and ``1e5`` are not.
    """
    if text is None or len(text) > _MAX_DECIMAL_LENGTH or not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if 0 <= value < limit else None


def legacy_trace_id(trace_id: int) -> int:
    """The trace id as baseplate headers carry it: its lower 64 bits.

    Legacy baseplate services parse trace ids as 64-bit integers and start a new trace on a
    wider one; sending the lower 64 bits of a 128-bit id (the convention of 64-bit Zipkin
    systems) keeps them in the trace, while W3C and B3 headers carry the full id.
    """
    return trace_id & _LEGACY_MASK


def is_legacy_form_of(legacy: int, trace_id: int) -> bool:
    """Whether ``legacy`` (read from baseplate headers) is ``trace_id`` or its lower 64 bits."""
    return legacy == trace_id or (legacy < SPAN_ID_LIMIT and legacy == trace_id & _LEGACY_MASK)


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
    """Whether two header values for one field agree: the same text, as reddit's baseplate
    compares them, or (for the second, an alias that standard B3 also uses) the hex form of
    the first's decimal id."""
    if first == second:
        return True
    as_decimal = parse_decimal_id(first, TRACE_ID_LIMIT)
    return as_decimal is not None and parse_hex_id(second, (16, 32)) == as_decimal


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


def with_trace_id(context: Context, trace_id: int) -> Context:
    """``context`` with its (remote) span's trace id replaced by ``trace_id``; the rest of
    the span context and every other context value kept."""
    span_context = trace.get_current_span(context).get_span_context()
    widened = SpanContext(
        trace_id=trace_id,
        span_id=span_context.span_id,
        is_remote=span_context.is_remote,
        trace_flags=span_context.trace_flags,
        trace_state=span_context.trace_state,
    )
    return trace.set_span_in_context(NonRecordingSpan(widened), context)


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
    "is_legacy_form_of",
    "legacy_trace_id",
    "parse_decimal_id",
    "parse_hex_id",
    "remote_context",
    "same_id",
    "span_and_parent",
    "with_trace_id",
]
