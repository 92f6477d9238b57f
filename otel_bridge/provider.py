"""One tracer provider per process: adopt the one already installed, or install ours.

If ``opentelemetry-instrument`` or a vendor distro installed an SDK provider, baseplate adds
its processors to that provider instead of replacing it. Otherwise the bridge installs an SDK
provider with baseplate's sampler and 64-bit id generator. Either way baseplate's own tracer
uses baseplate's sampler and id generator, so baseplate spans keep their documented ids and
sampling rules. Set-up is idempotent.

What baseplate keeps about a provider (the processors it added, the sampler of its spans,
its tracer) lives in a :class:`ProviderState`, held in a weak mapping keyed by the provider
(:func:`state_of`): nothing is stored on the SDK's objects, and a provider that goes away
takes its state with it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

from otel_bridge import _sdk, environment
from otel_bridge.ids import BaseplateIdGenerator
from otel_bridge.sampling import BaseplateSampler
from otel_bridge.semconv import TRACER_NAME

#: ``service.name`` of a provider installed before anything named the service.
UNKNOWN_SERVICE = "unknown_service"

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_id_generator = BaseplateIdGenerator()


@dataclass
class ProviderState:
    """What baseplate keeps about one tracer provider."""

    #: Samples spans of the baseplate tracer that start a trace without a server span's
    #: decision (and, on a provider baseplate installed, vendor spans that start one).
    #: Server spans are decided by their :class:`~baseplate.core.Baseplate`'s own sampler.
    sampler: BaseplateSampler = field(default_factory=BaseplateSampler)
    #: The span processors baseplate added, in order.
    processors: list[SpanProcessor] = field(default_factory=list)
    #: Whether baseplate installed the provider (rather than adopting someone else's).
    installed: bool = False
    tracer: trace.Tracer | None = None


_states: weakref.WeakKeyDictionary[TracerProvider, ProviderState] = weakref.WeakKeyDictionary()


def state_of(provider: TracerProvider) -> ProviderState:
    """The state baseplate keeps about ``provider`` (made, and the provider adopted, on
    first use)."""
    state = _states.get(provider)
    if state is not None:
        return state
    with _lock:
        state = _states.get(provider)
        if state is None:
            state = _states[provider] = ProviderState()
            _adopt(provider)
        return state


def ensure_provider(service_name: str | None = None) -> TracerProvider:
    """Return the global SDK tracer provider, installing one if none is installed yet."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        state_of(current)
        if service_name:
            set_service_name(current, service_name)
        return current
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        state = ProviderState(installed=True)
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the service first (the SDK
        # reads both); the configured name applies only where they are silent.
        provider = TracerProvider(
            sampler=state.sampler, id_generator=_id_generator, resource=Resource.create({})
        )
        _states[provider] = state
        if service_name:
            set_service_name(provider, service_name)
        trace.set_tracer_provider(provider)
        from otel_bridge.propagation import install_default_propagator

        install_default_propagator()
        return provider


def _adopt(provider: TracerProvider) -> None:
    """First sight of a provider someone else installed: make its clients speak baseplate.

    A distro sets the global propagator from ``OTEL_PROPAGATORS`` or, when unset, its own
    default (W3C only). Unless the variable is set explicitly, baseplate's composite
    (baseplate headers, W3C, B3) replaces that default so vendor-instrumented clients also
    send the headers legacy baseplate services read. Likewise the SDK's default id generator
    (128-bit trace ids) gives way to baseplate's, so traces a vendor instrumentation starts
    (its WSGI server span) have the 64-bit ids legacy peers parse; a custom generator is kept.
    Only the global provider is adopted: a provider made for a test stays as it was made.
    """
    if provider is not trace.get_tracer_provider():
        return
    current: IdGenerator = provider.id_generator
    if type(current) is RandomIdGenerator:
        provider.id_generator = _id_generator  # type: ignore[assignment]
    if not environment.is_set(environment.OTEL_PROPAGATORS):
        from otel_bridge.propagation import install_default_propagator

        install_default_propagator()


def set_service_name(provider: TracerProvider, service_name: str) -> None:
    """Name the service in the provider's resource unless it already has a real name.

    Tracers made afterwards carry the new resource; a name set by ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` is kept.
    """
    current = provider.resource.attributes.get(SERVICE_NAME)
    if current and not str(current).startswith(UNKNOWN_SERVICE):
        return
    _sdk.update_resource(provider, Resource({SERVICE_NAME: service_name}))


def baseplate_tracer(provider: TracerProvider) -> trace.Tracer:
    """The tracer of baseplate spans on ``provider``, with baseplate's sampling and ids."""
    state = state_of(provider)
    if state.tracer is not None:
        return state.tracer
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("baseplate-otel")
    except PackageNotFoundError:
        package_version = None
    tracer = provider.get_tracer(TRACER_NAME, package_version)
    if isinstance(tracer, Tracer):
        # The SDK gives every caller asking for this scope the same tracer; its sampler
        # honours the decision each server span brings (see BaseplateSampler), so one
        # tracer serves every Baseplate on the provider, whatever their sample rates.
        tracer.sampler = state.sampler
        tracer.id_generator = _id_generator
    state.tracer = tracer
    return tracer


def add_span_processor(provider: TracerProvider, processor: SpanProcessor) -> bool:
    """Add ``processor`` to ``provider`` unless it was added before; whether it was added."""
    state = state_of(provider)
    with _lock:
        if any(existing is processor for existing in state.processors):
            return False
        state.processors.append(processor)
    provider.add_span_processor(processor)
    return True


def exports_on_its_own(provider: TracerProvider) -> bool:
    """Whether ``provider`` runs span processors that baseplate did not add (those that
    ``opentelemetry-instrument`` set up from ``OTEL_TRACES_EXPORTER``, for example)."""
    ours = state_of(provider).processors
    return any(
        all(processor is not mine for mine in ours)
        for processor in _sdk.span_processors(provider)
    )


def unexported_spans(provider: TracerProvider) -> int:
    """Sampled spans baseplate's processors on ``provider`` still hold (queued or being
    exported): what would be lost if the process ended now."""
    total = 0
    for processor in state_of(provider).processors:
        counts = getattr(processor, "telemetry_counts", None)
        if callable(counts):
            values = counts()
            total += int(values.get("spans.queued", 0)) + int(values.get("spans.in_flight", 0))
    return total


def _run_in_parallel(calls: list[Callable[[], object]], deadline: float) -> bool:
    """Run each call in its own thread (greenlet under gevent); whether all of them finished
    by ``deadline`` and none returned False or raised."""
    results: list[object] = []

    def run(call: Callable[[], object]) -> None:
        try:
            results.append(call())
        except Exception:
            logger.exception("telemetry flush failed")
            results.append(False)

    threads = [
        threading.Thread(target=run, args=(call,), name="baseplate-telemetry-flush", daemon=True)
        for call in calls
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return len(results) == len(calls) and all(result is not False for result in results)


def shutdown(provider: TracerProvider, timeout: float) -> bool:
    """Flush and shut ``provider`` down within ``timeout`` seconds in all; whether everything
    was exported in time.

    One budget for the whole shutdown. Every span processor flushes at once (a collector that
    hangs holds up only its own exporter), then each of baseplate's processors with a
    ``shutdown_timeout`` gets what is left of the budget for its shutdown; the provider's
    shutdown is not waited for past the budget. Processors log what they could not export,
    once, with its count. Never raises.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    millis = int(max(timeout, 0.0) * 1000)
    flushes: list[Callable[[], object]] = [
        functools.partial(processor.force_flush, millis)
        for processor in _sdk.span_processors(provider)
    ]
    flushed = _run_in_parallel(flushes, deadline)
    remaining = max(deadline - time.monotonic(), 0.0)
    for processor in state_of(provider).processors:
        if hasattr(processor, "shutdown_timeout"):
            processor.shutdown_timeout = remaining
    left_before = unexported_spans(provider)
    if not _run_in_parallel([provider.shutdown], deadline + 0.05):
        logger.warning(
            "telemetry shutdown did not finish within %gs; %d spans not exported",
            timeout,
            left_before,
        )
        return False
    return flushed


__all__ = [
    "UNKNOWN_SERVICE",
    "ProviderState",
    "add_span_processor",
    "baseplate_tracer",
    "ensure_provider",
    "exports_on_its_own",
    "set_service_name",
    "shutdown",
    "state_of",
    "unexported_spans",
]
