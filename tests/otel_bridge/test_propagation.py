"""Trace propagation: baseplate HTTP/Thrift headers, B3 and W3C, exact bytes and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from baseplate.core import Baseplate, RequestContext, TraceInfo, trace_info_from_context
from otel_bridge.propagation import (
    UPSTREAM_PARENT_KEY,
    B3MultiPropagator,
    B3SinglePropagator,
    BaseplateHTTPPropagator,
    BaseplateThriftPropagator,
    case_insensitive_getter,
    make_propagator,
    thrift_getter,
    thrift_setter,
    wsgi_getter,
)
from otel_bridge.semconv import flags_of

HTTP = BaseplateHTTPPropagator()
THRIFT = BaseplateThriftPropagator()


def extracted(ctx: Context) -> SpanContext:
    return trace.get_current_span(ctx).get_span_context()


def headers_for(**values: str) -> dict[str, str]:
    return {key.replace("_", "-"): value for key, value in values.items()}


LEGACY = {"X-Trace": "1234", "X-Parent": "55", "X-Span": "66", "X-Sampled": "1"}


def test_baseplate_http_extract() -> None:
    ctx = HTTP.extract(LEGACY, getter=case_insensitive_getter)
    span_context = extracted(ctx)
    assert (span_context.trace_id, span_context.span_id) == (1234, 66)
    assert span_context.is_remote and span_context.trace_flags.sampled
    assert ctx.get(UPSTREAM_PARENT_KEY) == 55
    assert trace_info_from_context(ctx) == TraceInfo(1234, 55, 66, True, None)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in LEGACY.items()}
    assert extracted(HTTP.extract(headers, getter=case_insensitive_getter)).span_id == 66
    environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in LEGACY.items()}
    assert extracted(HTTP.extract(environ, getter=wsgi_getter)).span_id == 66


def test_b3_decimal_aliases_and_conflicts() -> None:
    aliases = {
        "X-B3-TraceId": "1234",
        "X-B3-ParentSpanId": "55",
        "X-B3-SpanId": "66",
        "X-B3-Sampled": "1",
    }
    assert trace_info_from_context(HTTP.extract(aliases, getter=case_insensitive_getter)) == (
        TraceInfo(1234, 55, 66, True, None)
    )
    agreeing = {**LEGACY, **aliases}
    assert extracted(HTTP.extract(agreeing, getter=case_insensitive_getter)).span_id == 66
    conflicting = {**LEGACY, "X-B3-SpanId": "67"}
    assert not extracted(HTTP.extract(conflicting, getter=case_insensitive_getter)).is_valid


def test_flags_and_unsampled() -> None:
    ctx = HTTP.extract({**LEGACY, "X-Sampled": "0", "X-Flags": "1"}, getter=case_insensitive_getter)
    span_context = extracted(ctx)
    assert flags_of(span_context) == 1
    assert span_context.trace_flags.sampled  # debug forces sampling
    info = trace_info_from_context(HTTP.extract({**LEGACY, "X-Sampled": "0"}))
    assert info is not None and info.sampled is False
    missing = trace_info_from_context(
        HTTP.extract({k: v for k, v in LEGACY.items() if k != "X-Sampled"})
    )
    assert missing is not None and missing.sampled is False  # as every baseplate reads it


def _context_for(
    trace_id: int, span_id: int, parent_id: int | None, sampled: bool, flags: int = 0
) -> Context:
    """An OTel context whose current span looks like an SDK span with a parent."""

    class WithParent(NonRecordingSpan):
        parent = (
            SpanContext(trace_id, parent_id, is_remote=False) if parent_id else None
        )

    state = TraceState([("baseplate", str(flags))]) if flags else TraceState()
    span_context = SpanContext(
        trace_id,
        span_id,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
        trace_state=state,
    )
    return trace.set_span_in_context(WithParent(span_context))


def test_http_inject_exact_headers() -> None:
    carrier: dict[str, str] = {}
    HTTP.inject(carrier, context=_context_for(1234, 66, 55, True))
    assert carrier == {
        "X-Trace": "1234", "X-Parent": "55", "X-Span": "66", "X-Sampled": "1", "X-Edge-Request": ""
    }
    carrier = {}
    HTTP.inject(carrier, context=_context_for(2**64 - 1, 2**63, None, False, flags=1))
    assert carrier == {
        "X-Trace": "18446744073709551615",
        "X-Parent": "0",
        "X-Span": "9223372036854775808",
        "X-Sampled": "0",
        "X-Flags": "1",
        "X-Edge-Request": "",
    }


def test_http_inject_forwards_edge_request() -> None:
    from opentelemetry.context import set_value

    from otel_bridge.context import EDGE_REQUEST_KEY

    carrier: dict[str, str] = {}
    context = set_value(EDGE_REQUEST_KEY, b"\x0b\x00", _context_for(1, 2, 3, True))
    HTTP.inject(carrier, context=context)
    assert carrier["X-Edge-Request"] == "CwA="


def test_thrift_inject_and_extract_bytes() -> None:
    carrier: dict[bytes, bytes] = {}
    THRIFT.inject(carrier, context=_context_for(99, 7, 3, False), setter=thrift_setter)
    assert carrier == {b"Trace": b"99", b"Parent": b"3", b"Span": b"7", b"Sampled": b"0"}
    ctx = THRIFT.extract(carrier, getter=thrift_getter)
    assert trace_info_from_context(ctx) == TraceInfo(99, 3, 7, False, None)


def test_thrift_inject_forwards_edge_request_raw() -> None:
    from opentelemetry.context import set_value

    from otel_bridge.context import EDGE_REQUEST_KEY

    header = bytes(range(256))  # every byte value survives the text API
    carrier: dict[bytes, bytes] = {}
    context = set_value(EDGE_REQUEST_KEY, header, _context_for(99, 7, 3, True))
    THRIFT.inject(carrier, context=context, setter=thrift_setter)
    assert carrier[b"Edge-Request"] == header
    for none in (None, b""):
        carrier = {}
        context = set_value(EDGE_REQUEST_KEY, none, _context_for(99, 7, 3, True))
        THRIFT.inject(carrier, context=context, setter=thrift_setter)
        assert b"Edge-Request" not in carrier  # sent only when non-empty
    assert "Edge-Request" in THRIFT.fields


def test_thrift_0_28_b3_aliases() -> None:
    aliases = {
        b"B3-TraceId": b"99",
        b"B3-ParentSpanId": b"3",
        b"B3-SpanId": b"7",
        b"B3-Sampled": b"1",
        b"B3-Flags": b"2",
    }
    ctx = THRIFT.extract(aliases, getter=thrift_getter)
    assert trace_info_from_context(ctx) == TraceInfo(99, 3, 7, True, 2)
    agreeing = {b"Trace": b"99", b"Parent": b"3", b"Span": b"7", **aliases}
    assert extracted(THRIFT.extract(agreeing, getter=thrift_getter)).span_id == 7
    conflicting = {**agreeing, b"B3-SpanId": b"8"}
    assert not extracted(THRIFT.extract(conflicting, getter=thrift_getter)).is_valid
    # over THeader the aliases are only ever decimal, even 16 digits long
    sixteen = {b"B3-TraceId": b"1234567890123456", b"B3-ParentSpanId": b"0",
               b"B3-SpanId": b"1234567890123457"}
    info = trace_info_from_context(THRIFT.extract(sixteen, getter=thrift_getter))
    assert info is not None and info.trace_id == 1234567890123456
    # and never written
    carrier: dict[bytes, bytes] = {}
    THRIFT.inject(carrier, context=_context_for(99, 7, 3, True), setter=thrift_setter)
    assert not [name for name in carrier if name.startswith(b"B3-")]


def test_propagators_environment_read_goes_through_otel_bridge_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otel_bridge.propagation import configuration

    try:
        monkeypatch.setenv("OTEL_PROPAGATORS", "  ")  # blank is unset
        configuration.configure_propagators(None)
        assert [type(p) for p in configuration.http_propagator().propagators] == [
            BaseplateHTTPPropagator, TraceContextTextMapPropagator, B3MultiPropagator,
            B3SinglePropagator,
        ]
        monkeypatch.setenv("OTEL_PROPAGATORS", " b3 ")
        configuration.configure_propagators(None)
        assert [type(p) for p in configuration.thrift_propagator().propagators] == [
            B3SinglePropagator
        ]
    finally:
        monkeypatch.undo()
        configuration.configure_propagators(None)


def test_b3_multi_keeps_debug_and_64_bit_width() -> None:
    carrier: dict[str, str] = {}
    B3MultiPropagator().inject(carrier, context=_context_for(0xABC, 0x10, 0x5, True, flags=1))
    assert carrier == {
        "X-B3-TraceId": "0000000000000abc",
        "X-B3-SpanId": "0000000000000010",
        "X-B3-ParentSpanId": "0000000000000005",
        "X-B3-Flags": "1",
    }
    ctx = B3MultiPropagator().extract(carrier, getter=case_insensitive_getter)
    span_context = extracted(ctx)
    assert (span_context.trace_id, span_context.span_id) == (0xABC, 0x10)
    assert flags_of(span_context) == 1 and span_context.trace_flags.sampled


def test_b3_single_round_trip() -> None:
    carrier: dict[str, str] = {}
    B3SinglePropagator().inject(carrier, context=_context_for(2**100, 0x10, 0x5, True))
    assert carrier == {"b3": f"{2**100:032x}-0000000000000010-1-0000000000000005"}
    span_context = extracted(B3SinglePropagator().extract(carrier))
    assert span_context.trace_id == 2**100 and span_context.trace_flags.sampled
    debug = extracted(B3SinglePropagator().extract({"b3": "0000000000000abc-0000000000000010-d"}))
    assert flags_of(debug) == 1


def test_hex_b3_headers_are_not_read_as_decimal_aliases() -> None:
    composite = make_propagator(["baseplate", "b3multi"])
    headers = {"X-B3-TraceId": "463ac35c9f6413ad", "X-B3-SpanId": "a2fb4a1d1a96d312",
               "X-B3-Sampled": "1"}
    span_context = extracted(composite.extract(headers, getter=case_insensitive_getter))
    assert span_context.trace_id == 0x463AC35C9F6413AD
    assert span_context.span_id == 0xA2FB4A1D1A96D312


def test_w3c_wins_when_formats_disagree() -> None:
    composite = make_propagator(["baseplate", "tracecontext"])
    w3c = {"traceparent": "00-0000000000000000000000000000abcd-00000000000000ef-01"}
    ctx = composite.extract({**LEGACY, **w3c}, getter=case_insensitive_getter)
    assert extracted(ctx).trace_id == 0xABCD
    info = trace_info_from_context(ctx)
    assert info is not None and info.parent_id == 0xEF and info.span_id != 0xEF


def test_agreeing_w3c_and_baseplate_keep_shared_span() -> None:
    composite = make_propagator(["baseplate", "tracecontext"])
    w3c = {"traceparent": f"00-{1234:032x}-{66:016x}-01"}
    ctx = composite.extract({**LEGACY, **w3c}, getter=case_insensitive_getter)
    assert trace_info_from_context(ctx) == TraceInfo(1234, 55, 66, True, None)


def test_composite_injects_every_format() -> None:
    composite = make_propagator(["baseplate", "tracecontext", "b3multi", "b3"])
    carrier: dict[str, str] = {}
    composite.inject(carrier, context=_context_for(1234, 66, 55, True))
    assert carrier["X-Trace"] == "1234"
    assert carrier["traceparent"] == f"00-{1234:032x}-{66:016x}-01"
    assert carrier["b3"].startswith(f"{1234:016x}-{66:016x}-1")
    # baseplate services read X-B3-* as decimal aliases: hex there would void the trace
    assert not any(name.startswith("X-B3-") for name in carrier)
    assert "X-B3-TraceId" not in composite.fields
    # hex multi-header B3 is still read, and written where no baseplate headers are
    assert extracted(composite.extract(
        {"X-B3-TraceId": f"{1234:016x}", "X-B3-SpanId": f"{66:016x}", "X-B3-Sampled": "1"}
    )).span_id == 66
    alone: dict[str, str] = {}
    make_propagator(["tracecontext", "b3multi"]).inject(
        alone, context=_context_for(1234, 66, 55, True)
    )
    assert alone["X-B3-SpanId"] == f"{66:016x}"
    thrift: dict[bytes, bytes] = {}
    make_propagator(["baseplate", "b3multi"], thrift=True).inject(
        thrift, context=_context_for(1234, 66, 55, True), setter=thrift_setter
    )
    assert thrift[b"Trace"] == b"1234" and thrift[b"X-B3-SpanId"] == f"{66:016x}".encode()


def test_decimal_aliases_with_a_16_digit_trace_id() -> None:
    """Without ``X-Trace``, a 16-digit all-decimal ``X-B3-TraceId`` whose span id is not a
    hex B3 span id is the 0.28 decimal alias (as reddit's services read it)."""
    headers = {"X-B3-TraceId": "1234567890123456", "X-B3-ParentSpanId": "55",
               "X-B3-SpanId": "7638783876913511395", "X-B3-Sampled": "1"}
    ctx = make_propagator(["baseplate", "b3multi"]).extract(
        headers, getter=case_insensitive_getter
    )
    assert trace_info_from_context(ctx) == TraceInfo(
        1234567890123456, 55, 7638783876913511395, True, None
    )


def test_round_trip_through_two_services(provider: Any, exporter: Any) -> None:
    """Service A's client span headers become service B's server span (shared span)."""
    baseplate = Baseplate(tracer_provider=provider)
    server = baseplate.make_server_span(
        RequestContext(), "a", TraceInfo.from_upstream(500, 400, 501, True, None)
    )
    with server:
        child = server.make_child("b.call")
        with child:
            carrier: dict[str, str] = {}
            make_propagator(["baseplate", "tracecontext"]).inject(carrier)
    assert carrier["X-Span"] == str(child.id) and carrier["X-Parent"] == str(server.id)
    info = trace_info_from_context(
        make_propagator(["baseplate", "tracecontext"]).extract(carrier)
    )
    assert info == TraceInfo(500, server.id, child.id, True, None)


BAD_VALUES = ["", "abc", "-1", "1.5", " ", "0x10", str(2**64), "9" * 50, "１２", "1e5"]


@pytest.mark.parametrize("field", ["X-Trace", "X-Parent", "X-Span"])
@pytest.mark.parametrize("value", [*BAD_VALUES, None])
def test_bad_baseplate_headers_start_a_new_trace(field: str, value: str | None) -> None:
    headers = dict(LEGACY)
    if value is None:
        del headers[field]
    else:
        headers[field] = value
    if field == "X-Trace" and value == str(2**64):
        return  # a 128-bit trace id is valid
    ctx = HTTP.extract(headers, getter=case_insensitive_getter)
    assert not extracted(ctx).is_valid
    assert trace_info_from_context(ctx) is None


def test_garbage_thrift_headers() -> None:
    carrier = {b"Trace": b"\xff\xfe", b"Parent": b"1", b"Span": b"2", b"Sampled": b"\x00"}
    assert not extracted(THRIFT.extract(carrier, getter=thrift_getter)).is_valid


text_values = st.one_of(st.none(), st.text(max_size=60), st.integers().map(str))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            ["X-Trace", "X-Parent", "X-Span", "X-Sampled", "X-Flags", "X-B3-TraceId",
             "X-B3-SpanId", "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags", "b3",
             "traceparent", "tracestate", "x-trace"]
        ),
        st.text(max_size=80),
    )
)
def test_extract_never_raises(headers: dict[str, str]) -> None:
    composite = make_propagator(["baseplate", "tracecontext", "b3multi", "b3"])
    ctx = composite.extract(headers, getter=case_insensitive_getter)
    span_context = extracted(ctx)
    info = trace_info_from_context(ctx)
    if span_context.is_valid:
        assert info is not None
        TraceInfo.from_upstream(info.trace_id, info.parent_id, info.span_id, info.sampled,
                                info.flags)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1),
    st.booleans(), st.integers(0, 2**64 - 1),
)
def test_http_round_trip_property(
    trace_id: int, parent_id: int, span_id: int, sampled: bool, flags: int
) -> None:
    carrier: dict[str, str] = {}
    HTTP.inject(carrier, context=_context_for(trace_id, span_id, parent_id or None, sampled, flags))
    info = trace_info_from_context(HTTP.extract(carrier))
    assert info is not None
    assert (info.trace_id, info.parent_id, info.span_id) == (trace_id, parent_id, span_id)
    assert info.sampled is (sampled or bool(flags & 1))
    assert carrier["X-Sampled"] in ("0", "1")
    assert info.flags == (flags or None)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(max_size=12), st.binary(max_size=40)))
