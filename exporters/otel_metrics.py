"""Request metrics as OpenTelemetry metrics: a span processor, in-process aggregates, a reader.

:class:`SpanMetricsProcessor` is the OpenTelemetry counterpart of
:class:`exporters.statsd.StatsdSpanProcessor`. For every ending span of the ``baseplate``
instrumentation scope it records, in the metrics of :class:`SpanInstruments` (all in the
instrumentation scope ``baseplate``):

* ``baseplate.span.duration`` (histogram, seconds) for server, client and local spans, with
  the attributes ``baseplate.span.kind`` (``server``, ``client`` or ``local``),
  ``baseplate.span.name``, ``baseplate.success`` (server and client spans: false when the
  span's status is ERROR) and, for local spans, ``baseplate.component_name``. The statsd
  timers ``server.<name>``, ``clients.<name>`` and ``<component>.<name>``;
* ``baseplate.span.calls`` (counter) for server and client spans, with the same attributes:
  the statsd counters ``<timer>.success`` and ``<timer>.failure``;
* ``baseplate.span.errors`` (counter) for each ``error.object`` a client span logged, with
  ``error.type`` (the payload's class name) and ``baseplate.span.name``: the statsd counters
  ``errors.<class>``;
* where an OpenTelemetry semantic convention exists, its instrument too:
  ``http.server.request.duration`` for server spans and ``http.client.request.duration`` for
  client spans that carry an HTTP method (the Pyramid integration's server spans, the Vault
  client's calls), with ``http.request.method``, ``http.response.status_code``,
  ``url.scheme``, ``error.type`` (failed requests) and ``baseplate.span.name``.

A local span without a component name records nothing, as with statsd. Vendor spans are not
measured (their names are unbounded), and unsampled spans are: they are recording.

Aggregation happens in process: a measurement is an addition to an in-memory aggregate
(:class:`Aggregates`, cumulative, keyed by prepared attribute tuples: the SDK's synchronous
instruments validate and hash the attributes of every measurement, ten times the cost), and
the meter provider's reader (an :class:`AggregatingReader`) exports (OTLP) or serves
(Prometheus) them as OpenTelemetry Sums, Histograms and Gauges with the SDK's own metrics,
on its own schedule, never on the request path. :class:`MetricsPipeline` is one meter
provider with its reader and aggregates, shared by every client of the process configured
for the same destination (:func:`shared_pipeline`). This module does not depend on
``baseplate``.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import math
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from exporters._ratelimit import RateLimitedLog
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT_MILLIS
from otel_bridge.semconv import (
    ATTR_COMPONENT,
    ATTR_LOG_PAYLOAD_TYPE,
    EVENT_ERROR_OBJECT,
    TRACER_NAME,
    is_baseplate_span,
)

logger = logging.getLogger(__name__)

#: Name of the meter (instrumentation scope) every baseplate metric is recorded with.
METER_NAME = TRACER_NAME
_SCOPE = InstrumentationScope(METER_NAME)

#: Histogram of the duration of every measured span, in seconds.
SPAN_DURATION = "baseplate.span.duration"
#: Counter of finished server and client spans, by outcome.
SPAN_CALLS = "baseplate.span.calls"
#: Counter of the ``error.object`` events client spans logged, by class.
SPAN_ERRORS = "baseplate.span.errors"
#: The semantic conventions' HTTP server request duration (seconds).
HTTP_SERVER_DURATION = "http.server.request.duration"
#: The semantic conventions' HTTP client request duration (seconds).
HTTP_CLIENT_DURATION = "http.client.request.duration"

#: Attribute: ``server``, ``client`` or ``local``.
ATTR_SPAN_KIND = "baseplate.span.kind"
#: Attribute: the span's name (route, ``<context attribute>.<method>``, local span name).
ATTR_SPAN_NAME = "baseplate.span.name"
#: Attribute: whether a server or client span ended without error.
ATTR_SUCCESS = "baseplate.success"
#: Attribute: a local span's component name (the span attribute of the same name).
ATTR_COMPONENT_NAME = ATTR_COMPONENT
#: Attribute (semantic conventions): the class of error, or the failing HTTP status code.
ATTR_ERROR_TYPE = "error.type"
#: Attribute (semantic conventions): the HTTP request method, or ``_OTHER``.
ATTR_HTTP_METHOD = "http.request.method"
#: Attribute (semantic conventions): the HTTP response status code.
ATTR_HTTP_STATUS = "http.response.status_code"
#: Attribute (semantic conventions): ``http`` or ``https``.
ATTR_URL_SCHEME = "url.scheme"

#: The values of :data:`ATTR_SPAN_KIND`.
KIND_SERVER, KIND_CLIENT, KIND_LOCAL = "server", "client", "local"

#: Bucket bounds (seconds) of the duration histograms: the semantic conventions' advice for
#: ``http.server.request.duration``.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

_SERVER_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)
_CLIENT_KINDS = (SpanKind.CLIENT, SpanKind.PRODUCER)
# Span attributes the HTTP instruments read: baseplate's tags and the current conventions.
_SPAN_HTTP_METHOD = ("http.method", "http.request.method")
_SPAN_HTTP_STATUS = ("http.status_code", "http.response.status_code")
_SPAN_HTTP_URL = ("http.url", "url.full")
_KNOWN_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
_EXCEPTION_EVENT = "exception"
_EXCEPTION_TYPE = "exception.type"

#: Unfinished spans and announced requests remembered at most (each), to bound memory.
DEFAULT_MAX_OPEN_SPANS = 100_000
DEFAULT_MAX_PENDING_REQUESTS = 10_000
_ATTRIBUTES_CACHE_SIZE = 4096


def _first(attributes: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _status_code(value: Any) -> int | None:
    try:
        code = int(value)
    except (TypeError, ValueError):
        return None
    return code if 100 <= code <= 999 else None


def _exception_type(span: ReadableSpan) -> str | None:
    for event in span.events:
        if event.name == _EXCEPTION_EVENT:
            kind = (event.attributes or {}).get(_EXCEPTION_TYPE)
            if kind:
                return str(kind)
    return None


# -- aggregation in process ---------------------------------------------------------------------

#: The attributes of one series, as ``(key, value)`` pairs in a fixed order (hashable).
AttributesKey = tuple[tuple[str, Any], ...]

#: Series one metric may hold; measurements for more go to one overflow series (attribute
#: ``otel.metric.overflow``), as the OpenTelemetry SDK's cardinality limit does.
DEFAULT_MAX_SERIES = 2000
_OVERFLOW: AttributesKey = (("otel.metric.overflow", True),)
#: The OpenTelemetry SDK's default histogram bucket bounds.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
    7500.0, 10000.0,
)  # fmt: skip


def attributes_key(attributes: Mapping[str, Any] | None = None) -> AttributesKey:
    """The key of the series with these attributes (their order is part of the key: build
    keys for one metric in one order)."""
    return tuple(attributes.items()) if attributes else ()


class _HistogramSeries:
    __slots__ = ("bucket_counts", "count", "maximum", "minimum", "total")

    def __init__(self, buckets: int) -> None:
        self.bucket_counts = [0] * buckets
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf


class _Aggregate:
    """What the three kinds of aggregate share: a name, a unit, a description, the series by
    attributes, and the lock of their :class:`Aggregates`."""

    def __init__(self, owner: Aggregates, name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._owner = owner
        self._lock = owner.lock
        self.series: dict[AttributesKey, Any] = {}

    def _key(self, key: AttributesKey) -> AttributesKey:
        # called with the lock held, for a key not in self.series yet
        return key if len(self.series) < self._owner.max_series else _OVERFLOW


class SumAggregate(_Aggregate):
    """A cumulative sum per series (a counter): exported as a monotonic OpenTelemetry Sum."""

    def add(self, amount: float, key: AttributesKey = ()) -> None:
        """Add ``amount`` (not negative: the caller checks) to the series ``key``."""
        with self._lock:
            series = self.series
            if key not in series:
                key = self._key(key)
            series[key] = series.get(key, 0) + amount

    def data(self, start: int, now: int) -> Sum:
        return Sum(
            data_points=[
                NumberDataPoint(dict(key), start, now, value) for key, value in self.series.items()
            ],
            aggregation_temporality=AggregationTemporality.CUMULATIVE,
            is_monotonic=True,
        )


class GaugeAggregate(_Aggregate):
    """The last value set per series: exported as an OpenTelemetry Gauge."""

    def set(self, value: float, key: AttributesKey = ()) -> None:
        """Make ``value`` the value of the series ``key``."""
        with self._lock:
            if key not in self.series:
                key = self._key(key)
            self.series[key] = value

    def data(self, start: int, now: int) -> Gauge:
        return Gauge(
            data_points=[
                NumberDataPoint(dict(key), start, now, value) for key, value in self.series.items()
            ]
        )


class HistogramAggregate(_Aggregate):
    """Bucket counts, count, sum, min and max per series: exported as a cumulative
    OpenTelemetry Histogram with explicit ``bounds`` (a value equal to a bound goes in the
    bucket it ends, as OpenTelemetry counts)."""

    def __init__(
        self,
        owner: Aggregates,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(owner, name, unit, description)
        self.bounds = tuple(float(bound) for bound in bounds)

    def record(self, value: float, key: AttributesKey = ()) -> None:
        """Count ``value`` (not negative: the caller checks) in the series ``key``."""
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            series = self.series.get(key)
            if series is None:
                key = self._key(key)
                series = self.series.get(key)
                if series is None:
                    series = self.series[key] = _HistogramSeries(len(self.bounds) + 1)
            series.bucket_counts[index] += 1
            series.count += 1
            series.total += value
            if value < series.minimum:
                series.minimum = value
            if value > series.maximum:
                series.maximum = value

    def data(self, start: int, now: int) -> Histogram:
        return Histogram(
            data_points=[
                HistogramDataPoint(
                    attributes=dict(key),
                    start_time_unix_nano=start,
                    time_unix_nano=now,
                    count=series.count,
                    sum=series.total,
                    bucket_counts=list(series.bucket_counts),
                    explicit_bounds=self.bounds,
                    min=series.minimum,
                    max=series.maximum,
                )
                for key, series in self.series.items()
            ],
            aggregation_temporality=AggregationTemporality.CUMULATIVE,
        )


class Aggregates:
    """Cumulative aggregates of one process, kept in plain dictionaries.

    The OpenTelemetry SDK's synchronous instruments validate and hash the attributes of
    every measurement (about 10 microseconds each); request metrics repeat the same few
    attribute sets on every request, so these aggregates take a prepared
    :data:`AttributesKey` instead, and a measurement costs a dictionary lookup and a few
    additions under one lock. At collection time :meth:`metrics` turns them into
    OpenTelemetry metrics (cumulative Sums, Histograms and Gauges) that an
    :class:`AggregatingReader` hands to its exporter with the SDK's own.

    A forked child starts from zero (its parent's counts stay the parent's).
    """

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.max_series = max_series
        self.lock = threading.Lock()
        self.start_time = time.time_ns()
        self._aggregates: dict[tuple[str, str], _Aggregate] = {}
        if hasattr(os, "register_at_fork"):
            reference = weakref.ref(self)

            def after_fork_in_child() -> None:
                aggregates = reference()
                if aggregates is not None:
                    aggregates._reset()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.start_time = time.time_ns()
        for aggregate in self._aggregates.values():
            aggregate._lock = self.lock
            aggregate.series.clear()

    def _get(self, kind: str, name: str, make: Callable[[], _Aggregate]) -> Any:
        aggregate = self._aggregates.get((kind, name))
        if aggregate is None:
            with self.lock:
                aggregate = self._aggregates.get((kind, name))
                if aggregate is None:
                    aggregate = self._aggregates[(kind, name)] = make()
        return aggregate

    def sum(self, name: str, unit: str = "", description: str = "") -> SumAggregate:
        """The sum (counter) named ``name``, made the first time."""
        return self._get("sum", name, lambda: SumAggregate(self, name, unit, description))

    def gauge(self, name: str, unit: str = "", description: str = "") -> GaugeAggregate:
        """The gauge named ``name``, made the first time."""
        return self._get("gauge", name, lambda: GaugeAggregate(self, name, unit, description))

    def histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        bounds: Sequence[float] = DEFAULT_BUCKETS,
    ) -> HistogramAggregate:
        """The histogram named ``name`` with these bucket ``bounds``, made the first time."""
        return self._get(
            "histogram", name, lambda: HistogramAggregate(self, name, unit, description, bounds)
        )

    def series_count(self) -> int:
        """How many series the aggregates hold."""
        return sum(len(aggregate.series) for aggregate in list(self._aggregates.values()))

    def metrics(self) -> list[Metric]:
        """Every aggregate with data, as OpenTelemetry metrics (a snapshot)."""
        now = time.time_ns()
        with self.lock:
            return [
                Metric(
                    name=aggregate.name,
                    description=aggregate.description,
                    unit=aggregate.unit,
                    data=aggregate.data(self.start_time, now),  # type: ignore[attr-defined]
                )
                for aggregate in self._aggregates.values()
                if aggregate.series
            ]


def with_metrics(
    metrics_data: MetricsData | None,
    metrics: Sequence[Metric],
    resource: Resource,
    scope: InstrumentationScope,
) -> MetricsData | None:
    """``metrics_data`` (None when the SDK had nothing) with ``metrics`` of ``resource``
    added under ``scope``: in that scope's metrics of that resource when there are some,
    else as a scope, or a resource, of their own."""
    if not metrics:
        return metrics_data
    resource_metrics = list(metrics_data.resource_metrics) if metrics_data is not None else []
    for position, entry in enumerate(resource_metrics):
        if entry.resource != resource:
            continue
        scopes = list(entry.scope_metrics)
        for index, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == scope.name:
                scopes[index] = ScopeMetrics(
                    scope_metrics.scope,
                    [*scope_metrics.metrics, *metrics],
                    scope_metrics.schema_url,
                )
                break
        else:
            scopes.append(ScopeMetrics(scope, list(metrics), ""))
        resource_metrics[position] = ResourceMetrics(entry.resource, scopes, entry.schema_url)
        return MetricsData(resource_metrics)
    resource_metrics.append(ResourceMetrics(resource, [ScopeMetrics(scope, list(metrics), "")], ""))
    return MetricsData(resource_metrics)


class AggregatingReader(MetricReader):
    """A metric reader mixin (listed before the SDK reader it extends) that adds the
    metrics of :attr:`aggregates` to every collection, also when the SDK's own instruments
    have nothing: ``class Reader(AggregatingReader, PeriodicExportingMetricReader)``."""

    #: The aggregates whose metrics each collection carries (set by :class:`MetricsPipeline`).
    aggregates: Aggregates | None = None
    #: The resource of collections the SDK had nothing for.
    aggregates_resource: Resource = Resource.get_empty()

    def collect(self, timeout_millis: float = 10_000) -> None:  # type: ignore[misc]
        """Collect the SDK's metrics and the aggregates', and hand them on."""
        state = _collect_state
        state.pending = True  # the aggregates are not in this collection yet
        try:
            super().collect(timeout_millis=timeout_millis)
            if state.pending and self.aggregates is not None:
                state.pending = False
                data = with_metrics(
                    None, self.aggregates.metrics(), self.aggregates_resource, _SCOPE
                )
                if data is not None:
                    self._receive_metrics(data, timeout_millis=timeout_millis)
        finally:
            state.pending = False

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        state = _collect_state
        if getattr(state, "pending", False):
            state.pending = False
            if self.aggregates is not None:
                merged = with_metrics(
                    metrics_data, self.aggregates.metrics(), self.aggregates_resource, _SCOPE
                )
                metrics_data = merged if merged is not None else metrics_data
        super()._receive_metrics(metrics_data, timeout_millis=timeout_millis, **kwargs)  # type: ignore[safe-super]


# Whether the collection running in this thread still has to add the aggregates.
_collect_state = threading.local()


class MemoryMetricReader(AggregatingReader, InMemoryMetricReader):
    """The SDK's in-memory reader with the aggregates added: for tests and benchmarks
    (``get_metrics_data()`` collects now)."""



class SpanInstruments:
    """The aggregates span-derived metrics go to (see the module documentation for names
    and attributes); :meth:`record` measures one ended span."""

    def __init__(self, aggregates: Aggregates) -> None:
        self.duration = aggregates.histogram(
            SPAN_DURATION,
            unit="s",
            description="Duration of baseplate server, client and local spans",
            bounds=DURATION_BUCKETS,
        )
        self.calls = aggregates.sum(
            SPAN_CALLS, unit="{call}", description="Finished baseplate server and client spans"
        )
        self.errors = aggregates.sum(
            SPAN_ERRORS, unit="{error}", description="Errors logged by baseplate client spans"
        )
        self.http_server_duration = aggregates.histogram(
            HTTP_SERVER_DURATION,
            unit="s",
            description="Duration of HTTP server requests",
            bounds=DURATION_BUCKETS,
        )
        self.http_client_duration = aggregates.histogram(
            HTTP_CLIENT_DURATION,
            unit="s",
            description="Duration of HTTP client requests",
            bounds=DURATION_BUCKETS,
        )
        self._keys: dict[tuple[str, str, object, object], AttributesKey] = {}

    def _span_key(
        self, kind: str, name: str, component: object, success: bool | None
    ) -> AttributesKey:
        # Span names repeat on every request: reuse the keys.
        cache_key = (kind, name, component, success)
        key = self._keys.get(cache_key)
        if key is None:
            attributes: dict[str, Any] = {ATTR_SPAN_KIND: kind, ATTR_SPAN_NAME: name}
            if success is not None:
                attributes[ATTR_SUCCESS] = success
            if component is not None:
                attributes[ATTR_COMPONENT_NAME] = str(component)
            key = attributes_key(attributes)
            if len(self._keys) >= _ATTRIBUTES_CACHE_SIZE:
                self._keys.clear()
            self._keys[cache_key] = key
        return key

    def record(self, span: ReadableSpan) -> None:
        """Measure an ended span (a span of any scope: only the kind and data are read)."""
        start, end = span.start_time, span.end_time
        if start is None or end is None:
            return
        seconds = max(end - start, 0) / 1e9
        span_kind = span.kind
        span_attributes = span.attributes or {}
        if span_kind in _SERVER_KINDS:
            kind = KIND_SERVER
        elif span_kind in _CLIENT_KINDS:
            kind = KIND_CLIENT
        else:
            component = span_attributes.get(ATTR_COMPONENT)
            if not component:
                return
            self.duration.record(seconds, self._span_key(KIND_LOCAL, span.name, component, None))
            return
        failed = span.status.status_code is StatusCode.ERROR
        key = self._span_key(kind, span.name, None, not failed)
        self.duration.record(seconds, key)
        self.calls.add(1, key)
        if kind == KIND_CLIENT and span.events:
            self._count_error_objects(span)
        method = _first(span_attributes, _SPAN_HTTP_METHOD)
        if method is not None:
            self._record_http(span, kind, seconds, str(method), span_attributes, failed)

    def _count_error_objects(self, span: ReadableSpan) -> None:
        for event in span.events:
            if event.name == EVENT_ERROR_OBJECT:
                error_class = (event.attributes or {}).get(ATTR_LOG_PAYLOAD_TYPE)
                if error_class:
                    self.errors.add(
                        1, ((ATTR_ERROR_TYPE, str(error_class)), (ATTR_SPAN_NAME, span.name))
                    )

    def _record_http(
        self,
        span: ReadableSpan,
        kind: str,
        seconds: float,
        method: str,
        span_attributes: Mapping[str, Any],
        failed: bool,
    ) -> None:
        method = method.upper()
        attributes: dict[str, Any] = {
            ATTR_HTTP_METHOD: method if method in _KNOWN_METHODS else "_OTHER",
            ATTR_SPAN_NAME: span.name,
        }
        status = _status_code(_first(span_attributes, _SPAN_HTTP_STATUS))
        if status is not None:
            attributes[ATTR_HTTP_STATUS] = status
        url = _first(span_attributes, _SPAN_HTTP_URL)
        if url is not None:
            scheme, separator, _ = str(url).partition("://")
            if separator and scheme:
                attributes[ATTR_URL_SCHEME] = scheme.lower()
        # error.type: the exception when one ended the span, else a failing status code
        error_floor = 500 if kind == KIND_SERVER else 400
        if failed:
            attributes[ATTR_ERROR_TYPE] = _exception_type(span) or (
                str(status) if status is not None and status >= error_floor else "_OTHER"
            )
        elif status is not None and status >= error_floor:
            attributes[ATTR_ERROR_TYPE] = str(status)
        instrument = self.http_server_duration if kind == KIND_SERVER else self.http_client_duration
        instrument.record(seconds, attributes_key(attributes))


class SpanMetricsProcessor(SpanProcessor):
    """Record request metrics for baseplate spans into OpenTelemetry instruments.

    :param instruments: Where the measurements go.
    :param announced_requests_only: Measure only the requests whose server span was named
        with :meth:`announce` before it started, and the spans under them (what keeps the
        processors of several Baseplates sharing one tracer provider apart); otherwise every
        baseplate span.
    :param flush: ``flush(timeout)`` exports what the meter holds, within ``timeout``
        seconds; called by ``force_flush`` and ``shutdown`` (so the tracer provider's
        shutdown budget covers the last metrics export too).
    :param counts: Returns what became of the metrics (:meth:`telemetry_counts`, which the
        telemetry health metrics read from the tracer provider's processors).
    :param max_open_spans: How many unfinished spans of announced requests to remember.
    :param max_pending_requests: How many announced, not yet started requests to remember.
    """

    def __init__(
        self,
        instruments: SpanInstruments,
        *,
        announced_requests_only: bool = True,
        flush: Callable[[float], bool] | None = None,
        counts: Callable[[], Mapping[str, int]] | None = None,
        max_open_spans: int = DEFAULT_MAX_OPEN_SPANS,
        max_pending_requests: int = DEFAULT_MAX_PENDING_REQUESTS,
    ) -> None:
        self.instruments = instruments
        self.announced_requests_only = announced_requests_only
        self.flush = flush
        self.counts = counts
        self.max_open_spans = max_open_spans
        self.max_pending_requests = max_pending_requests
        #: Seconds ``shutdown`` may spend exporting (the tracer provider's shutdown sets it).
        self.shutdown_timeout = DEFAULT_EXPORT_TIMEOUT
        self._pending: dict[tuple[int, int], None] = {}
        # The spans of announced requests that started and did not end, by trace id, span
        # id and start time (ids alone can repeat: a server span for a call from this same
        # process keeps the caller's ids), and how many are open under each (trace id, span
        # id), which their children look their parent up by.
        self._members: dict[tuple[int, int, int | None], None] = {}
        self._open_ids: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        self._errors = RateLimitedLog(logger)

    def announce(self, trace_id: int, span_id: int) -> None:
        """Measure the server span with these ids, and the spans under it, when it starts."""
        with self._lock:
            self._pending[(trace_id, span_id)] = None
            while len(self._pending) > self.max_pending_requests:
                del self._pending[next(iter(self._pending))]

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        if not self.announced_requests_only:
            return
        try:
            self._start(span)
        except Exception:
            self._errors.warning("request metrics failed for a starting span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self.announced_requests_only and not self._forget(span):
                return
            if is_baseplate_span(span):
                self.instruments.record(span)
        except Exception:
            self._errors.warning("request metrics failed for an ending span", exc_info=True)

    def _start(self, span: Span) -> None:
        context = span.context
        if context is None:
            return
        key = (context.trace_id, context.span_id)
        parent = span.parent
        with self._lock:
            if span.kind in _SERVER_KINDS and key in self._pending and is_baseplate_span(span):
                del self._pending[key]
            elif (
                parent is None
                or parent.is_remote
                or (parent.trace_id, parent.span_id) not in self._open_ids
            ):
                return
            self._members[(key[0], key[1], span.start_time)] = None
            self._open_ids[key] = self._open_ids.get(key, 0) + 1
            while len(self._members) > self.max_open_spans:
                oldest = next(iter(self._members))
                del self._members[oldest]
                self._release(oldest[0], oldest[1])

    def _forget(self, span: ReadableSpan) -> bool:
        """Whether ``span`` belongs to an announced request (and stop tracking it)."""
        context = span.context
        if context is None:
            return False
        member = (context.trace_id, context.span_id, span.start_time)
        with self._lock:
            if self._members.pop(member, False) is False:
                return False
            self._release(context.trace_id, context.span_id)
            return True

    def _release(self, trace_id: int, span_id: int) -> None:
        key = (trace_id, span_id)
        count = self._open_ids.get(key, 0) - 1
        if count > 0:
            self._open_ids[key] = count
        else:
            self._open_ids.pop(key, None)

    def telemetry_counts(self) -> dict[str, int]:
        """What became of the metrics (``metrics.exported``, ``metrics.failed``,
        ``metrics.rejected``: see :meth:`MetricsPipeline.telemetry_counts`)."""
        return dict(self.counts()) if self.counts is not None else {}

    def shutdown(self) -> None:
        """Export what the meter holds, within :attr:`shutdown_timeout` seconds."""
        if self.flush is not None:
            self._flush(self.shutdown_timeout)

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Export what the meter holds, within ``timeout_millis``; whether it was exported."""
        if self.flush is None:
            return True
        return self._flush(timeout_millis / 1000)

    def _flush(self, timeout: float) -> bool:
        assert self.flush is not None
        try:
            return bool(self.flush(timeout))
        except Exception as exc:
            self._errors.warning("could not export metrics: %r", exc)
            return False


# -- instruments by name, for the baseplate.metrics client API ---------------------------------

_INVALID_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.\-/]")
_MAX_INSTRUMENT_NAME = 255


