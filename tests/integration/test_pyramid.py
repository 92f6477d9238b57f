"""The Pyramid integration: one server span per routed request, through a real WSGI stack."""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response

from baseplate.context import ContextFactory
from baseplate.core import Baseplate, ServerSpan
from baseplate.integration.pyramid import BaseplateConfigurator, ServerSpanInitialized


class Counter(ContextFactory):
    def make_object_for_context(self, name: str, server_span: ServerSpan) -> Any:
        return {"name": name, "span_id": server_span.id}


def make_app(baseplate: Baseplate, trust: bool, seen: list[Any]) -> webtest.TestApp:
    config = Configurator()
    config.include(BaseplateConfigurator(baseplate, trust_trace_headers=trust).includeme)

    def hello(request: Any) -> Response:
        seen.append(request)
        with request.trace.make_child("compute", local=True, component_name="math"):
            pass
        return Response(f"hello {request.thing['name']}")

    def boom(request: Any) -> Response:
        raise ValueError("view failed")

    def redirect(request: Any) -> Response:
        raise HTTPFound(location="/hello")

    def error_view(exc: Exception, request: Any) -> Response:
        return Response("rendered error", status=500)

    config.add_route("hello", "/hello")
    config.add_view(hello, route_name="hello")
    config.add_route("boom", "/boom")
    config.add_view(boom, route_name="boom")
    config.add_route("redirect", "/redirect")
    config.add_view(redirect, route_name="redirect")
    config.add_view(error_view, context=ValueError)
    config.add_subscriber(lambda event: seen.append(("initialized", event.request.trace)),
                          ServerSpanInitialized)
    baseplate.add_to_context("thing", Counter())
    return webtest.TestApp(config.make_wsgi_app())


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def baseplate(exporter: InMemorySpanExporter) -> Baseplate:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bp = Baseplate(tracer_provider=provider)
    bp.sampler.sample_rate = 1.0
    return bp


TRACE_HEADERS = {"X-Trace": "1234", "X-Parent": "55", "X-Span": "66", "X-Sampled": "1"}


def test_routed_request_gets_server_span(baseplate: Baseplate, exporter: Any) -> None:
    seen: list[Any] = []
    app = make_app(baseplate, trust=False, seen=seen)
    response = app.get("/hello", extra_environ={"REMOTE_ADDR": "10.1.2.3"})
    assert response.text == "hello thing"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server = spans["hello"]
    assert server.kind is SpanKind.SERVER
    assert server.attributes["http.method"] == "GET"
    assert server.attributes["http.url"] == "http://localhost/hello"
    assert server.attributes["peer.ipv4"] == "10.1.2.3"
    assert server.attributes["http.status_code"] == 200
    assert spans["compute"].parent.span_id == server.context.span_id
    initialized, request = seen
    assert initialized[0] == "initialized" and initialized[1] is request.trace
    assert request.thing == {"name": "thing", "span_id": request.trace.id}


def test_untrusted_headers_start_new_trace(baseplate: Baseplate, exporter: Any) -> None:
    app = make_app(baseplate, trust=False, seen=[])
    app.get("/hello", headers=TRACE_HEADERS)
    server = next(s for s in exporter.get_finished_spans() if s.name == "hello")
    assert server.context.trace_id != 1234
    assert server.context.trace_id == server.context.span_id
    assert server.parent is None


def test_trusted_headers_are_continued(baseplate: Baseplate, exporter: Any) -> None:
    app = make_app(baseplate, trust=True, seen=[])
    app.get("/hello", headers=TRACE_HEADERS)
    server = next(s for s in exporter.get_finished_spans() if s.name == "hello")
    assert (server.context.trace_id, server.context.span_id) == (1234, 66)
    assert server.parent.span_id == 55


def test_w3c_header_is_continued(baseplate: Baseplate, exporter: Any) -> None:
    app = make_app(baseplate, trust=True, seen=[])
    app.get("/hello", headers={"traceparent": f"00-{77:032x}-{88:016x}-01"})
    server = next(s for s in exporter.get_finished_spans() if s.name == "hello")
    assert server.context.trace_id == 77 and server.parent.span_id == 88


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Trace": "abc", "X-Parent": "1", "X-Span": "2"},
        {"X-Trace": "1", "X-Span": "2"},
        {"X-Trace": "-1", "X-Parent": "1", "X-Span": "2"},
        {"X-Trace": str(2**200), "X-Parent": "1", "X-Span": "2"},
        {"X-Trace": "1", "X-Parent": "1", "X-Span": "2", "X-B3-SpanId": "3"},
        {"traceparent": "garbage", "X-Sampled": "maybe", "X-Flags": "x"},
    ],
)
def test_malformed_headers_never_fail_the_request(
    baseplate: Baseplate, exporter: Any, headers: dict[str, str]
) -> None:
    app = make_app(baseplate, trust=True, seen=[])
    assert app.get("/hello", headers=headers).status_code == 200
    server = next(s for s in exporter.get_finished_spans() if s.name == "hello")
    assert server.parent is None


def test_unmatched_route_has_no_span(baseplate: Baseplate, exporter: Any) -> None:
    app = make_app(baseplate, trust=False, seen=[])
    app.get("/nope", status=404)
    assert exporter.get_finished_spans() == ()


def test_view_exception_recorded_even_when_rendered(baseplate: Baseplate, exporter: Any) -> None:
    app = make_app(baseplate, trust=False, seen=[])
    response = app.get("/boom", status=500)
    assert response.text == "rendered error"
    (server,) = exporter.get_finished_spans()
    assert server.status.status_code is StatusCode.ERROR
    assert "view failed" in server.status.description
    assert server.attributes["http.status_code"] == 500


def test_redirect_is_not_an_error(baseplate: Baseplate, exporter: Any) -> None:
    app = make_app(baseplate, trust=False, seen=[])
    app.get("/redirect", status=302)
    (server,) = exporter.get_finished_spans()
    assert server.status.status_code is not StatusCode.ERROR
    assert server.attributes["http.status_code"] == 302
