"""The queue-to-HTTP sidecars, mixed with reddit's own baseplate: events and trace spans.

Events: reddit's ``EventQueue`` and ours put the same kinds of events on ``/events-<name>``;
reddit's publisher daemon (``-I -m baseplate.events.publisher``) and ours read them and POST
to local HTTPS collectors (reddit's publisher only speaks ``https://``; a throwaway CA is
given to both through ``REQUESTS_CA_BUNDLE``). Traces: our sidecar exporter and reddit's
``SidecarRecorder`` (``reddit_peer_sidecars.py``) write Zipkin v1 spans on ``/traces-<name>``;
reddit's trace publisher and ours POST them to a local Zipkin-like receiver.

Each exchange runs once per module: every queue is filled before the daemons start, so each
publisher sends one batch, and both publishers are given the same queued messages so that
what they send can be compared request for request.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import gzip
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import posix_ipc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from thrift import TSerialization
from thrift.protocol.TBase import TBase
from thrift.protocol.TJSONProtocol import TJSONProtocolFactory
from thrift.Thrift import TType

from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.diagnostics.tracing import tracing_client_from_config
from baseplate.events import Event, EventQueue, FieldKind, serialize_v1_event, serialize_v2_event
from baseplate.events.publisher import sign_payload
from baseplate.thrift.gen.baseplate.ttypes import Loid, Request, Session
from otel_bridge import propagation

from .conftest import PEER_PYTHON, run_peer_script

REPO = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).with_name("reddit_peer_sidecars.py")
SECRET = b"interop-secret"
KEY_NAME = "InteropKey"
# Small queues: the production sizes are above what the kernel allows a queue here, and a
# queue that exists already is opened as it is by every EventQueue, recorder and publisher.
QUEUE_MESSAGES = 10
QUEUE_MESSAGE_SIZE = 8192
# How long the daemons get to post what was queued (each posts its batch after ~1 s).
PUBLISH_DEADLINE = 30.0
# The upstream trace context of the traced requests: 64-bit ids above 2**63 are the ones a
# signed integer would get wrong.
TRACE_ID = 2**64 - 3
PARENT_ID = 2**63 + 7
OUR_SERVER_ID = 2**63 + 1
PEER_SERVER_ID = 2**63 + 2
SIGNATURE = re.compile(r"key=(?P<key>[^,]+), mac=(?P<mac>[0-9a-f]{64})")


# -- local collectors --------------------------------------------------------------------------


@dataclass
class Received:
    """One POST as the receiver got it (header names as sent)."""

    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) == 1, f"{name}: {values}"
        return values[0]

    @property
    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


@dataclass
class HttpReceiver:
    """A local HTTP(S) server recording every POST and answering ``status``."""

    server: http.server.ThreadingHTTPServer
    status: int
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, status: int, tls: ssl.SSLContext | None = None) -> HttpReceiver:
        receiver: HttpReceiver

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, list(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        receiver = cls(server, status)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return receiver

    @property
    def address(self) -> str:
        port = self.server.server_address[1]
        return f"127.0.0.1:{port}"

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class CollectorCA:
    """A self-signed certificate for 127.0.0.1 that the publishers are told to trust."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_collector_ca(directory: Path) -> CollectorCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interop collector")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    ca = CollectorCA(directory / "collector.pem", directory / "collector.key")
    ca.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca


# -- queues, peers and daemons -----------------------------------------------------------------


def unique_name() -> str:
    return f"interop-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def fresh_queues(*paths: str) -> Iterator[None]:
    """Create the POSIX queues ``paths`` (small, see ``QUEUE_MESSAGES``); unlink them after."""
    created: list[posix_ipc.MessageQueue] = []
    try:
        for path in paths:
            created.append(
                posix_ipc.MessageQueue(
                    path,
                    posix_ipc.O_CREX,
                    max_messages=QUEUE_MESSAGES,
                    max_message_size=QUEUE_MESSAGE_SIZE,
                )
            )
        yield
    finally:
        for queue in created:
            queue.unlink()
            queue.close()


def run_peer(*args: str) -> dict[str, Any]:
    """Run one ``reddit_peer_sidecars.py`` command with reddit's baseplate; return its JSON."""
    return run_peer_script(PEER_SCRIPT, *args)


