"""Zipkin v2 JSON span exporter, faithful to baseplate's trace model.

Differences from the stock ``opentelemetry-exporter-zipkin-json`` exporter:

* ``debug`` is set only for traces carrying baseplate's debug flag, not for every sampled span.
* 64-bit trace ids stay 16 hex digits (128-bit ones are 32), so ids match what legacy
  baseplate peers log and propagate.
* a server span that reuses its caller's span id (baseplate's shared-span model, marked by
  the ``baseplate.shared_span`` attribute) is marked ``shared``.
* local spans carry their component as the ``lc`` tag; span events become annotations;
  a span with ERROR status gets the ``error`` tag.
* it never raises: a collector that is down, hangs or answers with an error makes ``export``
  return ``FAILURE`` within the timeout; failures are logged (rate-limited) and the lost
  spans are counted in :attr:`ZipkinExporter.dropped_spans`.

The helpers at the top (ids, microseconds, kinds, tags) are shared with the sidecar exporter,
which writes the Zipkin v1 form of the same spans.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from exporters._http import JsonPoster
from exporters._ratelimit import RateLimitedLog
from otel_bridge import semconv

logger = logging.getLogger(__name__)

#: Path of the Zipkin v2 collection API, appended to endpoints given without a path.
ZIPKIN_V2_SPANS_PATH = "/api/v2/spans"
#: Default seconds allowed for each network operation of an export.
DEFAULT_TIMEOUT = 5.0

#: Tag holding a local span's component name (Zipkin's "local component").
TAG_LOCAL_COMPONENT = "lc"
#: Tag marking a failed span.
TAG_ERROR = "error"
#: Tag naming the instrumentation scope of spans not made through the baseplate span API.
TAG_SCOPE_NAME = "otel.scope.name"

_KIND_NAMES = {
    SpanKind.SERVER: "SERVER",
    SpanKind.CLIENT: "CLIENT",
    SpanKind.PRODUCER: "PRODUCER",
    SpanKind.CONSUMER: "CONSUMER",
}


def zipkin_spans_url(endpoint: str) -> str:
    """Return the URL spans are POSTed to for a configured Zipkin endpoint.

    ``host:port`` and URLs without a path get ``/api/v2/spans`` appended
    (``zipkin:9411`` -> ``http://zipkin:9411/api/v2/spans``); a URL with a path is used as
    given, so collectors mounted elsewhere can be reached.
    """
    endpoint = endpoint.strip()
    if not endpoint:
        raise ValueError("empty Zipkin endpoint")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not a Zipkin endpoint: {endpoint!r}")
    _ = parsed.port  # raises ValueError for a malformed port
    if parsed.path in ("", "/"):
        return urllib.parse.urlunsplit(parsed._replace(path=ZIPKIN_V2_SPANS_PATH))
    return endpoint


def local_ipv4() -> str | None:
    """Return this host's IPv4 address as resolved from its hostname, or None."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


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


_PEER_ADDRESS_KEYS = ("server.address", "net.peer.name", "network.peer.address", "net.peer.ip")
_PEER_PORT_KEYS = ("server.port", "net.peer.port", "network.peer.port")
_PEER_KEYS = frozenset(("peer.service", *_PEER_ADDRESS_KEYS, *_PEER_PORT_KEYS))


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


def _ip_endpoint_fields(address: str) -> dict[str, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return {}
    return {"ipv4": str(ip)} if ip.version == 4 else {"ipv6": str(ip)}


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
            fields = _ip_endpoint_fields(address)
            if fields:
                endpoint.update(fields)
                break
    for key in _PEER_PORT_KEYS:
        port = attributes.get(key)
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            endpoint["port"] = port
            break
    return endpoint or None


def encode_v2_span(
    span: ReadableSpan, local_endpoint: Mapping[str, Any], max_tag_value_length: int | None = None
) -> dict[str, Any]:
    """Return the Zipkin v2 JSON object for one finished span."""
    context = span.context
    assert context is not None
    encoded: dict[str, Any] = {
        "traceId": hex_trace_id(context.trace_id),
        "id": hex_span_id(context.span_id),
        "name": span.name,
        "timestamp": max(1, microseconds(span.start_time)),
        "duration": duration_microseconds(span),
        "localEndpoint": dict(local_endpoint),
    }
    if span.parent is not None:
        encoded["parentId"] = hex_span_id(span.parent.span_id)
    kind = _KIND_NAMES.get(span.kind)
    if kind is not None:
        encoded["kind"] = kind
    tags = span_tags(span)
    remote = remote_endpoint(tags)
    if remote is not None:
        encoded["remoteEndpoint"] = remote
    if span.events:
        encoded["annotations"] = [
            {"timestamp": microseconds(event.timestamp), "value": event_annotation_value(event)}
            for event in span.events
        ]
    tags = {key: tag_value(value) for key, value in tags.items()}
    if max_tag_value_length is not None:
        tags = {key: value[:max_tag_value_length] for key, value in tags.items()}
    if tags:
        encoded["tags"] = tags
    if semconv.is_debug(context):
        encoded["debug"] = True
    if is_shared_server_span(span):
        encoded["shared"] = True
    return encoded


class ZipkinExporter(SpanExporter):
    """Send spans to a Zipkin collector as a Zipkin v2 JSON list.

    :param service_name: ``localEndpoint.serviceName`` of every span (``tracing.service_name``).
    :param endpoint: ``host:port`` or URL of the collector; see :func:`zipkin_spans_url`.
    :param timeout: Seconds allowed for each network operation of an export.
    :param local_ipv4: ``localEndpoint.ipv4``; resolved from the hostname when not given.
    :param max_tag_value_length: Truncate tag values to this many characters.
    """

    def __init__(
        self,
        service_name: str,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        local_ipv4: str | None = None,
        max_tag_value_length: int | None = None,
    ) -> None:
        self.service_name = service_name
        self.url = zipkin_spans_url(endpoint)
        self.timeout = timeout
        self.max_tag_value_length = max_tag_value_length
        self.local_endpoint: dict[str, Any] = {"serviceName": service_name}
        ipv4 = local_ipv4 if local_ipv4 is not None else _local_ipv4_or_none()
        if ipv4:
            self.local_endpoint["ipv4"] = ipv4
        #: Spans that could not be delivered (collector down, slow or refusing them).
        self.dropped_spans = 0
        #: Spans the collector accepted.
        self.sent_spans = 0
        self._poster = JsonPoster(self.url, timeout, user_agent="baseplate-zipkin-exporter")
        self._log = RateLimitedLog(logger)
        self._shut_down = False

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """Return the request body for ``spans``: a JSON list of Zipkin v2 spans."""
        encoded = [
            encode_v2_span(span, self.local_endpoint, self.max_tag_value_length) for span in spans
        ]
        return json.dumps(encoded, separators=(",", ":")).encode("utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """POST the spans; return FAILURE (never raise) if the collector does not take them."""
        if not spans:
            return SpanExportResult.SUCCESS
        if self._shut_down:
            self.dropped_spans += len(spans)
            return SpanExportResult.FAILURE
        try:
            body = self.encode(spans)
            status = self._poster.post(body)
        except Exception as exc:
            self.dropped_spans += len(spans)
            self._log.error("could not send %d spans to %s: %r", len(spans), self.url, exc)
            return SpanExportResult.FAILURE
        if 200 <= status < 300:
            self.sent_spans += len(spans)
            return SpanExportResult.SUCCESS
        self.dropped_spans += len(spans)
        self._log.error(
            "Zipkin collector %s answered %d; dropped %d spans", self.url, status, len(spans)
        )
        return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here; always True."""
        return True

    def shutdown(self) -> None:
        """Close the connection; later exports fail and count their spans as dropped."""
        self._shut_down = True
        self._poster.close()


def _local_ipv4_or_none() -> str | None:
    address = local_ipv4()
    return address if address and _ip_endpoint_fields(address).get("ipv4") else None
