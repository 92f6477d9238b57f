"""The edge context at a Thrift server: read from the ``Edge-Request`` THeader header and
forwarded on the handler's outbound HTTP calls, for that call only."""

from __future__ import annotations

import base64
import logging
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.transport.THeaderTransport import THeaderClientType
from thrift.transport.TSocket import TSocket

from baseplate.config import InternetAddress
from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from otel_bridge.propagation import http_propagator

from .conftest import HeaderRecorder, LoopbackThriftServer


class HttpCallingHop:
    """A Thrift handler that calls a downstream HTTP service."""

    def __init__(self, downstream: HeaderRecorder) -> None:
        self.downstream = downstream
        self.edge_contexts: list[Any] = []

    def relay(self, context: Any, text: str) -> str:
        self.edge_contexts.append(getattr(context, "request_context", None))
        with context.trace.make_child("downstream.get"):
            headers: dict[str, str] = {}
            http_propagator().inject(headers)
            request = urllib.request.Request(self.downstream.url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        return text


class RawClient:
    """One THeader connection on which each call may carry different headers."""

    def __init__(self, edge_hops: Any, server: LoopbackThriftServer) -> None:
        address = server.endpoint.address
        assert isinstance(address, InternetAddress)
        self.protocol = THeaderProtocol(
            TSocket("127.0.0.1", address.port), [THeaderClientType.HEADERS]
        )
        self.protocol.trans.open()
        self.client = edge_hops.Client(self.protocol)

    def relay(self, text: str, headers: dict[bytes, bytes]) -> str:
        for key, value in headers.items():
            self.protocol.set_header(key, value)
        return str(self.client.relay(text))

    def close(self) -> None:
        self.protocol.trans.close()


@pytest.fixture
def hop(
    thrift_hop: Callable[..., LoopbackThriftServer],
    edge_hops: Any,
    factory: EdgeRequestContextFactory,
    http_downstream: HeaderRecorder,
) -> Iterator[tuple[HttpCallingHop, RawClient]]:
    handler = HttpCallingHop(http_downstream)
    server = thrift_hop(handler, Baseplate(), factory)
    client = RawClient(edge_hops, server)
    yield handler, client
    client.close()


def test_header_is_forwarded_over_http_for_its_own_call_only(
    hop: tuple[HttpCallingHop, RawClient],
    factory: EdgeRequestContextFactory,
    http_downstream: HeaderRecorder,
) -> None:
    handler, client = hop
    header = factory.new(loid_id="t2_first", session_id="s").header

    client.relay("one", {b"Edge-Request": header})
    client.relay("two", {})  # same connection, no edge context

    first, second = http_downstream.received
    assert base64.b64decode(first["X-Edge-Request"]) == header
    assert second["X-Edge-Request"] == ""
    assert handler.edge_contexts[0].user.loid == "t2_first"
    assert handler.edge_contexts[1].header == b""  # with a factory: an empty edge context


def test_malformed_header_is_logged_and_the_call_served(
    hop: tuple[HttpCallingHop, RawClient], caplog: pytest.LogCaptureFixture
) -> None:
    handler, client = hop
    with caplog.at_level(logging.WARNING):
        assert client.relay("bad", {b"Edge-Request": b"\xff not thrift"}) == "bad"
    assert handler.edge_contexts == [None]
    assert any("Edge-Request" in record.getMessage() for record in caplog.records)
