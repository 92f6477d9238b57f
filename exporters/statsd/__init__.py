"""Statsd metrics: the line protocol, datagram transports, and a span processor.

``baseplate.metrics`` is the documented client API built on these pieces; this package
does not depend on it.
"""

from exporters.statsd.buffer import DEFAULT_MAX_BUFFERED_BYTES, MetricsBuffer
from exporters.statsd.processor import MetricsBatch, StatsdSpanProcessor, span_metric_name
from exporters.statsd.transport import NullTransport, Transport, UDPTransport
from exporters.statsd.wire import (
    DEFAULT_MAX_DATAGRAM_SIZE,
    counter_line,
    format_value,
    gauge_line,
    histogram_line,
    metric_name,
    pack_datagrams,
    safe_metric_name,
    timer_line,
)

__all__ = [
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "MetricsBatch",
    "MetricsBuffer",
    "NullTransport",
    "StatsdSpanProcessor",
    "Transport",
    "UDPTransport",
    "counter_line",
    "format_value",
    "gauge_line",
    "histogram_line",
    "metric_name",
    "pack_datagrams",
    "safe_metric_name",
    "span_metric_name",
    "timer_line",
]