def test_thrift_extract_never_raises(headers: dict[bytes, bytes]) -> None:
    THRIFT.extract(headers, getter=thrift_getter)


def test_w3c_alone_is_continued() -> None:
    ctx = TraceContextTextMapPropagator().extract(
        {"traceparent": f"00-{7:032x}-{8:016x}-00"}
    )
    info = trace_info_from_context(ctx)
    assert info is not None and (info.trace_id, info.parent_id, info.sampled) == (7, 8, False)


# -- wire rules toward legacy baseplate services -------------------------------------------

WIDE_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736  # a W3C trace id, wider than 64 bits
LOWER_64 = WIDE_TRACE & (2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(st.integers(2**64, 2**128 - 1), st.integers(1, 2**64 - 1), st.booleans())
def test_wide_trace_ids_go_out_as_their_lower_64_bits(
    trace_id: int, span_id: int, thrift: bool
) -> None:
    context = _context_for(trace_id, span_id, 55, True)
    if thrift:
        carrier: dict[Any, Any] = {}
        THRIFT.inject(carrier, context=context, setter=thrift_setter)
        sent = int(carrier[b"Trace"])
    else:
        carrier = {}
        HTTP.inject(carrier, context=context)
        sent = int(carrier["X-Trace"])
    assert sent == trace_id % 2**64 and sent < 2**64  # what a legacy peer can parse


def test_wide_trace_id_full_in_w3c_and_b3_lower_bits_in_baseplate_headers() -> None:
    composite = make_propagator(["baseplate", "tracecontext", "b3"])
    carrier: dict[str, str] = {}
    composite.inject(carrier, context=_context_for(WIDE_TRACE, 66, 55, True))
    assert carrier["X-Trace"] == str(LOWER_64)
    assert carrier["X-Span"] == "66" and carrier["X-Parent"] == "55"
    assert carrier["traceparent"] == f"00-{WIDE_TRACE:032x}-{66:016x}-01"
    assert carrier["b3"] == f"{WIDE_TRACE:032x}-{66:016x}-1-{55:016x}"
    thrift: dict[bytes, bytes] = {}
    make_propagator(["baseplate", "tracecontext"], thrift=True).inject(
        thrift, context=_context_for(WIDE_TRACE, 66, 55, True), setter=thrift_setter
    )
    assert thrift[b"Trace"] == str(LOWER_64).encode()
    assert thrift[b"traceparent"] == f"00-{WIDE_TRACE:032x}-{66:016x}-01".encode()


@pytest.mark.parametrize("others", [["tracecontext"], ["b3"], ["tracecontext", "b3"]])
def test_our_own_callee_gets_the_full_trace_id_and_the_shared_span(others: list[str]) -> None:
    """Between two services of this project, W3C or B3 restores the bits X-Trace lacks,
    and the baseplate reading (shared span, upstream parent) is kept."""
    names = ["baseplate", *others]
    carrier: dict[str, str] = {}
    make_propagator(names).inject(carrier, context=_context_for(WIDE_TRACE, 66, 55, True))
    ctx = make_propagator(names).extract(carrier, getter=case_insensitive_getter)
    assert trace_info_from_context(ctx) == TraceInfo(WIDE_TRACE, 55, 66, True, None)
    # Thrift too
    thrift: dict[bytes, bytes] = {}
    make_propagator(names, thrift=True).inject(
        thrift, context=_context_for(WIDE_TRACE, 66, 55, True, flags=2), setter=thrift_setter
    )
    ctx = make_propagator(names, thrift=True).extract(thrift, getter=thrift_getter)
    assert trace_info_from_context(ctx) == TraceInfo(WIDE_TRACE, 55, 66, True, 2)


def test_lower_bits_of_another_span_do_not_widen() -> None:
    composite = make_propagator(["baseplate", "tracecontext"])
    headers = {
        "X-Trace": str(LOWER_64), "X-Parent": "55", "X-Span": "66", "X-Sampled": "1",
        "traceparent": f"00-{WIDE_TRACE:032x}-{67:016x}-01",  # another span: W3C wins
    }
    info = trace_info_from_context(composite.extract(headers, getter=case_insensitive_getter))
    assert info is not None and info.trace_id == WIDE_TRACE and info.parent_id == 67
    b3 = make_propagator(["baseplate", "b3"])
    other_trace = {**headers, "b3": f"{WIDE_TRACE + 1:032x}-{66:016x}-1"}
    del other_trace["traceparent"]
    info = trace_info_from_context(b3.extract(other_trace, getter=case_insensitive_getter))
    assert info == TraceInfo(LOWER_64, 55, 66, True, None)  # B3 of another trace: ignored


# Values reddit's baseplate (int() and a 64-bit range check) accepts, read alike here.
REDDIT_ACCEPTS = {
    "plus sign": ({"X-Span": "+66"}, TraceInfo(1234, 55, 66, True, None)),
    "parent zero": ({"X-Parent": "0"}, TraceInfo(1234, 0, 66, True, None)),
    "parent minus zero": ({"X-Parent": "-0"}, TraceInfo(1234, 0, 66, True, None)),
    "leading zeros": ({"X-Trace": "0001234"}, TraceInfo(1234, 55, 66, True, None)),
    "underscores": ({"X-Trace": "1_234"}, TraceInfo(1234, 55, 66, True, None)),
    "surrounding spaces": ({"X-Span": " 66 "}, TraceInfo(1234, 55, 66, True, None)),
    "flags with sign": ({"X-Flags": "+2"}, TraceInfo(1234, 55, 66, True, 2)),
    "flags zero": ({"X-Flags": "0"}, TraceInfo(1234, 55, 66, True, None)),
}


@pytest.mark.parametrize("changes, expected", REDDIT_ACCEPTS.values(), ids=REDDIT_ACCEPTS.keys())
def test_values_reddit_accepts(changes: dict[str, str], expected: TraceInfo) -> None:
    ctx = HTTP.extract({**LEGACY, **changes}, getter=case_insensitive_getter)
    assert trace_info_from_context(ctx) == expected
    thrift = {k[2:].encode(): v.encode() for k, v in {**LEGACY, **changes}.items()}
    assert trace_info_from_context(THRIFT.extract(thrift, getter=thrift_getter)) == expected


# Headers reddit's baseplate rejects (a new trace there), rejected here too.
REDDIT_REJECTS = {
    "flags not a number": {"X-Flags": "abc"},
    "negative flags": {"X-Flags": "-1"},
    "flags past 64 bits": {"X-Flags": str(2**64)},
    "double underscore": {"X-Trace": "1__234"},
    "trailing underscore": {"X-Span": "66_"},
    "sign alone": {"X-Span": "+"},
    "alias text differs": {"X-B3-SpanId": "066"},
    "alias sign differs": {"X-B3-SpanId": "+66"},
}


@pytest.mark.parametrize("changes", REDDIT_REJECTS.values(), ids=REDDIT_REJECTS.keys())
def test_values_reddit_rejects(changes: dict[str, str]) -> None:
    ctx = HTTP.extract({**LEGACY, **changes}, getter=case_insensitive_getter)
    assert not extracted(ctx).is_valid


@pytest.mark.parametrize("value", ["true", "True", "yes", "01", "1.0", "0", "d"])
def test_only_sampled_1_means_sampled(value: str) -> None:
    info = trace_info_from_context(HTTP.extract({**LEGACY, "X-Sampled": value}))
    assert info is not None and info.sampled is False
    thrift = {b"Trace": b"1234", b"Parent": b"55", b"Span": b"66", b"Sampled": value.encode()}
    info = trace_info_from_context(THRIFT.extract(thrift, getter=thrift_getter))
    assert info is not None and info.sampled is False


@pytest.mark.parametrize("field", ["X-Trace", "X-Span"])
def test_zero_trace_or_span_id_starts_a_new_trace(field: str) -> None:
    """Reddit's baseplate accepts 0 there; OpenTelemetry has no span or trace id 0."""
    ctx = HTTP.extract({**LEGACY, field: "0"}, getter=case_insensitive_getter)
    assert not extracted(ctx).is_valid
