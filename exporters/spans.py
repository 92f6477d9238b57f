"""What the exporters read from a finished span, in the terms Zipkin v1 and v2 share.

The Zipkin exporter (v2 JSON), the sidecar exporter (v1 JSON) and the console exporter
describe the same spans; the ids, timestamps, tags and annotations they write are computed
here once, so the formats cannot drift apart:

* ids in hex as legacy baseplate peers log them (64-bit trace ids stay 16 digits);
* times in microseconds, durations at least 1;
* tags from attributes: a local span's component becomes ``lc``, an ERROR status
  ``error``, a span from another instrumentation scope names its scope;
* span events as annotation values, and the remote endpoint from peer attributes.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_bridge import semconv

#: Tag holding a local span's component name (Zipkin's "local component").
TAG_LOCAL_COMPONENT = "lc"
#: Tag marking a failed span.
TAG_ERROR = "error"
#: Tag naming the instrumentation scope of spans not made through the baseplate span API.
TAG_SCOPE_NAME = "otel.scope.name"

_PEER_ADDRESS_KEYS = ("server.address", "net.peer.name", "network.peer.address", "net.peer.ip")
_PEER_PORT_KEYS = ("server.port", "net.peer.port", "network.peer.port")
_PEER_KEYS = frozenset(("peer.service", *_PEER_ADDRESS_KEYS, *_PEER_PORT_KEYS))


def local_ipv4() -> str | None:
    """Return this host's IPv4 address as resolved from its hostname, or None."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def ip_endpoint_fields(address: str) -> dict[str, str]:
    """Return ``{"ipv4": ...}`` or ``{"ipv6": ...}`` for an IP address, ``{}`` for a name."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return {}
    return {"ipv4": str(ip)} if ip.version == 4 else {"ipv6": str(ip)}


def hex_trace_id(trace_id: int) -> str:
    """Format a trace id as 16 hex digits when it fits in 64 bits, else 32."""
    return f"{trace_id:016x}" if trace_id < 2**64 else f"{trace_id:032x}"


def hex_span_id(span_id: int) -> str:
    """Format a span id as 16 hex digits."""
    return f"{span_id:016x}"


def microseconds(nanoseconds: int | None) -> int:
    """Convert an OTel timestamp (ns) to Zipkin's microseconds."""
    return (nanoseconds or 0) // 1000


def duration_microseconds(span: ReadableSpan) -> int:
    """Return a span's duration in microseconds, at least 1 (Zipkin rejects 0)."""
    start = span.start_time or 0
    end = span.end_time or start
    return max(1, (end - start) // 1000)


def is_local_root(span: ReadableSpan) -> bool:
    """Whether the span is the first span of its request in this process."""
    return span.parent is None or span.parent.is_remote


def is_shared_server_span(span: ReadableSpan) -> bool:
    """Whether a server span continues its caller's span (baseplate's shared-span model)."""
    shared = (span.attributes or {}).get(semconv.ATTR_SHARED_SPAN)
    return span.kind is SpanKind.SERVER and bool(shared)


def tag_value(value: Any) -> str:
    """Render an attribute value as a Zipkin tag string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Sequence):
        return json.dumps([v if isinstance(v, (str, int, float, bool)) else str(v) for v in value])
    return str(value)


def span_tags(span: ReadableSpan) -> dict[str, Any]:
    """Return a span's Zipkin tags with their attribute values (not yet rendered).

    The component attribute of a local span becomes ``lc``; a span with ERROR status gets
    ``error`` (its status description, or True); spans from other instrumentation scopes
    name their scope. The shared-span marker is not a tag: Zipkin v2 says ``shared``.
    """
    tags = dict(span.attributes or {})
    tags.pop(semconv.ATTR_SHARED_SPAN, None)
    if semconv.ATTR_COMPONENT in tags:
        tags[TAG_LOCAL_COMPONENT] = tags.pop(semconv.ATTR_COMPONENT)
    if span.status.status_code is StatusCode.ERROR:
        tags[TAG_ERROR] = span.status.description or True
    scope = span.instrumentation_scope
    if scope is not None and scope.name != semconv.TRACER_NAME:
        tags[TAG_SCOPE_NAME] = scope.name
    return tags


def event_annotation_value(event: Event) -> str:
    """Describe a span event as a Zipkin annotation value."""
    attributes: Mapping[str, Any] = event.attributes or {}
    if not attributes:
        return event.name
    if event.name == "exception" and "exception.type" in attributes:
        message = attributes.get("exception.message", "")
        return f"exception: {attributes['exception.type']}: {message}"
    if set(attributes) == {semconv.ATTR_LOG_PAYLOAD}:
        return f"{event.name}: {tag_value(attributes[semconv.ATTR_LOG_PAYLOAD])}"
    rendered = {key: tag_value(value) for key, value in attributes.items()}
    return f"{event.name}: {json.dumps(rendered, sort_keys=True)}"


def remote_endpoint(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Build the Zipkin remote endpoint from a span's peer attributes, if it has any."""
    if _PEER_KEYS.isdisjoint(attributes):
        return None
    endpoint: dict[str, Any] = {}
    service = attributes.get("peer.service")
    if isinstance(service, str) and service:
        endpoint["serviceName"] = service
    for key in _PEER_ADDRESS_KEYS:
        address = attributes.get(key)
        if isinstance(address, str):
            fields = ip_endpoint_fields(address)
            if fields:
                endpoint.update(fields)
                break
    for key in _PEER_PORT_KEYS:
        port = attributes.get(key)
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            endpoint["port"] = port
            break
    return endpoint or None
