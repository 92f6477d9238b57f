"""baseplate.context.thrift: client spans and the THeader headers they send."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
from thrift.Thrift import TApplicationException
from thrift.transport.TTransport import TTransportException

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.thrift_pool import ThriftConnectionPool
from otel_bridge.context import set_edge_request

TRACE_HEADERS = (b"Trace", b"Parent", b"Span", b"Sampled", b"Flags")


class Downstream:
    """The downstream ExampleService: remembers the headers of every call."""

    def __init__(self, example_service: Any) -> None:
        self.service = example_service
        self.headers: list[dict[bytes, bytes]] = []

    def is_healthy(self, context: Any) -> bool:
        self.headers.append(dict(context.headers))
        return True

    def example(self, context: Any, text: str) -> str:
        self.headers.append(dict(context.headers))
        if text == "expected":
            raise self.service.ExpectedError(message="declared")
        return text

    def fail_unexpectedly(self, context: Any) -> None:
        self.headers.append(dict(context.headers))
        raise RuntimeError("boom")


@pytest.fixture
def downstream(example_service: Any) -> Downstream:
    return Downstream(example_service)


@pytest.fixture
def downstream_server(
    baseplate_server: Any, downstream: Downstream, provider: Any
) -> Any:
    # The downstream service has its own Baseplate (same exporter, so traces can be compared).
    return baseplate_server(downstream, Baseplate(tracer_provider=provider))


@pytest.fixture
def pool(downstream_server: Any) -> ThriftConnectionPool:
    return ThriftConnectionPool(downstream_server.endpoint, size=2)


@pytest.fixture
def make_request(baseplate: Baseplate, pool: ThriftConnectionPool, example_service: Any) -> Any:
    """``make_request(trace_info=None)``: a request context whose ``downstream`` is the client."""
    baseplate.add_to_context("downstream", ThriftContextFactory(pool, example_service.Client))

    def make(trace_info: TraceInfo | None = None) -> Any:
        context = RequestContext()
        baseplate.make_server_span(context, "handle", trace_info)
        return context

    return make


def client_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [span for span in exporter.get_finished_spans() if span.kind == SpanKind.CLIENT]


def test_call_is_a_client_span_named_attribute_dot_method(
    make_request: Any, exporter: InMemorySpanExporter, downstream: Downstream
) -> None:
    context = make_request()
    with context.trace:
        assert context.downstream.example("hi") == "hi"
    (span,) = client_spans(exporter)
    assert span.name == "downstream.example"
    assert span.status.status_code == StatusCode.UNSET
    assert span.parent is not None and span.parent.span_id == context.trace.id
    assert span.context.trace_id == context.trace.trace_id


def test_trace_headers_are_sent_exactly(
    make_request: Any, exporter: InMemorySpanExporter, downstream: Downstream
) -> None:
    context = make_request(TraceInfo.from_upstream(1234, 5678, 91011, True, None))
    with context.trace:
        context.downstream.example("hi")
    (span,) = client_spans(exporter)
    (headers,) = downstream.headers
    sent = {key: value for key, value in headers.items() if key in TRACE_HEADERS}
    assert sent == {
        b"Trace": b"1234",
        b"Parent": b"91011",
        b"Span": str(span.context.span_id).encode(),
        b"Sampled": b"1",
    }
    assert headers[b"User-Agent"] == b"example-service"
    assert b"Edge-Request" not in headers


def test_unsampled_and_debug_traces_say_so(
    make_request: Any, downstream: Downstream
) -> None:
    context = make_request(TraceInfo.from_upstream(1, 2, 3, False, None))
    with context.trace:
        context.downstream.example("hi")
    context = make_request(TraceInfo.from_upstream(2**100 + 7, 2, 3, False, 1))
    with context.trace:
        context.downstream.example("hi")
    unsampled, debug = downstream.headers
    assert unsampled[b"Sampled"] == b"0"
    assert b"Flags" not in unsampled
    assert debug[b"Sampled"] == b"1"
    assert debug[b"Flags"] == b"1"
    # a 128-bit trace id goes out as its lower 64 bits, the width legacy services parse
    assert debug[b"Trace"] == b"7"


def test_edge_request_is_forwarded(make_request: Any, downstream: Downstream) -> None:
    header = b"\x0c\x00\x01\x0b\x00\x01\x00\x00\x00\x02t2\x00\xff\x00"
    context = make_request()
    with context.trace:
        # what the framework integrations and EdgeRequestContext.attach_context do
        set_edge_request(header)
        context.downstream.is_healthy()
    context = make_request()
    with context.trace:  # the next request has none
        context.downstream.is_healthy()
    with_header, without = downstream.headers
    assert with_header[b"Edge-Request"] == header  # raw bytes, every byte value intact
    assert list(with_header)[-1] == b"Edge-Request"  # sent last, as always
    assert b"Edge-Request" not in without


def test_edge_request_is_not_guessed_from_the_context_object(
    make_request: Any, downstream: Downstream
) -> None:
    # one channel: only what is in force in the OpenTelemetry context is forwarded
    context = make_request()
    context.raw_request_context = b"stale"
    with context.trace:
        context.downstream.is_healthy()
    assert b"Edge-Request" not in downstream.headers[0]


def test_declared_exception_is_not_a_failed_call(
    make_request: Any,
    exporter: InMemorySpanExporter,
    example_service: Any,
    downstream_server: Any,
) -> None:
    context = make_request()
    with context.trace:
        for _ in range(2):
            with pytest.raises(example_service.ExpectedError):
                context.downstream.example("expected")
    spans = client_spans(exporter)
    assert [span.status.status_code for span in spans] == [StatusCode.UNSET] * 2
    assert spans[0].attributes["thrift.declared_exception"] == "ExpectedError"
    assert downstream_server.accepted == 1  # the connection went back to the pool


def test_unexpected_server_error_fails_the_span(
    make_request: Any, exporter: InMemorySpanExporter
) -> None:
    context = make_request()
    with context.trace, pytest.raises(TApplicationException):
        context.downstream.fail_unexpectedly()
    (span,) = client_spans(exporter)
    assert span.name == "downstream.fail_unexpectedly"
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].name == "exception"


def unreachable_pool(port: int, **kwargs: Any) -> ThriftConnectionPool:
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", port))
    return ThriftConnectionPool(endpoint, max_retries=1, **kwargs)


def make_context(baseplate: Baseplate, pool: ThriftConnectionPool, service: Any) -> Any:
    baseplate.add_to_context("other", ThriftContextFactory(pool, service.Client))
    context = RequestContext()
    baseplate.make_server_span(context, "handle")
    return context


def test_transport_failure_fails_the_span(
    baseplate: Baseplate, exporter: InMemorySpanExporter, example_service: Any, unused_port: int
) -> None:
    context = make_context(baseplate, unreachable_pool(unused_port), example_service)
    with context.trace, pytest.raises(TTransportException):
        context.other.example("hi")
    (span,) = client_spans(exporter)
    assert span.name == "other.example"
    assert span.status.status_code == StatusCode.ERROR


class Flaky:
    """A handler whose first calls drop the connection (a transient failure)."""

    def __init__(self, example_service: Any, failures: int) -> None:
        self.service = example_service
        self.failures = failures
        self.calls = 0

    def example(self, text: str) -> str:
        self.calls += 1
        if text == "expected":
            raise self.service.ExpectedError(message="declared")
        if self.calls <= self.failures:
            # a plain generated processor drops the connection on a transport error
            raise TTransportException(TTransportException.UNKNOWN, "flaky")
        return text


def test_retrying_retries_transport_errors(
    baseplate: Baseplate,
    exporter: InMemorySpanExporter,
    example_service: Any,
    thrift_server: Any,
) -> None:
    flaky = Flaky(example_service, failures=2)
    server = thrift_server(example_service.Processor(flaky))
    context = make_context(baseplate, ThriftConnectionPool(server.endpoint), example_service)
    with context.trace, context.other.retrying(attempts=3, backoff=0.001) as svc:
        assert svc.example("finally") == "finally"
    assert flaky.calls == 3
    statuses = [span.status.status_code for span in client_spans(exporter)]
    assert statuses == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert len({span.context.span_id for span in client_spans(exporter)}) == 3


def test_retrying_gives_up_after_the_policy(
    baseplate: Baseplate, exporter: InMemorySpanExporter, example_service: Any, unused_port: int
) -> None:
    context = make_context(baseplate, unreachable_pool(unused_port), example_service)
    with context.trace:
        with context.other.retrying(attempts=2) as svc, pytest.raises(TTransportException):
            svc.example("hi")
        # outside the block, calls are not retried
        with pytest.raises(TTransportException):
            context.other.example("hi")
    assert len(client_spans(exporter)) == 3


def test_retrying_does_not_retry_declared_exceptions(
    baseplate: Baseplate, example_service: Any, thrift_server: Any
) -> None:
    flaky = Flaky(example_service, failures=0)
    server = thrift_server(example_service.Processor(flaky))
    context = make_context(baseplate, ThriftConnectionPool(server.endpoint), example_service)
    with (
        context.trace,
        context.other.retrying(attempts=5) as svc,
        pytest.raises(example_service.ExpectedError),
    ):
        svc.example("expected")
    assert flaky.calls == 1


def test_proxy_has_the_service_methods_only(make_request: Any) -> None:
    context = make_request()
    assert {"example", "relay", "is_healthy", "fail_unexpectedly"} <= set(dir(context.downstream))
    with pytest.raises(AttributeError, match="send_example"):
        _ = context.downstream.send_example
    with pytest.raises(TypeError, match="client generated by the Thrift compiler"):
        ThriftContextFactory(unreachable_pool(1), object)


def test_non_header_protocol_calls_work_without_headers(
    baseplate: Baseplate,
    exporter: InMemorySpanExporter,
    example_service: Any,
    downstream_server: Any,
    downstream: Downstream,
) -> None:
    pool = ThriftConnectionPool(
        downstream_server.endpoint, protocol_factory=TBinaryProtocolFactory()
    )
    context = make_context(baseplate, pool, example_service)
    with context.trace:
        assert context.other.example("plain") == "plain"
    assert downstream.headers == [{}]
    (span,) = client_spans(exporter)
    assert span.status.status_code == StatusCode.UNSET
