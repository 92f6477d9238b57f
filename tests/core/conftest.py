"""Fixtures for the span model: a private tracer provider whose spans can be inspected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class RecordingProcessor(SpanProcessor):
    """Keeps every span that ends, sampled or not (what metrics and error reporting see)."""

    def __init__(self) -> None:
        self.started: list[ReadableSpan] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span, parent_context=None):  # type: ignore[no-untyped-def]
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)



@pytest.fixture
def recorder() -> RecordingProcessor:
    return RecordingProcessor()


@pytest.fixture
def provider(
    exporter: InMemorySpanExporter, recorder: RecordingProcessor
) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(recorder)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()
