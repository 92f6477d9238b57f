"""Request metrics received by real receivers: the rotel OTLP collector, and an HTTP scrape
of the Prometheus endpoint parsed with prometheus_client's parser. A collector that is down
costs the requests nothing and is counted."""

from __future__ import annotations

import logging
import socket

import pytest
import webtest

from baseplate.diagnostics.health import telemetry_counts
from baseplate.metrics import OTelClient, metrics_client_from_config
from tests.metrics import service
from tests.metrics.receivers import (
    MetricsCollector,
    find,
    one,
    parse_prometheus,
    scrape,
)
from tests.server.conftest import free_port


def serve_in_process(provider, raw: dict[str, str]) -> tuple[webtest.TestApp, OTelClient]:
    client = metrics_client_from_config(raw, environ={})
    assert isinstance(client, OTelClient)
    app = webtest.TestApp(service.make_app(raw, tracer_provider=provider, metrics_client=client))
    return app, client


def make_requests(app: webtest.TestApp, hellos: int) -> None:
    for _ in range(hellos):
        app.get("/hello")
    with pytest.raises(RuntimeError):
        app.get("/fail")


def test_the_collector_receives_names_attributes_and_values(
    provider, collector: MetricsCollector
) -> None:
    app, client = serve_in_process(
        provider,
        {
            "metrics.exporter": "otlp",
            "metrics.namespace": "svc",
            "metrics.otlp.endpoint": collector.http_endpoint,
            "metrics.otlp.interval": "60 seconds",  # the flush below exports
        },
    )
    make_requests(app, 3)
    assert client.flush(10)

    points = collector.wait_for("svc.greetings")
    calls = one(points, "baseplate.span.calls", baseplate__span__name="hello")
    assert calls.attributes == {
        "service.name": "svc",
        "baseplate.span.kind": "server",
        "baseplate.span.name": "hello",
        "baseplate.success": True,
    }
    assert calls.value == 3 and calls.kind == "Sum"
    failed = one(points, "baseplate.span.calls", baseplate__span__name="fail")
    assert failed.has(baseplate__success=False) and failed.value == 1
    fetch_failed = one(
        points,
        "baseplate.span.calls",
        baseplate__span__name="backend.fetch",
        baseplate__success=False,
    )
    assert fetch_failed.value == 1
    duration = one(points, "baseplate.span.duration", baseplate__span__name="hello")
    assert duration.kind == "Histogram" and duration.unit == "s" and duration.count == 3
    assert duration.sum is not None and duration.sum > 0
    local = one(points, "baseplate.span.duration", baseplate__span__kind="local")
    assert local.has(baseplate__component_name="greeting") and local.count == 3
    http = one(points, "http.server.request.duration", http__response__status_code=200)
    assert http.has(http__request__method="GET", url__scheme="http") and http.count == 3
    http_failed = one(points, "http.server.request.duration", baseplate__span__name="fail")
    assert http_failed.has(error__type="RuntimeError")
    error = one(points, "baseplate.span.errors")
    assert error.has(error__type="TimeoutError") and error.value == 1
    assert one(points, "svc.greetings").value == 3
    render = one(points, "svc.render")
    assert render.count == 3 and render.sum == pytest.approx(0.75)
    assert client.telemetry_counts()["metrics.failed"] == 0
    assert client.telemetry_counts()["metrics.exported"] >= len(points)


def test_periodic_export_reaches_the_collector_without_a_flush(
    provider, collector: MetricsCollector
) -> None:
    app, _ = serve_in_process(
        provider,
        {
            "metrics.exporter": "otlp",
            "metrics.namespace": "periodic",
            "metrics.otlp.endpoint": collector.http_endpoint,
            "metrics.otlp.interval": "200 milliseconds",
        },
    )
    app.get("/hello")
    points = collector.wait_for("periodic.greetings")
    assert one(points, "periodic.greetings").value == 1


def test_a_collector_that_is_down_costs_requests_nothing_and_is_counted(provider, caplog) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        down = f"127.0.0.1:{probe.getsockname()[1]}"
    app, client = serve_in_process(
        provider,
        {
            "metrics.exporter": "otlp",
            "metrics.namespace": "svc",
            "metrics.otlp.endpoint": down,
            "metrics.otlp.interval": "60 seconds",
            "metrics.otlp.timeout": "1 second",
        },
    )
    with caplog.at_level(logging.WARNING, logger="exporters.otlp_metrics"):
        make_requests(app, 20)
        # the requests only added to aggregates in memory: none of them tried to export
        assert client.telemetry_counts()["metrics.failed"] == 0
        assert not client.flush(5)
    counts = client.telemetry_counts()
    assert counts["metrics.failed"] > 0 and counts["metrics.exported"] == 0
    assert "metrics export to http://" in caplog.text
    # and the telemetry health metrics see the loss, as they see lost spans
    health = telemetry_counts(app.app.baseplate)
    assert health["metrics.failed"] == counts["metrics.failed"]


def test_a_prometheus_scrape_parses_into_the_same_metrics(provider) -> None:
    port = free_port()
    app, client = serve_in_process(
        provider,
        {
            "metrics.exporter": "prometheus",
            "metrics.namespace": "svc",
            "metrics.prometheus.host": "127.0.0.1",
            "metrics.prometheus.port": str(port),
        },
    )
    make_requests(app, 3)

    content_type, body = scrape(f"http://127.0.0.1:{port}/metrics")
    assert content_type.startswith("text/plain")
    points = parse_prometheus(body)
    calls = one(points, "baseplate_span_calls_total", baseplate_span_name="hello")
    assert calls.attributes["baseplate_span_kind"] == "server"
    assert calls.attributes["baseplate_success"] == "true"
    assert calls.attributes["otel_scope_name"] == "baseplate"
    assert calls.value == 3
    assert one(points, "baseplate_span_calls_total", baseplate_span_name="fail").has(
        baseplate_success="false"
    )
    duration = one(points, "baseplate_span_duration_seconds", baseplate_span_name="hello")
    assert duration.count == 3 and duration.buckets[:3] == [0.005, 0.01, 0.025]
    http = one(
        points, "http_server_request_duration_seconds", http_response_status_code="200"
    )
    assert http.has(http_request_method="GET") and http.count == 3
    assert one(points, "baseplate_span_errors_total").has(error_type="TimeoutError")
    assert one(points, "svc_greetings_total").value == 3
    assert one(points, "svc_render_seconds").count == 3
    assert find(points, "target_info")[0].attributes["service_name"] == "svc"

    app.get("/hello")
    _, body = scrape(f"http://127.0.0.1:{port}/metrics")  # cumulative: scraped again
    assert one(parse_prometheus(body), "svc_greetings_total").value == 4
