"""A vendor-instrumented ``requests`` call inside a baseplate span, in-process.

The vendor instrumentation injects with OpenTelemetry's global propagator; baseplate's
composite must be that propagator so the call carries the baseplate headers (with the
request's Edge-Request) next to W3C ``traceparent``. The callee is a local HTTP server that
answers the headers it received.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator

import pytest
import requests
from opentelemetry import propagate
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.core import Baseplate, RequestContext, TraceInfo
from otel_bridge.context import set_edge_request
from otel_bridge.propagation import http_propagator


class _EchoHeaders(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def baseplate(exporter: InMemorySpanExporter) -> Iterator[Baseplate]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = propagate.get_global_textmap()
    # What adopting or installing a provider does when OTEL_PROPAGATORS is not set.
    propagate.set_global_textmap(http_propagator())
    RequestsInstrumentor().instrument(tracer_provider=provider)
    try:
        yield Baseplate(tracer_provider=provider)
    finally:
        RequestsInstrumentor().uninstrument()
        propagate.set_global_textmap(previous)


def test_vendor_client_sends_baseplate_and_w3c_headers(
    baseplate: Baseplate, exporter: InMemorySpanExporter, echo_url: str
) -> None:
    edge = b"\x0b\x00\x03\x00\x00\x00\x03tok\x00"
    span = baseplate.make_server_span(
        RequestContext(), "handler", TraceInfo(987654321, 5, 77, True, 1)
    )
    with span:
        set_edge_request(edge)
        headers = requests.get(echo_url, timeout=10).json()

    client = next(s for s in exporter.get_finished_spans() if s.kind.name == "CLIENT")
    assert client.parent is not None and client.parent.span_id == 77
    client_id = client.context.span_id
    assert headers["x-trace"] == "987654321"
    assert headers["x-parent"] == "77"
    assert headers["x-span"] == str(client_id)
    assert headers["x-sampled"] == "1"
    assert headers["x-flags"] == "1"
    assert base64.b64decode(headers["x-edge-request"]) == edge
    assert headers["traceparent"] == f"00-{987654321:032x}-{client_id:016x}-01"


def test_without_an_edge_context_the_header_is_empty(
    baseplate: Baseplate, echo_url: str
) -> None:
    span = baseplate.make_server_span(RequestContext(), "handler", TraceInfo.new())
    with span:
        headers = requests.get(echo_url, timeout=10).json()

    # 1.x services that trust headers fail requests that lack it.
    assert headers["x-edge-request"] == ""
    assert headers["x-trace"] == str(span.trace_id)
