"""The statsd transport never waits on the request path: it queues, a background sender
resolves and sends. Real UDP sockets on loopback; the hanging resolver is a function that
blocks (no DNS server can be made to hang here)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

from exporters.statsd.transport import UDPTransport
from tests.statsd_helpers import UDPReceiver


def test_a_resolver_that_never_answers_costs_send_nothing() -> None:
    released = threading.Event()
    calls = []

    def hanging_resolver(*args: Any) -> Any:
        calls.append(args)
        released.wait(30)
        raise socket.gaierror("gave up")

    transport = UDPTransport(
        socket.AF_INET, ("statsd.example", 8125), resolve=hanging_resolver, max_queued=100
    )
    try:
        transport.send(b"ns.c:1|c")
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls  # the sender is inside the lookup, which never answers...
        for _ in range(1000):
            transport.send(b"ns.c:1|c")  # ...and sending returns all the same
        assert not released.is_set()
        assert transport.dropped >= 1000 - 100  # the queue stayed bounded
        assert transport.flush(0.05) is False
    finally:
        released.set()
    assert transport.flush(10)
    assert transport.datagrams_sent == 0 and transport.send_errors >= 1


def test_sends_arrive_in_order_from_the_background() -> None:
    receiver = UDPReceiver()
    try:
        transport = UDPTransport(socket.AF_INET, ("127.0.0.1", receiver.port))
        for i in range(50):
            transport.send(b"ns.c:%d|c" % i)
        assert transport.flush(10)
        assert receiver.receive(50) == [b"ns.c:%d|c" % i for i in range(50)]
        assert transport.datagrams_sent == 50
    finally:
        receiver.close()


def test_a_moved_host_is_followed() -> None:
    first, second = UDPReceiver(), UDPReceiver()
    target = {"port": first.port}

    def resolver(host: str, port: int, *args: Any) -> Any:
        return socket.getaddrinfo("127.0.0.1", target["port"], 0, socket.SOCK_DGRAM)

    try:
        transport = UDPTransport(
            socket.AF_INET, ("statsd.example", 8125), resolve=resolver, resolve_interval=0.0
        )
        transport.send(b"a:1|c")
        assert transport.flush(10)
        target["port"] = second.port
        transport.send(b"b:1|c")
        assert transport.flush(10)
        assert first.receive(1) == [b"a:1|c"]
        assert second.receive(1) == [b"b:1|c"]
    finally:
        first.close()
        second.close()


SEND_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import socket, sys, threading
from exporters.statsd.transport import UDPTransport
transport = UDPTransport(socket.AF_INET, ("127.0.0.1", int(sys.argv[1])))
for i in range(10):
    transport.send(b"g:%d|c" % i)
assert transport.flush(10)
names = [t.name for t in threading.enumerate()]
print(transport.datagrams_sent, len(names))
"""


def test_sender_under_gevent_is_a_native_thread() -> None:
    receiver = UDPReceiver()
    try:
        result = subprocess.run(
            [sys.executable, "-c", SEND_UNDER_GEVENT, str(receiver.port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[0] == "10"
        assert receiver.receive(10) == [b"g:%d|c" % i for i in range(10)]
    finally:
        receiver.close()


FORKED = """
import os, socket, sys
from exporters.statsd.transport import UDPTransport
transport = UDPTransport(socket.AF_INET, ("127.0.0.1", int(sys.argv[1])))
transport.send(b"parent:1|c")
assert transport.flush(10)
pid = os.fork()
if pid == 0:
    transport.send(b"child:1|c")
    os._exit(0 if transport.flush(10) else 1)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_worker_gets_its_own_sender() -> None:
    receiver = UDPReceiver()
    try:
        result = subprocess.run(
            [sys.executable, "-c", FORKED, str(receiver.port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(receiver.receive(2)) == [b"child:1|c", b"parent:1|c"]
    finally:
        receiver.close()
