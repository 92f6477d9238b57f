"""Thrift calls between this project and a service on reddit's own baseplate, both ways.

The peer is reddit's baseplate (``reddit_peer.py``) in its own process: its Thrift server
(``baseplateify_processor`` on its gevent server) and its client (``ThriftContextFactory`` on
``ThriftConnectionPool``), speaking THeader over loopback.
"""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor
from baseplate.thrift import BaseplateService
from baseplate.thrift_pool import ThriftConnectionPool
from otel_bridge.context import set_edge_request
from tests.edge_context.conftest import LoopbackThriftServer

from .conftest import PEER_SCRIPT, PeerServer, run_peer_script

# Request{loid: Loid{id: "t2_abc", created_ms: 7}}, TBinaryProtocol
EDGE_REQUEST = (
    b"\x0c\x00\x01"
    b"\x0b\x00\x01\x00\x00\x00\x06t2_abc"
    b"\x0a\x00\x02\x00\x00\x00\x00\x00\x00\x00\x07"
    b"\x00\x00"
)


def call_peer(
    baseplate: Baseplate,
    port: int,
    trace_info: TraceInfo | None,
    edge_request: bytes | None = None,
) -> None:
    """Handle a request of our own that calls the peer's ``is_healthy``; ``edge_request`` is
    the request's Edge-Request, in force as the framework integrations set it."""
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", port))
    pool = ThriftConnectionPool(endpoint, size=1, timeout=10)
    baseplate.add_to_context("peer", ThriftContextFactory(pool, BaseplateService.Client))
    context = RequestContext()
    with baseplate.make_server_span(context, "frontend", trace_info):
        if edge_request is not None:
            set_edge_request(edge_request)
        assert context.peer.is_healthy() is True


def test_our_call_continues_the_trace_in_a_reddit_service(
    peer_server: PeerServer, baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    call_peer(baseplate, peer_server.port, TraceInfo.from_upstream(1001, 2002, 3003, True, None))
    seen = peer_server.next_call()

    client = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert client.name == "peer.is_healthy"
    # the peer's server span is our client span, as a reddit client's would be
    assert seen["span"] == {
        "trace_id": 1001,
        "parent_id": 3003,
        "span_id": client.context.span_id,
        "sampled": True,
        "flags": None,
    }
    assert seen["name"] == "is_healthy"
    assert seen["headers"]["Trace"] == "1001"
    assert seen["headers"]["Sampled"] == "1"
    assert "Flags" not in seen["headers"]
    assert seen["edge_request"] is None


def test_debug_flag_unsampled_and_edge_request_reach_a_reddit_service(
    peer_server: PeerServer, baseplate: Baseplate
) -> None:
    call_peer(
        baseplate,
        peer_server.port,
        TraceInfo.from_upstream(7, 8, 9, False, 1),
        edge_request=EDGE_REQUEST,
    )
    seen = peer_server.next_call()
    # the debug flag forces sampling downstream, and is passed on
    assert (seen["span"]["trace_id"], seen["span"]["parent_id"]) == (7, 9)
    assert seen["span"]["flags"] == 1
    assert seen["span"]["sampled"] is True
    assert base64.b64decode(seen["edge_request"]) == EDGE_REQUEST


def test_new_trace_ids_fit_a_reddit_service(peer_server: PeerServer, baseplate: Baseplate) -> None:
    call_peer(baseplate, peer_server.port, None)
    seen = peer_server.next_call()
    # 0.x services reject ids of 2**64 and more: ours start 64-bit traces
    assert 0 < seen["span"]["trace_id"] < 2**64
    assert seen["span"]["parent_id"] is not None


# -- a reddit client calling us --------------------------------------------------------


class Recorder:
    """Our BaseplateService handler: remembers the context of each call."""

    def __init__(self) -> None:
        self.contexts: list[Any] = []

    def is_healthy(self, context: Any) -> bool:
        self.contexts.append(context)
        return True


@pytest.fixture
def our_server(baseplate: Baseplate) -> Iterator[tuple[int, Recorder]]:
    """Our Thrift integration serving BaseplateService over THeader on loopback."""
    recorder = Recorder()
    processor = ContextProcessor(BaseplateService.Processor(recorder))
    processor.setEventHandler(BaseplateProcessorEventHandler(logging.getLogger("ours"), baseplate))
    server = LoopbackThriftServer(processor)
    yield server.endpoint.address.port, recorder
    server.stop()


def run_peer_client(port: int, *args: str) -> dict[str, Any]:
    """Reddit's client calls ``is_healthy`` on ``port`` inside a server span of its own."""
    return run_peer_script(PEER_SCRIPT, "thrift-client", "--port", str(port), *args)


def test_a_reddit_client_call_continues_the_trace_here(
    our_server: tuple[int, Recorder], exporter: InMemorySpanExporter
) -> None:
    port, recorder = our_server
    seen = run_peer_client(
        port, "--trace-id", "111", "--parent-id", "222", "--span-id", "333", "--sampled", "1"
    )
    assert seen["healthy"] is True
    (peer_client,) = seen["client_spans"]

    (context,) = recorder.contexts
    assert (context.trace.trace_id, context.trace.parent_id, context.trace.id) == (
        111,
        333,
        peer_client["span_id"],
    )
    assert context.trace.sampled is True
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "is_healthy"
    assert (server.context.trace_id, server.context.span_id) == (111, peer_client["span_id"])
    assert server.parent is not None and server.parent.span_id == 333
    assert server.context.trace_flags.sampled


def test_a_reddit_client_s_debug_flag_and_edge_request_arrive_here(
    our_server: tuple[int, Recorder], exporter: InMemorySpanExporter
) -> None:
    port, recorder = our_server
    run_peer_client(
        port,
        "--trace-id", "5", "--parent-id", "6", "--span-id", "7", "--sampled", "0",
        "--flags", "1",
        "--edge-request", base64.b64encode(EDGE_REQUEST).decode(),
    )  # fmt: skip
    (context,) = recorder.contexts
    assert context.trace.trace_id == 5
    assert context.trace.flags == 1
    assert context.trace.sampled is True  # debug forces sampling
    assert context.raw_request_context == EDGE_REQUEST
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.context.trace_flags.sampled
