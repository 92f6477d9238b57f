"""Pyramid -> Thrift -> Thrift, real servers on loopback: the Edge-Request bytes and one
trace id reach the last hop, where the token is still readable."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import webtest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pyramid.config import Configurator
from pyramid.response import Response

from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.thrift_pool import ThriftConnectionPool

from .conftest import LoopbackThriftServer

LOID = "t2_deadbeef"


class LastHop:
    """Service C: remembers what each call brought."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def relay(self, context: Any, text: str) -> str:
        edge_context = getattr(context, "request_context", None)
        self.calls.append(
            {
                "headers": dict(context.headers),
                "edge_context": edge_context,
                "user_id": edge_context.user.id if edge_context and edge_context.header else None,
                "span": context.trace,
            }
        )
        return f"C saw {text}"


class MiddleHop:
    """Service B: passes the call on to C through its context."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def relay(self, context: Any, text: str) -> str:
        self.calls.append(getattr(context, "request_context", None))
        return str(context.next_hop.relay(text))


class Chain:
    def __init__(self, web: webtest.TestApp, middle: MiddleHop, last: LastHop) -> None:
        self.web = web
        self.middle = middle
        self.last = last


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Any:
    tracer_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "edge-test"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


def sampled_baseplate(provider: TracerProvider) -> Baseplate:
    baseplate = Baseplate(tracer_provider=provider)
    baseplate.sampler.sample_rate = 1.0
    return baseplate


@pytest.fixture
def chain(
    thrift_hop: Callable[..., LoopbackThriftServer],
    edge_hops: Any,
    provider: TracerProvider,
    factory: EdgeRequestContextFactory,
) -> Chain:
    last = LastHop()
    last_server = thrift_hop(last, sampled_baseplate(provider), factory)

    middle = MiddleHop()
    middle_baseplate = sampled_baseplate(provider)
    middle_baseplate.add_to_context(
        "next_hop",
        ThriftContextFactory(ThriftConnectionPool(last_server.endpoint), edge_hops.Client),
    )
    middle_server = thrift_hop(middle, middle_baseplate, factory)

    web_baseplate = sampled_baseplate(provider)
    web_baseplate.add_to_context(
        "first_hop",
        ThriftContextFactory(ThriftConnectionPool(middle_server.endpoint), edge_hops.Client),
    )
    config = Configurator()
    config.include(
        BaseplateConfigurator(
            web_baseplate, trust_trace_headers=True, edge_context_factory=factory
        ).includeme
    )

    def relay(request: Any) -> Response:
        return Response(request.first_hop.relay("hello"))

    def edge(request: Any) -> Response:
        factory.new(
            authentication_token=request.headers["Authorization"], loid_id=LOID, session_id="s-9"
        ).attach_context(request)
        return Response(request.first_hop.relay("from the edge"))

    config.add_route("relay", "/relay")
    config.add_view(relay, route_name="relay")
    config.add_route("edge", "/edge")
    config.add_view(edge, route_name="edge")
    return Chain(webtest.TestApp(config.make_wsgi_app()), middle, last)


TRACE = {"X-Trace": "4242", "X-Parent": "17", "X-Span": "18", "X-Sampled": "1"}


def test_edge_request_and_trace_reach_the_last_hop(
    chain: Chain,
    factory: EdgeRequestContextFactory,
    sign: Callable[..., str],
    exporter: InMemorySpanExporter,
) -> None:
    header = factory.new(
        authentication_token=sign({"sub": "t2_user", "roles": ["admin"]}),
        loid_id=LOID,
        loid_created_ms=77,
        session_id="sess",
    ).header

    response = chain.web.get(
        "/relay", headers={**TRACE, "X-Edge-Request": base64.b64encode(header).decode()}
    )
    assert response.text == "C saw hello"

    (middle_context,) = chain.middle.calls
    assert middle_context.header == header
    (call,) = chain.last.calls
    assert call["headers"][b"Edge-Request"] == header  # raw bytes on THeader, unchanged
    assert call["edge_context"].header == header
    assert call["user_id"] == "t2_user"  # the token validates at the last hop too
    assert call["edge_context"].user.has_role("ADMIN")
    assert call["edge_context"].event_fields()["cookie_created_timestamp"] == 77

    # one trace: web server span, client span, B server span, client span, C server span
    spans = exporter.get_finished_spans()
    assert len(spans) == 5
    assert {span.context.trace_id for span in spans} == {4242}
    assert call["span"].trace_id == 4242
    assert call["headers"][b"Trace"] == b"4242"
    servers = [span for span in spans if span.kind == SpanKind.SERVER]
    clients = [span for span in spans if span.kind == SpanKind.CLIENT]
    assert len(servers) == 3 and len(clients) == 2
    (web_server,) = [
        span for span in servers if span.name == "relay" and span.context.span_id == 18
    ]
    # each hop's server span shares its id with the caller's client span
    assert {span.context.span_id for span in clients} <= {span.context.span_id for span in servers}
    assert web_server.parent is not None and web_server.parent.span_id == 17


def test_context_made_at_the_edge_reaches_the_last_hop(
    chain: Chain, sign: Callable[..., str], exporter: InMemorySpanExporter
) -> None:
    token = sign({"sub": "t2_edge_user", "client_id": "app", "client_type": "first_party"})
    assert chain.web.get("/edge", headers={"Authorization": token}).text == "C saw from the edge"

    (call,) = chain.last.calls
    edge_context = call["edge_context"]
    assert call["user_id"] == "t2_edge_user"
    assert edge_context.oauth_client.is_type("FIRST_PARTY")
    assert edge_context.event_fields() == {
        "user_id": "t2_edge_user",
        "logged_in": True,
        "cookie_created_timestamp": None,
        "session_id": "s-9",
        "oauth_client_id": "app",
    }
    assert len({span.context.trace_id for span in exporter.get_finished_spans()}) == 1


def test_request_without_edge_context_sends_none_downstream(chain: Chain) -> None:
    assert chain.web.get("/relay", headers=TRACE).text == "C saw hello"
    (call,) = chain.last.calls
    assert b"Edge-Request" not in call["headers"]
    # with a factory, a request without the header has an empty edge context (as reddit's)
    assert call["edge_context"].header == b""
    assert call["edge_context"].user.loid is None
    (middle_context,) = chain.middle.calls
    assert middle_context.header == b""
