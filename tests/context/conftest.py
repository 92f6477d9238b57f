"""Fixtures for the client integrations: a private tracer provider, a running server span,
and throw-away redis/memcached servers on free ports for fault tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.core import Baseplate, RequestContext, ServerSpan


@pytest.fixture
def context() -> RequestContext:
    return RequestContext()


@pytest.fixture
def server_span(baseplate: Baseplate, context: RequestContext) -> Iterator[ServerSpan]:
    """A started server span (the request); finished at the end of the test if still open."""
    span = baseplate.make_server_span(context, "handler")
    span.start()
    yield span
    span.finish()


def finished(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name``."""
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = finished(exporter, name)
    assert len(spans) == 1, [span.name for span in exporter.get_finished_spans()]
    return spans[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, up: bool = True, attempts: int = 400) -> None:
    for _ in range(attempts):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        time.sleep(0.025)
    raise AssertionError(f"port {port} never became {'reachable' if up else 'closed'}")


class LocalServer:
    """A server process of our own on a free port, that a test can kill and restart."""

    def __init__(self, argv: list[str], port: int):
        self.argv = argv
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
            wait_for_port(self.port, up=False)


def _local_server(argv: list[str], port: int) -> Iterator[LocalServer]:
    assert shutil.which(argv[0]), f"{argv[0]} is not installed"
    server = LocalServer(argv, port)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def own_redis() -> Iterator[LocalServer]:
    """A redis-server of our own (the shared one on 6379 must never be killed)."""
    port = free_port()
    yield from _local_server(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        port,
    )


@pytest.fixture
def own_memcached() -> Iterator[LocalServer]:
    """A memcached of our own (the shared one on 11211 must never be killed)."""
    port = free_port()
    yield from _local_server(
        ["memcached", "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-u", "nobody"], port
    )


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


class TcpProxy:
    """A TCP forwarder to a shared server: killing it drops every connection through it,
    as if that server died, without touching the server other tests use."""

    def __init__(self, upstream: tuple[str, int], port: int | None = None):
        self.upstream = upstream
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


REPO = Path(__file__).resolve().parents[2]


def ensure_service(port: int) -> None:
    """Start the shared services (``scripts/services.sh``, idempotent) if ``port`` is closed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
    except OSError:
        pass
    subprocess.run(
        ["bash", str(REPO / "scripts" / "services.sh")],
        cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=120,
    )
    wait_for_port(port)
