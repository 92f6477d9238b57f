"""Where statsd lines go: a UDP (or UNIX datagram) socket, or nowhere.

Sending never raises: an unresolvable host, nothing listening, a full socket buffer or an
oversize datagram loses that datagram, is counted in ``send_errors`` and is logged at most
once per ``error_log_interval`` seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Protocol, Union

from exporters._ratelimit import RateLimitedLog
from exporters.statsd.wire import DEFAULT_MAX_DATAGRAM_SIZE, pack_datagrams

logger = logging.getLogger(__name__)

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
    too) or :data:`socket.AF_UNIX` (``address`` is a path). The host is resolved on first use,
    not in the constructor, so a DNS outage at start-up does not stop the application; after
    a failure it is retried at most every ``reconnect_interval`` seconds, and metrics sent in
    between are dropped.
    """

    def __init__(
        self,
        family: int,
        address: Address,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
        *,
        reconnect_interval: float = 5.0,
        error_log_interval: float = 10.0,
    ) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            raise ValueError(f"unsupported address family for statsd: {family!r}")
        if max_datagram_size < 1:
            raise ValueError(f"max_datagram_size must be positive, got {max_datagram_size!r}")
        self.family = family
        self.address = address
        self.max_datagram_size = max_datagram_size
        self.reconnect_interval = reconnect_interval
        #: Datagrams handed to the kernel.
        self.datagrams_sent = 0
        #: Datagrams lost to a resolution or send error.
        self.send_errors = 0
        self._errors = RateLimitedLog(logger, error_log_interval)
        self._socket: socket.socket | None = None
        self._next_connect = 0.0
        self._lock = threading.Lock()

    def send(self, serialized: bytes) -> None:
        """Send lines joined by ``\\n`` in as few datagrams as fit; never raises."""
        if len(serialized) <= self.max_datagram_size:
            self._send_datagram(serialized)
            return
        for datagram in pack_datagrams(serialized.split(b"\n"), self.max_datagram_size):
            self._send_datagram(datagram)

    def close(self) -> None:
        """Close the socket; the next send opens a new one."""
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _send_datagram(self, datagram: bytes) -> None:
        sock = self._socket or self._connect()
        if sock is None:
            self.send_errors += 1
            return
        try:
            sock.send(datagram)
        except OSError as exc:
            self.send_errors += 1
            self._errors.warning(
                "could not send %d bytes of metrics to statsd at %s: %s",
                len(datagram),
                self._describe(),
                exc,
            )
        else:
            self.datagrams_sent += 1

    def _connect(self) -> socket.socket | None:
        with self._lock:
            if self._socket is not None:
                return self._socket
            now = time.monotonic()
            if now < self._next_connect:
                return None
            try:
                sock = self._open()
            except OSError as exc:  # includes socket.gaierror (DNS)
                self._next_connect = now + self.reconnect_interval
                self._errors.warning(
                    "could not reach statsd at %s, dropping metrics: %s", self._describe(), exc
                )
                return None
            self._socket = sock
            return sock

    def _open(self) -> socket.socket:
        if isinstance(self.address, str):
            candidates: list[tuple[int, object]] = [(socket.AF_UNIX, self.address)]
        else:
            host, port = self.address
            infos = socket.getaddrinfo(host.strip("[]"), port, 0, socket.SOCK_DGRAM)
            candidates = [(info[0], info[4]) for info in infos]
        error: OSError = OSError(f"no address found for {self._describe()}")
        for family, sockaddr in candidates:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                # Connected, so the kernel reports "nothing listening" back to us.
                sock.connect(sockaddr)  # type: ignore[arg-type]
            except OSError as exc:
                sock.close()
                error = exc
                continue
            # Dropping a datagram is better than stalling a request on a full buffer.
            sock.setblocking(False)
            return sock
        raise error

    def _describe(self) -> str:
        if isinstance(self.address, tuple):
            return f"{self.address[0]}:{self.address[1]}"
        return str(self.address)
