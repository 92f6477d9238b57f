"""Suite-wide fixtures.

Each test starts with an empty OpenTelemetry context: a test that fails half-way can leave a
span active, and the next test's server spans would otherwise join that stray trace.

``exporter``, ``provider`` and ``baseplate`` give a test its own tracer provider whose
finished spans can be inspected, and a Baseplate on it that samples every new trace.
Folders override ``provider`` when they need more on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.core import Baseplate


@pytest.fixture(autouse=True)
def _isolated_otel_context() -> Iterator[None]:
    token = otel_context.attach(otel_context.Context())
    yield
    try:
        otel_context.detach(token)
    except Exception:
        pass


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def baseplate(provider: TracerProvider) -> Iterator[Baseplate]:
    bp = Baseplate(tracer_provider=provider)
    rate = bp.sampler.sample_rate
    bp.sampler.sample_rate = 1.0
    yield bp
    bp.sampler.sample_rate = rate
