"""The span model: every baseplate span is one OTel SDK span with baseplate's ids."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode, format_span_id

from baseplate.core import (
    Baseplate,
    BaseplateObserver,
    LocalSpan,
    RequestContext,
    ServerSpan,
    ServerSpanObserver,
    Span,
    SpanObserver,
    TraceInfo,
    trace_info_from_context,
)
from otel_bridge.semconv import ATTR_COMPONENT, ATTR_LOG_PAYLOAD, TRACER_NAME, flags_of


def by_name(spans: Any) -> dict[str, Any]:
    return {span.name: span for span in spans}


def test_server_span_keeps_upstream_ids(baseplate: Baseplate, exporter: Any) -> None:
    context = RequestContext()
    info = TraceInfo.from_upstream(1234, 55, 66, True, None)
    span = baseplate.make_server_span(context, "handler", info)
    assert context.trace is span
    assert (span.trace_id, span.parent_id, span.id, span.sampled) == (1234, 55, 66, True)
    with span:
        pass
    (otel,) = exporter.get_finished_spans()
    assert otel.name == "handler"
    assert otel.kind is SpanKind.SERVER
    assert otel.context.trace_id == 1234
    assert otel.context.span_id == 66
    assert otel.parent is not None and otel.parent.span_id == 55 and otel.parent.is_remote
    assert otel.instrumentation_scope.name == TRACER_NAME


def test_child_ids_exist_before_start_and_match_otel(baseplate: Baseplate, exporter: Any) -> None:
    server = baseplate.make_server_span(RequestContext(), "handler")
    with server:
        child = server.make_child("redis.GET")
        assert child.otel_span is None
        assert child.trace_id == server.trace_id
        assert child.parent_id == server.id
        assert 0 < child.id < 2**64
        with child:
            pass
    spans = by_name(exporter.get_finished_spans())
    otel_child = spans["redis.GET"]
    assert otel_child.kind is SpanKind.CLIENT
    assert otel_child.context.span_id == child.id
    assert otel_child.parent.span_id == server.id
    assert otel_child.context.trace_id == server.trace_id


def test_new_trace_ids_are_64_bit(baseplate: Baseplate) -> None:
    for _ in range(50):
        span = baseplate.make_server_span(RequestContext(), "x")
        assert 0 < span.trace_id < 2**64
        assert span.parent_id is None
        span.start()
        assert span.otel_span.get_span_context().trace_id == span.trace_id
        span.finish()


def test_128_bit_upstream_trace_id_is_kept(baseplate: Baseplate, exporter: Any) -> None:
    trace_id = 2**100 + 7
    span = baseplate.make_server_span(
        RequestContext(), "x", TraceInfo.from_upstream(trace_id, 1, 2, True, None)
    )
    with span:
        child = span.make_child("c")
        with child:
            pass
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {trace_id}


def test_root_upstream_without_parent_keeps_trace_id(baseplate: Baseplate, exporter: Any) -> None:
    span = baseplate.make_server_span(
        RequestContext(), "x", TraceInfo.from_upstream(777, 0, 778, True, None)
    )
    with span:
        pass
    (otel,) = exporter.get_finished_spans()
    assert otel.context.trace_id == 777 and otel.context.span_id == 778
    assert otel.parent is None


def test_tags_logs_and_kinds(baseplate: Baseplate, exporter: Any) -> None:
    server = baseplate.make_server_span(RequestContext(), "handler")
    server.set_tag("before.start", "yes")
    with server:
        server.set_tag("str", "v")
        server.set_tag("int", 3)
        server.set_tag("float", 1.5)
        server.set_tag("bool", True)
        server.set_tag("bytes", b"abc")
        server.set_tag("object", ValueError("x"))
        server.set_tag("none", None)
        server.log("cache.miss", {"key": "k"})
        server.log("plain")
        with server.make_child("work", local=True, component_name="crunch") as local:
            assert isinstance(local, LocalSpan)
    spans = by_name(exporter.get_finished_spans())
    attrs = spans["handler"].attributes
    assert attrs["before.start"] == "yes"
    assert attrs["str"] == "v" and attrs["int"] == 3 and attrs["float"] == 1.5
    assert attrs["bool"] is True and attrs["bytes"] == "abc"
    assert isinstance(attrs["object"], str)
    assert "none" not in attrs
    events = spans["handler"].events
    assert [e.name for e in events] == ["cache.miss", "plain"]
    assert events[0].attributes[ATTR_LOG_PAYLOAD] == str({"key": "k"})
    assert spans["work"].kind is SpanKind.INTERNAL
    assert spans["work"].attributes[ATTR_COMPONENT] == "crunch"


def test_finish_with_exception_records_error(baseplate: Baseplate, exporter: Any) -> None:
    server = baseplate.make_server_span(RequestContext(), "handler")
    with pytest.raises(KeyError):
        with server:
            raise KeyError("boom")
    (otel,) = exporter.get_finished_spans()
    assert otel.status.status_code is StatusCode.ERROR
    assert "KeyError" in (otel.status.description or "")
    (event,) = otel.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "KeyError"


def test_finish_explicit_exc_info(baseplate: Baseplate, exporter: Any) -> None:
    server = baseplate.make_server_span(RequestContext(), "handler")
    server.start()
    try:
        raise RuntimeError("bad")
    except RuntimeError as exc:
        server.finish(exc_info=(RuntimeError, exc, exc.__traceback__))
    server.finish()  # a second finish is a no-op
    (otel,) = exporter.get_finished_spans()
    assert otel.status.status_code is StatusCode.ERROR


def test_local_span_gets_context_copy(baseplate: Baseplate) -> None:
    context = RequestContext()
    context.thing = "shared"  # type: ignore[attr-defined]
    server = baseplate.make_server_span(context, "handler")
    with server:
        local = server.make_child("op", local=True, component_name="comp")
        assert local.context is not context
        assert local.context.trace is local
        assert local.context.thing == "shared"
        assert context.trace is server
        assert local.component_name == "comp"
        with pytest.raises(ValueError):
            server.make_child("op", local=True)


def test_upstream_sampling_decides(baseplate: Baseplate, exporter: Any, recorder: Any) -> None:
    baseplate.sampler.sample_rate = 1.0
    unsampled = baseplate.make_server_span(
        RequestContext(), "no", TraceInfo.from_upstream(10, 1, 11, False, None)
    )
    with unsampled:
        with unsampled.make_child("no.child"):
            pass
    assert unsampled.sampled is False
    assert exporter.get_finished_spans() == ()
    assert {s.name for s in recorder.ended} == {"no", "no.child"}
    assert all(s.context.trace_flags.sampled is False for s in recorder.ended)


def test_debug_flag_forces_sampling(baseplate: Baseplate, exporter: Any) -> None:
    baseplate.sampler.sample_rate = 0.0
    span = baseplate.make_server_span(
        RequestContext(), "debug", TraceInfo.from_upstream(10, 1, 11, False, 1)
    )
    assert span.sampled is True
    with span:
        child = span.make_child("c")
        assert child.flags == 1
        with child:
            pass
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert all(flags_of(s.context) == 1 for s in spans)


def test_sample_rate_applies_to_new_traces(
    baseplate: Baseplate, exporter: Any, recorder: Any
) -> None:
    baseplate.sampler.sample_rate = 0.0
    for _ in range(20):
        with baseplate.make_server_span(RequestContext(), "rate0"):
            pass
    assert exporter.get_finished_spans() == ()
    assert len(recorder.ended) == 20
    baseplate.sampler.sample_rate = 1.0
    with baseplate.make_server_span(RequestContext(), "rate1"):
        pass
    assert len(exporter.get_finished_spans()) == 1
    with pytest.raises(ValueError):
        baseplate.sampler.sample_rate = 1.5


def test_plain_otel_spans_nest_under_baseplate_spans(
    baseplate: Baseplate, provider: Any, exporter: Any
) -> None:
    vendor = provider.get_tracer("vendor.instrumentation")
    server = baseplate.make_server_span(RequestContext(), "handler")
    with server:
        with vendor.start_as_current_span("vendor.in.server"):
            pass
        with server.make_child("client") as child:
            with vendor.start_as_current_span("vendor.in.child"):
                pass
        with vendor.start_as_current_span("after.child"):
            pass
    spans = by_name(exporter.get_finished_spans())
    assert spans["vendor.in.server"].parent.span_id == server.id
    assert spans["vendor.in.child"].parent.span_id == child.id
    assert spans["after.child"].parent.span_id == server.id
    assert len({s.context.trace_id for s in spans.values()}) == 1


def test_server_span_joins_current_vendor_span(
    baseplate: Baseplate, provider: Any, exporter: Any
) -> None:
    vendor = provider.get_tracer("opentelemetry.instrumentation.wsgi")
    with vendor.start_as_current_span("GET /", kind=SpanKind.SERVER) as outer:
        server = baseplate.make_server_span(RequestContext(), "route")
        with server:
            pass
    spans = by_name(exporter.get_finished_spans())
    outer_ctx = outer.get_span_context()
    assert server.trace_id == outer_ctx.trace_id
    assert server.parent_id == outer_ctx.span_id
    assert spans["route"].parent.span_id == outer_ctx.span_id
    assert spans["route"].parent.is_remote is False


class RecordingObserver(SpanObserver):
    def __init__(self, log: list[tuple[Any, ...]], label: str):
        self.log = log
        self.label = label

    def on_start(self) -> None:
        self.log.append((self.label, "start"))

    def on_set_tag(self, key: str, value: Any) -> None:
        self.log.append((self.label, "tag", key, value))

    def on_log(self, name: str, payload: Any) -> None:
        self.log.append((self.label, "log", name, payload))

    def on_finish(self, exc_info: Any) -> None:
        self.log.append((self.label, "finish", exc_info[0] if exc_info else None))

    def on_child_span_created(self, span: Span) -> None:
        self.log.append((self.label, "child", span.name))
        span.register(RecordingObserver(self.log, span.name))


class RecordingBaseplateObserver(BaseplateObserver):
    def __init__(self, log: list[tuple[Any, ...]]):
        self.log = log

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        assert context.trace is server_span
        self.log.append(("baseplate", "created", server_span.name))
        server_span.register(ServerSpanRecorder(self.log, "server"))


class ServerSpanRecorder(RecordingObserver, ServerSpanObserver):
    pass


def test_observer_events_in_order(baseplate: Baseplate) -> None:
    log: list[tuple[Any, ...]] = []
    baseplate.register(RecordingBaseplateObserver(log))
    server = baseplate.make_server_span(RequestContext(), "handler")
    with pytest.raises(ValueError):
        with server:
            server.set_tag("k", "v")
            server.log("event", 1)
            with server.make_child("call"):
                pass
            raise ValueError
    assert log == [
        ("baseplate", "created", "handler"),
        ("server", "start"),
        ("server", "tag", "k", "v"),
        ("server", "log", "event", 1),
        ("server", "child", "call"),
        ("call", "start"),
        ("call", "finish", None),
        ("server", "finish", ValueError),
    ]


def test_failing_observer_does_not_break_request(
    baseplate: Baseplate, exporter: Any, caplog: Any
) -> None:
    class Broken(SpanObserver):
        def on_start(self) -> None:
            raise RuntimeError("observer bug")

        def on_finish(self, exc_info: Any) -> None:
            raise RuntimeError("observer bug")

    class Registers(BaseplateObserver):
        def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
            server_span.register(Broken())

    class Explodes(BaseplateObserver):
        def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
            raise RuntimeError("observer bug")

    baseplate.register(Explodes())
    baseplate.register(Registers())
    with caplog.at_level(logging.ERROR):
        with baseplate.make_server_span(RequestContext(), "handler"):
            pass
    assert len(exporter.get_finished_spans()) == 1
    assert sum("observer" in r.getMessage() for r in caplog.records) == 3


def test_add_to_context(baseplate: Baseplate) -> None:
    seen: list[Any] = []

    class Factory:
        def make_object_for_context(self, name: str, server_span: ServerSpan) -> Any:
            seen.append((name, server_span))
            return f"client-for-{server_span.id}"

    baseplate.add_to_context("thing", Factory())
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    assert context.thing == f"client-for-{span.id}"  # type: ignore[attr-defined]
    assert seen == [("thing", span)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trace_id": "1"},
        {"trace_id": 0},
        {"trace_id": 2**128},
        {"trace_id": -1},
        {"span_id": 2**64},
        {"span_id": 0},
        {"span_id": 1.5},
        {"parent_id": -5},
        {"parent_id": 2**64},
        {"sampled": "yes"},
        {"sampled": 1},
        {"flags": -1},
        {"flags": "1"},
        {"trace_id": True},
    ],
)
def test_trace_info_validation(kwargs: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "trace_id": 1,
        "parent_id": 2,
        "span_id": 3,
        "sampled": True,
        "flags": None,
    }
    values.update(kwargs)
    with pytest.raises(ValueError):
        TraceInfo.from_upstream(**values)


def test_trace_info_accepts_valid_values() -> None:
    info = TraceInfo.from_upstream(2**127, 0, 2**64 - 1, None, 0)
    assert info.trace_id == 2**127 and info.parent_id == 0
    assert TraceInfo.new().parent_id is None
    with pytest.raises(ValueError):  # upstream headers always carry a parent id
        TraceInfo.from_upstream(1, None, 2, None, None)


def test_span_repr_names_ids(baseplate: Baseplate) -> None:
    span = baseplate.make_server_span(
        RequestContext(), "h", TraceInfo.from_upstream(1, 2, 3, True, None)
    )
    assert "trace_id=1" in repr(span) and "span_id=3" in repr(span)
    assert format_span_id(3).endswith("3")


def test_missing_sampled_header_means_unsampled(baseplate: Baseplate) -> None:
    # baseplate 1.x sends X-Sampled only when sampled; every baseplate reads none as unsampled
    from otel_bridge.propagation import (
        BaseplateHTTPPropagator,
        BaseplateThriftPropagator,
        thrift_getter,
    )

    baseplate.sampler.sample_rate = 1.0
    for ctx in (
        BaseplateHTTPPropagator().extract({"X-Trace": "1234", "X-Parent": "55", "X-Span": "66"}),
        BaseplateThriftPropagator().extract(
            {b"Trace": b"1234", b"Parent": b"55", b"Span": b"66"}, getter=thrift_getter
        ),
    ):
        info = trace_info_from_context(ctx)
        assert info is not None and info.sampled is False
        assert baseplate.make_server_span(RequestContext(), "h", info).sampled is False
    # the debug flag still forces sampling
    debug = {"X-Trace": "1234", "X-Parent": "55", "X-Span": "66", "X-Flags": "1"}
    info = trace_info_from_context(BaseplateHTTPPropagator().extract(debug))
    assert info is not None
    assert baseplate.make_server_span(RequestContext(), "h", info).sampled is True


def test_deferred_b3_and_vendor_spans_under_it_use_the_rate(
    baseplate: Baseplate, provider: Any
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from otel_bridge.propagation import B3MultiPropagator, B3SinglePropagator
    from otel_bridge.sampling import BaseplateSampler

    contexts = [
        B3MultiPropagator().extract(
            {"X-B3-TraceId": "00000000000004d2", "X-B3-SpanId": "0" * 15 + "1"}
        ),
        B3SinglePropagator().extract({"b3": "00000000000004d2-0000000000000001"}),
    ]
    for ctx in contexts:
        for rate in (0.0, 1.0):
            tracer = TracerProvider(sampler=BaseplateSampler(rate)).get_tracer("vendor")
            span = tracer.start_span("GET /", context=ctx)
            assert span.get_span_context().trace_flags.sampled is bool(rate)
            span.end()
            baseplate.sampler.sample_rate = rate
            info = trace_info_from_context(ctx)
            assert info is not None and info.sampled is None
            server = baseplate.make_server_span(RequestContext(), "h", info)
            assert server.sampled is bool(rate)


def test_shared_span_marked_only_for_baseplate_headers(baseplate: Baseplate, exporter: Any) -> None:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from otel_bridge.propagation import BaseplateHTTPPropagator
    from otel_bridge.semconv import ATTR_SHARED_SPAN

    legacy = BaseplateHTTPPropagator().extract(
        {"X-Trace": "1", "X-Parent": "2", "X-Span": "3", "X-Sampled": "1"}
    )
    w3c = TraceContextTextMapPropagator().extract({"traceparent": f"00-{1:032x}-{2:016x}-01"})
    for name, ctx in (("legacy", legacy), ("w3c", w3c)):
        with baseplate.make_server_span(RequestContext(), name, trace_info_from_context(ctx)):
            pass
    with baseplate.make_server_span(RequestContext(), "new"):
        pass
    spans = by_name(exporter.get_finished_spans())
    assert spans["legacy"].attributes.get(ATTR_SHARED_SPAN) is True
    assert spans["legacy"].context.span_id == 3
    assert ATTR_SHARED_SPAN not in spans["w3c"].attributes
    assert ATTR_SHARED_SPAN not in spans["new"].attributes
