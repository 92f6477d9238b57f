"""StatsdSpanProcessor: span metrics per request, checked as exact bytes on a real UDP socket.

Spans are made with the OpenTelemetry SDK directly, through a tracer named like baseplate's
(and vendor tracers for other scopes), with explicit start and end times so the timer values
are exact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from baseplate import config, metrics
from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.diagnostics.metrics import MetricsBaseplateObserver
from exporters.statsd import StatsdSpanProcessor
from otel_bridge.sampling import BaseplateSampler
from otel_bridge.semconv import ATTR_COMPONENT, TRACER_NAME
from tests.statsd_helpers import UDPReceiver

MS = 1_000_000  # nanoseconds


class SettableIds(IdGenerator):
    """Random ids, except a span id the test asks for (to reproduce the shared-span model)."""

    def __init__(self) -> None:
        self.random = RandomIdGenerator()
        self.next_span_id: int | None = None

    def generate_span_id(self) -> int:
        span_id, self.next_span_id = self.next_span_id, None
        return span_id or self.random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self.random.generate_trace_id()


class Setup:
    def __init__(
        self,
        receiver: UDPReceiver,
        sample_rate: float = 1.0,
        max_open_spans: int = 100,
        max_pending_requests: int = 100,
    ) -> None:
        self.receiver = receiver
        self.client = metrics.make_client("ns", config.Endpoint(receiver.endpoint))
        self.processor = StatsdSpanProcessor(
            self.client.batch,
            max_open_spans=max_open_spans,
            max_pending_requests=max_pending_requests,
        )
        self.ids = SettableIds()
        self.provider = TracerProvider(
            sampler=BaseplateSampler(sample_rate), id_generator=self.ids, shutdown_on_exit=False
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer(TRACER_NAME)
        self.vendor = self.provider.get_tracer("opentelemetry.instrumentation.requests")

    def server(self, name: str = "route", start: int = 0, parent: trace.Span | None = None):
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name, context=context, kind=SpanKind.SERVER, start_time=start * MS
        )

    def child(
        self,
        parent: trace.Span,
        name: str,
        start: int,
        kind: SpanKind = SpanKind.CLIENT,
        component: str | None = None,
        tracer: trace.Tracer | None = None,
    ) -> trace.Span:
        attributes = {ATTR_COMPONENT: component} if component else None
        return (tracer or self.tracer).start_span(
            name,
            context=trace.set_span_in_context(parent),
            kind=kind,
            start_time=start * MS,
            attributes=attributes,
        )

    def lines(self) -> list[list[bytes]]:
        """The lines of each datagram received so far."""
        return [datagram.split(b"\n") for datagram in self.receiver.receive_all(quiet=0.1)]


@pytest.fixture
def receiver() -> Iterator[UDPReceiver]:
    udp = UDPReceiver()
    yield udp
    udp.close()


@pytest.fixture
def setup(receiver: UDPReceiver) -> Setup:
    return Setup(receiver)


def test_request_metrics_are_sent_together_when_the_server_span_ends(setup: Setup) -> None:
    server = setup.server("get_thing", start=0)
    redis = setup.child(server, "redis.GET", start=10)
    redis.end(end_time=14 * MS)
    local = setup.child(server, "compute", start=20, kind=SpanKind.INTERNAL, component="cache")
    local.end(end_time=27 * MS)
    failing = setup.child(server, "thrift.do_it", start=30)
    failing.set_status(Status(StatusCode.ERROR, "boom"))
    failing.end(end_time=33 * MS)
    assert setup.lines() == []

    server.end(end_time=40 * MS)

    assert setup.lines() == [
        [
            b"ns.clients.redis.GET:4|ms",
            b"ns.cache.compute:7|ms",
            b"ns.clients.thrift.do_it:3|ms",
            b"ns.server.get_thing:40|ms",
            b"ns.clients.redis.GET.success:1|c",
            b"ns.clients.thrift.do_it.failure:1|c",
            b"ns.server.get_thing.success:1|c",
        ]
    ]


def test_failed_server_span_counts_a_failure(setup: Setup) -> None:
    server = setup.server("route")
    for i in range(3):
        setup.child(server, "redis.GET", start=i).end(end_time=(i + 1) * MS)
    server.set_status(Status(StatusCode.ERROR))
    server.end(end_time=5 * MS)

    (lines,) = setup.lines()
    assert lines[-2:] == [b"ns.clients.redis.GET.success:3|c", b"ns.server.route.failure:1|c"]


def test_unsampled_requests_are_measured(receiver: UDPReceiver) -> None:
    setup = Setup(receiver, sample_rate=0.0)
    server = setup.server("route")
    assert not server.get_span_context().trace_flags.sampled
    setup.child(server, "redis.GET", start=1).end(end_time=2 * MS)
    server.end(end_time=3 * MS)

    assert setup.lines() == [
        [
            b"ns.clients.redis.GET:1|ms",
            b"ns.server.route:3|ms",
            b"ns.clients.redis.GET.success:1|c",
            b"ns.server.route.success:1|c",
        ]
    ]


def test_vendor_spans_are_not_measured_but_link_children_to_the_request(setup: Setup) -> None:
    server = setup.server("route")
    vendor = setup.child(server, "GET https://example.com/x?y=1", start=1, tracer=setup.vendor)
    nested = setup.child(vendor, "redis.GET", start=2)
    nested.end(end_time=3 * MS)
    vendor.end(end_time=4 * MS)
    assert setup.lines() == []
    server.end(end_time=5 * MS)

    assert setup.lines() == [
        [
            b"ns.clients.redis.GET:1|ms",
            b"ns.server.route:5|ms",
            b"ns.clients.redis.GET.success:1|c",
            b"ns.server.route.success:1|c",
        ]
    ]


def test_vendor_root_span_delimits_a_request(setup: Setup) -> None:
    wsgi = setup.vendor.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    setup.child(wsgi, "redis.GET", start=1).end(end_time=2 * MS)
    setup.child(wsgi, "redis.SET", start=2).end(end_time=4 * MS)
    assert setup.lines() == []
    wsgi.end(end_time=5 * MS)

    assert setup.lines() == [
        [
            b"ns.clients.redis.GET:1|ms",
            b"ns.clients.redis.SET:2|ms",
            b"ns.clients.redis.GET.success:1|c",
            b"ns.clients.redis.SET.success:1|c",
        ]
    ]


def test_baseplate_server_span_under_a_vendor_server_span_is_its_own_request(
    setup: Setup,
) -> None:
    wsgi = setup.vendor.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    server = setup.server("route", start=1, parent=wsgi)
    server.end(end_time=3 * MS)
    assert setup.lines() == [[b"ns.server.route:2|ms", b"ns.server.route.success:1|c"]]
    wsgi.end(end_time=4 * MS)
    assert setup.lines() == []


def test_application_metrics_in_the_request_batch_go_out_with_the_request(setup: Setup) -> None:
    setup.ids.next_span_id = 0xABC
    trace_id = 0x1234
    upstream = SpanContext(trace_id, 0x999, is_remote=True)
    batch = setup.processor.batch_for_request(trace_id, 0xABC)
    assert setup.processor.batch_for_request(trace_id, 0xABC) is batch
    batch.counter("app.things").increment(2)  # before the span starts

    server = setup.tracer.start_span(
        "route",
        context=trace.set_span_in_context(NonRecordingSpan(upstream)),
        kind=SpanKind.SERVER,
        start_time=0,
    )
    assert server.get_span_context().span_id == 0xABC
    assert setup.processor.batch_for_request(trace_id, 0xABC) is batch
    batch.gauge("app.level").replace(3)
    server.end(end_time=2 * MS)

    assert setup.lines() == [
        [
            b"ns.app.level:3|g",
            b"ns.server.route:2|ms",
            b"ns.app.things:2|c",
            b"ns.server.route.success:1|c",
        ]
    ]


def test_batch_for_an_open_server_span(setup: Setup) -> None:
    server = setup.server("route")
    context = server.get_span_context()
    batch = setup.processor.batch_for_request(context.trace_id, context.span_id)
    batch.counter("app").increment()
    server.end(end_time=1 * MS)
    assert setup.lines() == [
        [b"ns.server.route:1|ms", b"ns.app:1|c", b"ns.server.route.success:1|c"]
    ]


def test_concurrent_requests_are_sent_separately(setup: Setup) -> None:
    first = setup.server("first", start=0)
    second = setup.server("second", start=0)
    setup.child(second, "b.call", start=1).end(end_time=2 * MS)
    setup.child(first, "a.call", start=1).end(end_time=3 * MS)
    second.end(end_time=4 * MS)
    first.end(end_time=5 * MS)

    assert setup.lines() == [
        [b"ns.clients.b.call:1|ms", b"ns.server.second:4|ms"]
        + [b"ns.clients.b.call.success:1|c", b"ns.server.second.success:1|c"],
        [b"ns.clients.a.call:2|ms", b"ns.server.first:5|ms"]
        + [b"ns.clients.a.call.success:1|c", b"ns.server.first.success:1|c"],
    ]


def test_span_ending_after_its_request_is_sent_alone(setup: Setup) -> None:
    server = setup.server("route")
    late = setup.child(server, "queue.put", start=1)
    server.end(end_time=2 * MS)
    assert len(setup.lines()) == 1
    late.end(end_time=9 * MS)
    assert setup.lines() == [[b"ns.clients.queue.put:8|ms", b"ns.clients.queue.put.success:1|c"]]


def test_span_outside_any_request_is_sent_when_it_ends(setup: Setup) -> None:
    setup.tracer.start_span("redis.GET", kind=SpanKind.CLIENT, start_time=0).end(end_time=MS)
    assert setup.lines() == [[b"ns.clients.redis.GET:1|ms", b"ns.clients.redis.GET.success:1|c"]]


def test_server_span_for_a_call_from_this_process_keeps_both_requests_apart(setup: Setup) -> None:
    # Shared-span model: the server span keeps the caller's client span id.
    caller = setup.server("caller", start=0)
    call_id = 0x5151
    setup.ids.next_span_id = call_id
    client = setup.child(caller, "svc.method", start=1)
    trace_id = caller.get_span_context().trace_id
    setup.ids.next_span_id = call_id
    callee = setup.tracer.start_span(
        "method",
        context=trace.set_span_in_context(NonRecordingSpan(caller.get_span_context())),
        kind=SpanKind.SERVER,
        start_time=2 * MS,
    )
    assert callee.get_span_context().span_id == call_id
    assert callee.get_span_context().trace_id == trace_id
    setup.child(callee, "redis.GET", start=3).end(end_time=4 * MS)
    callee.end(end_time=5 * MS)
    assert setup.lines() == [
        [b"ns.clients.redis.GET:1|ms", b"ns.server.method:3|ms"]
        + [b"ns.clients.redis.GET.success:1|c", b"ns.server.method.success:1|c"]
    ]
    client.end(end_time=6 * MS)
    caller.end(end_time=7 * MS)
    assert setup.lines() == [
        [b"ns.clients.svc.method:5|ms", b"ns.server.caller:7|ms"]
        + [b"ns.clients.svc.method.success:1|c", b"ns.server.caller.success:1|c"]
    ]


def test_names_from_spans_are_made_safe(setup: Setup) -> None:
    server = setup.server("GET /a:b|c.")
    setup.child(server, "x", start=0, kind=SpanKind.INTERNAL).end(end_time=MS)  # no component
    server.end(end_time=1 * MS)
    assert setup.lines() == [[b"ns.server.GET_/a_b_c:1|ms", b"ns.server.GET_/a_b_c.success:1|c"]]


def test_memory_stays_bounded_when_spans_never_end(
    receiver: UDPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    setup = Setup(receiver, max_open_spans=10, max_pending_requests=5)
    with caplog.at_level(logging.WARNING):
        for i in range(50):
            batch = setup.processor.batch_for_request(1, 1000 + i)
            batch.counter(f"pending{i}").increment()
        spans = []
        for i in range(50):
            server = setup.server(f"s{i}")
            context = server.get_span_context()
            setup.processor.batch_for_request(context.trace_id, context.span_id).counter(
                f"open{i}"
            ).increment()
            spans.append(server)

    assert len(setup.processor._pending) <= 5
    assert len(setup.processor._open) <= 10
    # The forgotten requests' metrics were sent, not lost.
    sent = [line for lines in setup.lines() for line in lines]
    assert sorted(sent) == sorted(
        [f"ns.pending{i}:1|c".encode() for i in range(45)]
        + [f"ns.open{i}:1|c".encode() for i in range(40)]
    )
    assert 1 <= len([r for r in caplog.records if "forgot" in r.getMessage()]) <= 2

    # A forgotten span that ends after all is still measured.
    spans[0].end(end_time=MS)
    (lines,) = setup.lines()
    assert lines[-1] == b"ns.server.s0.success:1|c"


def test_telemetry_failures_never_reach_the_application(
    receiver: UDPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_batch() -> metrics.Batch:
        raise RuntimeError("no batches today")

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(StatsdSpanProcessor(broken_batch))
    with caplog.at_level(logging.WARNING):
        span = provider.get_tracer(TRACER_NAME).start_span("route", kind=SpanKind.SERVER)
        span.end()
    assert any("statsd metrics failed" in r.getMessage() for r in caplog.records)


def test_shutdown_sends_open_requests(setup: Setup) -> None:
    setup.processor.batch_for_request(7, 8).counter("pending").increment()
    server = setup.server("route")
    context = server.get_span_context()
    setup.processor.batch_for_request(context.trace_id, context.span_id).counter("o").increment()
    setup.provider.shutdown()
    assert sorted(line for lines in setup.lines() for line in lines) == [
        b"ns.o:1|c",
        b"ns.pending:1|c",
    ]
    assert setup.processor.force_flush()


# --- end to end through Baseplate.configure_metrics and the span API ---


def _parsed(datagrams: list[bytes]) -> list[tuple[str, str]]:
    """(name, type) of every line, with the counters' values kept: timings vary."""
    parsed = []
    for datagram in datagrams:
        for line in datagram.decode().split("\n"):
            name, rest = line.split(":", 1)
            value, kind = rest.split("|", 1)
            parsed.append((name, f"{value}|{kind}" if kind == "c" else kind))
    return parsed


