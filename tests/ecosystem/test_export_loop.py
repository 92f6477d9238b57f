"""``tracing.exporter = otlp`` under ``opentelemetry-instrument``: exporting makes no spans.

The set-up the operations guide recommends for gevent: the distro's own exporter off
(``OTEL_TRACES_EXPORTER=none``), baseplate's OTLP exporter from the INI file, and the vendor
``requests`` and ``urllib3`` instrumentations installed, so the distro instruments both HTTP
stacks the OTLP exporter may post with. Without instrumentation suppressed around each export,
every export is a traced POST whose span is exported in turn: a loop that floods the
collector and keeps shutdown from finishing in time.

The collector is a local OTLP/HTTP receiver recording every request; the service is the
``examples/vendor_mix`` app served by ``baseplate-serve``.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from baseplate.server.cli import TELEMETRY_FLUSH_TIMEOUT
from tests.ecosystem.servers import Service, VendorService, assert_quiet, wait_for
from tests.exporters.fixtures import Receiver, receiver  # noqa: F401 (fixture)

REQUESTS = 5
STOP_TIMEOUT = 5.0  # the [server:main] stop_timeout of the test INI files


@dataclass(frozen=True)
class CollectedSpan:
    trace_id: int
    span_id: int
    name: str
    kind: int
    scope: str


def collected(collector: Receiver) -> list[CollectedSpan]:
    """Every span the collector received, from the OTLP/HTTP protobuf requests it recorded."""
    spans = []
    for request in list(collector.requests):
        assert request.path == "/v1/traces"
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.body)
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        CollectedSpan(
                            int.from_bytes(span.trace_id, "big"),
                            int.from_bytes(span.span_id, "big"),
                            span.name,
                            span.kind,
                            scope_spans.scope.name,
                        )
                    )
    return spans


def test_the_distro_instruments_both_http_stacks() -> None:
    # what opentelemetry-instrument loads: every installed instrumentor's entry point
    group = importlib.metadata.entry_points(group="opentelemetry_instrumentor")
    names = {entry.name for entry in group}
    assert {"requests", "urllib3"} <= names


@pytest.fixture
def service(
    tmp_path: pathlib.Path, vendor: VendorService, receiver: Receiver  # noqa: F811
) -> Iterator[Service]:
    running = Service(
        tmp_path,
        settings={
            "tracing.exporter": "otlp",
            "tracing.exporter.endpoint": receiver.url,
            "downstream.url": vendor.url + "/echo",
        },
    )
    yield running
    running.server.kill()


def test_otlp_export_under_opentelemetry_instrument_makes_no_spans_of_its_own(
    service: Service, receiver: Receiver  # noqa: F811
) -> None:
    # Each /orders request makes a server span, local spans, redis and SQL spans and an
    # instrumented requests GET to the vendor service: vendor instrumentation is live.
    trace_ids = [service.get(f"/orders/{n}").json()["trace_id"] for n in range(REQUESTS)]
    wait_for(lambda: {s.trace_id for s in collected(receiver)} >= set(trace_ids))

    started = time.monotonic()
    assert service.stop() == 0
    stop_seconds = time.monotonic() - started

    spans = collected(receiver)
    by_trace: dict[int, list[CollectedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    # The requests' spans arrived, the application's own GET among them.
    for trace_id in trace_ids:
        names = {(s.name, s.kind) for s in by_trace[trace_id]}
        assert ("GET", ProtoSpan.SPAN_KIND_CLIENT) in names, names
        assert any(kind == ProtoSpan.SPAN_KIND_SERVER for _, kind in names)
    # No span of the exporter's own POSTs: each export is not traced, so every trace that
    # reached the collector is one of a request the service served (/orders or /health).
    assert not [s for s in spans if s.name.startswith("POST")]
    for trace_spans in by_trace.values():
        assert any(s.kind == ProtoSpan.SPAN_KIND_SERVER for s in trace_spans), trace_spans
    # Each span once: no export was repeated or looped back.
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)
    # What the collector got is what the application recorded (the test's span log).
    logged = {(s.trace_id, s.span_id) for s in service.spans()}
    assert {(s.trace_id, s.span_id) for s in spans} == logged

    # Prompt shutdown: nothing kept the exporter busy, so the stop did not use up the
    # stop and flush budgets (a looping exporter runs out of the flush time).
    assert stop_seconds < STOP_TIMEOUT + TELEMETRY_FLUSH_TIMEOUT
    assert stop_seconds < TELEMETRY_FLUSH_TIMEOUT
    assert "telemetry shutdown did not finish" not in service.server.stdout + service.server.stderr
    assert_quiet(service.server.stderr)
