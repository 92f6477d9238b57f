"""Fixtures for the export tests: local collectors, span builders, trace queues.

Used by the exporter tests here (through this folder's conftest) and by the tracing
configuration tests in tests/tracing, which export through the same collectors.
"""

from __future__ import annotations

import collections
import http.server
import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from otel_bridge import semconv

HERE = pathlib.Path(__file__).parent
SCHEMA_PATH = HERE / "zipkin2-spans.schema.json"
ROTEL = (
    pathlib.Path(__file__).resolve().parents[2]
    / ".venv/lib/python3.11/site-packages/rotel/rotel-agent"
)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


# -- a Zipkin-like HTTP receiver ------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP collector recording every POST; ``status`` is what it answers."""

    server: http.server.ThreadingHTTPServer
    status: int = 202
    requests: list[Received] = field(default_factory=list)
    #: Statuses to answer first, one per request, before falling back to ``status``.
    answers: collections.deque[int] = field(default_factory=collections.deque)
    #: When set, the next request is not answered until ``release`` is set.
    hold_next: bool = False
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def spans(self) -> list[Any]:
        return [span for request in self.requests for span in request.json()]


def _start_receiver() -> tuple[Receiver, threading.Thread]:
    receiver: Receiver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            receiver.requests.append(Received(self.path, headers, body))
            if receiver.hold_next:
                receiver.hold_next = False
                receiver.release.wait(60)
            status = receiver.answers.popleft() if receiver.answers else receiver.status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return receiver, thread


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP receiver answering 202 and recording requests."""
    server_receiver, thread = _start_receiver()
    yield server_receiver
    server_receiver.release.set()
    server_receiver.server.shutdown()
    server_receiver.server.server_close()
    thread.join(5)


@pytest.fixture
def refused_address() -> str:
    """``127.0.0.1:<port>`` where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def hanging_address() -> Iterator[str]:
    """``127.0.0.1:<port>`` that accepts connections (in its backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        host, port = sock.getsockname()
        yield f"{host}:{port}"


@pytest.fixture
def zipkin_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


# -- building spans ---------------------------------------------------------------------------


class QueuedIdGenerator(IdGenerator):
    """Hands out the ids queued by a test, then random ones."""

    def __init__(self) -> None:
        self.span_ids: collections.deque[int] = collections.deque()
        self.trace_ids: collections.deque[int] = collections.deque()
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self.span_ids.popleft() if self.span_ids else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        if self.trace_ids:
            return self.trace_ids.popleft()
        return self._random.generate_trace_id() >> 64 or 1


@dataclass
class SpanMaker:
    """An SDK provider with a tracer named "baseplate" whose finished spans are collected."""

    provider: TracerProvider
    ids: QueuedIdGenerator
    memory: InMemorySpanExporter

    @property
    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer(semconv.TRACER_NAME)

    def vendor_tracer(self, name: str = "opentelemetry.instrumentation.requests") -> Any:
        return self.provider.get_tracer(name)

    def finished(self) -> list[ReadableSpan]:
        return list(self.memory.get_finished_spans())

    def clear(self) -> None:
        self.memory.clear()

    def remote_parent(
        self,
        trace_id: int,
        span_id: int,
        sampled: bool = True,
        flags: int = 0,
    ) -> otel_context.Context:
        """A context whose current span is a remote (upstream) span."""
        state = TraceState([(semconv.TRACE_STATE_FLAGS, str(flags))]) if flags else TraceState()
        parent = SpanContext(
            trace_id,
            span_id,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
            trace_state=state,
        )
        return trace.set_span_in_context(NonRecordingSpan(parent))


@pytest.fixture
def spans() -> Iterator[SpanMaker]:
    ids = QueuedIdGenerator()
    memory = InMemorySpanExporter()
    provider = TracerProvider(id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield SpanMaker(provider, ids, memory)
    provider.shutdown()


# -- POSIX trace queues ------------------------------------------------------------------------


@pytest.fixture
def trace_queue_name() -> Iterator[str]:
    """A unique ``tracing.queue_name``; its queue is removed afterwards."""
    import posix_ipc

    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        posix_ipc.unlink_message_queue("/traces-" + name)
    except posix_ipc.ExistentialError:
        pass


# -- the rotel OTLP collector ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Collector:
    """A running rotel agent with an OTLP/HTTP receiver that logs every span it receives."""

    http_endpoint: str
    output: pathlib.Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture
def rotel(tmp_path: pathlib.Path) -> Iterator[Collector]:
    http_port, grpc_port = free_port(), free_port()
    output = tmp_path / "rotel.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [
                str(ROTEL),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{grpc_port}",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def accepting() -> bool:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(accepting, timeout=20)
        yield Collector(f"http://127.0.0.1:{http_port}", output)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