def _baseplate(receiver: UDPReceiver) -> tuple[Baseplate, metrics.Client]:
    baseplate = Baseplate(TracerProvider(shutdown_on_exit=False))
    client = metrics.make_client("svc", receiver.endpoint)
    baseplate.configure_metrics(client)
    baseplate.configure_metrics(client)  # a second call changes nothing
    return baseplate, client


def _handle_request(baseplate: Baseplate, trace_info: TraceInfo | None = None) -> None:
    context: Any = RequestContext()
    server_span = baseplate.make_server_span(context, "get_thing", trace_info)
    assert isinstance(context.metrics, metrics.Batch)
    context.metrics.counter("app.before_start").increment()
    with server_span:
        with server_span.make_child("redis.GET"):
            context.metrics.counter("app.hits").increment()
        with server_span.make_child("compute", local=True, component_name="cache") as local:
            local.context.metrics.counter("app.hits").increment()
            with local.make_child("memcache.get"):
                pass
        failing = server_span.make_child("thrift.do_it")
        failing.start()
        try:
            raise ValueError("remote failure")
        except ValueError as exc:
            failing.finish(exc_info=(type(exc), exc, exc.__traceback__))


EXPECTED_REQUEST = [
    ("svc.clients.redis.GET", "ms"),
    ("svc.clients.memcache.get", "ms"),
    ("svc.cache.compute", "ms"),
    ("svc.clients.thrift.do_it", "ms"),
    ("svc.server.get_thing", "ms"),
    ("svc.app.before_start", "1|c"),
    ("svc.app.hits", "2|c"),
    ("svc.clients.redis.GET.success", "1|c"),
    ("svc.clients.memcache.get.success", "1|c"),
    ("svc.clients.thrift.do_it.failure", "1|c"),
    ("svc.server.get_thing.success", "1|c"),
]


