"""baseplate.clients.requests against real HTTP servers on loopback.

Every call goes over a real socket to :class:`~tests.clients.servers.RecordingServer`. What
cannot exist here, a public address or a DNS server whose answer changes (rebinding), is
stood in for by the client's ``resolve`` seam: a function from ``(host, port)`` to
``getaddrinfo`` entries, called when a connection is made.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opentelemetry import propagate
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from baseplate import metrics
from baseplate.clients.requests import (
    AddressNotAllowed,
    AddressPolicy,
    BaseplateHTTPAdapter,
    BaseplateSession,
    ExternalRequestsClient,
    InternalRequestsClient,
    RequestsClient,
    http_adapter_from_config,
    url_for_span,
)
from baseplate.config import ConfigurationError
from baseplate.core import Baseplate, RequestContext, ServerSpan, TraceInfo
from otel_bridge.context import set_edge_request
from otel_bridge.propagation import http_propagator
from tests.statsd_helpers import UDPReceiver

from .servers import RecordingServer, SilentServer

TRACE_HEADERS = {
    "x-trace", "x-parent", "x-span", "x-sampled", "x-flags", "x-edge-request", "traceparent",
    "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
    "x-b3-flags", "baggage",
}
LOOPBACK = ["127.0.0.0/8"]
NOT_INTERNAL = "not a loopback or private address (an internal client's are)"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    running = RecordingServer()
    yield running
    running.stop()


@pytest.fixture
def request_span(baseplate: Baseplate) -> Iterator[tuple[Any, ServerSpan]]:
    """A request being served: its context object and started server span (upstream ids)."""
    context: Any = RequestContext()
    span = baseplate.make_server_span(
        context, "handler", TraceInfo.from_upstream(1234, 55, 66, True, None)
    )
    span.start()
    yield context, span
    span.finish()


def client_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


def resolving_to(*addresses: str) -> Any:
    """A resolver answering every name with ``addresses`` (stands in for DNS)."""

    def resolve(host: str, port: int) -> list[Any]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, port) if ":" not in a else (a, port, 0, 0))
            for a in addresses
        ]

    return resolve


# -- internal: a client span carrying the trace ----------------------------------------------


def test_internal_call_is_a_client_span_carrying_the_trace(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    _, span = request_span
    session = InternalRequestsClient().make_object_for_context("peer", span)
    assert isinstance(session, BaseplateSession)

    response = session.get(server.url + "/things")
    assert response.json() == {"ok": True}

    (client,) = client_spans(exporter)
    assert client.name == "peer.request"
    assert client.parent is not None and client.parent.span_id == span.id
    headers = server.last["headers"]
    assert headers["x-trace"] == "1234"
    assert headers["x-parent"] == str(span.id)
    assert headers["x-span"] == str(client.context.span_id)
    assert headers["x-sampled"] == "1"
    assert headers["x-edge-request"] == ""  # no edge context: empty, as 1.x services need
    assert headers["traceparent"] == f"00-{1234:032x}-{client.context.span_id:016x}-01"
    assert "b3" in headers
    # hex X-B3-* would contradict the decimal baseplate headers for a baseplate callee
    assert not [name for name in headers if name.startswith("x-b3-")]


def test_the_context_attribute_is_made_per_request(
    baseplate: Baseplate, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    baseplate.add_to_context("peer", InternalRequestsClient())
    context: Any = RequestContext()
    with baseplate.make_server_span(context, "one") as first:
        context.peer.get(server.url)
    with baseplate.make_server_span(context, "two") as second:
        context.peer.post(server.url, json={"a": 1})
    one, two = client_spans(exporter)
    assert one.parent is not None and one.parent.span_id == first.id
    assert two.parent is not None and two.parent.span_id == second.id
    assert server.requests[1]["method"] == "POST" and server.requests[1]["body"] == '{"a": 1}'
    assert server.requests[1]["headers"]["x-parent"] == str(second.id)


@pytest.mark.parametrize("raw", [b"\x0b", b"\x0b\x00", b"\x0b\x00\x01", bytes(range(40))])
def test_edge_request_goes_as_padded_standard_base64(
    request_span: Any, server: RecordingServer, raw: bytes
) -> None:
    _, span = request_span
    set_edge_request(raw)  # what both server integrations do for each request
    InternalRequestsClient().make_object_for_context("peer", span).get(server.url)
    sent = server.last["headers"]["x-edge-request"]
    assert sent == base64.standard_b64encode(raw).decode()
    assert len(sent) % 4 == 0  # padded
    assert base64.b64decode(sent, validate=True) == raw


def test_edge_request_is_sent_whatever_the_trace_formats(
    request_span: Any, server: RecordingServer
) -> None:
    from otel_bridge.propagation import configure_propagators

    _, span = request_span
    set_edge_request(b"\x0b\x00")
    try:
        configure_propagators("tracecontext")
        InternalRequestsClient().make_object_for_context("peer", span).get(server.url)
    finally:
        configure_propagators(None)
    headers = server.last["headers"]
    assert "x-trace" not in headers and "traceparent" in headers
    assert headers["x-edge-request"] == "CwA="


def test_wide_trace_id_reaches_the_callee_as_lower_64_bits_and_whole_in_w3c(
    baseplate: Baseplate, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    wide = 0x4BF92F3577B34DA6A3CE929D0E0E4736
    ctx = http_propagator().extract({"traceparent": f"00-{wide:032x}-00f067aa0ba902b7-01"})
    from baseplate.core import trace_info_from_context

    info = trace_info_from_context(ctx)
    assert info is not None
    with baseplate.make_server_span(RequestContext(), "handler", info) as span:
        InternalRequestsClient().make_object_for_context("peer", span).get(server.url)
    headers = server.last["headers"]
    (client,) = client_spans(exporter)
    assert client.context.trace_id == wide
    assert headers["x-trace"] == str(wide & (2**64 - 1))
    assert headers["traceparent"].split("-")[1] == f"{wide:032x}"


# -- the span: name, tags, outcome, metrics --------------------------------------------------


def test_tags(request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter) -> None:
    _, span = request_span
    session = InternalRequestsClient().make_object_for_context("peer", span)
    url = server.url.replace("http://", "http://ada:s3cret@") + "/x?token=abc&flag&empty="
    session.post(url, data=b"12345")
    (client,) = client_spans(exporter)
    attributes = dict(client.attributes or {})
    assert attributes["http.method"] == "POST"
    assert attributes["http.url"] == f"{server.url}/x?token=REDACTED&REDACTED&empty=REDACTED"
    assert attributes["http.status_code"] == 200
    assert attributes["http.response_content_length"] == len(b'{"ok": true}')
    assert server.last["query"] == "token=abc&flag&empty="  # the call itself is unchanged
    assert server.last["headers"]["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://h/p", "http://h/p"),
        ("https://u:p@h:8443/p?a=1#frag", "https://h:8443/p?a=REDACTED"),
        ("http://u@[::1]:80/?x", "http://[::1]:80/?REDACTED"),
        (b"http://h/b?k=v", "http://h/b?k=REDACTED"),
        ("http://[bad/", "REDACTED"),
    ],
)
def test_url_for_span(url: Any, expected: str) -> None:
    assert url_for_span(url) == expected


@pytest.mark.parametrize("status, failed", [(200, False), (404, False), (499, False),
                                            (500, True), (503, True)])
def test_5xx_answers_fail_the_span(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter,
    status: int, failed: bool,
) -> None:
    _, span = request_span
    response = InternalRequestsClient().make_object_for_context("peer", span).get(
        f"{server.url}/status/{status}"
    )
    assert response.status_code == status  # the answer reaches the caller, never raised
    (client,) = client_spans(exporter)
    assert (client.status.status_code is StatusCode.ERROR) is failed
    assert client.attributes is not None and client.attributes["http.status_code"] == status


def test_connection_errors_fail_the_span_and_reach_the_caller(
    request_span: Any, exporter: InMemorySpanExporter
) -> None:
    _, span = request_span
    closed = SilentServer()
    port = closed.port
    closed.stop()  # nothing listens there now
    with pytest.raises(requests.ConnectionError):
        InternalRequestsClient().make_object_for_context("peer", span).get(
            f"http://127.0.0.1:{port}/"
        )
    (client,) = client_spans(exporter)
    assert client.status.status_code is StatusCode.ERROR
    assert [event.name for event in client.events] == ["exception"]


def test_metrics_are_a_client_timer_and_counters(server: RecordingServer) -> None:
    receiver = UDPReceiver()
    provider = TracerProvider(shutdown_on_exit=False)
    try:
        baseplate = Baseplate(provider)
        baseplate.configure_metrics(metrics.make_client("svc", receiver.endpoint))
        baseplate.add_to_context("peer", InternalRequestsClient())
        context: Any = RequestContext()
        with baseplate.make_server_span(context, "handler"):
            context.peer.get(server.url)
            context.peer.get(server.url + "/status/502")
        lines = sorted(
            line
            for datagram in receiver.receive(1, timeout=10)
            for line in datagram.decode().split("\n")
        )
    finally:
        provider.shutdown()
        receiver.close()
    assert sorted(line.split(":")[0] for line in lines if "clients" in line) == [
        "svc.clients.peer.request",
        "svc.clients.peer.request",
        "svc.clients.peer.request.failure",
        "svc.clients.peer.request.success",
    ]
    assert "svc.clients.peer.request.failure:1|c" in lines
    assert "svc.clients.peer.request.success:1|c" in lines


# -- a requests.Session's methods -------------------------------------------------------------


def test_session_methods(request_span: Any, server: RecordingServer) -> None:
    _, span = request_span
    session = InternalRequestsClient().make_object_for_context("peer", span)
    for method in ("get", "options", "head", "post", "put", "patch", "delete"):
        assert getattr(session, method)(server.url + "/m").status_code == 200
    assert [r["method"] for r in server.requests] == [
        "GET", "OPTIONS", "HEAD", "POST", "PUT", "PATCH", "DELETE"
    ]
    prepared = session.prepare_request(requests.Request("GET", server.url, params={"q": "1"}))
    assert session.send(prepared).status_code == 200
    assert server.last["query"] == "q=1"
    assert session.request("get", server.url, headers={"X-Mine": "yes"}).ok
    assert server.last["headers"]["x-mine"] == "yes"


def test_redirects_are_followed_each_hop_a_span(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    _, span = request_span
    session = InternalRequestsClient().make_object_for_context("peer", span)
    response = session.get(f"{server.url}/redirect?to=/final")
    assert response.status_code == 200 and server.last["path"] == "/final"
    assert len(client_spans(exporter)) == 1  # one call, one span (redirect hops inside it)
    assert session.head(f"{server.url}/redirect?to=/final").status_code == 302


def test_cookies_are_not_shared_between_calls(request_span: Any, server: RecordingServer) -> None:
    _, span = request_span
    session = InternalRequestsClient().make_object_for_context("peer", span)
    assert session.get(server.url + "/cookie").cookies["session"] == "secret"
    session.get(server.url)
    assert "cookie" not in server.last["headers"]


def test_streamed_response_length_comes_from_content_length(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    _, span = request_span
    response = InternalRequestsClient().make_object_for_context("peer", span).get(
        server.url, stream=True
    )
    (client,) = client_spans(exporter)
    assert client.attributes is not None
    assert client.attributes["http.response_content_length"] == 12
    assert response.raw.read() == b'{"ok": true}'  # not consumed by the client


def test_default_timeout_from_the_adapter(request_span: Any) -> None:
    _, span = request_span
    silent = SilentServer()
    try:
        adapter = BaseplateHTTPAdapter(timeout=0.2)
        session = InternalRequestsClient(adapter).make_object_for_context("peer", span)
        with pytest.raises(requests.ReadTimeout):
            session.get(silent.url)
    finally:
        silent.stop()


# -- external: nothing sent, internal addresses refused ----------------------------------------


def test_external_call_sends_no_trace_or_edge_header(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    _, span = request_span
    set_edge_request(b"\x0b\x00")
    client = ExternalRequestsClient(allowed_networks=LOOPBACK)
    client.make_object_for_context("weather", span).get(server.url)
    assert not TRACE_HEADERS & set(server.last["headers"])
    (call,) = client_spans(exporter)
    assert call.name == "weather.request"


def test_external_call_sends_nothing_under_vendor_instrumentation(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    _, span = request_span
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(http_propagator())
    RequestsInstrumentor().instrument(tracer_provider=provider)
    try:
        ExternalRequestsClient(allowed_networks=LOOPBACK).make_object_for_context(
            "weather", span
        ).get(server.url)
        requests.get(server.url, timeout=30)  # plain requests: the vendor's span and headers
    finally:
        RequestsInstrumentor().uninstrument()
        propagate.set_global_textmap(previous)
    ours, plain = server.requests
    assert not TRACE_HEADERS & set(ours["headers"])
    assert "traceparent" in plain["headers"]
    assert [s.name for s in client_spans(exporter)] == ["weather.request", "GET"]


def test_external_client_refuses_loopback(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter
) -> None:
    _, span = request_span
    session = ExternalRequestsClient().make_object_for_context("weather", span)
    with pytest.raises(AddressNotAllowed) as refused:
        session.get(server.url)
    assert refused.value.reason == "loopback" and refused.value.address == "127.0.0.1"
    assert isinstance(refused.value, requests.ConnectionError)
    assert server.connections == []  # never connected
    (call,) = client_spans(exporter)
    assert call.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.2", "loopback"),
        ("0.0.0.0", "this host (unspecified)"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared address space (carrier-grade NAT)"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("168.63.129.16", "cloud metadata"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved (documentation)"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private (unique local)"),
        ("fd00:ec2::254", "cloud metadata"),
        ("ff02::1", "multicast"),
    ],
)
def test_external_client_refuses_internal_and_special_addresses(
    request_span: Any, address: str, reason: str
) -> None:
    _, span = request_span
    client = ExternalRequestsClient(resolve=resolving_to(address))
    with pytest.raises(AddressNotAllowed) as refused:
        client.make_object_for_context("weather", span).get("http://example.test:8080/")
    assert refused.value.reason == reason


def test_policies_allow_public_addresses_and_the_given_networks() -> None:
    external = AddressPolicy.external()
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert external.refusal(public) is None
    assert AddressPolicy.external(["10.1.0.0/16"]).refusal("10.1.2.3") is None
    assert AddressPolicy.external(["10.1.0.0/16"]).refusal("10.2.0.1") == "private"
    assert AddressPolicy.external(["169.254.169.254"]).refusal("169.254.169.254") is None
    internal = AddressPolicy.internal()
    for address in ("127.0.0.1", "10.0.0.1", "172.20.0.1", "192.168.0.1", "fd12::1", "::1"):
        assert internal.refusal(address) is None
    assert internal.refusal("8.8.8.8") == NOT_INTERNAL
    assert internal.refusal("169.254.169.254") == "cloud metadata"
    assert AddressPolicy.internal(["8.8.8.0/24"]).refusal("8.8.8.8") is None
    with pytest.raises(ValueError, match="not a network"):
        AddressPolicy.external(["10.0.0.1/8"])  # host bits set: a typo, refused


def test_dns_rebinding_is_refused_at_connect_time(
    request_span: Any, server: RecordingServer
) -> None:
    """The name resolves to a public address when the application checks it, and to
    loopback when the connection is made: the connect-time check refuses it."""
    _, span = request_span
    answers = iter(["93.184.216.34", "127.0.0.1"])
    resolved: list[str] = []

    def rebinding(host: str, port: int) -> list[Any]:
        address = next(answers, "127.0.0.1")
        resolved.append(address)
        return resolving_to(address)(host, port)

    # the application's own check of the URL sees a public address ...
    (first,) = rebinding("rebind.test", server.port)
    assert AddressPolicy.external().refusal(first[4][0]) is None
    # ... and the call, resolving again when it connects, is refused
    session = ExternalRequestsClient(resolve=rebinding).make_object_for_context("weather", span)
    with pytest.raises(AddressNotAllowed) as refused:
        session.get(f"http://rebind.test:{server.port}/")
    assert refused.value.reason == "loopback"
    assert resolved == ["93.184.216.34", "127.0.0.1"]
    assert server.connections == []


def test_the_connected_peer_address_is_checked_too(
    request_span: Any, server: RecordingServer
) -> None:
    """A policy whose first look at an address passes (as a resolver-side check would)
    still refuses when the socket's peer is that address."""
    _, span = request_span

    class FirstLookPasses(AddressPolicy):
        seen: set[str]

        def refusal(self, address: Any) -> str | None:
            if str(address) not in self.seen:
                self.seen.add(str(address))
                return None
            return super().refusal(address)

    policy = FirstLookPasses()
    policy.seen = set()
    adapter = BaseplateHTTPAdapter(address_policy=policy)
    session = BaseplateSession(adapter, "weather", span)
    with pytest.raises(AddressNotAllowed) as refused:
        session.get(server.url)
    assert refused.value.reason == "loopback"
    assert len(server.wait_for_connections(1)) == 1
    assert server.requests == []  # connected, sent nothing


