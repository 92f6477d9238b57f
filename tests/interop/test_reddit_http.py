"""HTTP between this project's Pyramid integration and a Pyramid service on reddit's baseplate.

The peer (``reddit_peer_http.py``, run with reddit's baseplate in its own interpreter) is a
Pyramid app with reddit's ``BaseplateConfigurator(trust_trace_headers=True,
edge_context_factory=...)`` on gevent's WSGI server; it answers what its server span saw.
Ours is the same kind of app with our ``BaseplateConfigurator``, served by wsgiref. Both
listen on loopback and are reached with real HTTP requests.

Differences between the two that WIRE.md settles (asserted as such below):

* the debug flag forces sampling (WIRE.md); reddit 0.30's server span keeps ``sampled``
  as sent;
* reddit 0.30's Pyramid integration attaches the ``X-Edge-Request`` text as it arrived
  (base64, not decoded), so its ``request_context`` reads nothing from it; the header's bytes
  decoded as WIRE.md says are what reddit's own ``EdgeRequestContextFactory`` reads;
* a request that starts a new trace is sampled by ``tracing.sample_rate`` on our side (0 in
  this module) and left undecided by reddit's server span.

Reddit's integration reads ``X-B3-TraceId`` ... as decimal aliases of ``X-Trace`` ...; an
outbound call of ours therefore carries no hex ``X-B3-*`` next to the baseplate headers.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.request
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry import propagate
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pyramid.config import Configurator
from pyramid.response import Response

from baseplate.core import Baseplate
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.secrets import SecretsStore
from otel_bridge.propagation import http_propagator

from .conftest import PeerProcess
from .reddit_peer import trace_of

PEER_HTTP_SCRIPT = Path(__file__).with_name("reddit_peer_http.py")

# 64-bit ids as a reddit service makes them (decimal on the wire)
TRACE, PARENT, SPAN = 2391921232992245445, 3383915029748331832, 7638783876913511395
HEADERS = [("X-Trace", str(TRACE)), ("X-Parent", str(PARENT)), ("X-Span", str(SPAN))]
SAMPLED = [*HEADERS, ("X-Sampled", "1")]
SHORT_TRACE = 1234567890123456


def http_get(port: int, path: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    """GET ``path`` with exactly these header lines (names, case and order as given)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


