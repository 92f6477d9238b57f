"""baseplate.testing: spans and metrics captured in memory, and fixed ids the 0.28 way.

The first tests are written as 0.28 service test suites write them (``mock.patch`` of
``random.getrandbits``), and read the ids both from baseplate's spans and from the
OpenTelemetry spans the capture holds.
"""

from __future__ import annotations

import socket
from typing import Any
from unittest import mock

import pytest
import webtest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from pyramid.config import Configurator

from baseplate.core import Baseplate, RequestContext
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.testing import (
    CapturedSpans,
    CapturingTransport,
    Metric,
    capture_metrics,
    capture_spans,
)

# --- fixed ids, written the 0.28 way ---------------------------------------------------------


@mock.patch("random.getrandbits", autospec=True)
def test_patched_getrandbits_fixes_server_and_child_ids(getrandbits: Any) -> None:
    getrandbits.side_effect = [0xCAFE, 0xBEEF]
    with capture_spans() as captured:
        context = RequestContext()
        server_span = captured.baseplate.make_server_span(context, "handler")
        child = server_span.make_child("redis.get")
        # 0.28: a new trace's root span takes the trace id as its span id
        assert (server_span.trace_id, server_span.id, server_span.parent_id) == (
            0xCAFE,
            0xCAFE,
            None,
        )
        assert (child.trace_id, child.id, child.parent_id) == (0xCAFE, 0xBEEF, 0xCAFE)
        server_span.start()
        with child:
            pass
        server_span.finish()

    otel_child, otel_server = captured.one("redis.get"), captured.one("handler")
    assert (otel_server.context.trace_id, otel_server.context.span_id) == (0xCAFE, 0xCAFE)
    assert (otel_child.context.trace_id, otel_child.context.span_id) == (0xCAFE, 0xBEEF)
    assert otel_child.parent is not None and otel_child.parent.span_id == 0xCAFE


def _pyramid_app(baseplate: Baseplate) -> webtest.TestApp:
    def example(request: Any) -> dict[str, int]:
        with request.trace.make_child("downstream"):
            pass
        return {"trace_id": request.trace.trace_id}

    configurator = Configurator()
    configurator.include(BaseplateConfigurator(baseplate).includeme)
    configurator.add_route("example", "/example")
    configurator.add_view(example, route_name="example", renderer="json")
    return webtest.TestApp(configurator.make_wsgi_app())


@mock.patch("random.getrandbits")
def test_no_trace_headers_with_patched_getrandbits(getrandbits: Any) -> None:
    getrandbits.return_value = 1234
    with capture_spans() as captured:
        response = _pyramid_app(captured.baseplate).get("/example")

    assert response.json == {"trace_id": 1234}
    server = captured.one("example")
    assert server.kind is SpanKind.SERVER
    assert (server.context.trace_id, server.context.span_id, server.parent) == (1234, 1234, None)
    child = captured.one("downstream")
    assert (child.context.trace_id, child.context.span_id) == (1234, 1234)
    assert child.parent is not None and child.parent.span_id == 1234


# --- capture_spans ---------------------------------------------------------------------------


def test_capture_has_its_own_provider_and_leaves_the_global_one_alone() -> None:
    global_provider = trace.get_tracer_provider()
    with capture_spans() as captured:
        assert captured.baseplate.tracer_provider is captured.tracer_provider
        assert captured.tracer_provider is not global_provider
        span = captured.baseplate.make_server_span(RequestContext(), "request")
        span.start()
        span.finish()
    assert trace.get_tracer_provider() is global_provider
    assert [s.name for s in captured.spans] == ["request"]  # readable after the block


def test_spans_in_end_order_with_kinds_tags_logs_and_errors() -> None:
    with capture_spans() as captured:
        context = RequestContext()
        server_span = captured.baseplate.make_server_span(context, "request")
        server_span.start()
        server_span.set_tag("user", "ada")
        with server_span.make_child("work", local=True, component_name="worker") as local:
            local.log("step", "one")
        with pytest.raises(KeyError):
            with server_span.make_child("cache.get"):
                raise KeyError("missing")
        server_span.finish()

    assert [s.name for s in captured.spans] == ["work", "cache.get", "request"]
    assert dict(captured.one("request").attributes or {})["user"] == "ada"
    assert captured.one("work").kind is SpanKind.INTERNAL
    assert [event.name for event in captured.one("work").events] == ["step"]
    failed = captured.one("cache.get")
    assert failed.kind is SpanKind.CLIENT and failed.status.status_code is StatusCode.ERROR


def test_unsampled_spans_are_captured() -> None:
    with capture_spans() as captured:
        captured.baseplate.sampler.sample_rate = 0.0
        span = captured.baseplate.make_server_span(RequestContext(), "request")
        span.start()
        span.finish()
    assert captured.one("request").context.trace_flags.sampled is False


