"""Each Baseplate keeps its own sample rate, even when several share one tracer provider."""

from __future__ import annotations

import gc
import weakref

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.core import Baseplate, RequestContext
from otel_bridge import provider as bridge_provider


def _sampled_share(bp: Baseplate, requests: int = 200) -> float:
    sampled = 0
    for _ in range(requests):
        with bp.make_server_span(RequestContext(), "route") as span:
            sampled += bool(span.otel_span.get_span_context().trace_flags.sampled)  # type: ignore[union-attr]
    return sampled / requests


def test_two_baseplates_on_one_provider_keep_their_own_rate() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    always, never = Baseplate(provider), Baseplate(provider)
    always.sampler.sample_rate = 1.0
    never.sampler.sample_rate = 0.0
    assert always.sampler is not never.sampler

    assert _sampled_share(always) == 1.0
    assert _sampled_share(never) == 0.0
    assert _sampled_share(always) == 1.0  # the other's rate did not leak in
    assert len(exported.get_finished_spans()) == 400


def test_two_baseplates_on_the_global_provider_keep_their_own_rate() -> None:
    first, second = Baseplate(), Baseplate()
    assert first.tracer_provider is second.tracer_provider
    first.sampler.sample_rate = 1.0
    second.sampler.sample_rate = 0.0
    assert _sampled_share(first, 50) == 1.0
    assert _sampled_share(second, 50) == 0.0


def test_provider_state_goes_with_its_provider() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    Baseplate(provider)
    assert bridge_provider.state_of(provider).tracer is not None
    assert not hasattr(provider, "_baseplate_processors")
    ref = weakref.ref(provider)
    del provider
    gc.collect()
    assert ref() is None
