"""A baseplate Pyramid app wrapped in the vendor WSGI middleware (``OpenTelemetryMiddleware``).

In-process with WebTest and an in-memory exporter: the vendor span is the request's root,
baseplate's server span its child, and a streamed response ends every span without
"Failed to detach context".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import webtest
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from baseplate.concurrency import spawn
from baseplate.core import Baseplate
from baseplate.integration.pyramid import BaseplateConfigurator


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def app(exporter: InMemorySpanExporter) -> webtest.TestApp:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    baseplate = Baseplate(tracer_provider=provider)

    def hello(request: Request) -> dict[str, Any]:
        return {"trace_id": request.trace.trace_id}

    def stream(request: Request) -> Response:
        server_span = request.trace

        def body() -> Iterator[bytes]:
            for index in range(3):
                with server_span.make_child(f"chunk_{index}", local=True, component_name="s"):
                    yield b"x"

        return Response(app_iter=body())

    def background(request: Request) -> dict[str, Any]:
        with request.trace.make_child("outer", local=True, component_name="bg"):
            spawn(lambda: None).join()
        return {}

    configurator = Configurator()
    configurator.include(BaseplateConfigurator(baseplate).includeme)
    for name, view, renderer in (
        ("hello", hello, "json"),
        ("stream", stream, None),
        ("background", background, "json"),
    ):
        configurator.add_route(name, f"/{name}")
        configurator.add_view(view, route_name=name, renderer=renderer)
    wsgi_app = OpenTelemetryMiddleware(configurator.make_wsgi_app(), tracer_provider=provider)
    return webtest.TestApp(wsgi_app)


def _spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def _scope(span: ReadableSpan) -> str:
    return span.instrumentation_scope.name if span.instrumentation_scope else ""


def test_baseplate_server_span_is_a_child_of_the_vendor_span(
    app: webtest.TestApp, exporter: InMemorySpanExporter
) -> None:
    app.get("/hello")
    spans = _spans(exporter)
    vendor = spans["GET /hello"]
    server = spans["hello"]

    assert _scope(vendor) == "opentelemetry.instrumentation.wsgi"
    assert vendor.parent is None
    assert _scope(server) == "baseplate"
    assert server.parent is not None and server.parent.span_id == vendor.context.span_id
    assert server.context.trace_id == vendor.context.trace_id


def test_w3c_caller_is_continued_through_the_vendor_span(
    app: webtest.TestApp, exporter: InMemorySpanExporter
) -> None:
    trace_id, caller = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    body = app.get(
        "/hello", headers={"traceparent": f"00-{trace_id:032x}-{caller:016x}-01"}
    ).json
    vendor = _spans(exporter)["GET /hello"]

    assert body["trace_id"] == trace_id
    assert vendor.parent is not None and vendor.parent.span_id == caller


def test_streamed_response_through_the_middleware_is_quiet(
    app: webtest.TestApp, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    assert app.get("/stream").body == b"xxx"
    spans = _spans(exporter)

    server = spans["stream"]
    for index in range(3):
        chunk = spans[f"chunk_{index}"]
        assert chunk.parent is not None and chunk.parent.span_id == server.context.span_id
    assert "GET /stream" in spans  # the vendor span ended once the body was sent
    assert "Failed to detach context" not in caplog.text


def test_spawning_inside_a_span_is_quiet(
    app: webtest.TestApp, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    app.get("/background")

    assert {"outer", "background", "GET /background"} <= set(_spans(exporter))
    assert "Failed to detach context" not in caplog.text