def test_capturing_an_existing_baseplate_only_inside_the_block() -> None:
    with capture_spans() as outer:
        baseplate = outer.baseplate

        def request(name: str) -> None:
            span = baseplate.make_server_span(RequestContext(), name)
            span.start()
            span.finish()

        request("before")
        with capture_spans(baseplate) as inner:
            assert inner.baseplate is baseplate
            request("during")
        request("after")

    assert [s.name for s in inner.spans] == ["during"]
    assert [s.name for s in outer.spans] == ["before", "during", "after"]


def test_named_one_and_clear() -> None:
    with capture_spans() as captured:
        span = captured.baseplate.make_server_span(RequestContext(), "request")
        span.start()
        for _ in range(2):
            with span.make_child("call"):
                pass
        span.finish()
        assert len(captured.named("call")) == 2
        with pytest.raises(AssertionError, match="2 spans named 'call'"):
            captured.one("call")
        with pytest.raises(AssertionError, match="0 spans named 'nothing'"):
            captured.one("nothing")
        captured.clear()
        assert captured.spans == []


def test_as_a_pytest_fixture(spans: CapturedSpans) -> None:
    span = spans.baseplate.make_server_span(RequestContext(), "request")
    span.start()
    span.finish()
    assert spans.one("request").name == "request"


@pytest.fixture
def spans() -> Any:
    with capture_spans() as captured:
        yield captured


# --- capture_metrics -------------------------------------------------------------------------


@pytest.fixture
def no_sockets() -> Any:
    with mock.patch.object(socket, "socket", side_effect=AssertionError("socket opened")):
        yield


@pytest.mark.usefixtures("no_sockets")
def test_metrics_client_calls_are_kept_not_sent() -> None:
    metrics = capture_metrics("myservice")
    metrics.client.counter("events.connect").increment()
    metrics.client.counter("events.sampled").increment(sample_rate=0.5)
    metrics.client.gauge("workers").replace(4)
    metrics.client.histogram("sizes").add_sample(320)
    metrics.client.timer("work").send(1.5)
    with metrics.client.batch() as batch:
        batch.counter("froozles").increment()
        batch.counter("froozles").increment()

    assert metrics.lines == [
        "myservice.events.connect:1|c",
        "myservice.events.sampled:1|c|@0.5",
        "myservice.workers:4|g",
        "myservice.sizes:320|h",
        "myservice.work:1500|ms",
        "myservice.froozles:2|c",
    ]
    assert metrics.named("myservice.events.sampled") == [
        Metric("myservice.events.sampled", 1, "c", 0.5)
    ]
    assert metrics.metrics[4] == Metric("myservice.work", 1500, "ms")
    assert len(metrics.datagrams) == 6
    metrics.clear()
    assert metrics.lines == []


@pytest.mark.usefixtures("no_sockets")
def test_a_requests_metrics_arrive_in_one_datagram_when_it_ends() -> None:
    metrics = capture_metrics("myservice")
    with capture_spans() as captured:
        captured.baseplate.configure_metrics(metrics.client)
        context = RequestContext()
        server_span = captured.baseplate.make_server_span(context, "hello")
        server_span.start()
        with server_span.make_child("redis.get"):
            pass
        context.metrics.counter("greetings").increment()  # type: ignore[attr-defined]
        assert metrics.datagrams == []  # held in the request's batch until the span ends
        server_span.finish()

    assert len(metrics.datagrams) == 1
    assert sorted(metrics.names()) == [
        "myservice.clients.redis.get",
        "myservice.clients.redis.get.success",
        "myservice.greetings",
        "myservice.server.hello",
        "myservice.server.hello.success",
    ]
    (timer,) = metrics.named("myservice.server.hello")
    assert timer.type == "ms" and timer.value >= 0


def test_datagrams_are_split_as_the_udp_transport_splits_them() -> None:
    transport = CapturingTransport(max_datagram_size=20)
    transport.send(b"a.b:1|c\nc.d:2|c\ne.f:3|c")
    assert transport.sent() == [b"a.b:1|c\nc.d:2|c", b"e.f:3|c"]
    metrics = capture_metrics("n", max_datagram_size=21)  # two 10-byte lines and a newline
    with metrics.client.batch() as batch:
        for name in ("aaaa", "bbbb", "cccc"):
            batch.counter(name).increment()
    assert len(metrics.datagrams) == 2
    assert metrics.names() == ["n.aaaa", "n.bbbb", "n.cccc"]


def test_metric_lines_parse() -> None:
    assert Metric.parse("a.b:0.25|ms") == Metric("a.b", 0.25, "ms", 1.0)
    assert Metric.parse("a.b:-3|c|@0.1") == Metric("a.b", -3, "c", 0.1)