class Daemon:
    """A publisher daemon running until :meth:`stop`; its output goes to a log file."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env
            )

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text()}"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)


def daemon_environment(ca: CollectorCA | None = None) -> dict[str, str]:
    # Ours run from the checkout; reddit's run with -I, which ignores PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    if ca is not None:
        env["REQUESTS_CA_BUNDLE"] = str(ca.cert_file)
    return env


def reddit_daemon(module: str, queue_name: str, config: Path) -> list[str]:
    return [str(PEER_PYTHON), "-I", "-m", module, "--queue-name", queue_name, str(config)]


def our_daemon(module: str, queue_name: str, config: Path) -> list[str]:
    return [sys.executable, "-m", module, "--queue-name", queue_name, str(config)]


def wait_until(condition: Callable[[], bool], daemons: list[Daemon], what: str) -> None:
    """Wait for ``condition`` while the daemons keep running."""
    deadline = time.monotonic() + PUBLISH_DEADLINE
    while not condition():
        for daemon in daemons:
            daemon.check_running()
        if time.monotonic() > deadline:
            logs = "\n".join(f"{d.name}:\n{d.log.read_text()}" for d in daemons)
            raise AssertionError(f"{what}: not seen in time\n{logs}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def collector_ca(tmp_path_factory: pytest.TempPathFactory) -> CollectorCA:
    return make_collector_ca(tmp_path_factory.mktemp("ca"))


# -- events ------------------------------------------------------------------------------------


class EventBatch(TBase):
    """The v2 collector's view of a batch: ``struct { 1: list<Event> events }``, here with
    baseplate's ``Request`` struct as the event type."""

    thrift_spec = (None, (1, TType.LIST, "events", (TType.STRUCT, [Request, None], False), None))

    def __init__(self, events: list[Request] | None = None) -> None:
        self.events = events


def decode_v2_batch(body: bytes) -> list[Request]:
    batch = TSerialization.deserialize(EventBatch(), body, TJSONProtocolFactory())
    events: list[Request] = batch.events
    return events


def batch_body(version: int, messages: list[bytes]) -> bytes:
    """The uncompressed body WIRE.md gives for a batch of queued messages."""
    if version == 1:
        return b"[" + b",".join(messages) + b"]"
    return b'{"1":{"lst":["rec",%d,' % len(messages) + b",".join(messages) + b"]}}"


def events_in(request: Received, version: int) -> int:
    document = json.loads(gzip.decompress(request.body))
    return len(document) if version == 1 else int(document["1"]["lst"][1])


# What reddit_peer_sidecars.py puts (see v1_events / v2_events there).
PEER_V2_EVENTS = [
    Request(
        loid=Loid(id="t2_peer", created_ms=1_700_000_000_123),
        session=Session(id="session-\u00e9"),
        authentication_token="token",
    ),
    Request(loid=Loid(id="t2_other", created_ms=0)),
]


def our_events(version: int) -> list[Any]:
    if version == 2:
        return [
            Request(
                loid=Loid(id="t2_ours", created_ms=2**40),
                session=Session(id="ours"),
                authentication_token="jwt",
            ),
            Request(session=Session(id="\u2603")),
        ]
    first = Event("interop", "ours", id=uuid.UUID("00000000-0000-4000-8000-000000000003"))
    first.set_field("count", 5)
    first.set_field("text", "\u2603")
    first.set_field("missing", None)
    first.set_field("ip", "10.0.0.2", kind=FieldKind.OBFUSCATED)
    first.set_field("session", "s", kind=FieldKind.HIGH_CARDINALITY)
    second = Event(
        "interop",
        "ours-later",
        timestamp=datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        id=uuid.UUID("00000000-0000-4000-8000-000000000004"),
    )
    second.set_field("count", 0)
    return [first, second]


@dataclass
class EventExchange:
    """Reddit's and our queued events, and what each publisher posted for them."""

    version: int
    reddit_messages: list[bytes]
    our_messages: list[bytes]
    by_reddit: list[Received]
    by_ours: list[Received]

    @property
    def queued(self) -> list[bytes]:
        """Both queues' contents, in order: the peer's events, then ours."""
        return self.reddit_messages + self.our_messages


