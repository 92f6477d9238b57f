"""Fixtures for the Thrift tests: real Thrift servers on loopback.

Servers run in this process (a thread per connection, like thrift's TThreadedServer) or, when
a test needs to kill a server outright, in a child process (``serve_health.py``).
"""

from __future__ import annotations

import importlib
import logging
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from thrift.protocol.THeaderProtocol import THeaderProtocol, THeaderProtocolFactory
from thrift.server.TServer import TThreadedServer
from thrift.Thrift import TProcessor
from thrift.transport.THeaderTransport import THeaderClientType
from thrift.transport.TSocket import TServerSocket, TSocket
from thrift.transport.TTransport import TTransportFactoryBase

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.core import Baseplate
from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Every client dialect a baseplate Thrift server accepts (THeaderTransport detects which).
ALL_CLIENT_TYPES = (
    THeaderClientType.HEADERS,
    THeaderClientType.FRAMED_BINARY,
    THeaderClientType.UNFRAMED_BINARY,
    THeaderClientType.FRAMED_COMPACT,
    THeaderClientType.UNFRAMED_COMPACT,
)


def wait_until(predicate: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll ``predicate`` with short sleeps until it holds (fail after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class LoopbackThriftServer:
    """A threaded Thrift server on 127.0.0.1 (or a unix socket) that can be stopped.

    Stopping closes every connection, as a dying server would.
    """

    def __init__(
        self, processor: TProcessor, port: int = 0, unix_socket: str | None = None
    ) -> None:
        self.endpoint: EndpointConfiguration
        if unix_socket:
            self.transport = TServerSocket(unix_socket=unix_socket, socket_family=socket.AF_UNIX)
            self.transport.listen()
            self.port = 0
            self.endpoint = EndpointConfiguration(socket.AF_UNIX, unix_socket)
        else:
            self.transport = TServerSocket(
                host="127.0.0.1", port=port, socket_family=socket.AF_INET
            )
            self.transport.listen()
            self.port = self.transport.handle.getsockname()[1]
            self.endpoint = EndpointConfiguration(
                socket.AF_INET, InternetAddress("127.0.0.1", self.port)
            )
        self.server = TThreadedServer(
            processor,
            self.transport,
            TTransportFactoryBase(),
            THeaderProtocolFactory(allowed_client_types=ALL_CLIENT_TYPES),
            daemon=True,
        )
        self.accepted = 0
        self.clients: list[Any] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client = self.transport.accept()
            except Exception:
                if self._stopped:
                    return
                raise
            with self._lock:
                if self._stopped:
                    client.close()
                    return
                self.accepted += 1
                self.clients.append(client)
                thread = threading.Thread(target=self.server.handle, args=(client,), daemon=True)
                self._threads.append(thread)
            thread.start()

    @property
    def open_connections(self) -> int:
        """Connections the server has accepted and not yet closed."""
        with self._lock:
            return sum(1 for client in self.clients if client.handle is not None)

    def stop(self) -> None:
        """Stop listening and close every connection, as a dying server would."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            clients = list(self.clients)
        try:
            self.transport.handle.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.transport.close()
        for client in clients:
            handle = client.handle
            if handle is not None:
                try:
                    handle.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def thrift_server() -> Iterator[Callable[..., LoopbackThriftServer]]:
    """Start loopback Thrift servers for a processor; all are stopped after the test."""
    servers: list[LoopbackThriftServer] = []

    def start(
        processor: TProcessor, port: int = 0, unix_socket: str | None = None
    ) -> LoopbackThriftServer:
        server = LoopbackThriftServer(processor, port, unix_socket)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(predicate, what)``: poll until the predicate holds."""
    return wait_until


class ChildThriftServer:
    """``serve_health.py`` in a child process: a real server that can be SIGKILLed."""

    def __init__(self, port: int) -> None:
        self.port = port
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.process = subprocess.Popen(
            [sys.executable, str(pathlib.Path(__file__).with_name("serve_health.py")), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "listening", f"server did not start: {line!r}"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def child_server() -> Iterator[Callable[[int], ChildThriftServer]]:
    """Start ``serve_health.py`` servers in child processes; all are killed after the test."""
    children: list[ChildThriftServer] = []

    def start(port: int) -> ChildThriftServer:
        child = ChildThriftServer(port)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.process.poll() is None:
            child.kill()


@pytest.fixture(scope="session")
def example_service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generated ``ExampleService`` module of ``example.thrift``, compiled for this run."""
    out = tmp_path_factory.mktemp("thrift-gen")
    subprocess.run(
        [
            "thrift",
            "--gen",
            "py",
            "-I",
            str(REPO_ROOT / "baseplate" / "thrift"),
            "-out",
            str(out),
            str(pathlib.Path(__file__).with_name("example.thrift")),
        ],
        check=True,
    )
    sys.path.insert(0, str(out))
    return importlib.import_module("example_service.ExampleService")



@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A private tracer provider for this test, exporting to ``exporter``."""
    tracer_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "example-service"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()



@pytest.fixture
def baseplate_server(
    thrift_server: Callable[..., LoopbackThriftServer], example_service: Any
) -> Callable[..., LoopbackThriftServer]:
    """Serve an ExampleService handler the way a baseplate application does."""

    def start(
        handler: Any, baseplate: Baseplate, edge_context_factory: Any = None
    ) -> LoopbackThriftServer:
        processor = ContextProcessor(example_service.Processor(handler))
        processor.setEventHandler(
            BaseplateProcessorEventHandler(
                logging.getLogger("example"), baseplate, edge_context_factory
            )
        )
        return thrift_server(processor)

    return start


class HeaderClient:
    """A client sending fixed THeader headers with every call, as a legacy baseplate client does."""

    def __init__(self, service: Any, port: int, headers: dict[bytes, bytes]) -> None:
        self.headers = headers
        self.protocol = THeaderProtocol(TSocket("127.0.0.1", port), [THeaderClientType.HEADERS])
        self.protocol.trans.open()
        self.client = service.Client(self.protocol)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        def call(*args: Any) -> Any:
            # THeader forgets its write headers once a message is sent
            for key, value in self.headers.items():
                self.protocol.set_header(key, value)
            return method(*args)

        return call

    def close(self) -> None:
        self.protocol.trans.close()


@pytest.fixture
def header_client(example_service: Any) -> Iterator[Callable[..., HeaderClient]]:
    """``header_client(server, headers)``: an ExampleService client sending ``headers``."""
    clients: list[HeaderClient] = []

    def connect(server: LoopbackThriftServer, headers: dict[bytes, bytes] | None = None) -> Any:
        client = HeaderClient(example_service, server.port, headers or {})
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
