"""Sending telemetry makes no telemetry: every export path runs with instrumentation suppressed.

Without it, with the ``requests`` instrumentation active, each OTLP export is a traced POST
whose span is queued and exported in turn (a loop that never drains).
"""

from __future__ import annotations

import http.client
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from exporters.batch import BoundedBatchSpanProcessor
from exporters.http import JsonPoster
from exporters.otlp import make_otlp_exporter, otlp_traces_url
from exporters.sentry import SentrySpanProcessor
from exporters.zipkin import ZipkinExporter
from otel_bridge import semconv
from otel_bridge.context import end_with_exception

from .fixtures import Receiver

SPAN_COUNT = 20


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def recorded(provider: TracerProvider) -> InMemorySpanExporter:
    """Every span the provider ends, the exporters' own included if they made any."""
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def instrumented(provider: TracerProvider) -> Iterator[None]:
    """The requests (and, when installed, urllib3) instrumentation, tracing to ``provider``."""
    instrumentors: list[Any] = [RequestsInstrumentor()]
    try:
        from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
    except ImportError:
        pass
    else:
        instrumentors.append(URLLib3Instrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


def received_otlp_span_names(receiver: Receiver) -> list[str]:
    names: list[str] = []
    for request in receiver.requests:
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.body)
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                names.extend(span.name for span in scope_spans.spans)
    return names


def baseplate_otlp_exporter(url: str) -> SpanExporter:
    return make_otlp_exporter(url, service_name="svc")


def sdk_otlp_exporter(url: str) -> SpanExporter:
    # An exporter that does not suppress instrumentation itself: the processor must.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=otlp_traces_url(url), timeout=5)


@pytest.mark.parametrize("make_exporter", [baseplate_otlp_exporter, sdk_otlp_exporter])
def test_otlp_export_through_the_batch_processor_makes_no_client_spans(
    provider: TracerProvider,
    recorded: InMemorySpanExporter,
    instrumented: None,
    receiver: Receiver,
    make_exporter: Callable[[str], SpanExporter],
) -> None:
    processor = BoundedBatchSpanProcessor(make_exporter(receiver.url), max_export_batch_size=5)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(semconv.TRACER_NAME)
    for index in range(SPAN_COUNT):
        with tracer.start_as_current_span(f"op-{index}"):
            pass

    # With a self-tracing loop the queue never drains and this gives up at its timeout.
    assert processor.force_flush()

    expected = sorted(f"op-{index}" for index in range(SPAN_COUNT))
    assert sorted(received_otlp_span_names(receiver)) == expected
    assert sorted(span.name for span in recorded.get_finished_spans()) == expected
    assert [s for s in recorded.get_finished_spans() if s.kind is SpanKind.CLIENT] == []
    assert processor.exported_spans == SPAN_COUNT
    processor.shutdown()
    assert [s for s in recorded.get_finished_spans() if s.kind is SpanKind.CLIENT] == []

    # The instrumentation was live all along: a POST of the application's own is traced.
    requests.post(receiver.url + "/app", data=b"{}", timeout=5)
    assert [s.name for s in recorded.get_finished_spans() if s.kind is SpanKind.CLIENT] == ["POST"]


def test_otlp_exporter_suppresses_under_any_processor(
    provider: TracerProvider, recorded: InMemorySpanExporter, instrumented: None, receiver: Receiver
) -> None:
    exporter = make_otlp_exporter(receiver.url)
    with provider.get_tracer(semconv.TRACER_NAME).start_as_current_span("op"):
        pass
    finished = list(recorded.get_finished_spans())

    exporter.export(finished)
    exporter.force_flush()
    exporter.shutdown()

    assert received_otlp_span_names(receiver) == ["op"]
    assert [span.name for span in recorded.get_finished_spans()] == ["op"]


class _InstrumentationProbe:
    """Stands in for an instrumentation of ``http.client``: notes, at each request, whether
    instrumentation is enabled in the calling context."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.enabled_at_request: list[bool] = []
        original = http.client.HTTPConnection.request

        def request(connection: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> None:
            self.enabled_at_request.append(is_instrumentation_enabled())
            original(connection, *args, **kwargs)

        monkeypatch.setattr(http.client.HTTPConnection, "request", request)


def test_json_poster_posts_with_instrumentation_suppressed(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # The trace publisher sidecar and the Zipkin exporter post through JsonPoster.
    probe = _InstrumentationProbe(monkeypatch)
    poster = JsonPoster(receiver.url + "/api/v1/spans", 5.0, user_agent="test")

    assert poster.post(b"[]") == 202
    assert is_instrumentation_enabled()

    assert probe.enabled_at_request == [False]
    poster.close()


def test_zipkin_export_is_suppressed_without_the_batch_processor(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, provider: TracerProvider
) -> None:
    probe = _InstrumentationProbe(monkeypatch)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer(semconv.TRACER_NAME).start_as_current_span("op"):
        pass
    exporter = ZipkinExporter("svc", receiver.url)

    exporter.export(memory.get_finished_spans())

    assert [span["name"] for span in receiver.spans()] == ["op"]
    assert probe.enabled_at_request == [False]
    exporter.shutdown()


def test_error_reports_are_sent_with_instrumentation_suppressed(
    provider: TracerProvider,
) -> None:
    enabled_at_report: list[bool] = []
    provider.add_span_processor(
        SentrySpanProcessor(lambda *report: enabled_at_report.append(is_instrumentation_enabled()))
    )
    span = provider.get_tracer(semconv.TRACER_NAME).start_span("GET /", kind=SpanKind.SERVER)
    span.set_status(Status(StatusCode.ERROR))
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
        end_with_exception(span, exc_info)  # type: ignore[arg-type]

    assert enabled_at_report == [False]
    assert is_instrumentation_enabled()
