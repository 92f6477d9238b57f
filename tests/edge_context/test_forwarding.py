"""One rule for forwarding the Edge-Request: what a service trusts on the way in, with or
without an edge context factory, goes out on its HTTP calls (``X-Edge-Request``, base64) and
on its Thrift calls (``Edge-Request``, raw) alike. Real servers on loopback."""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import webtest
from opentelemetry.sdk.trace import TracerProvider
from pyramid.config import Configurator
from pyramid.response import Response

from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.thrift_pool import ThriftConnectionPool
from otel_bridge.propagation import http_propagator

from .conftest import HeaderRecorder, LoopbackThriftServer
from .test_thrift_propagation import RawClient

TRACE = {"X-Trace": "4242", "X-Parent": "17", "X-Span": "18", "X-Sampled": "1"}


class Recorder:
    """The downstream Thrift service: remembers the THeader headers of each call."""

    def __init__(self) -> None:
        self.headers: list[dict[bytes, bytes]] = []

    def relay(self, context: Any, text: str) -> str:
        self.headers.append(dict(context.headers))
        return text


class Downstreams:
    """An HTTP and a Thrift service downstream of the service under test."""

    def __init__(
        self, http: HeaderRecorder, thrift: Recorder, thrift_server: LoopbackThriftServer
    ) -> None:
        self.http = http
        self.thrift = thrift
        self.thrift_server = thrift_server

    def baseplate(self, edge_hops: Any) -> Baseplate:
        """A Baseplate whose context objects have ``thrift_downstream``, a client of it."""
        baseplate = Baseplate(tracer_provider=TracerProvider())
        pool = ThriftConnectionPool(self.thrift_server.endpoint)
        baseplate.add_to_context("thrift_downstream", ThriftContextFactory(pool, edge_hops.Client))
        return baseplate

    def call_both(self, context: Any) -> None:
        """Call both, as a handler does: HTTP through http_propagator, Thrift through the
        context's client."""
        with context.trace.make_child("http_downstream.get"):
            headers: dict[str, str] = {}
            http_propagator().inject(headers)
            request = urllib.request.Request(self.http.url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        context.thrift_downstream.relay("hi")

    def forwarded(self) -> list[tuple[bytes | None, bytes | None]]:
        """Per request, the Edge-Request bytes sent over HTTP and over Thrift (None: no
        header at all)."""
        assert len(self.http.received) == len(self.thrift.headers)
        sent = []
        for http_headers, thrift_headers in zip(
            self.http.received, self.thrift.headers, strict=True
        ):
            encoded = http_headers.get("X-Edge-Request")
            http_bytes = None if encoded is None else base64.b64decode(encoded, validate=True)
            sent.append((http_bytes, thrift_headers.get(b"Edge-Request")))
        return sent


@pytest.fixture
def downstreams(
    thrift_hop: Callable[..., LoopbackThriftServer], http_downstream: HeaderRecorder
) -> Downstreams:
    recorder = Recorder()
    server = thrift_hop(recorder, Baseplate(tracer_provider=TracerProvider()), None)
    return Downstreams(http_downstream, recorder, server)


def pyramid_app(
    baseplate: Baseplate, downstreams: Downstreams, factory: Any, trust: bool = True
) -> webtest.TestApp:
    config = Configurator()
    config.include(
        BaseplateConfigurator(
            baseplate, trust_trace_headers=trust, edge_context_factory=factory
        ).includeme
    )

    def relay(request: Any) -> Response:
        downstreams.call_both(request)
        return Response("relayed")

    config.add_route("relay", "/relay")
    config.add_view(relay, route_name="relay")
    return webtest.TestApp(config.make_wsgi_app())


class Relay:
    """A Thrift handler calling both downstreams."""

    def __init__(self, downstreams: Downstreams) -> None:
        self.downstreams = downstreams

    def relay(self, context: Any, text: str) -> str:
        self.downstreams.call_both(context)
        return text


@pytest.fixture
def thrift_service(
    thrift_hop: Callable[..., LoopbackThriftServer], edge_hops: Any, downstreams: Downstreams
) -> Iterator[Callable[[Any], RawClient]]:
    """``thrift_service(factory)``: a client of a Thrift service calling both downstreams."""
    clients: list[RawClient] = []

    def start(factory: Any) -> RawClient:
        server = thrift_hop(Relay(downstreams), downstreams.baseplate(edge_hops), factory)
        client = RawClient(edge_hops, server)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def header(factory: EdgeRequestContextFactory) -> bytes:
    return factory.new(loid_id="t2_abc", loid_created_ms=7, session_id="s-1").header


@pytest.mark.parametrize("with_factory", [False, True], ids=["no factory", "factory"])
def test_pyramid_forwards_a_trusted_header_on_http_and_thrift(
    downstreams: Downstreams,
    edge_hops: Any,
    factory: EdgeRequestContextFactory,
    header: bytes,
    with_factory: bool,
) -> None:
    app = pyramid_app(
        downstreams.baseplate(edge_hops), downstreams, factory if with_factory else None
    )
    app.get("/relay", headers={**TRACE, "X-Edge-Request": base64.b64encode(header).decode()})
    app.get("/relay", headers=TRACE)  # the next request has none

    # none: HTTP still sends an empty X-Edge-Request (1.x services need it), Thrift nothing
    assert downstreams.forwarded() == [(header, header), (b"", None)]


def test_pyramid_forwards_what_it_cannot_read_as_it_came(
    downstreams: Downstreams, edge_hops: Any, factory: EdgeRequestContextFactory
) -> None:
    # as reddit's baseplate does: the bytes are passed on even when this service cannot read
    # them (a newer peer's struct, or a factory that rejects them)
    app = pyramid_app(downstreams.baseplate(edge_hops), downstreams, factory)
    app.get("/relay", headers={**TRACE, "X-Edge-Request": base64.b64encode(b"junk").decode()})
    assert downstreams.forwarded() == [(b"junk", b"junk")]


def test_pyramid_untrusted_header_is_forwarded_on_neither(
    downstreams: Downstreams, edge_hops: Any, header: bytes
) -> None:
    app = pyramid_app(downstreams.baseplate(edge_hops), downstreams, None, trust=False)
    app.get("/relay", headers={**TRACE, "X-Edge-Request": base64.b64encode(header).decode()})
    assert downstreams.forwarded() == [(b"", None)]


@pytest.mark.parametrize("with_factory", [False, True], ids=["no factory", "factory"])
def test_thrift_service_forwards_the_header_on_http_and_thrift(
    downstreams: Downstreams,
    thrift_service: Callable[[Any], RawClient],
    factory: EdgeRequestContextFactory,
    header: bytes,
    with_factory: bool,
) -> None:
    client = thrift_service(factory if with_factory else None)
    client.relay("one", {b"Edge-Request": header})
    client.relay("two", {})  # same connection, no edge context
    assert downstreams.forwarded() == [(header, header), (b"", None)]
