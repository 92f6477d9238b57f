"""OTLP over HTTP/protobuf to a collector, the exporter for OTel-native backends.

This is the only module importing ``opentelemetry-exporter-otlp-proto-http`` (the ``otlp``
extra). :func:`make_otlp_exporter` builds an exporter that

* posts to ``<endpoint>/v1/traces`` when the endpoint has no path (a URL with a path is used
  as given), with a timeout bounding each export including its retries;
* names the service from ``tracing.service_name`` when the tracer provider's resource does
  not name one (``unknown_service...``);
* never raises into the batch processor, and counts the spans it could not deliver.

Headers come from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` or, when that is unset or blank,
``OTEL_EXPORTER_OTLP_HEADERS`` (read through :mod:`otel_bridge.environment`); headers given
to :func:`make_otlp_exporter` are added on top. Exports, flushes and shutdown run with
OpenTelemetry instrumentation suppressed: the SDK exporter posts with ``requests``, and an
instrumented POST would otherwise be a span exported in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

from exporters._ratelimit import RateLimitedLog, rate_limit_logger
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT_MILLIS
from exporters.http import collector_url
from otel_bridge import environment
from otel_bridge.context import instrumentation_suppressed

logger = logging.getLogger(__name__)

#: Where spans go when no endpoint is configured (a local collector's OTLP/HTTP port).
DEFAULT_OTLP_TRACES_ENDPOINT = "http://localhost:4318/v1/traces"
#: The OTLP exporter's own loggers, which log every failed export and retry.
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
)
#: Path of the OTLP/HTTP traces API, appended to endpoints given without a path.
OTLP_TRACES_PATH = "/v1/traces"


def otlp_traces_url(endpoint: str) -> str:
    """Return the URL spans are posted to for a configured OTLP endpoint.

    ``host:port`` and URLs without a path get ``/v1/traces`` appended; a URL with a path is
    used as given.
    """
    return collector_url(endpoint, OTLP_TRACES_PATH, "OTLP/HTTP")


def environment_headers(environ: environment.Environ | None = None) -> dict[str, str]:
    """The export request headers the ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` variable names,
    or ``OTEL_EXPORTER_OTLP_HEADERS`` when that one is unset or blank (``key=value`` pairs
    separated by commas, values URL-encoded; names lower-cased)."""
    raw = environment.get(environment.OTEL_EXPORTER_OTLP_TRACES_HEADERS, environ)
    if raw is None:
        raw = environment.get(environment.OTEL_EXPORTER_OTLP_HEADERS, environ)
    return dict(parse_env_headers(raw, liberal=True)) if raw else {}


def _names_no_service(resource: Resource | None) -> bool:
    if resource is None:
        return True
    name = resource.attributes.get(SERVICE_NAME)
    return not name or str(name).startswith("unknown_service")


def _with_resource(span: ReadableSpan, resource: Resource) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class OTLPExporter(SpanExporter):
    """Send spans to an OTLP/HTTP collector; see :func:`make_otlp_exporter`."""

    def __init__(self, inner: SpanExporter, url: str, service_name: str | None) -> None:
        self.inner = inner
        self.url = url
        self.service_name = service_name
        #: Spans the collector did not take.
        self.dropped_spans = 0
        #: Spans the collector accepted.
        self.sent_spans = 0
        self._resources: dict[int, Resource] = {}
        self._log = RateLimitedLog(logger)

    def _named(self, spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
        if not self.service_name:
            return spans
        named: list[ReadableSpan] = []
        for span in spans:
            if not _names_no_service(span.resource):
                named.append(span)
                continue
            key = id(span.resource)
            resource = self._resources.get(key)
            if resource is None:
                base = span.resource if span.resource is not None else Resource.get_empty()
                resource = base.merge(Resource({SERVICE_NAME: self.service_name}))
                if len(self._resources) < 16:
                    self._resources[key] = resource
            named.append(_with_resource(span, resource))
        return named

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send the spans; FAILURE (never an exception) if the collector does not take them."""
        try:
            with instrumentation_suppressed():
                result = self.inner.export(self._named(spans))
        except Exception as exc:
            self._log.error("could not send %d spans to %s: %r", len(spans), self.url, exc)
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.sent_spans += len(spans)
        else:
            self.dropped_spans += len(spans)
        return result

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Delegate to the OTLP exporter."""
        try:
            with instrumentation_suppressed():
                return self.inner.force_flush(timeout_millis)
        except Exception:
            return False

    def shutdown(self) -> None:
        """Shut the OTLP exporter down."""
        try:
            with instrumentation_suppressed():
                self.inner.shutdown()
        except Exception:
            logger.exception("OTLP exporter failed to shut down")


def make_otlp_exporter(
    endpoint: str | None = None,
    timeout: float = DEFAULT_EXPORT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    service_name: str | None = None,
) -> OTLPExporter:
    """Build an OTLP/HTTP (protobuf) span exporter.

    :param endpoint: Collector URL or ``host:port``; :data:`DEFAULT_OTLP_TRACES_ENDPOINT`
        when None.
    :param timeout: Seconds one export, retries included, may take.
    :param headers: Request headers added to (and replacing) those of
        :func:`environment_headers`.
    :param service_name: ``service.name`` for spans whose resource names none.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    for name in _SDK_LOGGERS:  # a collector that is down: a line a minute, not two a second
        rate_limit_logger(name)

    url = otlp_traces_url(endpoint or DEFAULT_OTLP_TRACES_ENDPOINT)
    request_headers = environment_headers()
    request_headers.update({key.lower(): value for key, value in (headers or {}).items()})
    inner = OTLPSpanExporter(endpoint=url, timeout=timeout, headers=request_headers)
    return OTLPExporter(inner, url, service_name)