def test_configure_metrics_sends_each_request_in_one_datagram(receiver: UDPReceiver) -> None:
    baseplate, _ = _baseplate(receiver)
    _handle_request(baseplate)
    datagrams = receiver.receive_all()
    assert len(datagrams) == 1
    assert _parsed(datagrams) == EXPECTED_REQUEST


def test_configure_metrics_measures_unsampled_requests(receiver: UDPReceiver) -> None:
    baseplate, _ = _baseplate(receiver)
    _handle_request(baseplate, TraceInfo.from_upstream(1234, 99, 5678, False, None))
    assert _parsed(receiver.receive_all()) == EXPECTED_REQUEST


def test_failed_request_counts_a_failure(receiver: UDPReceiver) -> None:
    baseplate, _ = _baseplate(receiver)
    context = RequestContext()
    with pytest.raises(KeyError), baseplate.make_server_span(context, "route"):
        raise KeyError("x")
    assert _parsed(receiver.receive_all()) == [
        ("svc.server.route", "ms"),
        ("svc.server.route.failure", "1|c"),
    ]


def test_error_objects_logged_on_client_spans_are_counted_by_class(
    receiver: UDPReceiver,
) -> None:
    baseplate, _ = _baseplate(receiver)
    with baseplate.make_server_span(RequestContext(), "route") as server_span:
        with server_span.make_child("db.execute") as call:
            call.log("error.object", ValueError("bad row"))
            call.log("error.object", ValueError("another"))
            call.log("retry", "once")
        with server_span.make_child("render", local=True, component_name="t") as local:
            local.log("error.object", KeyError("not a call"))  # local spans: not counted
    sent = _parsed(receiver.receive_all())
    assert ("svc.errors.ValueError", "2|c") in sent
    assert not any("KeyError" in name for name, _ in sent)


def test_two_baseplates_on_one_provider_measure_only_their_own_requests() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    receivers = [UDPReceiver(), UDPReceiver()]
    try:
        apps = []
        for i, udp in enumerate(receivers):
            baseplate = Baseplate(provider)
            baseplate.configure_metrics(metrics.make_client(f"app{i}", udp.endpoint))
            apps.append(baseplate)
        for i, baseplate in enumerate(apps):
            with baseplate.make_server_span(RequestContext(), f"route{i}"):
                pass
        for i, udp in enumerate(receivers):
            assert _parsed(udp.receive_all()) == [
                (f"app{i}.server.route{i}", "ms"),
                (f"app{i}.server.route{i}.success", "1|c"),
            ]
    finally:
        for udp in receivers:
            udp.close()


def test_observer_registered_by_hand_measures_the_request(receiver: UDPReceiver) -> None:
    baseplate = Baseplate(TracerProvider(shutdown_on_exit=False))
    baseplate.register(MetricsBaseplateObserver(metrics.make_client("svc", receiver.endpoint)))
    _handle_request(baseplate)
    parsed = _parsed(receiver.receive_all())
    assert sorted(parsed) == sorted(EXPECTED_REQUEST)
