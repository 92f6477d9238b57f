"""Standard B3, multi-header (``X-B3-*``, hex) and single-header (``b3``).

Unlike OpenTelemetry's own B3 propagators, these keep the debug flag (baseplate's ``Flags``
bit 1) and write 64-bit trace ids as 16 hex digits, as legacy peers expect. B3 without a
sampling state ("deferred") leaves the decision to ``tracing.sample_rate``
(:data:`otel_bridge.context.SAMPLING_UNDECIDED_KEY`).
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from otel_bridge.ids import SPAN_ID_LIMIT
from otel_bridge.propagation.headers import (
    B3_FLAGS,
    B3_MULTI_HEADERS,
    B3_PARENT_SPAN_ID,
    B3_SAMPLED,
    B3_SINGLE,
    B3_SPAN_ID,
    B3_TRACE_ID,
)
from otel_bridge.propagation.wire import (
    RANK_B3,
    first_value,
    parse_hex_id,
    remote_context,
    span_and_parent,
)
from otel_bridge.semconv import FLAG_DEBUG, flags_from_trace_state

_TRACE_ID_WIDTHS = (16, 32)
_SPAN_ID_WIDTHS = (16,)


def _trace_hex(trace_id: int) -> str:
    return format(trace_id, "016x") if trace_id < SPAN_ID_LIMIT else format(trace_id, "032x")


class B3MultiPropagator(TextMapPropagator):
    """Standard multi-header B3 (hex ids) that keeps the debug flag and 64-bit trace ids."""

    rank = RANK_B3

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        trace_id = parse_hex_id(first_value(getter, carrier, B3_TRACE_ID), _TRACE_ID_WIDTHS)
        span_id = parse_hex_id(first_value(getter, carrier, B3_SPAN_ID), _SPAN_ID_WIDTHS)
        if not trace_id or not span_id:
            return context
        sampled_text = first_value(getter, carrier, B3_SAMPLED)
        flags = FLAG_DEBUG if first_value(getter, carrier, B3_FLAGS) == "1" else 0
        if sampled_text == "d":
            flags = FLAG_DEBUG
        sampled = sampled_text in ("1", "true", "d")
        # X-B3-ParentSpanId is informational: the extracted span is the caller's own span.
        # No X-B3-Sampled: B3's "deferred", the receiver decides.
        return remote_context(
            context, trace_id, span_id, sampled, flags, undecided=sampled_text is None
        )

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context, parent_id = span_and_parent(context)
        if not span_context.is_valid:
            return
        setter.set(carrier, B3_TRACE_ID, _trace_hex(span_context.trace_id))
        setter.set(carrier, B3_SPAN_ID, format(span_context.span_id, "016x"))
        if parent_id:
            setter.set(carrier, B3_PARENT_SPAN_ID, format(parent_id, "016x"))
        if flags_from_trace_state(span_context.trace_state) & FLAG_DEBUG:
            setter.set(carrier, B3_FLAGS, "1")
        else:
            setter.set(carrier, B3_SAMPLED, "1" if span_context.trace_flags.sampled else "0")

    @property
    def fields(self) -> set[str]:
        return set(B3_MULTI_HEADERS)


class B3SinglePropagator(TextMapPropagator):
    """Single-header B3 (``b3: trace-span-sampled-parent``) keeping debug and 64-bit ids."""

    rank = RANK_B3

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        text = first_value(getter, carrier, B3_SINGLE)
        if not text:
            return context
        parts = text.split("-")
        if len(parts) < 2 or len(parts) > 4:
            return context
        trace_id = parse_hex_id(parts[0], _TRACE_ID_WIDTHS)
        span_id = parse_hex_id(parts[1], _SPAN_ID_WIDTHS)
        if not trace_id or not span_id:
            return context
        sampled_text = parts[2] if len(parts) > 2 else None
        if sampled_text not in (None, "0", "1", "d"):
            return context
        flags = FLAG_DEBUG if sampled_text == "d" else 0
        sampled = sampled_text in ("1", "d")
        return remote_context(
            context, trace_id, span_id, sampled, flags, undecided=sampled_text is None
        )

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context, parent_id = span_and_parent(context)
        if not span_context.is_valid:
            return
        if flags_from_trace_state(span_context.trace_state) & FLAG_DEBUG:
            decision = "d"
        else:
            decision = "1" if span_context.trace_flags.sampled else "0"
        value = f"{_trace_hex(span_context.trace_id)}-{span_context.span_id:016x}-{decision}"
        if parent_id:
            value += f"-{parent_id:016x}"
        setter.set(carrier, B3_SINGLE, value)

    @property
    def fields(self) -> set[str]:
        return {B3_SINGLE}


__all__ = ["B3MultiPropagator", "B3SinglePropagator"]
