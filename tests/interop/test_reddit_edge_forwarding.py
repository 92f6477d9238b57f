"""A hop of ours between reddit baseplate services passes the Edge-Request on over HTTP and
Thrift alike, as reddit's own baseplate does.

Our service trusts its callers and has NO edge context factory: it cannot read the edge
context, only forward it. Downstream are reddit's Pyramid service (``reddit_peer_http.py``)
and reddit's Thrift service (``reddit_peer.py thrift-server``); upstream is either a trusted
HTTP caller (our Pyramid integration) or reddit's Thrift client (our Thrift integration).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import urllib.request
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pyramid.config import Configurator
from pyramid.response import Response

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor
from baseplate.secrets import SecretsStore
from baseplate.thrift import BaseplateService
from baseplate.thrift_pool import ThriftConnectionPool
from otel_bridge.propagation import http_propagator
from tests.edge_context.conftest import LoopbackThriftServer

from .conftest import PEER_SCRIPT, PeerServer, run_peer_script
from .test_reddit_http import SAMPLED, RedditPyramidPeer, http_get

DECODED = {"loid": "t2_abc", "cookie_created_ms": 7, "session_id": "s-1"}


class Peers:
    """Reddit's Pyramid and Thrift services, and how a handler of ours calls both."""

    def __init__(self, http: RedditPyramidPeer, thrift: PeerServer) -> None:
        self.http = http
        self.thrift = thrift

    def baseplate(self) -> Baseplate:
        """Our Baseplate, its context objects having ``peer``, a client of reddit's Thrift
        service."""
        baseplate = Baseplate(tracer_provider=TracerProvider())
        address = InternetAddress("127.0.0.1", self.thrift.port)
        pool = ThriftConnectionPool(EndpointConfiguration(socket.AF_INET, address), size=1)
        baseplate.add_to_context("peer", ThriftContextFactory(pool, BaseplateService.Client))
        return baseplate

    def call_both(self, context: Any) -> None:
        with context.trace.make_child("peer.show"):
            headers: dict[str, str] = {}
            http_propagator().inject(headers)
            request = urllib.request.Request(self.http.url, headers=headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        assert context.peer.is_healthy() is True

    def seen(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """What reddit's HTTP and Thrift services saw of the last calls."""
        return self.http.next_seen(), self.thrift.next_call()


@pytest.fixture(scope="module")
def secrets_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reddit-edge-forwarding") / "secrets.json"
    path.write_text(
        json.dumps({"secrets": {}, "vault": {"token": "t", "url": "http://127.0.0.1:8200/"}})
    )
    return path


@pytest.fixture(scope="module")
def header(secrets_path: Path) -> bytes:
    """An Edge-Request as an edge service makes it."""
    factory = EdgeRequestContextFactory(SecretsStore(str(secrets_path)))
    return factory.new(loid_id="t2_abc", loid_created_ms=7, session_id="s-1").header


@pytest.fixture(scope="module")
def peers(secrets_path: Path) -> Iterator[Peers]:
    http = RedditPyramidPeer(secrets_path)
    thrift = PeerServer()
    yield Peers(http, thrift)
    http.stop()
    thrift.stop()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def our_pyramid_hop(peers: Peers) -> Iterator[int]:
    """Our Pyramid service (trusting headers, no factory) on loopback; ``/relay`` calls both
    peers. Yields its port."""
    config = Configurator()
    config.include(BaseplateConfigurator(peers.baseplate(), trust_trace_headers=True).includeme)

    def relay(request: Any) -> Response:
        peers.call_both(request)
        return Response(json={})

    config.add_route("relay", "/relay")
    config.add_view(relay, route_name="relay")
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, config.make_wsgi_app(), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class Relay:
    """Our BaseplateService handler: each health check calls both peers."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers

    def is_healthy(self, context: Any) -> bool:
        self.peers.call_both(context)
        return True


@pytest.fixture
def our_thrift_hop(peers: Peers) -> Iterator[int]:
    """Our Thrift service (no factory) on loopback, calling both peers. Yields its port."""
    processor = ContextProcessor(BaseplateService.Processor(Relay(peers)))
    processor.setEventHandler(
        BaseplateProcessorEventHandler(logging.getLogger("hop"), peers.baseplate())
    )
    server = LoopbackThriftServer(processor)
    address = server.endpoint.address
    assert isinstance(address, InternetAddress)
    yield address.port
    server.stop()


def assert_forwarded(peers: Peers, header: bytes) -> None:
    http_seen, thrift_seen = peers.seen()
    encoded = base64.b64encode(header).decode()
    # reddit's Pyramid integration attaches the X-Edge-Request text as it arrived
    assert http_seen["raw_request_context"] == encoded
    assert http_seen["decoded"] == DECODED
    # reddit's Thrift integration attaches the raw Edge-Request bytes
    assert thrift_seen["edge_request"] == encoded


def test_our_pyramid_hop_forwards_the_edge_request_to_reddit_over_http_and_thrift(
    our_pyramid_hop: int, peers: Peers, header: bytes
) -> None:
    encoded = base64.b64encode(header).decode()
    http_get(our_pyramid_hop, "/relay", [*SAMPLED, ("X-Edge-Request", encoded)])
    assert_forwarded(peers, header)

    # a request without one: an empty X-Edge-Request (1.x needs it), no Thrift header
    http_get(our_pyramid_hop, "/relay", SAMPLED)
    http_seen, thrift_seen = peers.seen()
    assert http_seen["headers"]["x-edge-request"] == ""
    assert thrift_seen["edge_request"] is None


def test_our_thrift_hop_forwards_a_reddit_client_s_edge_request_over_http_and_thrift(
    our_thrift_hop: int, peers: Peers, header: bytes
) -> None:
    done = run_peer_script(
        PEER_SCRIPT,
        "thrift-client",
        "--port", str(our_thrift_hop),
        "--trace-id", "5", "--parent-id", "6", "--span-id", "7",
        "--edge-request", base64.b64encode(header).decode(),
    )  # fmt: skip
    assert done["healthy"] is True
    assert_forwarded(peers, header)
