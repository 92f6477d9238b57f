"""The heart of baseplate: the :class:`Baseplate` object, spans, trace info and observers.

The span model (:class:`Span`, :class:`ServerSpan`, :class:`LocalSpan`, :class:`TraceInfo`,
the observer interfaces) lives in :mod:`baseplate._span` and is importable from here, as
0.28 documents it; so is the edge request context (:mod:`baseplate.edge_context`).
:class:`Baseplate` ties them to an OpenTelemetry tracer provider and to the built-in
diagnostics, each of which is a set of span processors on that provider.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from baseplate._span import (
    BaseplateObserver,
    ContextFactory,
    DiagnosticObserver,
    ExcInfo,
    LocalSpan,
    LocalSpanContext,
    RequestContext,
    ServerSpan,
    ServerSpanObserver,
    Span,
    SpanObserver,
    TraceInfo,
    new_server_span,
    notify_observer,
    trace_info_from_context,
)
from baseplate.diagnostics import logging as _logging
from baseplate.diagnostics import metrics as _metrics
from baseplate.diagnostics import sentry as _sentry
from baseplate.diagnostics import tracing as _tracing
from baseplate.edge_context import (
    AuthenticationToken,
    AuthenticationTokenValidator,
    EdgeContextError,
    EdgeRequestContext,
    EdgeRequestContextFactory,
    InvalidAuthenticationToken,
    NoAuthenticationError,
    OAuthClient,
    Service,
    Session,
    User,
    ValidatedAuthenticationToken,
)
from baseplate.metrics import Client as MetricsClient
from otel_bridge import provider as _provider
from otel_bridge.sampling import BaseplateSampler


class _ContextObserver(BaseplateObserver):
    """Attaches a context factory's object to each request's context."""

    def __init__(self, name: str, context_factory: ContextFactory):
        self.name = name
        self.context_factory = context_factory

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        value = self.context_factory.make_object_for_context(self.name, server_span)
        setattr(context, self.name, value)
        server_span.register(_LocalContextObserver(self.name, self.context_factory))


class _LocalContextObserver(SpanObserver):
    """Gives each local span (at any depth) its own object from a context factory, made
    for that span, so the clients it holds make children of the local span."""

    def __init__(self, name: str, context_factory: ContextFactory):
        self.name = name
        self.context_factory = context_factory

    def on_child_span_created(self, span: Span) -> None:
        if isinstance(span, LocalSpan) and isinstance(span.context, LocalSpanContext):
            # factories get local spans too (their objects' calls become the span's children)
            value = self.context_factory.make_object_for_context(self.name, span)  # type: ignore[arg-type]
            span.context.set_local(self.name, value)
            span.register(self)


class Baseplate:
    """The core of the Baseplate diagnostics framework.

    This class coordinates monitoring and tracing of service calls made to and from this
    service. See :mod:`baseplate.integration` for how to integrate it with the application
    framework you are using.

    ``tracer_provider`` is for tests and embedding; by default baseplate uses the process's
    global SDK provider, installing one if none is installed (see ``otel_bridge.provider``).
    Each Baseplate has its own :attr:`sampler`: its ``sample_rate`` decides the new traces
    of this Baseplate's requests only.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None):
        self.observers: list[BaseplateObserver] = []
        self._context_factories: dict[str, ContextFactory] = {}
        self.tracer_provider = tracer_provider or _provider.ensure_provider()
        #: Decides whether a request that starts a new trace is sampled.
        self.sampler = BaseplateSampler()
        self._tracer = _provider.baseplate_tracer(self.tracer_provider)

    def register(self, observer: BaseplateObserver) -> None:
        """Register an observer.

        A built-in diagnostic observer (metrics, tracing, error reporting) registered here
        by hand, as 0.28 applications do, installs the same span processors as the
        matching ``configure_*`` method.
        """
        if isinstance(observer, DiagnosticObserver):
            observer.attach(self)
        self.observers.append(observer)

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Add an OpenTelemetry span processor to the provider (once)."""
        _provider.add_span_processor(self.tracer_provider, processor)

    def configure_logging(self) -> None:
        """Add request context (the trace id) to the logging system."""
        _logging.install(self)

    def configure_metrics(self, metrics_client: MetricsClient) -> None:
        """Send timing metrics to the given :class:`baseplate.metrics.Client`.

        This also adds a :class:`baseplate.metrics.Batch` as the ``metrics`` attribute of the
        context object; it is flushed with the request's own metrics when the request ends.
        """
        _metrics.install(self, metrics_client)

    def configure_tracing(
        self, tracing_client: _tracing.TracingClient | str, *args: Any, **kwargs: Any
    ) -> None:
        """Collect and send span information for request tracing to the configured exporter.

        ``tracing_client`` comes from :func:`baseplate.tracing_client_from_config`; as in
        0.28, a service name followed by :func:`baseplate.diagnostics.tracing.make_client`'s
        arguments is still accepted (deprecated).
        """
        _tracing.install(self, tracing_client, *args, **kwargs)

    def configure_error_reporting(self, client: Any) -> None:
        """Send reports for unexpected exceptions to the given client (``raven.Client`` or
        a configured ``sentry_sdk``); the client is the ``sentry`` attribute of the context."""
        _sentry.install(self, client)

    def add_to_context(self, name: str, context_factory: ContextFactory) -> None:
        """Add an attribute to each request's context object.

        On each request, the factory is asked to create an object to attach to the context
        object under ``name`` (also used in span and metric names). Each local span's
        context gets its own object too, made with the local span.
        """
        self._context_factories[name] = context_factory
        self.register(_ContextObserver(name, context_factory))

    def make_server_span(
        self, context: Any, name: str, trace_info: TraceInfo | None = None
    ) -> ServerSpan:
        """Return a server span representing the request we are handling.

        The span is also set as ``context.trace``. Without ``trace_info`` the span joins the
        current OpenTelemetry span's trace as its child when there is one (a vendor
        instrumentation's server span), else it starts a new trace.
        """
        span = new_server_span(
            context, name, trace_info, tracer=self._tracer, sampler=self.sampler
        )
        context.trace = span
        for observer in self.observers:
            notify_observer(observer, "on_server_span_created", context, span)
        return span


__all__ = [
    "AuthenticationToken",
    "AuthenticationTokenValidator",
    "Baseplate",
    "BaseplateObserver",
    "EdgeContextError",
    "EdgeRequestContext",
    "EdgeRequestContextFactory",
    "ExcInfo",
    "InvalidAuthenticationToken",
    "LocalSpan",
    "LocalSpanContext",
    "NoAuthenticationError",
    "OAuthClient",
    "RequestContext",
    "ServerSpan",
    "ServerSpanObserver",
    "Service",
    "Session",
    "Span",
    "SpanObserver",
    "TraceInfo",
    "User",
    "ValidatedAuthenticationToken",
    "trace_info_from_context",
]
