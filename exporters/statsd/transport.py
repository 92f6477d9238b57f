"""Where statsd lines go: a UDP (or UNIX datagram) socket, or nowhere.

Sending never raises nor waits: lines are queued for a background sender. An unresolvable
or hanging host, nothing listening, a full socket buffer or an oversize datagram loses that
datagram, is counted in ``send_errors`` and is logged at most once per
``error_log_interval`` seconds.
"""

from __future__ import annotations

import _thread
import atexit
import collections
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, Union

from exporters._ratelimit import RateLimitedLog
from exporters.statsd.wire import DEFAULT_MAX_DATAGRAM_SIZE, pack_datagrams

logger = logging.getLogger(__name__)

#: Datagrams waiting for the background sender at most; more are dropped and counted.
DEFAULT_MAX_QUEUED_DATAGRAMS = 10_000

#: A socket address: ``(host, port)`` for UDP or a filesystem path for a UNIX socket.
Address = Union[tuple[str, int], str]


class Transport(Protocol):
    """Something that sends statsd lines."""

    def send(self, serialized: bytes) -> None:
        """Send one or more lines joined by ``\\n``; never raises for a delivery problem."""


class NullTransport:
    """A transport that discards every line (logged at debug level)."""

    def send(self, serialized: bytes) -> None:
        """Discard the lines."""
        if logger.isEnabledFor(logging.DEBUG):
            for line in serialized.split(b"\n"):
                logger.debug("Would send metric %r", line)


