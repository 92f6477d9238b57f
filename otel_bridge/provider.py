"""One tracer provider per process: adopt the one already installed, or install ours.

If ``opentelemetry-instrument`` or a vendor distro installed an SDK provider, baseplate adds
its processors to that provider instead of replacing it. Otherwise the bridge installs an SDK
provider with baseplate's sampler and 64-bit id generator. Either way baseplate's own tracer
uses baseplate's sampler and id generator, so baseplate spans keep their documented ids and
sampling rules. Set-up is idempotent.
"""

from __future__ import annotations

import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

from otel_bridge.ids import BaseplateIdGenerator
from otel_bridge.sampling import BaseplateSampler
from otel_bridge.semconv import TRACER_NAME

_lock = threading.Lock()
_sampler = BaseplateSampler()
_id_generator = BaseplateIdGenerator()


def default_sampler() -> BaseplateSampler:
    """The process-wide sampler shared by baseplate spans and a provider we installed."""
    return _sampler


def ensure_provider(service_name: str | None = None) -> TracerProvider:
    """Return the global SDK tracer provider, installing one if none is installed yet."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if service_name:
            set_service_name(current, service_name)
        _adopt(current)
        return current
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "unknown_service"
        provider = TracerProvider(
            sampler=_sampler,
            id_generator=_id_generator,
            resource=Resource.create({SERVICE_NAME: name}),
        )
        trace.set_tracer_provider(provider)
        from otel_bridge.propagation import install_default_propagator

        install_default_propagator()
        return provider


_adopted: set[int] = set()


def _adopt(provider: TracerProvider) -> None:
    """First sight of a provider someone else installed: make its clients speak baseplate.

    A distro sets the global propagator from ``OTEL_PROPAGATORS`` or, when unset, its own
    default (W3C only). Unless the variable is set explicitly, baseplate's composite
    (baseplate headers, W3C, B3) replaces that default so vendor-instrumented clients also
    send the headers legacy baseplate services read. Likewise the SDK's default id generator
    (128-bit trace ids) gives way to baseplate's, so traces a vendor instrumentation starts
    (its WSGI server span) have the 64-bit ids legacy peers parse; a custom generator is kept.
    """
    if id(provider) in _adopted:
        return
    with _lock:
        if id(provider) in _adopted:
            return
        _adopted.add(id(provider))
        current: IdGenerator = provider.id_generator
        if type(current) is RandomIdGenerator:
            provider.id_generator = _id_generator  # type: ignore[assignment]
    if not os.environ.get("OTEL_PROPAGATORS"):
        from otel_bridge.propagation import install_default_propagator

        install_default_propagator()


def set_service_name(provider: TracerProvider, service_name: str) -> None:
    """Name the service in the provider's resource unless it already has a real name.

    Tracers made afterwards carry the new resource; a name set by ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` is kept.
    """
    resource = provider.resource
    current = resource.attributes.get(SERVICE_NAME)
    if current and not str(current).startswith("unknown_service"):
        return
    named = Resource({SERVICE_NAME: service_name})
    update = getattr(provider, "_update_resource", None)
    if update is not None:  # also renames the tracers made so far
        update(named)
    else:
        provider._resource = resource.merge(named)


def baseplate_tracer(
    provider: TracerProvider, sampler: BaseplateSampler | None = None
) -> trace.Tracer:
    """Return a tracer for baseplate spans on ``provider`` with baseplate's sampling and ids."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("baseplate-otel")
    except PackageNotFoundError:
        package_version = None
    tracer = provider.get_tracer(TRACER_NAME, package_version)
    if isinstance(tracer, Tracer):
        tracer.sampler = sampler or _sampler
        tracer.id_generator = _id_generator
    return tracer


def add_span_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    """Add ``processor`` to ``provider`` unless it was added before."""
    with _lock:
        added = getattr(provider, "_baseplate_processors", None)
        if added is None:
            added = []
            provider._baseplate_processors = added  # type: ignore[attr-defined]
        if any(existing is processor for existing in added):
            return
        added.append(processor)
    provider.add_span_processor(processor)
