"""Baseplate's own trace headers (HTTP and THeader) as OpenTelemetry propagators.

Values are read as reddit's baseplate reads them: ids are decimal integers in the syntax of
Python's ``int()`` (``+1234`` and ``0`` included), span and parent ids below 2**64; trace,
parent and span must all be present and valid, and ``Flags``, when present, valid too, or the
request starts a new trace. ``Sampled`` other than exactly ``1``, or none at all, means
unsampled (1.x callers send ``X-Sampled`` only when sampled); the debug flag still forces
sampling. Two aliases of one field must have the same text (or, for an ``X-B3-*`` alias, the
hex form of the same id). What differs from reddit's reading, and why: a trace or span id of
``0`` starts a new trace (OpenTelemetry has no such id), and a decimal trace id of up to 128
bits is accepted (earlier releases of this project sent them).

The headers carry both the span id the callee must use (shared-span model) and its parent;
the parent travels in the extracted context under
:data:`otel_bridge.context.UPSTREAM_PARENT_KEY`. Outbound, a trace id wider than 64 bits is
written as its lower 64 bits (:func:`~otel_bridge.propagation.wire.legacy_trace_id`), the
only width legacy services read; W3C and B3 headers carry the full id.

Both flavours read baseplate 0.28's aliases (:mod:`~otel_bridge.propagation.headers`) and
forward the request's Edge-Request (:func:`otel_bridge.context.edge_request`), each in its
own encoding.
"""

from __future__ import annotations

import base64
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from otel_bridge.context import edge_request
from otel_bridge.ids import TRACE_ID_LIMIT
from otel_bridge.propagation.headers import (
    BASEPLATE_HTTP_FIELDS,
    BASEPLATE_THRIFT_FIELDS,
    EDGE_REQUEST_HTTP_HEADER,
    EDGE_REQUEST_THRIFT_HEADER,
    FieldTable,
)
from otel_bridge.propagation.wire import (
    RANK_BASEPLATE,
    first_value,
    is_hex_b3_span_id,
    is_hex_b3_trace_id,
    legacy_trace_id,
    parse_decimal_id,
    remote_context,
    same_id,
    span_and_parent,
)
from otel_bridge.semconv import flags_from_trace_state

#: The one ``Sampled`` value that means sampled, as every baseplate reads it.
SAMPLED_VALUE = "1"


class _BaseplateHeadersPropagator(TextMapPropagator):
    """Baseplate's decimal trace headers (shared by the HTTP and Thrift flavours)."""

    rank = RANK_BASEPLATE
    #: field -> header names read, the first being the one written.
    header_names: FieldTable
    #: Whether the alias names are also standard B3's (``X-B3-*`` over HTTP): hex values
    #: there are B3's, left to the B3 propagator.
    aliases_are_b3_names = False
    #: Header names written besides the trace fields.
    extra_fields: frozenset[str] = frozenset()

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        values: dict[str, str | None] = {}
        for field_name, names in self.header_names.items():
            found: str | None = None
            for name in names:
                value = first_value(getter, carrier, name)
                if value is None:
                    continue
                if found is None:
                    found = value
                elif not same_id(found, value):
                    return context  # conflicting aliases: the headers are not trusted
            values[field_name] = found

        trace_text, span_text = values["trace"], values["span"]
        if (
            self.aliases_are_b3_names
            and is_hex_b3_trace_id(trace_text)
            and is_hex_b3_span_id(span_text)
            and not self._primary_present(getter, carrier)
        ):
            return context  # standard hex B3, read by the B3 propagator
        trace_id = parse_decimal_id(trace_text, TRACE_ID_LIMIT)
        span_id = parse_decimal_id(span_text)
        parent_id = parse_decimal_id(values["parent"])
        if not trace_id or not span_id or parent_id is None:
            return context
        flags = 0
        if values["flags"] is not None:
            parsed_flags = parse_decimal_id(values["flags"])
            if parsed_flags is None:
                return context  # reddit's baseplate rejects the headers too
            flags = parsed_flags
        sampled = values["sampled"] == SAMPLED_VALUE
        return remote_context(context, trace_id, span_id, sampled, flags, parent_id)

    def _primary_present(self, getter: Getter[Any], carrier: Any) -> bool:
        return first_value(getter, carrier, self.header_names["trace"][0]) is not None

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context, parent_id = span_and_parent(context)
        if not span_context.is_valid:
            return
        names = self.header_names
        setter.set(carrier, names["trace"][0], str(legacy_trace_id(span_context.trace_id)))
        setter.set(carrier, names["parent"][0], str(parent_id))
        setter.set(carrier, names["span"][0], str(span_context.span_id))
        sampled = SAMPLED_VALUE if span_context.trace_flags.sampled else "0"
        setter.set(carrier, names["sampled"][0], sampled)
        flags = flags_from_trace_state(span_context.trace_state)
        if flags:
            setter.set(carrier, names["flags"][0], str(flags))
        self._inject_edge_request(carrier, edge_request(context), setter)

    def _inject_edge_request(
        self, carrier: CarrierT, header: bytes | None, setter: Setter[CarrierT]
    ) -> None:
        """Write the request's Edge-Request bytes in this flavour's encoding."""
        raise NotImplementedError

    @property
    def fields(self) -> set[str]:
        return {names[0] for names in self.header_names.values()} | self.extra_fields


def http_edge_request_value(header: bytes | None) -> str:
    """The ``X-Edge-Request`` value for Edge-Request bytes: padded standard base64, the
    empty string when there are none (as reddit's baseplate 1.x sends it)."""
    return base64.b64encode(header or b"").decode("ascii")


class BaseplateHTTPPropagator(_BaseplateHeadersPropagator):
    """Baseplate HTTP headers (``X-Trace`` ...) with the 0.28 ``X-B3-*`` decimal aliases.

    Inject also writes ``X-Edge-Request`` (base64 of the request's Edge-Request bytes, empty
    when there is none: 1.x services that trust headers fail requests without it).
    """

    header_names = BASEPLATE_HTTP_FIELDS
    aliases_are_b3_names = True
    extra_fields = frozenset({EDGE_REQUEST_HTTP_HEADER})

    def _inject_edge_request(
        self, carrier: CarrierT, header: bytes | None, setter: Setter[CarrierT]
    ) -> None:
        setter.set(carrier, EDGE_REQUEST_HTTP_HEADER, http_edge_request_value(header))


class BaseplateThriftPropagator(_BaseplateHeadersPropagator):
    """Baseplate THeader headers (``Trace``, ``Parent``, ``Span``, ``Sampled``, ``Flags``)
    with the 0.28 ``B3-*`` decimal aliases.

    Inject also writes ``Edge-Request`` (the raw bytes, as Latin-1 text for
    :data:`~otel_bridge.propagation.carriers.thrift_setter`) when the request has one.
    """

    header_names = BASEPLATE_THRIFT_FIELDS
    extra_fields = frozenset({EDGE_REQUEST_THRIFT_HEADER})

    def _inject_edge_request(
        self, carrier: CarrierT, header: bytes | None, setter: Setter[CarrierT]
    ) -> None:
        if header:
            setter.set(carrier, EDGE_REQUEST_THRIFT_HEADER, header.decode("latin-1"))


__all__ = [
    "SAMPLED_VALUE",
    "BaseplateHTTPPropagator",
    "BaseplateThriftPropagator",
    "http_edge_request_value",
]
