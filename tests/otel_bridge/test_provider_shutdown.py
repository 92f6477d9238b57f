"""One budget for the whole telemetry shutdown: a hanging exporter holds up only itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.core import Baseplate, RequestContext
from exporters.batch import BoundedBatchSpanProcessor
from otel_bridge import provider as bridge_provider


class HangingExporter(SpanExporter):
    """An exporter whose collector never answers (released at the end of the test)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(60)
        return SpanExportResult.FAILURE


def test_a_hanging_exporter_holds_up_only_itself(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    hanging = HangingExporter()
    working = InMemorySpanExporter()
    bp = Baseplate(provider)
    bp.sampler.sample_rate = 1.0
    # the hanging one first: a sequential flush would spend the whole budget on it
    bp.add_span_processor(BoundedBatchSpanProcessor(hanging, schedule_delay=60))
    bp.add_span_processor(BoundedBatchSpanProcessor(working, schedule_delay=60))
    try:
        for _ in range(3):
            with bp.make_server_span(RequestContext(), "request"):
                pass
        with caplog.at_level(logging.WARNING):
            assert bridge_provider.shutdown(provider, 0.5) is False
        assert len(working.get_finished_spans()) == 3
        assert "3 spans were not exported before shutdown" in caplog.text
    finally:
        hanging.release.set()


def test_everything_exported_in_time() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    working = InMemorySpanExporter()
    bp = Baseplate(provider)
    bp.sampler.sample_rate = 1.0
    bp.add_span_processor(BoundedBatchSpanProcessor(working, schedule_delay=60))
    with bp.make_server_span(RequestContext(), "request"):
        pass
    assert bridge_provider.shutdown(provider, 5) is True
    assert len(working.get_finished_spans()) == 1
    assert bridge_provider.unexported_spans(provider) == 0
