"""Span-derived metrics as OpenTelemetry instruments: what the span processor records for
server, client and local spans, read back from an in-memory metric reader."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import webtest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from baseplate.core import Baseplate, RequestContext
from exporters.otel_metrics import (
    DURATION_BUCKETS,
    HTTP_CLIENT_DURATION,
    HTTP_SERVER_DURATION,
    SPAN_CALLS,
    SPAN_DURATION,
    SPAN_ERRORS,
    SpanMetricsProcessor,
)
from otel_bridge.semconv import TRACER_NAME
from tests.metrics import service
from tests.metrics.receivers import find, one, read_memory


@pytest.fixture
def unsampled(provider: TracerProvider) -> Baseplate:
    """A Baseplate whose new traces are never sampled: its spans are recording only."""
    bp = Baseplate(tracer_provider=provider)
    bp.sampler.sample_rate = 0.0
    return bp


def test_server_client_and_local_spans_become_instruments(unsampled, memory_client) -> None:
    client, reader = memory_client()
    unsampled.configure_metrics(client)

    for _ in range(3):
        context = RequestContext()
        with unsampled.make_server_span(context, "get_user") as span:
            with span.make_child("redis.GET"):
                pass
            with span.make_child("render", local=True, component_name="templates"):
                pass
    assert not span.sampled  # every request is metered whatever the sampling decided

    points = read_memory(reader)
    server = one(points, SPAN_DURATION, baseplate__span__kind="server")
    assert server.attributes == {
        "baseplate.span.kind": "server",
        "baseplate.span.name": "get_user",
        "baseplate.success": True,
    }
    assert server.count == 3 and server.sum is not None and server.sum > 0
    assert server.unit == "s" and server.buckets == list(DURATION_BUCKETS)
    redis = one(points, SPAN_DURATION, baseplate__span__kind="client")
    assert redis.attributes["baseplate.span.name"] == "redis.GET" and redis.count == 3
    local = one(points, SPAN_DURATION, baseplate__span__kind="local")
    assert local.attributes == {
        "baseplate.span.kind": "local",
        "baseplate.span.name": "render",
        "baseplate.component_name": "templates",
    }
    assert local.count == 3
    assert one(points, SPAN_CALLS, baseplate__span__name="get_user").value == 3
    assert one(points, SPAN_CALLS, baseplate__span__name="redis.GET").value == 3
    assert not find(points, SPAN_CALLS, baseplate__span__kind="local")


def test_failures_and_error_objects_are_counted(unsampled, memory_client) -> None:
    client, reader = memory_client()
    unsampled.configure_metrics(client)

    context = RequestContext()
    with pytest.raises(RuntimeError):
        with unsampled.make_server_span(context, "charge") as span:
            with pytest.raises(ConnectionError):
                with span.make_child("payments.charge") as child:
                    child.log("error.object", ConnectionError("refused"))
                    raise ConnectionError("refused")
            raise RuntimeError("charge failed")

    points = read_memory(reader)
    assert one(points, SPAN_CALLS, baseplate__span__name="charge").attributes[
        "baseplate.success"
    ] is False
    assert one(points, SPAN_CALLS, baseplate__span__name="payments.charge").has(
        baseplate__success=False
    )
    error = one(points, SPAN_ERRORS)
    assert error.attributes == {
        "error.type": "ConnectionError",
        "baseplate.span.name": "payments.charge",
    }
    assert error.value == 1


def test_an_internal_span_without_component_records_nothing(
    provider, unsampled, memory_client
) -> None:
    client, reader = memory_client()
    unsampled.configure_metrics(client)
    tracer = provider.get_tracer(TRACER_NAME)  # baseplate's scope, but no component name
    with unsampled.make_server_span(RequestContext(), "op"):
        with tracer.start_as_current_span("anonymous"):
            pass
    points = read_memory(reader)
    assert one(points, SPAN_DURATION, baseplate__span__name="op").count == 1
    assert not find(points, SPAN_DURATION, baseplate__span__name="anonymous")


def test_pyramid_requests_follow_the_http_server_conventions(provider, memory_client) -> None:
    client, reader = memory_client()
    app = webtest.TestApp(service.make_app({}, tracer_provider=provider, metrics_client=client))

    app.get("/hello")
    app.get("/hello")
    with pytest.raises(RuntimeError):
        app.get("/fail")

    points = read_memory(reader)
    ok = one(points, HTTP_SERVER_DURATION, baseplate__span__name="hello")
    assert ok.attributes == {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "baseplate.span.name": "hello",
    }
    assert ok.count == 2 and ok.unit == "s"
    failed = one(points, HTTP_SERVER_DURATION, baseplate__span__name="fail")
    assert failed.attributes["error.type"] == "RuntimeError"
    assert failed.count == 1
    assert one(points, SPAN_ERRORS).attributes["error.type"] == "TimeoutError"
    assert one(points, "svc.greetings").value == 2  # the application's own counter
    assert not find(points, HTTP_CLIENT_DURATION)


def test_client_spans_with_an_http_method_follow_the_http_client_conventions(
    unsampled, memory_client
) -> None:
    client, reader = memory_client()
    unsampled.configure_metrics(client)
    with unsampled.make_server_span(RequestContext(), "op") as span:
        with span.make_child("vault.request") as child:
            child.set_tag("http.method", "brew")
            child.set_tag("http.url", "https://vault:8200/v1/secret")
            child.set_tag("http.status_code", 503)
    point = one(read_memory(reader), HTTP_CLIENT_DURATION)
    assert point.attributes == {
        "http.request.method": "_OTHER",
        "http.response.status_code": 503,
        "url.scheme": "https",
        "error.type": "503",
        "baseplate.span.name": "vault.request",
    }


def test_another_baseplates_requests_and_vendor_spans_are_not_measured(
    provider, memory_client
) -> None:
    client, reader = memory_client()
    measured = Baseplate(tracer_provider=provider)
    measured.configure_metrics(client)
    other = Baseplate(tracer_provider=provider)
    vendor = provider.get_tracer("vendor.instrumentation")

    with other.make_server_span(RequestContext(), "theirs") as span:
        with span.make_child("their.call"):
            pass
    with vendor.start_as_current_span("GET /vendor/route", kind=trace.SpanKind.SERVER):
        pass
    with measured.make_server_span(RequestContext(), "ours") as span:
        # a vendor span inside our request is not measured itself, but what it wraps is
        with vendor.start_as_current_span("SELECT 1", kind=trace.SpanKind.CLIENT):
            with span.make_child("inner.call"):
                pass

    points = find(read_memory(reader), SPAN_DURATION)
    names = {point.attributes.get("baseplate.span.name") for point in points}
    assert names == {"ours", "inner.call"}


def test_open_spans_are_bounded(provider, memory_client) -> None:
    client, reader = memory_client()
    processor = SpanMetricsProcessor(client.pipeline.span_instruments, max_open_spans=10)
    bp = Baseplate(tracer_provider=provider)
    bp.add_span_processor(processor)

    context = RequestContext()
    span = bp.make_server_span(context, "leaky")
    processor.announce(span.trace_id, span.id)
    span.start()
    children = [span.make_child(f"call{i}") for i in range(50)]
    for child in children:
        child.start()
    assert len(processor._members) <= 10
    for child in children:
        child.finish()
    span.finish()
    assert not processor._members and not processor._open_ids


def test_a_failing_instrument_never_reaches_the_request(unsampled, memory_client, caplog) -> None:
    client, reader = memory_client()
    unsampled.configure_metrics(client)

    class Broken:
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("instrument broke")

    client.pipeline.span_instruments.duration = Broken()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="exporters.otel_metrics"):
        with unsampled.make_server_span(RequestContext(), "op"):
            pass
    assert "request metrics failed" in caplog.text


def test_flush_and_shutdown_export_through_the_pipeline(memory_client) -> None:
    client, reader = memory_client()
    calls: list[float] = []

    def flush(timeout: float) -> bool:
        calls.append(timeout)
        return True

    processor = SpanMetricsProcessor(client.pipeline.span_instruments, flush=flush)
    assert processor.force_flush(2500) is True
    processor.shutdown_timeout = 1.5
    processor.shutdown()
    assert calls == [2.5, 1.5]
