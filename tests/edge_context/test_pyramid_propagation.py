"""The edge context through Pyramid: read from a trusted ``X-Edge-Request`` header, attached
to the request, and forwarded unchanged on the view's outbound HTTP calls."""

from __future__ import annotations

import base64
import logging
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pyramid.config import Configurator
from pyramid.response import Response

from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.integration.pyramid import BaseplateConfigurator
from otel_bridge.propagation import http_propagator

from .conftest import HeaderRecorder

LOID = "t2_deadbeef"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def baseplate(exporter: InMemorySpanExporter) -> Iterator[Baseplate]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bp = Baseplate(tracer_provider=provider)
    bp.sampler.sample_rate = 1.0
    yield bp
    provider.shutdown()


class App:
    """A Pyramid app whose views call a downstream HTTP service, as an application does."""

    def __init__(
        self,
        baseplate: Baseplate,
        factory: EdgeRequestContextFactory,
        downstream: HeaderRecorder,
        trust: bool,
    ) -> None:
        self.seen: list[dict[str, Any]] = []
        self.factory = factory
        self.downstream = downstream
        config = Configurator()
        config.include(
            BaseplateConfigurator(
                baseplate, trust_trace_headers=trust, edge_context_factory=factory
            ).includeme
        )
        config.add_route("relay", "/relay")
        config.add_view(self.relay, route_name="relay")
        config.add_route("edge", "/edge")
        config.add_view(self.edge, route_name="edge")
        self.client = webtest.TestApp(config.make_wsgi_app())

    def call_downstream(self, request: Any) -> dict[str, str]:
        # an HTTP client span, as an instrumented HTTP client makes it
        with request.trace.make_child("downstream.get"):
            headers: dict[str, str] = {}
            http_propagator().inject(headers)
            with urllib.request.urlopen(
                urllib.request.Request(self.downstream.url, headers=headers), timeout=10
            ) as response:
                assert response.read() == b"ok"
        return self.downstream.received[-1]

    def relay(self, request: Any) -> Response:
        edge_context = getattr(request, "request_context", None)
        self.seen.append(
            {
                "edge_context": edge_context,
                "event_fields": edge_context.event_fields() if edge_context else None,
                "trace_id": request.trace.trace_id,
                "downstream": self.call_downstream(request),
            }
        )
        return Response("relayed")

    def edge(self, request: Any) -> Response:
        """An edge service: builds the context from what the client sent."""
        edge_context = self.factory.new(
            authentication_token=request.headers.get("Authorization"),
            loid_id=request.cookies.get("loid"),
            session_id=request.cookies.get("session"),
        )
        edge_context.attach_context(request)
        self.seen.append(
            {"edge_context": edge_context, "downstream": self.call_downstream(request)}
        )
        return Response("edge")


@pytest.fixture
def make_app(
    baseplate: Baseplate, factory: EdgeRequestContextFactory, http_downstream: HeaderRecorder
) -> Callable[..., App]:
    def make(trust: bool = True) -> App:
        return App(baseplate, factory, http_downstream, trust)

    return make


TRACE = {"X-Trace": "4242", "X-Parent": "17", "X-Span": "18", "X-Sampled": "1"}


def test_trusted_header_is_attached_and_forwarded_unchanged(
    make_app: Callable[..., App], factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    app = make_app(trust=True)
    header = factory.new(
        authentication_token=sign({"sub": "t2_user", "client_id": "c1"}),
        loid_id=LOID,
        loid_created_ms=1234,
        session_id="sess",
    ).header
    encoded = base64.b64encode(header).decode()

    app.client.get("/relay", headers={**TRACE, "X-Edge-Request": encoded})

    (seen,) = app.seen
    assert seen["edge_context"].header == header
    assert seen["event_fields"] == {
        "user_id": "t2_user",
        "logged_in": True,
        "cookie_created_timestamp": 1234,
        "session_id": "sess",
        "oauth_client_id": "c1",
    }
    downstream = seen["downstream"]
    assert downstream["X-Edge-Request"] == encoded
    assert base64.b64decode(downstream["X-Edge-Request"]) == header
    assert downstream["X-Trace"] == "4242"
    assert downstream["X-Parent"] == "18"  # this service's server span


def test_untrusted_header_is_neither_attached_nor_forwarded(
    make_app: Callable[..., App], factory: EdgeRequestContextFactory
) -> None:
    app = make_app(trust=False)
    encoded = base64.b64encode(factory.new(loid_id=LOID).header).decode()

    app.client.get("/relay", headers={**TRACE, "X-Edge-Request": encoded})

    (seen,) = app.seen
    assert seen["edge_context"] is None
    # 1.x services that trust headers fail requests without the header: it is sent, empty
    assert seen["downstream"]["X-Edge-Request"] == ""
    assert seen["downstream"]["X-Trace"] != "4242"


def test_malformed_header_is_logged_and_the_request_served(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(trust=True)
    with caplog.at_level(logging.WARNING):
        response = app.client.get(
            "/relay",
            headers={**TRACE, "X-Edge-Request": base64.b64encode(b"not thrift").decode()},
        )
    assert response.text == "relayed"
    (seen,) = app.seen
    assert seen["edge_context"] is None
    # passed on as it came, as reddit's baseplate does: a later hop may read what this one
    # cannot (tests/edge_context/test_forwarding.py)
    assert base64.b64decode(seen["downstream"]["X-Edge-Request"]) == b"not thrift"
    assert any("Edge-Request" in record.getMessage() for record in caplog.records)


def test_edge_service_context_is_forwarded_for_its_own_request_only(
    make_app: Callable[..., App], factory: EdgeRequestContextFactory
) -> None:
    app = make_app(trust=False)
    app.client.set_cookie("loid", LOID)
    app.client.set_cookie("session", "s-1")
    app.client.get("/edge", headers={"Authorization": "token-1"})

    (first,) = app.seen
    sent = base64.b64decode(first["downstream"]["X-Edge-Request"])
    assert sent == first["edge_context"].header
    read = factory.from_upstream(sent)
    assert (read.user.loid, read.session.id) == (LOID, "s-1")
    assert read._t_request.authentication_token == "token-1"

    # the next request, with no edge context of its own, forwards none
    app.client.get("/relay")
    assert app.seen[-1]["downstream"]["X-Edge-Request"] == ""