def event_publisher_config(directory: Path, queue_name: str, collector: str, version: int) -> Path:
    path = directory / f"{queue_name}.ini"
    path.write_text(
        f"[event-publisher:{queue_name}]\n"
        f"collector.hostname = {collector}\n"
        f"collector.version = {version}\n"
        f"key.name = {KEY_NAME}\n"
        f"key.secret = {base64.b64encode(SECRET).decode()}\n"
        "metrics.namespace = events\n"
        "metrics.endpoint =\n"
    )
    return path


def start_event_exchange(
    version: int, ca: CollectorCA, workdir: Path, stack: contextlib.ExitStack
) -> tuple[list[Daemon], Callable[[], EventExchange | None]]:
    """Fill two queues alike with reddit's EventQueue and ours, then start reddit's publisher
    on one and ours on the other, each posting to its own HTTPS collector.

    Everything started is stopped (and the queues unlinked) when ``stack`` closes. Returns
    the daemons and a poll: the exchange once both collectors have every event, else None.
    """
    for_reddit, for_ours = unique_name(), unique_name()
    reddit_collector = HttpReceiver.start(200, ca.server_context())
    stack.callback(reddit_collector.stop)
    our_collector = HttpReceiver.start(200, ca.server_context())
    stack.callback(our_collector.stop)
    stack.enter_context(fresh_queues(f"/events-{for_reddit}", f"/events-{for_ours}"))

    peer = run_peer(
        "put-events", "--version", str(version), "--queue", for_reddit, "--queue", for_ours
    )
    reddit_messages = [base64.b64decode(message) for message in peer["messages"]]
    serializer = serialize_v1_event if version == 1 else serialize_v2_event
    events = our_events(version)
    for name in (for_reddit, for_ours):
        event_queue = EventQueue(name, event_serializer=serializer)
        for event in events:
            event_queue.put(event)
        event_queue.queue.close()
    our_messages = [serializer(event) for event in events]

    env = daemon_environment(ca)
    module = "baseplate.events.publisher"
    daemons = [
        Daemon(
            f"reddit's v{version} event publisher",
            reddit_daemon(
                module,
                for_reddit,
                event_publisher_config(workdir, for_reddit, reddit_collector.address, version),
            ),
            workdir / "reddit.log",
            env,
        ),
        Daemon(
            f"our v{version} event publisher",
            our_daemon(
                module,
                for_ours,
                event_publisher_config(workdir, for_ours, our_collector.address, version),
            ),
            workdir / "ours.log",
            env,
        ),
    ]
    for daemon in daemons:
        stack.callback(daemon.stop)

    expected = len(reddit_messages) + len(our_messages)

    def poll() -> EventExchange | None:
        by_reddit, by_ours = reddit_collector.received(), our_collector.received()
        for received in (by_reddit, by_ours):
            if sum(events_in(request, version) for request in received) < expected:
                return None
        return EventExchange(version, reddit_messages, our_messages, by_reddit, by_ours)

    return daemons, poll


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def event_exchange(
    request: pytest.FixtureRequest,
    collector_ca: CollectorCA,
    tmp_path_factory: pytest.TempPathFactory,
) -> EventExchange:
    version: int = request.param
    with contextlib.ExitStack() as stack:
        daemons, poll = start_event_exchange(
            version, collector_ca, tmp_path_factory.mktemp(f"events-v{version}"), stack
        )
        wait_until(lambda: poll() is not None, daemons, "every event at each collector")
        exchange = poll()
    assert exchange is not None
    return exchange