class UDPTransport:
    """Send lines as datagrams of at most ``max_datagram_size`` bytes to a statsd daemon.

    ``family`` is :data:`socket.AF_INET` (``address`` is ``(host, port)``; IPv6 hosts work
    too) or :data:`socket.AF_UNIX` (``address`` is a path).

    :meth:`send` only queues: a background sender (an operating-system thread, also under
    gevent) resolves the host, owns the socket and sends, so neither a DNS lookup nor a
    syscall ever runs on the request path, and a resolver that hangs or fails costs a
    request nothing. The host is resolved on first use and again every
    ``resolve_interval`` seconds (a moved statsd is followed); after a failure it is retried
    at most every ``reconnect_interval`` seconds. Datagrams that cannot be sent, and those
    past ``max_queued`` waiting, are dropped and counted.

    ``resolve`` replaces :func:`socket.getaddrinfo` (for tests).
    """

    def __init__(
        self,
        family: int,
        address: Address,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
        *,
        reconnect_interval: float = 5.0,
        error_log_interval: float = 10.0,
        resolve_interval: float = 60.0,
        max_queued: int = DEFAULT_MAX_QUEUED_DATAGRAMS,
        resolve: Callable[..., Any] | None = None,
    ) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            raise ValueError(f"unsupported address family for statsd: {family!r}")
        if max_datagram_size < 1:
            raise ValueError(f"max_datagram_size must be positive, got {max_datagram_size!r}")
        self.family = family
        self.address = address
        self.max_datagram_size = max_datagram_size
        self.reconnect_interval = reconnect_interval
        self.resolve_interval = resolve_interval
        self.max_queued = max_queued
        #: Datagrams handed to the kernel.
        self.datagrams_sent = 0
        #: Datagrams lost to a resolution or send error.
        self.send_errors = 0
        #: Datagrams dropped because more than ``max_queued`` were waiting.
        self.dropped = 0
        self._resolve = resolve
        self._errors = RateLimitedLog(logger, error_log_interval)
        self._queue: collections.deque[bytes] = collections.deque()
        self._sender = _Sender(self)

    def send(self, serialized: bytes) -> None:
        """Queue lines joined by ``\\n`` for the background sender; never blocks or raises."""
        queue = self._queue
        if len(queue) >= self.max_queued:
            self.dropped += 1
            return
        queue.append(serialized)
        self._sender.wake()

    def telemetry_counts(self) -> dict[str, int]:
        """What became of the datagrams given to :meth:`send`, for the health metrics."""
        return {
            "metrics.sent": self.datagrams_sent,
            "metrics.failed": self.send_errors,
            "metrics.dropped": self.dropped,
            "metrics.queued": len(self._queue),
        }

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` seconds until everything queued was sent (or dropped);
        whether it was."""
        return self._sender.drain(timeout)

    def close(self) -> None:
        """Close the socket; the next datagram opens a new one."""
        self._sender.close_socket()

    def _describe(self) -> str:
        if isinstance(self.address, tuple):
            return f"{self.address[0]}:{self.address[1]}"
        return str(self.address)


class _Sender:
    """The background side of a :class:`UDPTransport`: one thread per process that sends."""

    # How long the thread naps when nothing is queued, doubling while nothing comes: metrics
    # are not urgent, and polling is cheaper for the request path than waking the thread
    # for every datagram.
    MIN_IDLE_WAIT = 0.001
    MAX_IDLE_WAIT = 0.05

    def __init__(self, transport: UDPTransport) -> None:
        self.transport = transport
        self._pid = 0
        self._thread_alive = False
        self._busy = False
        self._socket: socket.socket | None = None
        self._resolved_at = 0.0
        self._next_connect = 0.0
        self._sleep: Callable[[float], None] = time.sleep

    def wake(self) -> None:
        if self._pid != os.getpid() or not self._thread_alive:
            self._start()

    def _start(self) -> None:
        start_thread, self._sleep = _native_threading()
        with _start_lock:
            if self._pid == os.getpid() and self._thread_alive:
                return
            if self._pid != os.getpid():  # forked: the parent's socket is not ours
                self._socket = None
            if not self._pid:  # first start: metrics still queued at exit get a moment
                atexit.register(_drain_at_exit, weakref.ref(self))
            self._pid = os.getpid()
            self._thread_alive = True
            start_thread(self._run, ())

    def drain(self, timeout: float) -> bool:
        if not self.transport._queue and not self._busy:
            return True
        self.wake()
        deadline = time.monotonic() + timeout
        while self.transport._queue or self._busy:
            if time.monotonic() >= deadline:
                return False
            _cooperative_sleep(0.001)
        return True

    def close_socket(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _run(self) -> None:
        queue = self.transport._queue
        pid = self._pid
        wait = self.MIN_IDLE_WAIT
        try:
            while pid == os.getpid():
                if not queue:
                    self._sleep(wait)
                    wait = min(wait * 2, self.MAX_IDLE_WAIT)
                    continue
                wait = self.MIN_IDLE_WAIT
                self._busy = True
                try:
                    while queue:
                        self._send(queue.popleft())
                finally:
                    self._busy = False
        except Exception:  # the sender must not die silently; a new one starts on demand
            logger.exception("statsd sender stopped")
        finally:
            self._thread_alive = False

    def _send(self, serialized: bytes) -> None:
        transport = self.transport
        if len(serialized) <= transport.max_datagram_size:
            self._send_datagram(serialized)
            return
        for datagram in pack_datagrams(serialized.split(b"\n"), transport.max_datagram_size):
            self._send_datagram(datagram)

    def _send_datagram(self, datagram: bytes) -> None:
        transport = self.transport
        sock = self._connected()
        if sock is None:
            transport.send_errors += 1
            return
        try:
            sock.send(datagram)
        except OSError as exc:
            transport.send_errors += 1
            transport._errors.warning(
                "could not send %d bytes of metrics to statsd at %s: %s",
                len(datagram),
                transport._describe(),
                exc,
            )
        else:
            transport.datagrams_sent += 1

    def _connected(self) -> socket.socket | None:
        now = time.monotonic()
        sock = self._socket
        if sock is not None and now - self._resolved_at < self.transport.resolve_interval:
            return sock
        if sock is None and now < self._next_connect:
            return None
        try:
            fresh = self._open()
        except OSError as exc:  # includes socket.gaierror (DNS)
            self._next_connect = now + self.transport.reconnect_interval
            if sock is not None:  # keep the old address until the new one resolves
                self._resolved_at = now
                return sock
            self.transport._errors.warning(
                "could not reach statsd at %s, dropping metrics: %s",
                self.transport._describe(),
                exc,
            )
            return None
        self._socket, self._resolved_at = fresh, now
        if sock is not None:
            sock.close()
        return fresh

    def _open(self) -> socket.socket:
        transport = self.transport
        socket_class, getaddrinfo = _native_socket()
        if isinstance(transport.address, str):
            candidates: list[tuple[int, object]] = [(socket.AF_UNIX, transport.address)]
        else:
            host, port = transport.address
            resolve = transport._resolve or getaddrinfo
            infos = resolve(host.strip("[]"), port, 0, socket.SOCK_DGRAM)
            candidates = [(info[0], info[4]) for info in infos]
        error: OSError = OSError(f"no address found for {transport._describe()}")
        for family, sockaddr in candidates:
            sock = socket_class(family, socket.SOCK_DGRAM)
            try:
                # Connected, so the kernel reports "nothing listening" back to us.
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            # Dropping a datagram is better than waiting on a full buffer.
            sock.setblocking(False)
            return sock
        raise error


_start_lock = threading.Lock()

#: Seconds the process waits at exit for metrics still queued.
EXIT_DRAIN_TIMEOUT = 0.5


def _drain_at_exit(sender: weakref.ref[_Sender]) -> None:
    live = sender()
    if live is not None and live._pid == os.getpid():
        live.drain(EXIT_DRAIN_TIMEOUT)


def _gevent_patched(module: str, name: str) -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_object_patched(module, name))


def _native_threading() -> tuple[Callable[..., Any], Callable[[float], None]]:
    """A way to start an operating-system thread and to sleep in it, under gevent too."""
    if _gevent_patched("threading", "Thread") or _gevent_patched("time", "sleep"):
        from gevent import monkey

        return (
            monkey.get_original("_thread", "start_new_thread"),
            monkey.get_original("time", "sleep"),
        )
    return _thread.start_new_thread, time.sleep


def _native_socket() -> tuple[Any, Callable[..., Any]]:
    """The socket class and resolver of the operating system, not gevent's cooperative ones
    (the sender runs in its own thread, outside any event loop)."""
    if _gevent_patched("socket", "socket"):
        from gevent import monkey

        return monkey.get_original("socket", "socket"), monkey.get_original(
            "socket", "getaddrinfo"
        )
    return socket.socket, socket.getaddrinfo


def _cooperative_sleep(seconds: float) -> None:
    # time.sleep is gevent's own when patched: waiting here lets other greenlets run.
    time.sleep(seconds)
