"""Baseplate spans are started without the sampler and id generator when their ids and
sampling are decided (otel_bridge._sdk.start_decided_span): the spans are the very spans
the usual ``Tracer.start_span`` path makes, for every kind of parent."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import baseplate._span as span_module
from baseplate.core import Baseplate, RequestContext, TraceInfo


def _request(bp: Baseplate, trace_info: TraceInfo | None, vendor: Any) -> None:
    def handle() -> None:
        server = bp.make_server_span(RequestContext(), "route", trace_info)
        server.set_tag("before.start", 1)
        with server:
            server.set_tag("http.method", "GET")
            with server.make_child("redis.GET") as child:
                child.set_tag("key", "k")
            with server.make_child("render", local=True, component_name="templates") as local:
                with local.make_child("memcache.get"):
                    pass

    if vendor is None:
        handle()
    else:
        with vendor.start_as_current_span("vendor-server", kind=trace.SpanKind.SERVER):
            handle()


class Ended(SpanProcessor):
    """Every span that ends, sampled or not."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _view(span: ReadableSpan) -> tuple[Any, ...]:
    return (
        span.name,
        span.kind,
        span.context,
        span.parent,
        dict(span.attributes or {}),
        span.resource,
        span.instrumentation_scope,
        span.status.status_code,
        span.context.trace_flags if span.context else None,
        span.context.trace_state if span.context else None,
    )


CASES = {
    "new trace": lambda: None,
    "upstream, sampled": lambda: TraceInfo.from_upstream(11, 22, 33, True, None),
    "upstream, not sampled": lambda: TraceInfo.from_upstream(11, 22, 33, False, None),
    "upstream, debug flag": lambda: TraceInfo.from_upstream(11, 22, 33, False, 1),
    "upstream, undecided": lambda: TraceInfo.from_upstream(11, 22, 33, None, None),
    "under a vendor span": lambda: None,
}


def _spans(case: str, shortcut: bool, monkeypatch: pytest.MonkeyPatch) -> list[ReadableSpan]:
    counter = iter(range(1000, 10**6))
    monkeypatch.setattr(span_module, "new_id", lambda: next(counter))
    if not shortcut:
        monkeypatch.setattr(span_module, "start_decided_span", lambda *args, **kwargs: None)
    provider = TracerProvider(shutdown_on_exit=False)
    ended = Ended()
    provider.add_span_processor(ended)
    bp = Baseplate(provider)
    bp.sampler.sample_rate = 1.0
    vendor = provider.get_tracer("vendor") if case == "under a vendor span" else None
    _request(bp, CASES[case](), vendor)
    monkeypatch.undo()
    return [span for span in ended.spans if span.name != "vendor-server"]


@pytest.mark.parametrize("case", list(CASES))
def test_decided_spans_are_the_spans_the_tracer_makes(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    usual = _spans(case, shortcut=False, monkeypatch=monkeypatch)
    decided = _spans(case, shortcut=True, monkeypatch=monkeypatch)
    if case == "under a vendor span":
        # the vendor's trace id is random per run: compare everything else
        assert [_view(span)[:2] + _view(span)[4:] for span in decided] == [
            _view(span)[:2] + _view(span)[4:] for span in usual
        ]
        assert len({span.context.trace_id for span in decided if span.context}) == 1
        return
    assert [span.name for span in decided] == ["redis.GET", "memcache.get", "render", "route"]
    assert [_view(span) for span in decided] == [_view(span) for span in usual]


def test_the_shortcut_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = span_module.start_decided_span

    def counting(tracer: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(tracer, name, *args, **kwargs)

    monkeypatch.setattr(span_module, "start_decided_span", counting)
    provider = TracerProvider(shutdown_on_exit=False)
    _request(Baseplate(provider), TraceInfo.from_upstream(11, 22, 33, True, None), None)
    assert calls == ["route", "redis.GET", "render", "memcache.get"]