def test_redirect_to_an_internal_address_is_refused(
    request_span: Any, server: RecordingServer
) -> None:
    _, span = request_span
    public = RecordingServer("127.0.0.2")  # stands in for a public host: allowed below
    try:
        session = ExternalRequestsClient(allowed_networks=["127.0.0.2/32"]).make_object_for_context(
            "weather", span
        )
        assert session.get(public.url).ok
        with pytest.raises(AddressNotAllowed):
            session.get(f"{public.url}/redirect?to={server.url}/secret")
    finally:
        public.stop()
    assert server.connections == []


def test_proxies_are_refused_and_environment_proxies_ignored(
    request_span: Any, server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, span = request_span
    session = ExternalRequestsClient(allowed_networks=LOOPBACK).make_object_for_context(
        "weather", span
    )
    with pytest.raises(AddressNotAllowed) as refused:
        session.get(server.url, proxies={"http": "http://127.0.0.1:1"})
    assert refused.value.reason == "proxy"
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # a dead proxy, not used
    monkeypatch.setenv("NO_PROXY", "")
    assert session.get(server.url).ok


def test_internal_client_refuses_public_and_metadata_addresses(request_span: Any) -> None:
    _, span = request_span
    for address, reason in [
        ("93.184.216.34", NOT_INTERNAL),
        ("169.254.169.254", "cloud metadata"),
    ]:
        session = InternalRequestsClient(resolve=resolving_to(address)).make_object_for_context(
            "peer", span
        )
        with pytest.raises(AddressNotAllowed) as refused:
            session.get("http://peer.test/")
        assert refused.value.reason == reason


def test_base_client_checks_nothing_and_sends_nothing(
    request_span: Any, server: RecordingServer
) -> None:
    _, span = request_span
    RequestsClient().make_object_for_context("plain", span).get(server.url)
    assert not TRACE_HEADERS & set(server.last["headers"])


def test_guarded_clients_need_a_baseplate_adapter() -> None:
    with pytest.raises(TypeError, match="BaseplateHTTPAdapter"):
        ExternalRequestsClient(requests.adapters.HTTPAdapter())
    RequestsClient(requests.adapters.HTTPAdapter())  # no check: any adapter


# -- one client span per call with the vendor instrumentation active ----------------------------


def test_one_span_per_call_with_vendor_requests_instrumentation(
    request_span: Any, server: RecordingServer, exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    _, span = request_span
    RequestsInstrumentor().instrument(tracer_provider=provider)
    try:
        session = InternalRequestsClient().make_object_for_context("peer", span)
        session.get(server.url)
        session.get(server.url + "/status/500")
    finally:
        RequestsInstrumentor().uninstrument()
    assert [s.name for s in client_spans(exporter)] == ["peer.request", "peer.request"]
    assert server.requests[0]["headers"]["x-span"] == str(
        client_spans(exporter)[0].context.span_id
    )


# -- configuration -------------------------------------------------------------------------------


def test_http_adapter_from_config() -> None:
    adapter = http_adapter_from_config(
        {
            "peer.pool_connections": "3",
            "peer.pool_maxsize": 7,
            "peer.pool_block": "true",
            "peer.max_retries": "2",
            "peer.timeout": "2 seconds",
            "peer.connect_timeout": "0.5",
            "peer.allowed_networks": "10.1.0.0/16, 192.168.5.5",
            "other.pool_maxsize": "nonsense",
        },
        "peer.",
    )
    assert isinstance(adapter, BaseplateHTTPAdapter)
    assert (adapter._pool_connections, adapter._pool_maxsize, adapter._pool_block) == (3, 7, True)
    assert adapter.max_retries.total == 2
    assert adapter.default_timeout() == (0.5, 2.0)
    assert [str(n) for n in adapter.allowed_networks] == ["10.1.0.0/16", "192.168.5.5/32"]
    defaults = http_adapter_from_config({}, "peer.")
    assert defaults.default_timeout() is None and defaults._pool_maxsize == 10
    assert defaults.max_retries.total == 0
    # keyword arguments win over the file
    assert http_adapter_from_config({"peer.timeout": "5"}, "peer.", timeout=1.0).timeout == 1.0


def test_allowed_networks_of_the_adapter_reach_the_client(
    request_span: Any, server: RecordingServer
) -> None:
    _, span = request_span
    adapter = http_adapter_from_config({"web.allowed_networks": "127.0.0.1"}, "web.")
    ExternalRequestsClient(adapter).make_object_for_context("web", span).get(server.url)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "key, value",
    [
        ("pool_connections", "0"),
        ("pool_maxsize", "10001"),
        ("pool_maxsize", "nan"),
        ("pool_block", "maybe"),
        ("max_retries", "-1"),
        ("max_retries", "101"),
        ("timeout", "0"),
        ("timeout", "inf"),
        ("timeout", "-1"),
        ("connect_timeout", "nan"),
        ("connect_timeout", "2 days"),
        ("allowed_networks", "10.0.0.1/8"),
        ("allowed_networks", "not-a-network"),
    ],
)
def test_http_adapter_from_config_names_the_bad_key(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        http_adapter_from_config({f"peer.{key}": value}, "peer.")
    assert f"peer.{key}" in str(error.value)


def test_prefix_must_end_with_a_dot() -> None:
    with pytest.raises(ValueError, match="dot"):
        http_adapter_from_config({}, "peer")
