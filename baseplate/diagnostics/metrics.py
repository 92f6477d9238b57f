"""Request metrics to statsd: a timer and success/failure counter per span, one batch per request.

``Baseplate.configure_metrics(client)`` calls :func:`install`, which adds an
:class:`exporters.statsd.StatsdSpanProcessor` to the baseplate tracer provider (so every
baseplate span of a request is measured, sampled or not) and registers a
:class:`MetricsBaseplateObserver` that hands each request's batch to the application as
``context.metrics``. Metric names are ``<namespace>.server.<route>``,
``<namespace>.clients.<context attribute>.<method>`` and
``<namespace>.<component>.<name>``, with ``.success``/``.failure`` counters for server and
client spans, and ``<namespace>.errors.<exception class>`` for each ``error.object`` log on
a client span. Unlike 0.28, calls and local spans made inside local spans are measured too.
All of a request's metrics, including the application's own, are sent together in as few
datagrams as fit when the server span ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baseplate.core import BaseplateObserver, LocalSpan, ServerSpan, Span, SpanObserver
from baseplate.metrics import Batch, Client
from exporters.statsd import StatsdSpanProcessor, safe_metric_name
from otel_bridge.semconv import EVENT_ERROR_OBJECT

if TYPE_CHECKING:
    from baseplate.core import Baseplate, ExcInfo


class MetricsBaseplateObserver(BaseplateObserver):
    """Metrics collecting observer.

    This observer reports metrics to statsd. It does two important things:

    * it tracks the time taken in serving each request.
    * it batches all metrics generated during a request into as few packets as possible.

    The batch is accessible to your application during requests as the ``metrics``
    attribute on the :term:`context object`.

    :param baseplate.metrics.Client client: The client where metrics will be sent.

    ``Baseplate.configure_metrics`` builds it with the span processor that measures the
    request's spans. Registered by hand without one, it measures the server span and its
    descendants through span observers instead.
    """

    def __init__(self, client: Client, processor: StatsdSpanProcessor[Batch] | None = None) -> None:
        self.client = client
        self.processor = processor

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        batch: Batch
        if self.processor is not None:
            batch = self.processor.batch_for_request(server_span.trace_id, server_span.id)
        else:
            batch = self.client.batch()
            server_span.register(_SpanMetrics(batch, "server", server_span.name, request_root=True))
            # without the processor, error.object logs are counted by span observers
            server_span.register(_ErrorObjects(batch, counting=False))
        context.metrics = batch


class _ErrorObjects(SpanObserver):
    """Counts ``errors.<exception class>`` for each ``error.object`` log of a client span.

    A client library (or the application) logs ``span.log("error.object", exc)`` on the span
    of a call that failed; as in 0.28 the counter goes into the request's batch.
    """

    def __init__(self, batch: Batch, counting: bool) -> None:
        self.batch = batch
        self.counting = counting

    def on_log(self, name: str, payload: Any) -> None:
        if self.counting and name == EVENT_ERROR_OBJECT:
            self.batch.counter(f"errors.{type(payload).__name__}").increment()

    def on_child_span_created(self, span: Span) -> None:
        span.register(_ErrorObjects(self.batch, counting=not isinstance(span, LocalSpan)))


class _SpanMetrics(SpanObserver):
    """Times one span into the request's batch (used without the span processor)."""

    def __init__(
        self, batch: Batch, prefix: str, name: str, counted: bool = True, request_root: bool = False
    ) -> None:
        self.batch = batch
        self.name = safe_metric_name(prefix, name).decode("ascii")
        self.counted = counted
        self.request_root = request_root
        self.timer = batch.timer(self.name)

    def on_start(self) -> None:
        self.timer.start()

    def on_finish(self, exc_info: ExcInfo | None) -> None:
        if self.timer.start_time is not None:
            self.timer.stop()
        if self.counted:
            suffix = ".failure" if exc_info else ".success"
            self.batch.counter(self.name + suffix).increment()
        if self.request_root:
            self.batch.flush()

    def on_child_span_created(self, span: Span) -> None:
        observer: _SpanMetrics
        if isinstance(span, LocalSpan):
            if not span.component_name:
                return
            observer = _SpanMetrics(self.batch, span.component_name, span.name, counted=False)
        else:
            observer = _SpanMetrics(self.batch, "clients", span.name)
        span.register(observer)


def install(baseplate: Baseplate, client: Client) -> None:
    """Measure ``baseplate``'s requests into ``client`` (once per client).

    Adds the statsd span processor to the baseplate tracer provider and registers the
    observer that puts each request's batch on ``context.metrics``.
    """
    for observer in baseplate.observers:
        if isinstance(observer, MetricsBaseplateObserver) and observer.client is client:
            return
    processor = StatsdSpanProcessor(client.batch, announced_requests_only=True)
    baseplate.add_span_processor(processor)
    baseplate.register(MetricsBaseplateObserver(client, processor))


__all__ = ["MetricsBaseplateObserver", "install"]