def instrument_name(name: str) -> str:
    """An OpenTelemetry instrument name for a dotted metric name: characters instruments
    cannot carry become ``_``, a name not starting with a letter gets ``m_`` in front, and
    it is cut to 255 characters."""
    cleaned = _INVALID_NAME_CHARACTERS.sub("_", name) or "_"
    if not cleaned[0].isascii() or not cleaned[0].isalpha():
        cleaned = "m_" + cleaned
    return cleaned[:_MAX_INSTRUMENT_NAME]


class Instruments:
    """Aggregates by name: what the ``timer``, ``counter``, ``gauge`` and ``histogram`` of a
    metrics client record into (names made valid with :func:`instrument_name`)."""

    def __init__(self, aggregates: Aggregates) -> None:
        self.aggregates = aggregates
        #: Negative counter increments and histogram samples refused.
        self.rejected = 0
        self._names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        full = self._names.get(name)
        if full is None:
            full = instrument_name(name)
            if len(self._names) >= _ATTRIBUTES_CACHE_SIZE:
                self._names.clear()
            self._names[name] = full
        return full

    def timer(self, name: str) -> HistogramAggregate:
        """The histogram (seconds, buckets from 5 ms to 10 s) a timer ``name`` records into."""
        return self.aggregates.histogram(self._name(name), unit="s", bounds=DURATION_BUCKETS)

    def histogram(self, name: str) -> HistogramAggregate:
        """The histogram (the SDK's default buckets) a histogram ``name`` records into."""
        return self.aggregates.histogram(self._name(name))

    def counter(self, name: str) -> SumAggregate:
        """The counter a counter ``name`` adds to."""
        return self.aggregates.sum(self._name(name))

    def gauge(self, name: str) -> GaugeAggregate:
        """The gauge a gauge ``name`` sets."""
        return self.aggregates.gauge(self._name(name))


