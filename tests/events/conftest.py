"""Fixtures for the event tests: real POSIX event queues and a local HTTP event collector."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from baseplate.events import EventQueue
from baseplate.message_queue import MessageQueue


def _kernel_limit(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/fs/mqueue/{name}") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return default


#: A queue size the kernel lets an unprivileged process create (msg_max is often 10 and
#: msgsize_max 8192 by default). Kept small: every queue open by this user counts against
#: RLIMIT_MSGQUEUE, which all tests running on the machine share.
TEST_QUEUE_MESSAGES = min(10, _kernel_limit("msg_max", 10))
TEST_QUEUE_MESSAGE_SIZE = min(4096, _kernel_limit("msgsize_max", 4096))


class EventQueues:
    """Opens queues on one fresh ``/events-<name>`` and closes them all after the test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._opened: list[MessageQueue] = []

    def track(self, queue: MessageQueue) -> MessageQueue:
        """Close ``queue`` after the test (descriptors are not closed on garbage collection)."""
        self._opened.append(queue)
        return queue

    def event_queue(self, **kwargs: Any) -> EventQueue:
        """An EventQueue on the test queue."""
        event_queue = EventQueue(self.name, **kwargs)
        self.track(event_queue.queue)
        return event_queue

    def reader(self) -> MessageQueue:
        """Another handle on the test queue, for reading what was put."""
        return self.track(MessageQueue(f"/events-{self.name}", max_messages=1, max_message_size=1))

    def close(self) -> None:
        for queue in self._opened:
            queue.close()


@pytest.fixture
def queues() -> Iterator[EventQueues]:
    """A fresh event queue, ``/events-<name>``, removed after the test.

    The production queue (10000 messages of 100 KiB) is above this machine's kernel
    limits for message queues, so the test creates a smaller queue first; EventQueue and
    the publisher then open the existing queue, exactly as they do in production when
    one of them created it.
    """
    name = f"test-{uuid.uuid4().hex[:12]}"
    created = MessageQueue(
        f"/events-{name}",
        max_messages=TEST_QUEUE_MESSAGES,
        max_message_size=TEST_QUEUE_MESSAGE_SIZE,
    )
    queues = EventQueues(name)
    try:
        yield queues
    finally:
        queues.close()
        created.unlink()
        created.close()


@dataclass
class ReceivedRequest:
    """One request the collector received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def decompressed(self) -> bytes:
        """The body, gunzipped."""
        return gzip.decompress(self.body)


@dataclass
class Collector:
    """A local HTTP server standing in for the event collector.

    ``statuses`` are the response codes for the next requests, in order; once used up
    every request gets 200.
    """

    port: int
    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    received: threading.Condition = field(default_factory=threading.Condition)

    @property
    def hostname(self) -> str:
        """``host:port`` for ``collector.hostname``."""
        return f"127.0.0.1:{self.port}"

    def wait_for_requests(self, count: int, timeout: float = 20.0) -> list[ReceivedRequest]:
        """Wait until ``count`` requests have arrived and return them."""
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            assert len(self.requests) >= count, f"got {len(self.requests)} requests"
            return list(self.requests)


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A running local collector on 127.0.0.1."""
    state: Collector

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with state.received:
                status = state.statuses.pop(0) if state.statuses else 200
                state.requests.append(
                    ReceivedRequest("POST", self.path, dict(self.headers.items()), body)
                )
                state.received.notify_all()
            response = b'{"error": "rejected"}' if status >= 400 else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Collector(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def statsd() -> Iterator[socket.socket]:
    """A UDP socket receiving statsd datagrams, standing in for the statsd daemon."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    try:
        yield sock
    finally:
        sock.close()