class RedditPyramidPeer(PeerProcess):
    """``reddit_peer_http.py`` serving on loopback; each request's view is read back."""

    def __init__(self, secrets_path: Path) -> None:
        super().__init__("--secrets", str(secrets_path), script=PEER_HTTP_SCRIPT)
        self.port: int = self.next_seen()["port"]
        self.url = f"http://127.0.0.1:{self.port}/show"

    def next_seen(self) -> dict[str, Any]:
        """The next JSON line the peer printed."""
        return self.next_line()

    def show(self, headers: list[tuple[str, str]]) -> dict[str, Any]:
        """Send ``headers`` to the peer; what its server span saw (as printed and answered)."""
        answered = http_get(self.port, "/show", headers)
        assert self.next_seen() == answered
        return answered


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class OurPyramidService:
    """Our Pyramid integration (trusting headers, with an edge context factory) on loopback.

    ``/show`` answers what the server span saw; ``/relay`` calls the peer the way our docs
    tell an application to (a client span whose headers come from ``http_propagator()``,
    or ``requests`` under the vendor instrumentation) and answers what both sides saw.
    """

    def __init__(self, factory: EdgeRequestContextFactory, peer_url: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.baseplate = Baseplate(tracer_provider=self.provider)
        # New traces are sampled by the rate here, left undecided by reddit: at 0 they agree.
        # (Trace headers without X-Sampled are unsampled on both sides whatever the rate.)
        self.baseplate.sampler.sample_rate = 0.0
        self.peer_url = peer_url

        config = Configurator()
        config.include(
            BaseplateConfigurator(
                self.baseplate, trust_trace_headers=True, edge_context_factory=factory
            ).includeme
        )
        config.add_route("show", "/show")
        config.add_view(self.show_view, route_name="show")
        config.add_route("relay", "/relay")
        config.add_view(self.relay_view, route_name="relay")
        self.server = wsgiref.simple_server.make_server(
            "127.0.0.1", 0, config.make_wsgi_app(), handler_class=_QuietHandler
        )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _seen(self, request: Any) -> dict[str, Any]:
        edge_context = getattr(request, "request_context", None)
        raw = getattr(request, "raw_request_context", None)
        return {
            "span": trace_of(request.trace),
            "raw_request_context": base64.b64encode(raw).decode() if raw else None,
            "loid": edge_context.user.loid if edge_context else None,
        }

    def show_view(self, request: Any) -> Response:
        return Response(json=self._seen(request))

    def relay_view(self, request: Any) -> Response:
        client_span_id = None
        if request.params.get("client") == "requests":
            body = requests.get(self.peer_url, timeout=30).content
        else:
            with request.trace.make_child("peer.show") as client_span:
                headers: dict[str, str] = {}
                http_propagator().inject(headers)
                outbound = urllib.request.Request(self.peer_url, headers=headers)
                with urllib.request.urlopen(outbound, timeout=30) as response:
                    body = response.read()
            client_span_id = client_span.id
        return Response(
            json={
                "server": self._seen(request),
                "client_span_id": client_span_id,
                "peer": json.loads(body),
            }
        )

    def show_headers(self, headers: list[tuple[str, str]]) -> dict[str, Any]:
        return http_get(self.port, "/show", headers)

    def relay(
        self, peer: RedditPyramidPeer, headers: list[tuple[str, str]], client: str = "baseplate"
    ) -> dict[str, Any]:
        """A request to ``/relay``: what our server span and the peer's saw."""
        seen = http_get(self.port, f"/relay?client={client}", headers)
        assert peer.next_seen() == seen["peer"]
        return seen

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.provider.shutdown()


@pytest.fixture(scope="module")
def secrets_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reddit-http") / "secrets.json"
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
def ours(
    factory: EdgeRequestContextFactory, peer: RedditPyramidPeer
) -> Iterator[OurPyramidService]:
    service = OurPyramidService(factory, peer.url)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def edge_header(factory: EdgeRequestContextFactory) -> str:
    """An Edge-Request as an edge service sends it over HTTP (base64 of the Thrift bytes)."""
    header = factory.new(loid_id="t2_abc", loid_created_ms=7, session_id="s-1").header
    return base64.b64encode(header).decode()


@pytest.fixture
def vendor_requests(ours: OurPyramidService) -> Iterator[None]:
    """``requests`` under OpenTelemetry's instrumentation, baseplate's composite global."""
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(http_propagator())
    RequestsInstrumentor().instrument(tracer_provider=ours.provider)
    try:
        yield
    finally:
        RequestsInstrumentor().uninstrument()
        propagate.set_global_textmap(previous)


DECODED = {"loid": "t2_abc", "cookie_created_ms": 7, "session_id": "s-1"}


# -- our outbound calls, read by reddit's Pyramid integration ---------------------------


def test_our_call_continues_the_trace_in_a_reddit_pyramid_service(
    ours: OurPyramidService, peer: RedditPyramidPeer, edge_header: str
) -> None:
    seen = ours.relay(peer, [*SAMPLED, ("X-Edge-Request", edge_header)])

    # our server span shares the caller's span id; the peer's is our client span
    assert seen["server"]["span"] == {
        "trace_id": TRACE,
        "parent_id": PARENT,
        "span_id": SPAN,
        "sampled": True,
        "flags": None,
    }
    assert seen["server"]["loid"] == "t2_abc"
    peer_seen = seen["peer"]
    assert peer_seen["span"] == {
        "trace_id": TRACE,
        "parent_id": SPAN,
        "span_id": seen["client_span_id"],
        "sampled": True,
        "flags": None,
    }
    # the Edge-Request our service received is forwarded unchanged
    assert peer_seen["raw_request_context"] == edge_header
    assert peer_seen["decoded"] == DECODED
    # hex multi-header B3 would contradict the decimal headers: reddit would drop the trace
    assert not [name for name in peer_seen["headers"] if name.startswith("x-b3-")]


@pytest.mark.parametrize("sampled", ["0", None])
def test_debug_flag_reaches_a_reddit_pyramid_service(
    ours: OurPyramidService, peer: RedditPyramidPeer, sampled: str | None
) -> None:
    headers = [*HEADERS, ("X-Flags", "1")]
    if sampled is not None:
        headers.append(("X-Sampled", sampled))
    seen = ours.relay(peer, headers)

    assert seen["server"]["span"]["sampled"] is True  # the debug flag forces sampling
    assert seen["peer"]["span"] == {
        "trace_id": TRACE,
        "parent_id": SPAN,
        "span_id": seen["client_span_id"],
        "sampled": True,
        "flags": 1,
    }


def test_unsampled_call_without_edge_context_is_served_by_a_reddit_pyramid_service(
    ours: OurPyramidService, peer: RedditPyramidPeer
) -> None:
    seen = ours.relay(peer, [*HEADERS, ("X-Sampled", "0")])

    peer_seen = seen["peer"]
    assert peer_seen["span"] == {
        "trace_id": TRACE,
        "parent_id": SPAN,
        "span_id": seen["client_span_id"],
        "sampled": False,
        "flags": None,
    }
    # an empty X-Edge-Request arrives (1.x services need it) and the peer serves it
    assert peer_seen["headers"]["x-edge-request"] == ""
    assert peer_seen["raw_request_context"] == ""
    assert peer_seen["decoded"] is None


def test_vendor_requests_call_continues_the_trace_in_a_reddit_pyramid_service(
    ours: OurPyramidService, peer: RedditPyramidPeer, vendor_requests: None, edge_header: str
) -> None:
    ours.exporter.clear()
    seen = ours.relay(
        peer, [*SAMPLED, ("X-Flags", "1"), ("X-Edge-Request", edge_header)], client="requests"
    )

    (client,) = [s for s in ours.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert client.parent is not None and client.parent.span_id == SPAN
    assert seen["peer"]["span"] == {
        "trace_id": TRACE,
        "parent_id": SPAN,
        "span_id": client.context.span_id,
        "sampled": True,
        "flags": 1,
    }
    assert seen["peer"]["raw_request_context"] == edge_header
    assert seen["peer"]["decoded"] == DECODED


# -- a reddit caller's headers, read by both --------------------------------------------


def continued(sampled: bool, flags: int | None = None, trace_id: int = TRACE) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "parent_id": PARENT,
        "span_id": SPAN,
        "sampled": sampled,
        "flags": flags,
    }


def aliases(trace_id: int = TRACE) -> list[tuple[str, str]]:
    return [
        ("X-B3-TraceId", str(trace_id)),
        ("X-B3-ParentSpanId", str(PARENT)),
        ("X-B3-SpanId", str(SPAN)),
    ]


# headers as a reddit 0.x/1.x service sends them -> the span both must see
AGREED = {
    "sampled": (SAMPLED, continued(True)),
    # 1.x sends X-Sampled only when sampled
    "unsampled": (HEADERS, continued(False)),
    "flags": ([*SAMPLED, ("X-Flags", "2")], continued(True, 2)),
    "lower-case names": ([(k.lower(), v) for k, v in SAMPLED], continued(True)),
    "0.28 aliases": ([*aliases(), ("X-B3-Sampled", "1")], continued(True)),
    "aliases agreeing": ([*SAMPLED, *aliases(), ("X-B3-Sampled", "1")], continued(True)),
    # 16 decimal digits, and no X-Trace: still the decimal alias, not hex B3
    "0.28 aliases, 16-digit trace id": (
        [*aliases(SHORT_TRACE), ("X-B3-Sampled", "1")],
        continued(True, trace_id=SHORT_TRACE),
    ),
    "alias sampled and flags": (
        [*HEADERS, ("X-B3-Sampled", "1"), ("X-B3-Flags", "2")],
        continued(True, 2),
    ),
}

# headers both must ignore, starting a new trace
IGNORED = {
    "conflicting trace": [*SAMPLED, ("X-B3-TraceId", str(TRACE + 1))],
    "conflicting span": [*SAMPLED, ("X-B3-SpanId", str(SPAN + 1))],
    "conflicting parent": [*SAMPLED, ("X-B3-ParentSpanId", "1")],
    "conflicting sampled": [*SAMPLED, ("X-B3-Sampled", "0")],
    "no parent": [("X-Trace", str(TRACE)), ("X-Span", str(SPAN)), ("X-Sampled", "1")],
    "no span": [("X-Trace", str(TRACE)), ("X-Parent", str(PARENT)), ("X-Sampled", "1")],
    "trace not a number": [("X-Trace", "abc"), *HEADERS[1:]],
    "negative span": [*HEADERS[:2], ("X-Span", "-5")],
    "hex parent": [HEADERS[0], ("X-Parent", "0x10"), HEADERS[2]],
    "fractional trace": [("X-Trace", "1.5"), *HEADERS[1:]],
    "span past 64 bits": [*HEADERS[:2], ("X-Span", str(2**64))],
    "empty span": [*HEADERS[:2], ("X-Span", "")],
}


@pytest.mark.parametrize("headers, expected", AGREED.values(), ids=AGREED.keys())
def test_reddit_headers_are_continued_alike(
    ours: OurPyramidService,
    peer: RedditPyramidPeer,
    headers: list[tuple[str, str]],
    expected: dict[str, Any],
) -> None:
    assert peer.show(headers)["span"] == expected
    assert ours.show_headers(headers)["span"] == expected


def test_debug_flag_from_a_reddit_caller(ours: OurPyramidService, peer: RedditPyramidPeer) -> None:
    headers = [*HEADERS, ("X-Flags", "1")]
    # reddit 0.30 keeps the sampled bit as sent; WIRE.md: the debug flag forces sampling
    assert peer.show(headers)["span"] == continued(False, 1)
    assert ours.show_headers(headers)["span"] == continued(True, 1)


def test_edge_request_from_a_reddit_caller(
    ours: OurPyramidService, peer: RedditPyramidPeer, edge_header: str
) -> None:
    headers = [*SAMPLED, ("X-Edge-Request", edge_header)]
    peer_seen = peer.show(headers)
    our_seen = ours.show_headers(headers)

    assert peer_seen["span"] == our_seen["span"] == continued(True)
    assert peer_seen["raw_request_context"] == edge_header
    assert peer_seen["request_context"]["loid"] is None  # 0.30 does not decode the base64
    assert peer_seen["decoded"] == DECODED
    assert our_seen["raw_request_context"] == edge_header  # attached as bytes
    assert our_seen["loid"] == DECODED["loid"]


@pytest.mark.parametrize("headers", IGNORED.values(), ids=IGNORED.keys())
def test_bad_reddit_headers_start_a_new_trace_in_both(
    ours: OurPyramidService, peer: RedditPyramidPeer, headers: list[tuple[str, str]]
) -> None:
    sent = {TRACE, PARENT, SPAN, TRACE + 1, SPAN + 1}
    for side, seen in (("peer", peer.show(headers)), ("ours", ours.show_headers(headers))):
        span = seen["span"]
        assert span["trace_id"] == span["span_id"], side
        assert span["trace_id"] not in sent, side
        assert span["parent_id"] is None, side
        assert span["flags"] is None, side
        # a new trace: reddit leaves sampling undecided, ours decides by the rate (0 here)
        assert span["sampled"] is (None if side == "peer" else False), side
