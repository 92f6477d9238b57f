"""baseplate.integration.thrift: server spans around calls to a real Thrift server."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TApplicationException
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TFramedTransport, TTransportException

from baseplate.context import ContextFactory
from baseplate.core import Baseplate, RequestContext, ServerSpan
from baseplate.integration.thrift import (
    BaseplateProcessorEventHandler,
    ContextProcessor,
    TProcessorEventHandler,
)
from otel_bridge.semconv import flags_of


class Recorder:
    """An ExampleService handler taking the context, remembering what it saw."""

    def __init__(self, example_service: Any) -> None:
        self.service = example_service
        self.contexts: list[Any] = []
        self.current_spans: list[Any] = []

    def is_healthy(self, context: Any) -> bool:
        self.contexts.append(context)
        return True

    def example(self, context: Any, text: str) -> str:
        self.contexts.append(context)
        self.current_spans.append(trace.get_current_span())
        if text == "expected":
            raise self.service.ExpectedError(message="as declared")
        if text == "transport":
            raise TTransportException(TTransportException.NOT_OPEN, "downstream is down")
        return text

    def fail_unexpectedly(self, context: Any) -> None:
        raise ValueError("something broke")


@pytest.fixture
def recorder(example_service: Any) -> Recorder:
    return Recorder(example_service)


@pytest.fixture
def server(baseplate_server: Any, recorder: Recorder, baseplate: Baseplate) -> Any:
    return baseplate_server(recorder, baseplate)


def only_span(exporter: InMemorySpanExporter) -> Any:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


def test_call_runs_in_a_server_span_named_after_the_method(
    server: Any, header_client: Any, recorder: Recorder, exporter: InMemorySpanExporter
) -> None:
    assert header_client(server).example("hello") == "hello"

    span = only_span(exporter)
    assert span.name == "example"
    assert span.kind == SpanKind.SERVER
    assert span.status.status_code == StatusCode.UNSET
    assert span.parent is None
    (context,) = recorder.contexts
    assert isinstance(context, RequestContext)
    assert isinstance(context.trace, ServerSpan)
    assert context.trace.id == span.context.span_id
    assert context.trace.trace_id == span.context.trace_id
    # the server span is the current OTel span while the handler runs
    assert recorder.current_spans[0].get_span_context() == span.context


def test_trace_headers_from_caller_are_trusted(
    server: Any, header_client: Any, recorder: Recorder, exporter: InMemorySpanExporter
) -> None:
    client = header_client(
        server,
        {b"Trace": b"1234", b"Parent": b"5678", b"Span": b"91011", b"Sampled": b"1"},
    )
    client.example("hello")

    span = only_span(exporter)
    assert span.context.trace_id == 1234
    assert span.context.span_id == 91011
    assert span.parent is not None and span.parent.span_id == 5678
    server_span = recorder.contexts[0].trace
    assert (server_span.trace_id, server_span.parent_id, server_span.id) == (1234, 5678, 91011)
    assert server_span.sampled is True


def test_debug_flag_forces_sampling_and_is_kept(
    server: Any, header_client: Any, recorder: Recorder, exporter: InMemorySpanExporter
) -> None:
    client = header_client(
        server,
        {b"Trace": b"1", b"Parent": b"2", b"Span": b"3", b"Sampled": b"0", b"Flags": b"1"},
    )
    client.example("hello")
    span = only_span(exporter)
    assert span.context.trace_flags.sampled
    assert flags_of(span.context) == 1
    assert recorder.contexts[0].trace.flags == 1


def test_unsampled_caller_is_not_exported(
    server: Any, header_client: Any, recorder: Recorder, exporter: InMemorySpanExporter
) -> None:
    client = header_client(
        server, {b"Trace": b"1", b"Parent": b"2", b"Span": b"3", b"Sampled": b"0"}
    )
    assert client.example("hello") == "hello"
    assert exporter.get_finished_spans() == ()
    assert recorder.contexts[0].trace.sampled is False


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({b"Trace": b"1234", b"Span": b"91011", b"Sampled": b"1"}, id="no-parent"),
        pytest.param({b"Trace": b"x", b"Parent": b"1", b"Span": b"2"}, id="bad-trace"),
        pytest.param({b"Trace": b"1", b"Parent": b"1", b"Span": b"-2"}, id="bad-span"),
    ],
)
def test_incomplete_or_invalid_trace_headers_start_a_new_trace(
    server: Any, header_client: Any, exporter: InMemorySpanExporter, headers: Any
) -> None:
    header_client(server, headers).example("hello")
    span = only_span(exporter)
    assert span.context.trace_id not in (1, 1234)
    assert span.parent is None


def test_w3c_traceparent_header_continues_the_trace(
    server: Any, header_client: Any, exporter: InMemorySpanExporter
) -> None:
    traceparent = b"00-0000000000000000000000000000abcd-00000000000000ef-01"
    header_client(server, {b"traceparent": traceparent}).example("hello")
    span = only_span(exporter)
    assert span.context.trace_id == 0xABCD
    assert span.parent is not None and span.parent.span_id == 0xEF


# baseplate 0.28 read these THeader aliases, decimal like the HTTP X-B3-* aliases
B3_ALIASES = {
    b"B3-TraceId": b"1234567890123456",
    b"B3-ParentSpanId": b"5678",
    b"B3-SpanId": b"91011",
    b"B3-Sampled": b"0",
    b"B3-Flags": b"1",
}


def test_0_28_b3_aliases_alone_continue_the_trace(
    server: Any, header_client: Any, recorder: Recorder, exporter: InMemorySpanExporter
) -> None:
    header_client(server, B3_ALIASES).example("hello")

    span = only_span(exporter)  # exported: the debug flag forces sampling
    assert (span.context.trace_id, span.context.span_id) == (1234567890123456, 91011)
    assert span.parent is not None and span.parent.span_id == 5678
    server_span = recorder.contexts[0].trace
    assert (server_span.trace_id, server_span.parent_id, server_span.id) == (
        1234567890123456,
        5678,
        91011,
    )
    assert (server_span.flags, server_span.sampled) == (1, True)


def test_b3_aliases_agreeing_with_the_headers_are_accepted_and_differing_ones_ignored(
    server: Any, header_client: Any, recorder: Recorder
) -> None:
    headers = {b"Trace": b"77", b"Parent": b"5678", b"Span": b"91011", b"Sampled": b"1"}
    header_client(server, {**headers, b"B3-TraceId": b"77"}).example("agreeing")
    header_client(server, {**headers, b"B3-TraceId": b"78"}).example("differing")

    agreeing, differing = (context.trace for context in recorder.contexts)
    assert (agreeing.trace_id, agreeing.id) == (77, 91011)
    assert differing.trace_id not in (77, 78) and differing.parent_id is None


def test_declared_exception_is_an_answer_not_an_error(
    server: Any, header_client: Any, example_service: Any, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(example_service.ExpectedError):
        header_client(server).example("expected")
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes["thrift.declared_exception"] == "ExpectedError"
    assert not span.events


def test_unexpected_exception_is_recorded_on_the_span_and_logged(
    server: Any,
    header_client: Any,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = header_client(server)
    with caplog.at_level(logging.ERROR, logger="example"):
        with pytest.raises(TApplicationException) as info:
            client.fail_unexpectedly()
    assert info.value.type == TApplicationException.INTERNAL_ERROR
    span = only_span(exporter)
    assert span.name == "fail_unexpectedly"
    assert span.status.status_code == StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert any(
        record.name == "example" and "fail_unexpectedly" in record.getMessage()
        for record in caplog.records
    )
    # the connection still works
    assert client.example("again") == "again"


def test_transport_error_inside_handler_answers_internal_error_and_keeps_the_connection(
    server: Any, header_client: Any, exporter: InMemorySpanExporter
) -> None:
    client = header_client(server)
    with pytest.raises(TApplicationException) as info:
        client.example("transport")
    assert info.value.type == TApplicationException.INTERNAL_ERROR
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].attributes["exception.type"].endswith("TTransportException")
    assert client.example("still connected") == "still connected"
    assert server.accepted == 1


def test_unknown_method_is_answered_without_a_span(
    baseplate_server: Any, baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    class OldHandler:
        def is_healthy(self) -> bool:
            return True

    from baseplate.thrift.gen.baseplate import BaseplateService

    server = baseplate_server(OldHandler(), baseplate)
    sock = TSocket("127.0.0.1", server.port)
    protocol = TBinaryProtocol(TFramedTransport(sock))
    protocol.trans.open()
    try:
        client = BaseplateService.Client(protocol)
        client.send_is_healthy = lambda: _send_unknown(protocol)  # type: ignore[method-assign]
        with pytest.raises(TApplicationException) as info:
            client.is_healthy()
        assert info.value.type == TApplicationException.UNKNOWN_METHOD
        assert "no_such_method" in str(info.value)
    finally:
        protocol.trans.close()
    assert exporter.get_finished_spans() == ()


def _send_unknown(protocol: Any) -> None:
    from thrift.Thrift import TMessageType

    protocol.writeMessageBegin("no_such_method", TMessageType.CALL, 0)
    protocol.writeStructBegin("args")
    protocol.writeFieldStop()
    protocol.writeStructEnd()
    protocol.writeMessageEnd()
    protocol.trans.flush()


def test_handlers_without_a_context_parameter_get_only_the_arguments(
    baseplate_server: Any, baseplate: Baseplate, header_client: Any, exporter: InMemorySpanExporter
) -> None:
    seen: list[str] = []

    class PlainHandler:
        def example(self, text: str) -> str:
            seen.append(text)
            return text.upper()

    server = baseplate_server(PlainHandler(), baseplate)
    assert header_client(server).example("plain") == "PLAIN"
    assert seen == ["plain"]
    assert only_span(exporter).name == "example"


def test_non_header_clients_are_served_in_a_new_trace(
    server: Any, exporter: InMemorySpanExporter, example_service: Any
) -> None:
    protocol = TBinaryProtocol(TSocket("127.0.0.1", server.port))  # unframed binary
    protocol.trans.open()
    try:
        assert example_service.Client(protocol).example("old client") == "old client"
    finally:
        protocol.trans.close()
    span = only_span(exporter)
    assert span.parent is None


def test_context_factories_attach_objects_to_the_context(
    baseplate_server: Any,
    baseplate: Baseplate,
    recorder: Recorder,
    header_client: Any,
) -> None:
    class Widgets(ContextFactory):
        def make_object_for_context(self, name: str, server_span: Any) -> Any:
            return ("widgets", name, server_span)

    baseplate.add_to_context("widgets", Widgets())
    server = baseplate_server(recorder, baseplate)
    header_client(server).is_healthy()
    context = recorder.contexts[0]
    assert context.widgets == ("widgets", "widgets", context.trace)


def test_edge_request_header_becomes_the_edge_context(
    baseplate_server: Any, baseplate: Baseplate, recorder: Recorder, header_client: Any
) -> None:
    # baseplate.core.EdgeRequestContextFactory is another module's job; this stand-in records
    # what the integration hands it and attaches an object the way the documented one does.
    class EdgeContextFactory:
        def __init__(self) -> None:
            self.payloads: list[Any] = []

        def from_upstream(self, payload: Any) -> Any:
            self.payloads.append(payload)
            factory = self

            class EdgeContext:
                def attach_context(self, context: Any) -> None:
                    context.request_context = (factory, payload)

            return EdgeContext()

    factory = EdgeContextFactory()
    server = baseplate_server(recorder, baseplate, factory)
    header_client(server, {b"Edge-Request": b"\x0c\x00\x01\x00"}).is_healthy()
    context = recorder.contexts[0]
    assert factory.payloads == [b"\x0c\x00\x01\x00"]
    assert context.request_context == (factory, b"\x0c\x00\x01\x00")
    assert context.raw_request_context == b"\x0c\x00\x01\x00"


def test_edge_request_is_kept_raw_without_a_factory(
    server: Any, recorder: Recorder, header_client: Any
) -> None:
    header_client(server, {b"Edge-Request": b"raw bytes"}).is_healthy()
    header_client(server).is_healthy()
    assert recorder.contexts[0].raw_request_context == b"raw bytes"
    assert recorder.contexts[1].raw_request_context is None


def test_broken_edge_context_factory_does_not_fail_the_request(
    baseplate_server: Any, baseplate: Baseplate, recorder: Recorder, header_client: Any
) -> None:
    class Broken:
        def from_upstream(self, payload: Any) -> Any:
            raise ValueError("cannot parse")

    server = baseplate_server(recorder, baseplate, Broken())
    assert header_client(server, {b"Edge-Request": b"junk"}).is_healthy() is True
    assert recorder.contexts[0].raw_request_context == b"junk"


def test_custom_event_handler_hooks_run_in_order(
    thrift_server: Any, example_service: Any, recorder: Recorder, header_client: Any
) -> None:
    events: list[tuple[Any, ...]] = []

    class Hooks(TProcessorEventHandler):
        def getHandlerContext(self, fn_name: str, server_context: Any) -> Any:
            events.append(("context", fn_name, dict(server_context.get_headers())))
            return RequestContext()

        def postRead(self, handler_context: Any, fn_name: str, args: Any) -> None:
            events.append(("read", fn_name, args))

        def handlerDone(self, handler_context: Any, fn_name: str, result: Any) -> None:
            events.append(("done", fn_name))

        def handlerDeclaredError(self, handler_context: Any, fn_name: str, exc: Any) -> None:
            events.append(("declared", fn_name, type(exc).__name__))

        def handlerError(self, handler_context: Any, fn_name: str, exc: Any) -> None:
            events.append(("error", fn_name, type(exc).__name__))

    processor = ContextProcessor(example_service.Processor(recorder))
    processor.setEventHandler(Hooks())
    server = thrift_server(processor)
    client = header_client(server, {b"X": b"y"})
    client.example("a")
    with pytest.raises(example_service.ExpectedError):
        client.example("expected")
    with pytest.raises(TApplicationException):
        client.fail_unexpectedly()
    assert events == [
        ("context", "example", {b"X": b"y"}),
        ("read", "example", ("a",)),
        ("done", "example"),
        ("context", "example", {b"X": b"y"}),
        ("read", "example", ("expected",)),
        ("declared", "example", "ExpectedError"),
        ("context", "fail_unexpectedly", {b"X": b"y"}),
        ("read", "fail_unexpectedly", ()),
        ("error", "fail_unexpectedly", "ValueError"),
    ]


def test_context_processor_rejects_other_processors() -> None:
    with pytest.raises(TypeError, match="generated by the Apache Thrift compiler"):
        ContextProcessor(object())  # type: ignore[arg-type]


def test_health_check_through_baseplate_service(
    thrift_server: Any, baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    from baseplate.thrift.gen.baseplate import BaseplateService

    class Health:
        def is_healthy(self, context: Any) -> bool:
            return isinstance(context.trace, ServerSpan)

    processor = ContextProcessor(BaseplateService.Processor(Health()))
    processor.setEventHandler(BaseplateProcessorEventHandler(logging.getLogger(), baseplate))
    server = thrift_server(processor)
    protocol = TBinaryProtocol(TFramedTransport(TSocket("127.0.0.1", server.port)))
    protocol.trans.open()
    try:
        assert BaseplateService.Client(protocol).is_healthy() is True
    finally:
        protocol.trans.close()
    assert only_span(exporter).name == "is_healthy"
