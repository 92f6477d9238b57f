"""Telemetry sinks shared by the benchmarks."""

from __future__ import annotations

import socket
import threading
import time

#: What baseplate's telemetry health metric names contain.
HEALTH_METRICS = b".baseplate.telemetry."


class UDPSink:
    """A local statsd socket, drained between rounds (outside the timing) and counted.

    Its receive buffer is made large enough to hold a whole round (``SO_RCVBUFFORCE``, which
    root may use past ``net.core.rmem_max``); where that is refused, a thread drains it.
    """

    def __init__(self, match: bytes | None = None, buffer_bytes: int = 64 << 20) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.endpoint = "{}:{}".format(*self.sock.getsockname())
        self.address = self.sock.getsockname()
        self.datagrams = 0
        self.lines = 0
        #: baseplate's own telemetry health lines, not counted in ``lines``.
        self.health_lines = 0
        #: Lines starting with ``match`` (when given).
        self.matched = 0
        self.match = match
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, buffer_bytes)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            self.sock.settimeout(0.2)
            self._thread = threading.Thread(target=self._drain_forever, daemon=True)
            self._thread.start()
        else:
            self.sock.setblocking(False)

    def _count(self, data: bytes) -> None:
        lines = data.split(b"\n")
        # baseplate's telemetry health metrics come every 10 s, whatever the workload
        health = sum(HEALTH_METRICS in line for line in lines)
        with self._lock:
            self.health_lines += health
            if health == len(lines):
                return
            self.datagrams += 1
            self.lines += len(lines) - health
            if self.match is not None:
                self.matched += sum(line.startswith(self.match) for line in lines)

    def _drain_forever(self) -> None:
        while self.sock.fileno() >= 0:
            try:
                self._count(self.sock.recv(65536))
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return

    def drain(self, expected_lines: int, limit: float = 10.0) -> None:
        """Read until ``expected_lines`` lines arrived in all (lines starting with ``match``
        when given), or ``limit`` seconds passed."""
        deadline = time.monotonic() + limit
        while True:
            if self._thread is None:
                try:
                    while True:
                        self._count(self.sock.recv(65536))
                except BlockingIOError:
                    pass
            got = self.lines if self.match is None else self.matched
            if got >= expected_lines or time.monotonic() > deadline:
                return
            time.sleep(0.001)

    def close(self) -> None:
        self.sock.close()
