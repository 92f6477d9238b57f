"""OTLP/HTTP export received by a real collector (rotel), and its failure modes."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

from exporters.batch import BoundedBatchSpanProcessor
from exporters.otlp import environment_headers, make_otlp_exporter, otlp_traces_url
from otel_bridge import semconv

from .fixtures import Collector, Receiver, SpanMaker, wait_for


def test_spans_reach_the_collector(rotel: Collector, spans: SpanMaker) -> None:
    spans.ids.trace_ids.append(0x1234)
    spans.ids.span_ids.extend([0xA1, 0xB2])
    with spans.tracer.start_as_current_span("GET /things", kind=SpanKind.SERVER):
        with spans.tracer.start_as_current_span(
            "redis.GET", kind=SpanKind.CLIENT, attributes={"redis.key_count": 3}
        ):
            pass
    exporter = make_otlp_exporter(rotel.http_endpoint, timeout=5, service_name="my-service")

    assert exporter.export(spans.finished()) is SpanExportResult.SUCCESS

    text = wait_for(lambda: "redis.GET" in rotel.text() and rotel.text())
    assert "GET /things" in text
    assert "SPAN_KIND_SERVER" in text and "SPAN_KIND_CLIENT" in text
    assert "redis.key_count: Int(3)" in text
    assert "00000000000000000000000000001234" in text
    assert "00000000000000a1" in text
    assert "InstrumentationScope baseplate" in text
    # the provider's resource names no service, so the configured name is used
    assert "service.name: Str(my-service)" in text
    assert exporter.sent_spans == 2


def test_a_named_service_is_kept(rotel: Collector) -> None:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "from-resource"}))
    processor = BoundedBatchSpanProcessor(
        make_otlp_exporter(rotel.http_endpoint, service_name="from-config")
    )
    provider.add_span_processor(processor)
    with provider.get_tracer(semconv.TRACER_NAME).start_as_current_span("op"):
        pass

    assert processor.force_flush(10_000)
    provider.shutdown()

    text = wait_for(lambda: "Name           : op" in rotel.text() and rotel.text())
    assert "service.name: Str(from-resource)" in text
    assert "from-config" not in text


def test_collector_down_fails_within_the_timeout(refused_address: str, spans: SpanMaker) -> None:
    with spans.tracer.start_as_current_span("op"):
        pass
    exporter = make_otlp_exporter(refused_address, timeout=0.5)

    assert exporter.export(spans.finished()) is SpanExportResult.FAILURE
    assert exporter.dropped_spans == 1


def test_hanging_collector_fails_within_the_timeout(hanging_address: str, spans: SpanMaker) -> None:
    with spans.tracer.start_as_current_span("op"):
        pass
    exporter = make_otlp_exporter(hanging_address, timeout=0.5)

    assert exporter.export(spans.finished()) is SpanExportResult.FAILURE
    assert exporter.dropped_spans == 1


def test_collector_error_answer_fails(receiver: Receiver, spans: SpanMaker) -> None:
    receiver.status = 500
    with spans.tracer.start_as_current_span("op"):
        pass
    exporter = make_otlp_exporter(receiver.url, timeout=0.5)

    assert exporter.export(spans.finished()) is SpanExportResult.FAILURE
    assert exporter.dropped_spans == 1
    assert receiver.requests and receiver.requests[0].path == "/v1/traces"
    assert receiver.requests[0].headers["content-type"] == "application/x-protobuf"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://collector/otlp/traces", "https://collector/otlp/traces"),
    ],
)
def test_endpoint_url(endpoint: str, url: str) -> None:
    assert otlp_traces_url(endpoint) == url


def test_blank_traces_headers_variable_falls_back_to_the_general_one(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, spans: SpanMaker
) -> None:
    # Blank means unset for every OTEL_* variable (the SDK alone would send no key here).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "  ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "X-Api-Key=abc%20def,tenant=t1")
    with spans.tracer.start_as_current_span("op"):
        pass
    exporter = make_otlp_exporter(receiver.url, headers={"Tenant": "given"})

    assert exporter.export(spans.finished()) is SpanExportResult.SUCCESS

    headers = receiver.requests[0].headers
    assert headers["x-api-key"] == "abc def"
    assert headers["tenant"] == "given"


def test_environment_headers() -> None:
    traces, general = "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"

    assert environment_headers({}) == {}
    assert environment_headers({general: "a=1"}) == {"a": "1"}
    assert environment_headers({traces: "b=2", general: "a=1"}) == {"b": "2"}
    assert environment_headers({traces: " ", general: "a=1"}) == {"a": "1"}


def test_collector_down_logs_a_line_a_minute_not_one_per_export(
    refused_address: str, spans: SpanMaker, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    exporter = make_otlp_exporter(refused_address, timeout=0.2)
    with caplog.at_level(logging.DEBUG, logger="opentelemetry"):
        for _ in range(10):
            with spans.tracer.start_as_current_span("op"):
                pass
            assert exporter.export(spans.finished()) is SpanExportResult.FAILURE
    sdk_lines = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert len(sdk_lines) <= 2, [r.getMessage() for r in sdk_lines]
    assert exporter.dropped_spans >= 10