# -- the meter provider and its reader, one per destination and process -----------------------


def make_resource(service_name: str | None = None) -> Resource:
    """The resource of a metrics pipeline: what ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` say (read by the SDK's resource detection, as for the tracer
    provider), with ``service_name`` as ``service.name`` when they name no service."""
    resource = Resource.create({})
    current = str(resource.attributes.get(SERVICE_NAME) or "")
    if service_name and (not current or current.startswith("unknown_service")):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


class MetricsPipeline:
    """A meter provider with one reader (periodic OTLP export, or a Prometheus endpoint),
    the process's :class:`Aggregates` that reader carries, the span instruments and the
    client API's instruments on them, and the provider's meter for instruments of the SDK.

    :param reader: The metric reader (owned from now on: shut down with the pipeline); an
        :class:`AggregatingReader`, or the aggregates are never exported.
    :param description: Where the metrics go, for log messages (``OTLP http://...``).
    :param resource: The provider's resource (:func:`make_resource`).
    :param counts: Returns the exporter's counts (:meth:`telemetry_counts`), if it keeps any.
    :param on_shutdown: Called once the provider is shut down (stop a server, ...).
    :param exit_timeout: Seconds the shutdown at interpreter exit may take.
    """

    def __init__(
        self,
        reader: MetricReader,
        description: str,
        resource: Resource | None = None,
        counts: Callable[[], Mapping[str, int]] | None = None,
        on_shutdown: Callable[[], None] | None = None,
        exit_timeout: float = DEFAULT_EXPORT_TIMEOUT,
    ) -> None:
        self.reader = reader
        self.description = description
        resource = resource or make_resource()
        #: What the span processor and the client API record into.
        self.aggregates = Aggregates()
        if isinstance(reader, AggregatingReader):
            reader.aggregates = self.aggregates
            reader.aggregates_resource = resource
        self.provider = MeterProvider(
            metric_readers=[reader], resource=resource, shutdown_on_exit=False
        )
        #: The provider's meter, for OpenTelemetry instruments of the application's own.
        self.meter = self.provider.get_meter(METER_NAME)
        self.span_instruments = SpanInstruments(self.aggregates)
        self.instruments = Instruments(self.aggregates)
        #: Seconds the shutdown at interpreter exit may take (less once a flush at shutdown
        #: already exported everything: see :meth:`flush`).
        self.exit_timeout = exit_timeout
        self.pid = os.getpid()
        self._counts = counts
        self._on_shutdown = on_shutdown
        self._shut_down = False
        self._lock = threading.Lock()
        self._log = RateLimitedLog(logger)
        atexit.register(_shutdown_at_exit, weakref.ref(self))
        if hasattr(os, "register_at_fork"):
            reference = weakref.ref(self)

            def after_fork_in_child() -> None:
                pipeline = reference()
                if pipeline is not None:
                    pipeline._forked()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def _forked(self) -> None:
        # The child's aggregates start from zero (Aggregates does that): they must not be
        # exported as the same stream as the parent's, so they get an instance id of their own.
        reader = self.reader
        if isinstance(reader, AggregatingReader) and SERVICE_INSTANCE_ID in (
            reader.aggregates_resource.attributes
        ):
            reader.aggregates_resource = reader.aggregates_resource.merge(
                Resource({SERVICE_INSTANCE_ID: str(uuid.uuid4())})
            )

    def flush(self, timeout: float) -> bool:
        """Collect and export now, within ``timeout`` seconds; whether it was exported."""
        if self._shut_down:
            return True
        failed_before = self._failed()
        try:
            done = bool(self.provider.force_flush(timeout_millis=max(timeout, 0.0) * 1000))
        except Exception as exc:
            self._log.warning("could not export metrics to %s: %r", self.description, exc)
            return False
        # the SDK's flush says True whatever the export did: the exporter's counts tell
        done = done and self._failed() == failed_before
        if done:
            # the exit handler then only stops the reader
            self.exit_timeout = min(self.exit_timeout, 0.5)
        return done

    def _failed(self) -> int:
        return int(self._counts().get("metrics.failed", 0)) if self._counts is not None else 0

    def shutdown(self, timeout: float = DEFAULT_EXPORT_TIMEOUT) -> None:
        """Export a last time and stop, within ``timeout`` seconds (once; never raises)."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        try:
            self.provider.shutdown(timeout_millis=max(timeout, 0.0) * 1000)
        except Exception as exc:
            logger.warning("metrics to %s did not shut down cleanly: %r", self.description, exc)
        if self._on_shutdown is not None:
            try:
                self._on_shutdown()
            except Exception as exc:
                logger.warning("metrics to %s did not stop cleanly: %r", self.description, exc)

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._shut_down

    def telemetry_counts(self) -> dict[str, int]:
        """What became of the metrics: the exporter's counts of data points
        (``metrics.exported``, ``metrics.failed``) and ``metrics.rejected`` (negative counter
        increments and histogram samples refused)."""
        counts = dict(self._counts() if self._counts is not None else {})
        counts["metrics.rejected"] = self.instruments.rejected
        return counts


def _shutdown_at_exit(reference: weakref.ref[MetricsPipeline]) -> None:
    pipeline = reference()
    if pipeline is not None and pipeline.pid == os.getpid():
        pipeline.shutdown(pipeline.exit_timeout)


_pipelines: dict[Hashable, MetricsPipeline] = {}
_pipelines_lock = threading.Lock()


def shared_pipeline(key: Hashable, build: Callable[[], MetricsPipeline]) -> MetricsPipeline:
    """The process's pipeline for the destination ``key``, made with ``build`` the first time.

    Every client of a process configured for one destination records into one meter
    provider, so each metric has one stream (two providers exporting the same metric with
    the same resource would overwrite each other in the backend). A pipeline made before
    ``os.fork()`` or shut down is not reused; ``build`` may raise, and nothing is kept then.
    """
    with _pipelines_lock:
        pipeline = _pipelines.get(key)
        if pipeline is not None and pipeline.pid == os.getpid() and not pipeline.is_shut_down:
            return pipeline
        pipeline = build()
        _pipelines[key] = pipeline
        return pipeline


def shutdown_pipelines(timeout: float = DEFAULT_EXPORT_TIMEOUT) -> None:
    """Export a last time and stop every pipeline of this process, within ``timeout``
    seconds in all (what a server's shutdown calls; pipelines made afterwards are new)."""
    deadline = time.monotonic() + max(timeout, 0.0)
    with _pipelines_lock:
        pipelines = [p for p in _pipelines.values() if p.pid == os.getpid()]
        _pipelines.clear()
    for pipeline in pipelines:
        pipeline.shutdown(max(deadline - time.monotonic(), 0.0))


__all__ = [
    "ATTR_COMPONENT_NAME",
    "ATTR_ERROR_TYPE",
    "ATTR_HTTP_METHOD",
    "ATTR_HTTP_STATUS",
    "ATTR_SPAN_KIND",
    "ATTR_SPAN_NAME",
    "ATTR_SUCCESS",
    "ATTR_URL_SCHEME",
    "DURATION_BUCKETS",
    "HTTP_CLIENT_DURATION",
    "HTTP_SERVER_DURATION",
    "KIND_CLIENT",
    "KIND_LOCAL",
    "KIND_SERVER",
    "METER_NAME",
    "SPAN_CALLS",
    "SPAN_DURATION",
    "SPAN_ERRORS",
    "AggregatingReader",
    "Aggregates",
    "AttributesKey",
    "GaugeAggregate",
    "HistogramAggregate",
    "Instruments",
    "MemoryMetricReader",
    "MetricsPipeline",
    "SpanInstruments",
    "SumAggregate",
    "attributes_key",
    "SpanMetricsProcessor",
    "instrument_name",
    "make_resource",
    "shared_pipeline",
    "shutdown_pipelines",
    "with_metrics",
]
