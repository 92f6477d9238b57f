"""A Thrift service calling another Thrift service: one trace, the right ids on every hop."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate
from baseplate.thrift_pool import ThriftConnectionPool


class Backend:
    """Service B: answers ``example`` and remembers what it was sent."""

    def __init__(self) -> None:
        self.headers: list[dict[bytes, bytes]] = []
        self.server_spans: list[Any] = []

    def example(self, context: Any, text: str) -> str:
        self.headers.append(dict(context.headers))
        self.server_spans.append(context.trace)
        return f"backend saw {text}"


class Frontend:
    """Service A: ``relay`` calls B through the context."""

    def __init__(self) -> None:
        self.server_spans: list[Any] = []

    def relay(self, context: Any, text: str) -> str:
        self.server_spans.append(context.trace)
        return str(context.backend.example(text))


@pytest.fixture
def services(
    baseplate_server: Any, provider: TracerProvider, example_service: Any
) -> tuple[Any, Backend, Frontend]:
    backend = Backend()
    backend_baseplate = Baseplate(tracer_provider=provider)
    backend_baseplate.sampler.sample_rate = 1.0  # each Baseplate has its own rate
    backend_server = baseplate_server(backend, backend_baseplate)

    frontend = Frontend()
    frontend_baseplate = Baseplate(tracer_provider=provider)
    frontend_baseplate.sampler.sample_rate = 1.0
    pool = ThriftConnectionPool(backend_server.endpoint)
    frontend_baseplate.add_to_context(
        "backend", ThriftContextFactory(pool, example_service.Client)
    )
    frontend_server = baseplate_server(frontend, frontend_baseplate)
    return frontend_server, backend, frontend


def spans_by_role(exporter: InMemorySpanExporter) -> tuple[Any, Any, Any]:
    spans = exporter.get_finished_spans()
    assert len(spans) == 3, spans
    (frontend_server,) = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "relay"]
    (frontend_client,) = [s for s in spans if s.kind == SpanKind.CLIENT]
    (backend_server,) = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "example"]
    return frontend_server, frontend_client, backend_server


def test_legacy_client_headers_continue_through_both_services(
    services: Any, header_client: Any, exporter: InMemorySpanExporter, baseplate: Baseplate
) -> None:
    frontend_server, backend, frontend = services
    edge_request = b"\x0c\x00\x01\x0b\x00\x01\x00\x00\x00\x06t2_abc\x00\x00"
    client = header_client(
        frontend_server,
        {
            b"Trace": b"1234",
            b"Parent": b"5678",
            b"Span": b"91011",
            b"Sampled": b"1",
            b"Edge-Request": edge_request,
        },
    )
    assert client.relay("hello") == "backend saw hello"

    a_server, a_client, b_server = spans_by_role(exporter)
    # hop 1: the legacy caller's ids are A's server span (shared-span model)
    assert (a_server.context.trace_id, a_server.context.span_id) == (1234, 91011)
    assert a_server.parent.span_id == 5678
    # A's call to B is a child of A's server span
    assert a_client.name == "backend.example"
    assert a_client.context.trace_id == 1234
    assert a_client.parent.span_id == 91011
    # hop 2: B's server span has exactly the ids A sent
    assert b_server.context.trace_id == 1234
    assert b_server.context.span_id == a_client.context.span_id
    assert b_server.parent.span_id == 91011

    (sent,) = backend.headers
    assert sent[b"Trace"] == b"1234"
    assert sent[b"Parent"] == b"91011"
    assert sent[b"Span"] == str(a_client.context.span_id).encode()
    assert sent[b"Sampled"] == b"1"
    assert b"Flags" not in sent
    assert sent[b"User-Agent"] == b"example-service"
    assert sent[b"Edge-Request"] == edge_request

    (b_span,) = backend.server_spans
    assert (b_span.trace_id, b_span.parent_id, b_span.id) == (
        1234,
        91011,
        a_client.context.span_id,
    )


def test_request_without_headers_starts_one_trace_across_services(
    services: Any, header_client: Any, exporter: InMemorySpanExporter, baseplate: Baseplate
) -> None:
    frontend_server, backend, frontend = services
    header_client(frontend_server).relay("new trace")

    a_server, a_client, b_server = spans_by_role(exporter)
    assert a_server.parent is None
    assert a_server.context.trace_id < 2**64  # new trace ids are 64-bit for legacy peers
    assert {a_server.context.trace_id, a_client.context.trace_id, b_server.context.trace_id} == {
        a_server.context.trace_id
    }
    assert b_server.context.span_id == a_client.context.span_id
    assert b_server.parent.span_id == a_server.context.span_id
    (sent,) = backend.headers
    assert b"Edge-Request" not in sent
    assert sent[b"Trace"] == str(a_server.context.trace_id).encode()