def assert_collector_post(request: Received, version: int) -> bytes:
    """Check one collector POST against WIRE.md "Events"; return the uncompressed body."""
    assert request.path == f"/v{version}"
    assert request.body[:2] == b"\x1f\x8b"  # gzip
    body = gzip.decompress(request.body)
    assert request.header("Content-Encoding") == "gzip"
    assert request.header("Content-Type") == "application/json"
    assert int(request.header("Content-Length")) == len(request.body)
    mac = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert request.header("X-Signature") == f"key={KEY_NAME}, mac={mac}"
    assert sign_payload(KEY_NAME, SECRET, body) == request.header("X-Signature")
    assert re.fullmatch(r"baseplate-event-publisher/\d+(\.\d+)*", request.header("User-Agent"))
    date = request.header("Date")
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", date)
    sent_at = email.utils.parsedate_to_datetime(date)
    assert abs(sent_at - datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(
        minutes=5
    )
    return body


def test_reddit_events_arrive_through_our_publisher(event_exchange: EventExchange) -> None:
    version = event_exchange.version
    (request,) = event_exchange.by_ours

    body = assert_collector_post(request, version)

    assert body == batch_body(version, event_exchange.queued)
    if version == 1:
        first, second = json.loads(body)[:2]
        assert first["event_topic"] == "interop" and first["event_type"] == "published"
        assert first["uuid"] == "00000000-0000-4000-8000-000000000001"
        assert first["payload"] == {
            "count": 3,
            "ratio": 0.5,
            "flag": False,
            "nested": {"list": [1, "two"], "none": None},
            "text": "h\u00e9llo \u2603",
            "obfuscated_data": {"ip": "10.0.0.1"},
            "interana_excluded": {"token": "abc"},
        }
        assert second["payload"] == {"count": 0}
    else:
        assert decode_v2_batch(body)[:2] == PEER_V2_EVENTS


def test_our_events_arrive_through_reddits_publisher(event_exchange: EventExchange) -> None:
    version = event_exchange.version
    (request,) = event_exchange.by_reddit

    body = assert_collector_post(request, version)

    assert body == batch_body(version, event_exchange.queued)
    if version == 1:
        first, second = json.loads(body)[2:]
        assert first["event_topic"] == "interop" and first["event_type"] == "ours"
        assert first["uuid"] == "00000000-0000-4000-8000-000000000003"
        assert isinstance(first["event_ts"], int)
        assert first["payload"] == {
            "count": 5,
            "text": "\u2603",
            "obfuscated_data": {"ip": "10.0.0.2"},
            "interana_excluded": {"session": "s"},
        }
        assert second["event_ts"] == 1714979289000
        assert second["payload"] == {"count": 0}
    else:
        assert decode_v2_batch(body)[2:] == our_events(2)


def test_both_event_publishers_send_the_same_request(event_exchange: EventExchange) -> None:
    (ours,) = event_exchange.by_ours
    (theirs,) = event_exchange.by_reddit

    assert ours.path == theirs.path
    assert gzip.decompress(ours.body) == gzip.decompress(theirs.body)
    assert ours.header_names == theirs.header_names
    for name in ("Content-Type", "Content-Encoding", "User-Agent", "X-Signature"):
        assert ours.header(name) == theirs.header(name), name
    for request in (ours, theirs):
        match = SIGNATURE.fullmatch(request.header("X-Signature"))
        assert match is not None and match["key"] == KEY_NAME


# -- trace spans -------------------------------------------------------------------------------


@dataclass
class TraceExchange:
    """Spans our app and reddit's wrote to the trace queues, and what each publisher posted."""

    our_spans: list[ReadableSpan]
    peer_messages: list[bytes]
    peer_ids: dict[str, int]
    by_reddit: list[Received]
    by_ours: list[Received]

    @staticmethod
    def spans(requests: list[Received]) -> list[dict[str, Any]]:
        return [span for request in requests for span in json.loads(request.body)]

    def of_service(self, requests: list[Received], service: str) -> list[dict[str, Any]]:
        return [
            span
            for span in self.spans(requests)
            if (span["annotations"] or span["binaryAnnotations"])[0]["endpoint"]["serviceName"]
            == service
        ]


def record_our_request(queue_name: str) -> list[ReadableSpan]:
    """Handle one debug-flagged request with our baseplate exporting to the sidecar queue."""
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        app = Baseplate(tracer_provider=provider)
        client = tracing_client_from_config(
            {
                "tracing.service_name": "our-service",
                "tracing.exporter": "sidecar",
                "tracing.queue_name": queue_name,
            },
            environ={},
        )
        app.configure_tracing(client)
        trace_info = TraceInfo.from_upstream(TRACE_ID, PARENT_ID, OUR_SERVER_ID, True, 1)
        server = app.make_server_span(RequestContext(), "our_method", trace_info)
        with server:
            server.set_tag("http.status_code", 200)
            child = server.make_child("redis.GET")
            with contextlib.suppress(ConnectionError), child:
                child.set_tag("key_count", 2)
                raise ConnectionError("refused")
            local = server.make_child("render", local=True, component_name="templates")
            with local:
                local.set_tag("cached", True)
        assert provider.force_flush(10_000)
        return list(memory.get_finished_spans())
    finally:
        provider.shutdown()
        propagation.configure_propagators(None)


def trace_publisher_config(directory: Path, queue_name: str, api_url: str) -> Path:
    path = directory / f"{queue_name}.ini"
    path.write_text(
        f"[trace-publisher:{queue_name}]\n"
        f"zipkin_api_url = {api_url}\n"
        "post_timeout = 3\n"
        "retry_limit = 3\n"
        "metrics.namespace = traces\n"
        "metrics.endpoint =\n"
    )
    return path


@pytest.fixture(scope="module")
def trace_exchange(tmp_path_factory: pytest.TempPathFactory) -> TraceExchange:
    """Our app writes its spans to the queue reddit's publisher reads; reddit's observer
    writes its spans to the queue ours reads and (mirrored) to reddit's publisher's too."""
    workdir = tmp_path_factory.mktemp("traces")
    for_reddit, for_ours = unique_name(), unique_name()
    with contextlib.ExitStack() as stack:
        receiver = HttpReceiver.start(202)
        stack.callback(receiver.stop)
        stack.enter_context(fresh_queues(f"/traces-{for_reddit}", f"/traces-{for_ours}"))
        our_spans = record_our_request(for_reddit)
        peer = run_peer(
            "trace-request",
            "--queue",
            for_ours,
            "--mirror",
            for_reddit,
            "--trace-id",
            str(TRACE_ID),
            "--parent-id",
            str(PARENT_ID),
            "--span-id",
            str(PEER_SERVER_ID),
        )
        peer_messages = [message.encode() for message in peer["messages"]]

        env = daemon_environment()
        module = "baseplate.diagnostics.tracing.publisher"
        base_url = f"http://{receiver.address}"
        daemons = [
            Daemon(
                "reddit's trace publisher",
                reddit_daemon(
                    module,
                    for_reddit,
                    trace_publisher_config(workdir, for_reddit, f"{base_url}/reddit/api/v1"),
                ),
                workdir / "reddit.log",
                env,
            ),
            Daemon(
                "our trace publisher",
                our_daemon(
                    module,
                    for_ours,
                    trace_publisher_config(workdir, for_ours, f"{base_url}/ours/api/v1"),
                ),
                workdir / "ours.log",
                env,
            ),
        ]
        for daemon in daemons:
            stack.callback(daemon.stop)

        def posted(prefix: str) -> list[Received]:
            return [r for r in receiver.received() if r.path.startswith(prefix)]

        wait_until(
            lambda: (
                len(TraceExchange.spans(posted("/reddit/"))) >= len(our_spans) + len(peer_messages)
                and len(TraceExchange.spans(posted("/ours/"))) >= len(peer_messages)
            ),
            daemons,
            "every span at the receiver",
        )
        return TraceExchange(
            our_spans, peer_messages, peer["ids"], posted("/reddit/"), posted("/ours/")
        )


def assert_zipkin_v1(span: dict[str, Any]) -> None:
    """The shape of a Zipkin v1 JSON span as the legacy sidecar pipeline carries it."""
    assert {"traceId", "id", "parentId", "name", "timestamp", "duration"} <= set(span)
    for key in ("traceId", "id", "parentId", "timestamp", "duration"):
        assert isinstance(span[key], int) and span[key] >= 0, key
    assert 0 < span["id"] < 2**64 and 0 < span["traceId"] < 2**64
    assert isinstance(span["name"], str) and span["duration"] >= 1
    for annotation in span["annotations"]:
        assert set(annotation) == {"endpoint", "timestamp", "value"}
        assert isinstance(annotation["timestamp"], int) and isinstance(annotation["value"], str)
    for annotation in span["binaryAnnotations"]:
        assert set(annotation) == {"key", "value", "endpoint"}
        assert isinstance(annotation["value"], (bool, str))
    endpoints = [a["endpoint"] for a in span["annotations"] + span["binaryAnnotations"]]
    for endpoint in endpoints:
        assert set(endpoint) == {"serviceName", "ipv4"}
        ipaddress.IPv4Address(endpoint["ipv4"])
    assert len({endpoint["serviceName"] for endpoint in endpoints}) == 1


def test_our_sidecar_spans_arrive_through_reddits_publisher(trace_exchange: TraceExchange) -> None:
    assert {r.path for r in trace_exchange.by_reddit} == {"/reddit/api/v1/spans"}
    assert all(r.header("Content-Type") == "application/json" for r in trace_exchange.by_reddit)
    posted = {
        span["id"]: span
        for span in trace_exchange.of_service(trace_exchange.by_reddit, "our-service")
    }

    recorded = {span.context.span_id: span for span in trace_exchange.our_spans}
    assert set(posted) == set(recorded)
    by_name = {span["name"]: span for span in posted.values()}
    assert set(by_name) == {"our_method", "redis.GET", "render"}
    server, client, local = by_name["our_method"], by_name["redis.GET"], by_name["render"]
    assert server["id"] == OUR_SERVER_ID and server["parentId"] == PARENT_ID
    assert client["parentId"] == local["parentId"] == OUR_SERVER_ID
    for span in posted.values():
        assert_zipkin_v1(span)
        assert span["traceId"] == TRACE_ID
        otel_span = recorded[span["id"]]
        assert otel_span.start_time is not None and otel_span.end_time is not None
        assert span["timestamp"] == otel_span.start_time // 1000
        assert span["duration"] == max(1, (otel_span.end_time - otel_span.start_time) // 1000)
    assert [a["value"] for a in server["annotations"]] == ["sr", "ss"]
    # Ours also records the exception as a third annotation; reddit's recorder did not.
    assert [a["value"] for a in client["annotations"]][:2] == ["cs", "cr"]
    assert local["annotations"] == []
    tags = {
        name: {a["key"]: a["value"] for a in span["binaryAnnotations"]}
        for name, span in by_name.items()
    }
    assert tags["our_method"]["http.status_code"] == "200"
    assert tags["redis.GET"]["key_count"] == "2" and tags["redis.GET"]["error"] is True
    assert tags["render"]["lc"] == "templates" and tags["render"]["cached"] is True


def test_reddit_sidecar_spans_arrive_through_our_publisher(trace_exchange: TraceExchange) -> None:
    assert {r.path for r in trace_exchange.by_ours} == {"/ours/api/v1/spans"}
    (request,) = trace_exchange.by_ours
    assert request.header("Content-Type") == "application/json"
    assert request.body == b"[" + b",".join(trace_exchange.peer_messages) + b"]"

    spans = {span["name"]: span for span in json.loads(request.body)}
    for span in spans.values():
        assert_zipkin_v1(span)
    ids = trace_exchange.peer_ids
    assert {name: (s["traceId"], s["id"], s["parentId"]) for name, s in spans.items()} == {
        "peer_method": (TRACE_ID, PEER_SERVER_ID, PARENT_ID),
        "redis.GET": (TRACE_ID, ids["client"], PEER_SERVER_ID),
        "render": (TRACE_ID, ids["local"], PEER_SERVER_ID),
    }


def test_both_trace_publishers_send_the_same_spans(trace_exchange: TraceExchange) -> None:
    from_reddit = trace_exchange.of_service(trace_exchange.by_reddit, "reddit-service")
    from_ours = TraceExchange.spans(trace_exchange.by_ours)

    assert from_ours == from_reddit
    assert from_ours == [json.loads(message) for message in trace_exchange.peer_messages]
    ours, theirs = trace_exchange.by_ours[0], trace_exchange.by_reddit[0]
    for name in ("Content-Type", "User-Agent"):
        assert ours.header(name) == theirs.header(name), name


def test_debug_traces_are_marked_alike(trace_exchange: TraceExchange) -> None:
    """Reddit's recorder tags every span of a debug-flagged trace ``debug: true``."""
    ours = trace_exchange.of_service(trace_exchange.by_reddit, "our-service")
    theirs = trace_exchange.of_service(trace_exchange.by_reddit, "reddit-service")

    for span in ours + theirs:
        debug = [a for a in span["binaryAnnotations"] if a["key"] == "debug"]
        assert [a["value"] for a in debug] == [True], span["name"]
