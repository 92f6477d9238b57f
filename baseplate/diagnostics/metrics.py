"""Request metrics: a timer and success/failure counter per span, to statsd or OpenTelemetry.

``Baseplate.configure_metrics(client)`` registers a :class:`MetricsBaseplateObserver`, which
adds an :class:`exporters.statsd.StatsdSpanProcessor` to the baseplate tracer provider (so
every baseplate span of a request is measured, sampled or not) and hands each request's
batch to the application as ``context.metrics``. An observer registered by hand, as in 0.28,
does exactly the same: there is one implementation. Metric names are
``<namespace>.server.<route>``, ``<namespace>.clients.<context attribute>.<method>`` and
``<namespace>.<component>.<name>``, with ``.success``/``.failure`` counters for server and
client spans, and ``<namespace>.errors.<exception class>`` for each ``error.object`` log on
a client span. Unlike 0.28, calls and local spans made inside local spans are measured too.
All of a request's metrics, including the application's own, are sent together in as few
datagrams as fit when the server span ends.

With a :class:`baseplate.metrics.OTelClient` (``metrics.exporter = otlp`` or
``prometheus``) the observer installs an :class:`exporters.otel_metrics.SpanMetricsProcessor`
instead: the same spans are measured into OpenTelemetry instruments
(``baseplate.span.duration``, ``baseplate.span.calls``, ``baseplate.span.errors`` and, for
HTTP, ``http.server.request.duration`` / ``http.client.request.duration``), and
``context.metrics`` is an :class:`~baseplate.metrics.OTelBatch` on the same meter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from baseplate._span import DiagnosticObserver, ServerSpan
from baseplate.diagnostics.health import TelemetryHealthReporter
from baseplate.metrics import Batch, Client, OTelClient
from exporters.otel_metrics import SpanMetricsProcessor
from exporters.statsd import StatsdSpanProcessor

if TYPE_CHECKING:
    from baseplate.core import Baseplate


class MetricsBaseplateObserver(DiagnosticObserver):
    """Metrics collecting observer.

    This observer reports metrics to statsd. It does two important things:

    * it tracks the time taken in serving each request.
    * it batches all metrics generated during a request into as few packets as possible.

    The batch is accessible to your application during requests as the ``metrics``
    attribute on the :term:`context object`.

    :param baseplate.metrics.Client client: The client where metrics will be sent.

    The measuring is done by a span processor (:attr:`processor`), installed on the
    Baseplate's tracer provider when the observer is registered: a
    :class:`~exporters.statsd.StatsdSpanProcessor`, or a
    :class:`~exporters.otel_metrics.SpanMetricsProcessor` for an
    :class:`~baseplate.metrics.OTelClient`.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        #: The span processor measuring this client's requests.
        self.processor: Union[StatsdSpanProcessor[Batch], SpanMetricsProcessor]
        if isinstance(client, OTelClient):
            self.processor = SpanMetricsProcessor(
                client.pipeline.span_instruments,
                announced_requests_only=True,
                flush=client.pipeline.flush,
                counts=client.pipeline.telemetry_counts,
            )
        else:
            self.processor = StatsdSpanProcessor(client.batch, announced_requests_only=True)
        #: Sends the telemetry health metrics once attached.
        self.health: TelemetryHealthReporter | None = None

    def attach(self, baseplate: Baseplate) -> None:
        """Install the span processor on ``baseplate``'s tracer provider, and start
        reporting the telemetry health metrics through the client (see
        :mod:`baseplate.diagnostics.health`)."""
        baseplate.add_span_processor(self.processor)
        if self.health is None:
            self.health = TelemetryHealthReporter(baseplate, self.client)
        self.health.start()

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        processor = self.processor
        if isinstance(processor, SpanMetricsProcessor):
            processor.announce(server_span.trace_id, server_span.id)
            context.metrics = self.client.batch()
        else:
            context.metrics = processor.batch_for_request(server_span.trace_id, server_span.id)


def install(baseplate: Baseplate, client: Client) -> None:
    """Measure ``baseplate``'s requests into ``client`` (once per client)."""
    for observer in baseplate.observers:
        if isinstance(observer, MetricsBaseplateObserver) and observer.client is client:
            return
    baseplate.register(MetricsBaseplateObserver(client))


__all__ = ["MetricsBaseplateObserver", "install"]
