"""Request tracing: export baseplate's (OpenTelemetry) spans to Zipkin, OTLP or the sidecar.

:func:`tracing_client_from_config` reads the ``tracing.*`` keys into a :class:`TracingClient`;
``Baseplate.configure_tracing(client)`` calls :func:`install`, which adds a bounded batch
span processor with the chosen exporter to baseplate's tracer provider, applies the sample
rate and, when configured, the trace header formats.

Only sampled spans are exported. Vendor (auto-instrumentation) spans on the same provider are
exported with baseplate's, so a request is one trace tree in the backend; Zipkin marks them
with an ``otel.scope.name`` tag.

The configuration keys and ``OTEL_*`` variables are read by :mod:`.config`
(:func:`tracing_client_from_config`, documented there).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from baseplate._span import DiagnosticObserver
from baseplate.diagnostics.tracing.config import (
    EXPORTERS,
    TracingClient,
    make_client,
    tracing_client_from_config,
)
from exporters.batch import BoundedBatchSpanProcessor
from otel_bridge import environment
from otel_bridge import provider as _provider
from otel_bridge.propagation import configure_propagators

if TYPE_CHECKING:
    from baseplate.core import Baseplate

logger = logging.getLogger(__name__)


class TraceBaseplateObserver(DiagnosticObserver):
    """Distributed tracing observer.

    Kept for applications that register it themselves; ``configure_tracing`` is the usual
    way, and does the same. Spans are exported by a span processor on the Baseplate's tracer
    provider (so vendor spans in the same trace are exported too), built from the client and
    installed when the observer is registered.

    :param tracing_client: The client describing where spans are sent.
    """

    def __init__(self, tracing_client: TracingClient) -> None:
        self.tracing_client = tracing_client
        self.service_name = tracing_client.service_name
        self.sample_rate = tracing_client.sample_rate
        #: The batch processor exporting this client's spans (None for ``none``, and once
        #: attached, None when the provider's own exporter is left to do the work).
        self.span_processor: BoundedBatchSpanProcessor | None = None
        self._attached = False

    def attach(self, baseplate: Baseplate) -> None:
        """Add the span processor to ``baseplate``'s provider and apply the client's settings.

        The sample rate becomes ``baseplate.sampler``'s, and the rate of the provider's own
        sampler for spans that start a trace outside any server span. When the exporter was
        chosen by ``OTEL_TRACES_EXPORTER`` alone and the provider already exports through
        processors baseplate did not add (``opentelemetry-instrument`` configured them from
        that same variable), no second exporter is added: spans would reach the collector
        twice.
        """
        if self._attached:
            return
        self._attached = True
        client = self.tracing_client
        provider = baseplate.tracer_provider
        _provider.set_service_name(provider, client.service_name)
        if (
            client.exporter_source == environment.OTEL_TRACES_EXPORTER
            and _provider.exports_on_its_own(provider)
        ):
            logger.info(
                "OTEL_TRACES_EXPORTER=%s is served by the tracer provider's own exporter; "
                "set tracing.exporter to export from baseplate as well",
                client.exporter,
            )
        else:
            self.span_processor = client.make_span_processor()
        if self.span_processor is not None:
            baseplate.add_span_processor(self.span_processor)
        baseplate.sampler.sample_rate = client.sample_rate
        _provider.state_of(provider).sampler.sample_rate = client.sample_rate
        if client.propagators is not None:
            configure_propagators(list(client.propagators))


def install(
    baseplate: Baseplate, client: TracingClient | str, *args: Any, **kwargs: Any
) -> TraceBaseplateObserver:
    """Export ``baseplate``'s sampled spans as ``client`` says (``Baseplate.configure_tracing``).

    Registers a :class:`TraceBaseplateObserver`, which builds the exporter in a
    :class:`~exporters.batch.BoundedBatchSpanProcessor`, adds it to
    ``baseplate.tracer_provider``, sets ``baseplate.sampler.sample_rate``, names the service
    in the provider's resource if it has no name yet, and applies ``tracing.propagators``
    when given. Installing the same client twice on one baseplate does nothing the second
    time.

    As in 0.28, ``client`` may instead be a service name followed by the other arguments of
    :func:`make_client` (deprecated); extra arguments with a client are ignored.
    """
    if not isinstance(client, TracingClient):
        warnings.warn(
            "Passing tracing configuration directly to configure_tracing is deprecated in "
            "favor of using tracing_client_from_config and passing the constructed client on.",
            DeprecationWarning,
            stacklevel=3,
        )
        client = make_client(client, *args, **kwargs)
    for observer in baseplate.observers:
        if isinstance(observer, TraceBaseplateObserver) and observer.tracing_client is client:
            return observer
    observer = TraceBaseplateObserver(client)
    baseplate.register(observer)
    return observer


__all__ = [
    "EXPORTERS",
    "TraceBaseplateObserver",
    "TracingClient",
    "install",
    "make_client",
    "tracing_client_from_config",
]
