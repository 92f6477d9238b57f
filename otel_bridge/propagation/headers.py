"""Every header name baseplate reads or writes for traces, the edge context and the caller.

This module is the one place a trace, Edge-Request or User-Agent header name is spelled;
propagators, carriers and the framework integrations import the names from here. HTTP names
are case-insensitive on the wire; THeader names are written with the case given here and read
case-insensitively.

The field tables map a trace field to the header names read for it, the first of which is the
one written. The other names are the aliases baseplate 0.28 accepted, in the same decimal
encoding; two aliases with differing values make the headers ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

# -- baseplate HTTP (Pyramid, Kombu messages) -------------------------------------------

#: Trace id, decimal.
HTTP_TRACE = "X-Trace"
#: Parent span id, decimal (``0`` for a root).
HTTP_PARENT = "X-Parent"
#: Span id the callee takes (shared-span model), decimal.
HTTP_SPAN = "X-Span"
#: ``1`` or ``0``.
HTTP_SAMPLED = "X-Sampled"
#: Flags, decimal; bit 1 is debug.
HTTP_FLAGS = "X-Flags"

# -- multi-header B3 (hex); over HTTP also baseplate 0.28's decimal aliases ---------------

B3_TRACE_ID = "X-B3-TraceId"
B3_PARENT_SPAN_ID = "X-B3-ParentSpanId"
B3_SPAN_ID = "X-B3-SpanId"
B3_SAMPLED = "X-B3-Sampled"
B3_FLAGS = "X-B3-Flags"
#: Single-header B3: ``trace-span-sampled-parent``.
B3_SINGLE = "b3"

# -- baseplate THeader (Thrift) -----------------------------------------------------------

THRIFT_TRACE = "Trace"
THRIFT_PARENT = "Parent"
THRIFT_SPAN = "Span"
THRIFT_SAMPLED = "Sampled"
THRIFT_FLAGS = "Flags"

#: THeader aliases baseplate 0.28 read (decimal, like the HTTP ``X-B3-*`` aliases).
THRIFT_B3_TRACE_ID = "B3-TraceId"
THRIFT_B3_PARENT_SPAN_ID = "B3-ParentSpanId"
THRIFT_B3_SPAN_ID = "B3-SpanId"
THRIFT_B3_SAMPLED = "B3-Sampled"
THRIFT_B3_FLAGS = "B3-Flags"

# -- edge context and caller ----------------------------------------------------------------

#: HTTP header carrying the Edge-Request bytes in standard base64.
EDGE_REQUEST_HTTP_HEADER = "X-Edge-Request"
#: THeader header carrying the raw Edge-Request bytes.
EDGE_REQUEST_THRIFT_HEADER = "Edge-Request"
#: The caller's name: the service name on THeader calls.
USER_AGENT_HEADER = "User-Agent"

# THeader transports take bytes names: the same names, encoded once here.
#: :data:`EDGE_REQUEST_THRIFT_HEADER` as a THeader transport spells it.
EDGE_REQUEST_THRIFT_HEADER_BYTES = EDGE_REQUEST_THRIFT_HEADER.encode("ascii")
#: :data:`USER_AGENT_HEADER` as a THeader transport spells it.
USER_AGENT_THRIFT_HEADER_BYTES = USER_AGENT_HEADER.encode("ascii")

# -- field tables -------------------------------------------------------------------------

FieldTable = Mapping[str, tuple[str, ...]]

#: Baseplate HTTP trace fields -> header names read (the first is written).
BASEPLATE_HTTP_FIELDS: FieldTable = {
    "trace": (HTTP_TRACE, B3_TRACE_ID),
    "parent": (HTTP_PARENT, B3_PARENT_SPAN_ID),
    "span": (HTTP_SPAN, B3_SPAN_ID),
    "sampled": (HTTP_SAMPLED, B3_SAMPLED),
    "flags": (HTTP_FLAGS, B3_FLAGS),
}

#: Baseplate THeader trace fields -> header names read (the first is written).
BASEPLATE_THRIFT_FIELDS: FieldTable = {
    "trace": (THRIFT_TRACE, THRIFT_B3_TRACE_ID),
    "parent": (THRIFT_PARENT, THRIFT_B3_PARENT_SPAN_ID),
    "span": (THRIFT_SPAN, THRIFT_B3_SPAN_ID),
    "sampled": (THRIFT_SAMPLED, THRIFT_B3_SAMPLED),
    "flags": (THRIFT_FLAGS, THRIFT_B3_FLAGS),
}

#: Multi-header B3 names, the order they are written in.
B3_MULTI_HEADERS = (B3_TRACE_ID, B3_SPAN_ID, B3_PARENT_SPAN_ID, B3_SAMPLED, B3_FLAGS)

#: Lower-case names that baseplate services read over HTTP as aliases of their own fields
#: (the ``X-B3-*`` names): a hex value written there would contradict the decimal one.
HTTP_ALIASES = frozenset(
    name.lower() for names in BASEPLATE_HTTP_FIELDS.values() for name in names[1:]
)

__all__ = [
    "B3_FLAGS",
    "B3_MULTI_HEADERS",
    "B3_PARENT_SPAN_ID",
    "B3_SAMPLED",
    "B3_SINGLE",
    "B3_SPAN_ID",
    "B3_TRACE_ID",
    "BASEPLATE_HTTP_FIELDS",
    "BASEPLATE_THRIFT_FIELDS",
    "EDGE_REQUEST_HTTP_HEADER",
    "EDGE_REQUEST_THRIFT_HEADER",
    "EDGE_REQUEST_THRIFT_HEADER_BYTES",
    "HTTP_ALIASES",
    "HTTP_FLAGS",
    "HTTP_PARENT",
    "HTTP_SAMPLED",
    "HTTP_SPAN",
    "HTTP_TRACE",
    "THRIFT_B3_FLAGS",
    "THRIFT_B3_PARENT_SPAN_ID",
    "THRIFT_B3_SAMPLED",
    "THRIFT_B3_SPAN_ID",
    "THRIFT_B3_TRACE_ID",
    "THRIFT_FLAGS",
    "THRIFT_PARENT",
    "THRIFT_SAMPLED",
    "THRIFT_SPAN",
    "THRIFT_TRACE",
    "USER_AGENT_HEADER",
    "USER_AGENT_THRIFT_HEADER_BYTES",
    "FieldTable",
]
