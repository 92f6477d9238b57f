"""Our HTTP clients (baseplate.clients.requests) calling a Pyramid service on reddit's baseplate.

The peer is ``reddit_peer_http.py`` (reddit's ``BaseplateConfigurator`` trusting trace
headers, with an edge context factory, on gevent's WSGI server), as in
``test_reddit_http.py``. Ours is a Pyramid app on our integration whose ``/call`` view calls
the peer through ``request.peer`` (:class:`InternalRequestsClient`) or ``request.web``
(:class:`ExternalRequestsClient`) and answers what both sides saw. Everything goes over real
HTTP on loopback.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
import urllib.parse
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pyramid.config import Configurator
from pyramid.response import Response

from baseplate.clients.requests import (
    AddressNotAllowed,
    ExternalRequestsClient,
    InternalRequestsClient,
    http_adapter_from_config,
)
from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.secrets import SecretsStore

from .reddit_peer import trace_of
from .test_reddit_http import RedditPyramidPeer, http_get

TRACE, PARENT, SPAN = 2391921232992245445, 3383915029748331832, 7638783876913511395
SAMPLED = [("X-Trace", str(TRACE)), ("X-Parent", str(PARENT)), ("X-Span", str(SPAN)),
           ("X-Sampled", "1")]
# a W3C trace id from a vendor-instrumented caller: 128 bits
WIDE_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
W3C_PARENT = 0x00F067AA0BA902B7
DECODED = {"loid": "t2_abc", "cookie_created_ms": 7, "session_id": "s-1"}
TRACE_HEADERS = {"x-trace", "x-parent", "x-span", "x-sampled", "x-flags", "x-edge-request",
                 "traceparent", "tracestate", "b3"}


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    """A request of ours may wait for a peer that calls us back: one thread per request."""

    daemon_threads = True


class OurService:
    """Our Pyramid integration with the HTTP clients on the request; ``/call?client=``
    ``internal`` | ``external`` | ``external-refused`` calls the peer's ``/show`` (or
    ``url``), ``/show`` answers what a request to it brought."""

    def __init__(self, peer_url: str, factory: EdgeRequestContextFactory | None) -> None:
        self.peer_url = peer_url
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.baseplate = Baseplate(tracer_provider=self.provider)
        self.baseplate.sampler.sample_rate = 0.0
        app_config = {"peer.timeout": "30 seconds", "web.timeout": "30 seconds"}
        # one line of set-up per client
        self.baseplate.add_to_context(
            "peer", InternalRequestsClient(http_adapter_from_config(app_config, "peer."))
        )
        self.baseplate.add_to_context(
            "web",
            ExternalRequestsClient(
                http_adapter_from_config(app_config, "web."), allowed_networks=["127.0.0.1"]
            ),
        )
        self.baseplate.add_to_context("guarded", ExternalRequestsClient())

        config = Configurator()
        config.include(
            BaseplateConfigurator(
                self.baseplate, trust_trace_headers=True, edge_context_factory=factory
            ).includeme
        )
        config.add_route("call", "/call")
        config.add_view(self.call_view, route_name="call")
        config.add_route("show", "/show")
        config.add_view(self.show_view, route_name="show")
        self.server = wsgiref.simple_server.make_server(
            "127.0.0.1",
            0,
            config.make_wsgi_app(),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def call_view(self, request: Any) -> Response:
        client = request.params["client"]
        session = {"internal": request.peer, "external": request.web}.get(
            client, request.guarded
        )
        answer: dict[str, Any] = {"server": trace_of(request.trace)}
        try:
            answer["peer"] = session.get(request.params.get("url", self.peer_url)).json()
        except AddressNotAllowed as refused:
            answer["refused"] = {"reason": refused.reason, "address": refused.address}
        return Response(json=answer)

    def show_view(self, request: Any) -> Response:
        """What a call from elsewhere brought: the server span and the trace headers."""
        raw = getattr(request, "raw_request_context", None)
        return Response(
            json={
                "server": trace_of(request.trace),
                "headers": {
                    name.lower(): value
                    for name, value in request.headers.items()
                    if name.lower().startswith("x-") or name.lower() in TRACE_HEADERS
                },
                "raw_request_context": base64.b64encode(raw).decode() if raw else None,
            }
        )

    def call(
        self,
        peer: RedditPyramidPeer | None,
        client: str,
        headers: list[tuple[str, str]],
        url: str | None = None,
    ) -> dict[str, Any]:
        self.exporter.clear()
        path = f"/call?client={client}"
        if url is not None:
            path += "&url=" + urllib.parse.quote(url, safe="")
        seen = http_get(self.port, path, headers)
        if peer is not None:
            assert peer.next_seen() == seen["peer"]
        return seen

    def client_span(self) -> Any:
        (span,) = [s for s in self.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
        return span

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.provider.shutdown()


@pytest.fixture(scope="module")
def secrets_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reddit-http-client") / "secrets.json"
    path.write_text(
        json.dumps({"secrets": {}, "vault": {"token": "t", "url": "http://127.0.0.1:8200/"}})
    )
    return path


@pytest.fixture(scope="module")
def factory(secrets_path: Path) -> EdgeRequestContextFactory:
    return EdgeRequestContextFactory(SecretsStore(str(secrets_path)))


@pytest.fixture(scope="module")
def peer(secrets_path: Path) -> Iterator[RedditPyramidPeer]:
    server = RedditPyramidPeer(secrets_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ours(factory: EdgeRequestContextFactory, peer: RedditPyramidPeer) -> Iterator[OurService]:
    service = OurService(peer.url, factory)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def ours_without_edge_factory(peer: RedditPyramidPeer) -> Iterator[OurService]:
    service = OurService(peer.url, None)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def edge_header(factory: EdgeRequestContextFactory) -> str:
    header = factory.new(loid_id="t2_abc", loid_created_ms=7, session_id="s-1").header
    return base64.b64encode(header).decode()


def test_internal_client_continues_the_trace_in_a_reddit_service(
    ours: OurService, peer: RedditPyramidPeer, edge_header: str
) -> None:
    seen = ours.call(peer, "internal", [*SAMPLED, ("X-Edge-Request", edge_header)])

    client = ours.client_span()
    assert client.name == "peer.request"
    assert seen["server"] == {"trace_id": TRACE, "parent_id": PARENT, "span_id": SPAN,
                              "sampled": True, "flags": None}
    assert seen["peer"]["span"] == {"trace_id": TRACE, "parent_id": SPAN,
                                    "span_id": client.context.span_id, "sampled": True,
                                    "flags": None}
    assert seen["peer"]["raw_request_context"] == edge_header
    assert seen["peer"]["decoded"] == DECODED
    assert not [name for name in seen["peer"]["headers"] if name.startswith("x-b3-")]


@pytest.mark.parametrize("with_edge_header", [True, False])
def test_edge_request_is_forwarded_without_an_edge_context_factory(
    ours_without_edge_factory: OurService, peer: RedditPyramidPeer, edge_header: str,
    with_edge_header: bool,
) -> None:
    headers = [*SAMPLED, ("X-Edge-Request", edge_header)] if with_edge_header else SAMPLED
    seen = ours_without_edge_factory.call(peer, "internal", headers)

    peer_seen = seen["peer"]
    assert peer_seen["span"]["trace_id"] == TRACE
    if with_edge_header:
        # the header the request carried goes on unchanged (no factory needed to forward)
        assert peer_seen["headers"]["x-edge-request"] == edge_header
        assert peer_seen["decoded"] == DECODED
    else:
        # none came in: an empty one goes out, and the reddit service serves it
        assert peer_seen["headers"]["x-edge-request"] == ""
        assert peer_seen["decoded"] is None


def test_128_bit_w3c_trace_crosses_a_legacy_hop(ours: OurService, peer: RedditPyramidPeer) -> None:
    traceparent = f"00-{WIDE_TRACE:032x}-{W3C_PARENT:016x}-01"
    seen = ours.call(peer, "internal", [("traceparent", traceparent)])

    client = ours.client_span()
    # our side keeps the full id: the server span, the client span, what came back
    assert seen["server"]["trace_id"] == WIDE_TRACE
    assert {s.context.trace_id for s in ours.exporter.get_finished_spans()} == {WIDE_TRACE}
    # the legacy hop gets its lower 64 bits, and continues the trace (no new trace)
    lower = WIDE_TRACE & (2**64 - 1)
    assert seen["peer"]["span"] == {"trace_id": lower, "parent_id": seen["server"]["span_id"],
                                    "span_id": client.context.span_id, "sampled": True,
                                    "flags": None}
    # W3C carries the whole id past it, for the peers that read it
    assert seen["peer"]["headers"]["traceparent"] == (
        f"00-{WIDE_TRACE:032x}-{client.context.span_id:016x}-01"
    )


def test_external_client_sends_no_trace_or_edge_header(
    ours: OurService, peer: RedditPyramidPeer, edge_header: str
) -> None:
    seen = ours.call(peer, "external", [*SAMPLED, ("X-Edge-Request", edge_header)])

    peer_seen = seen["peer"]
    assert not TRACE_HEADERS & set(peer_seen["headers"])
    # so the reddit service starts a trace of its own, without edge context
    span = peer_seen["span"]
    assert span["trace_id"] == span["span_id"] and span["parent_id"] is None
    assert span["trace_id"] not in (TRACE, SPAN)
    assert peer_seen["raw_request_context"] is None
    assert ours.client_span().name == "web.request"


def test_external_client_refuses_the_loopback_peer(
    ours: OurService, peer: RedditPyramidPeer
) -> None:
    seen = ours.call(None, "external-refused", SAMPLED)

    assert seen["refused"] == {"reason": "loopback", "address": "127.0.0.1"}
    assert ours.client_span().name == "guarded.request"
    # the peer saw nothing: the next thing it reports is this direct request
    direct = peer.show([("X-Trace", "77"), ("X-Parent", "1"), ("X-Span", "78")])
    assert direct["span"]["trace_id"] == 77
