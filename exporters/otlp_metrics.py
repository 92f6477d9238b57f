"""Metrics over OTLP/HTTP (protobuf) to a collector, exported periodically in the background.

The metrics counterpart of :mod:`exporters.otlp`; like it, the only module that imports
``opentelemetry-exporter-otlp-proto-http`` for its signal (the ``otlp`` extra).
:func:`make_otlp_metrics_reader` builds a periodic reader around an
:class:`OTLPMetricsExporter` that

* posts to ``<endpoint>/v1/metrics`` when the endpoint has no path (a URL with a path is
  used as given), with a timeout bounding each export including its retries;
* exports the process's aggregates (:class:`exporters.otel_metrics.Aggregates`) with the
  SDK's own metrics, all cumulative;
* never raises into the reader, and counts the data points it could not deliver (a
  collector that is down costs the requests nothing: they only add to in-memory
  aggregates, which the next export that gets through carries, being cumulative);
* exports with OpenTelemetry instrumentation suppressed.

Headers come from ``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` or, when that is unset or blank,
``OTEL_EXPORTER_OTLP_HEADERS`` (read through :mod:`otel_bridge.environment`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.util.re import parse_env_headers

from exporters._ratelimit import RateLimitedLog
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT_MILLIS
from exporters.http import collector_url
from exporters.otel_metrics import AggregatingReader
from otel_bridge import environment
from otel_bridge.context import instrumentation_suppressed

logger = logging.getLogger(__name__)

#: Where metrics go when no endpoint is configured (a local collector's OTLP/HTTP port).
DEFAULT_OTLP_METRICS_ENDPOINT = "http://localhost:4318/v1/metrics"
#: Path of the OTLP/HTTP metrics API, appended to endpoints given without a path.
OTLP_METRICS_PATH = "/v1/metrics"
#: Seconds between two exports unless configured (the OpenTelemetry SDK's default).
DEFAULT_EXPORT_INTERVAL = 60.0

# Everything is exported cumulative, as the aggregates of exporters.otel_metrics are (and
# whatever OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE says).
_CUMULATIVE: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}


def otlp_metrics_url(endpoint: str) -> str:
    """Return the URL metrics are posted to for a configured OTLP endpoint.

    ``host:port`` and URLs without a path get ``/v1/metrics`` appended; a URL with a path is
    used as given. Raises :exc:`ValueError` for what is not an http(s) endpoint.
    """
    return collector_url(endpoint, OTLP_METRICS_PATH, "OTLP/HTTP")


def environment_headers(environ: environment.Environ | None = None) -> dict[str, str]:
    """The export request headers ``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` names, or
    ``OTEL_EXPORTER_OTLP_HEADERS`` when that one is unset or blank (``key=value`` pairs
    separated by commas, values URL-encoded; names lower-cased)."""
    raw = environment.get(environment.OTEL_EXPORTER_OTLP_METRICS_HEADERS, environ)
    if raw is None:
        raw = environment.get(environment.OTEL_EXPORTER_OTLP_HEADERS, environ)
    return dict(parse_env_headers(raw, liberal=True)) if raw else {}


def _data_points(metrics_data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in metrics_data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


class OTLPMetricsExporter(MetricExporter):
    """Send metrics to an OTLP/HTTP collector, counting what was and was not delivered;
    see :func:`make_otlp_metrics_reader`."""

    def __init__(self, inner: MetricExporter, url: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.url = url
        #: Data points the collector accepted.
        self.exported_points = 0
        #: Data points the collector did not take.
        self.failed_points = 0
        #: Exports that failed.
        self.failed_exports = 0
        self._log = RateLimitedLog(logger)

    def export(
        self,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,
        **kwargs: Any,
    ) -> MetricExportResult:
        """Send the metrics; FAILURE (never an exception) if the collector does not take them."""
        try:
            with instrumentation_suppressed():
                result = self.inner.export(metrics_data, timeout_millis=timeout_millis)
        except Exception as exc:
            result = MetricExportResult.FAILURE
            self._log.error("could not send metrics to %s: %r", self.url, exc)
        points = _data_points(metrics_data)
        if result is MetricExportResult.SUCCESS:
            self.exported_points += points
        else:
            self.failed_points += points
            self.failed_exports += 1
            self._log.warning(
                "metrics export to %s failed (%d exports so far)", self.url, self.failed_exports
            )
        return result

    def force_flush(self, timeout_millis: float = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Delegate to the OTLP exporter."""
        try:
            with instrumentation_suppressed():
                return bool(self.inner.force_flush(timeout_millis))
        except Exception:
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the OTLP exporter down."""
        try:
            with instrumentation_suppressed():
                self.inner.shutdown(timeout_millis=timeout_millis)
        except Exception:
            logger.exception("OTLP metrics exporter failed to shut down")

    def telemetry_counts(self) -> dict[str, int]:
        """Data points exported (``metrics.exported``) and not (``metrics.failed``)."""
        return {"metrics.exported": self.exported_points, "metrics.failed": self.failed_points}


def make_otlp_metrics_exporter(
    endpoint: str | None = None,
    timeout: float = DEFAULT_EXPORT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> OTLPMetricsExporter:
    """Build an OTLP/HTTP (protobuf) metric exporter.

    :param endpoint: Collector URL or ``host:port``; :data:`DEFAULT_OTLP_METRICS_ENDPOINT`
        when None.
    :param timeout: Seconds one export, retries included, may take.
    :param headers: Request headers added to (and replacing) those of
        :func:`environment_headers`.
    """
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    url = otlp_metrics_url(endpoint or DEFAULT_OTLP_METRICS_ENDPOINT)
    request_headers = environment_headers()
    request_headers.update({key.lower(): value for key, value in (headers or {}).items()})
    inner = OTLPMetricExporter(
        endpoint=url, timeout=timeout, headers=request_headers, preferred_temporality=_CUMULATIVE
    )
    return OTLPMetricsExporter(inner, url)


class OTLPMetricsReader(AggregatingReader, PeriodicExportingMetricReader):
    """The SDK's periodic reader, carrying the process's aggregates too."""


def make_otlp_metrics_reader(
    endpoint: str | None = None,
    interval: float = DEFAULT_EXPORT_INTERVAL,
    timeout: float = DEFAULT_EXPORT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> tuple[OTLPMetricsReader, OTLPMetricsExporter]:
    """A periodic reader exporting every ``interval`` seconds to an OTLP collector, and its
    exporter (:func:`make_otlp_metrics_exporter`). The reader's background thread (a greenlet
    under gevent) collects and exports; a forked child starts its own."""
    exporter = make_otlp_metrics_exporter(endpoint, timeout, headers)
    reader = OTLPMetricsReader(
        exporter,
        export_interval_millis=interval * 1000,
        export_timeout_millis=timeout * 1000,
    )
    return reader, exporter


__all__ = [
    "DEFAULT_EXPORT_INTERVAL",
    "DEFAULT_OTLP_METRICS_ENDPOINT",
    "OTLP_METRICS_PATH",
    "OTLPMetricsExporter",
    "OTLPMetricsReader",
    "environment_headers",
    "make_otlp_metrics_exporter",
    "make_otlp_metrics_reader",
    "otlp_metrics_url",
]
