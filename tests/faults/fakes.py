"""Telemetry back ends for the fault suite, on loopback in the test process.

:class:`FakeHTTPBackend` stands in for a Zipkin or OTLP collector or a Sentry server, in one
of the modes the suite injects: ``healthy`` (answers at once), ``500`` (answers 500 at once),
``slow`` (answers after :data:`SLOW_ANSWER` seconds), ``hanging`` (accepts connections, reads
what comes and never answers) and ``refused`` (a port nothing listens on).
:class:`StatsdSink` is a UDP socket that counts the datagrams sent to it. :class:`SidecarQueue`
is the sidecar exporter's POSIX trace queue, read by a process as the trace publisher would,
or full.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

#: Seconds the ``slow`` back end takes to answer each request.
SLOW_ANSWER = 2.0

MODES = ("healthy", "500", "slow", "hanging", "refused")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeHTTPBackend:
    """An HTTP back end in one of :data:`MODES`; ``requests`` counts the requests it read."""

    def __init__(self, mode: str, healthy_status: int = 200, body: bytes = b"") -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.requests = 0
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        if mode == "refused":
            self.port = _free_port()
        elif mode == "hanging":
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            listener.settimeout(0.1)
            self._sockets.append(listener)
            self.port = listener.getsockname()[1]
            self._spawn(self._hang, listener)
        else:
            self._server = self._http_server(mode, healthy_status, body)
            self.port = self._server.server_address[1]
            self._spawn(self._server.serve_forever, 0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _http_server(
        self, mode: str, healthy_status: int, body: bytes
    ) -> http.server.ThreadingHTTPServer:
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                backend.requests += 1
                if mode == "slow" and backend._closing.wait(SLOW_ANSWER):
                    return
                status = 500 if mode == "500" else healthy_status
                answer = b"" if mode == "500" else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def _hang(self, listener: socket.socket) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.requests += 1
            self._sockets.append(connection)
            self._spawn(self._swallow, connection)

    def _swallow(self, connection: socket.socket) -> None:
        # read (so the client's sends never block) and never answer
        connection.settimeout(0.1)
        while not self._closing.is_set():
            try:
                if not connection.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)


class StatsdSink:
    """A UDP socket standing in for statsd: counts what it receives, from a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.datagrams = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closing.is_set():
            try:
                self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            self.datagrams += 1

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self.sock.close()


def wait_for(predicate: Any, limit: float = 10.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


#: Most messages a POSIX queue may hold without privileges (``fs.mqueue.msg_max``'s default).
SIDECAR_QUEUE_MESSAGES = 10
#: The message size the trace queues here are made with (``fs.mqueue.msgsize_max``'s default).
SIDECAR_MESSAGE_SIZE = 8192

_DRAINER = """
import signal, sys, posix_ipc
queue = posix_ipc.MessageQueue(sys.argv[1])
received = 0
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
print("draining", flush=True)
while not stopping:
    try:
        queue.receive()
    except posix_ipc.SignalError:
        continue
    received += 1
print(received, flush=True)
"""


class SidecarQueue:
    """The trace queue ``/traces-<queue_name>`` of the sidecar exporter, made here beforehand
    (an existing queue keeps its sizes), in one of two modes: ``healthy``, a process reads
    every message at once, as the trace publisher would; ``full``, a queue of
    ``max_messages`` that is full already and that nobody reads. ``requests`` is the number
    of messages read (known at close).

    The reader is a process of its own, so that the load's threads do not slow it down. The
    queue is removed at close: queues count against the user's ``RLIMIT_MSGQUEUE``.
    """

    def __init__(self, mode: str, max_messages: int = SIDECAR_QUEUE_MESSAGES) -> None:
        import posix_ipc

        if mode not in ("healthy", "full"):
            raise ValueError(mode)
        self.mode = mode
        self.queue_name = f"faults-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = "/traces-" + self.queue_name
        self.requests = 0
        self._queue = posix_ipc.MessageQueue(
            self.path,
            posix_ipc.O_CREAT | posix_ipc.O_EXCL,
            max_messages=max_messages,
            max_message_size=SIDECAR_MESSAGE_SIZE,
        )
        self._reader: subprocess.Popen[str] | None = None
        if mode == "healthy":
            self._reader = subprocess.Popen(
                [sys.executable, "-c", _DRAINER, self.path],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._reader.stdout is not None
            self._reader.stdout.readline()  # it has the queue open
        else:
            for _ in range(max_messages):
                self._queue.send(b"{}", timeout=0)

    @property
    def current_messages(self) -> int:
        return int(self._queue.current_messages)

    def stop(self) -> None:
        """Stop reading; ``requests`` is then the number of messages read."""
        if self._reader is not None:
            self._reader.send_signal(signal.SIGTERM)
            out, _ = self._reader.communicate(timeout=10)
            self.requests = int(out.split()[-1])
            self._reader = None

    def close(self) -> None:
        import posix_ipc

        self.stop()
        self._queue.close()
        try:
            posix_ipc.unlink_message_queue(self.path)
        except posix_ipc.ExistentialError:
            pass
