"""A buffer of statsd metrics sent together: the wire side of a metrics batch."""

from __future__ import annotations

import threading

from exporters.statsd.transport import Transport
from exporters.statsd.wire import counter_line

#: Buffered bytes past which a buffer sends what it holds instead of growing further.
DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024

# Rough cost of one aggregated counter beyond its name: value, type and dict entry.
_COUNTER_OVERHEAD = 16


class MetricsBuffer:
    """Collect statsd lines and send them in as few datagrams as fit when flushed.

    Counters are aggregated: every increment of one counter at one sample rate becomes one
    line holding the sum. The buffer is itself a :class:`~exporters.statsd.transport.Transport`
    (``send`` buffers), so metric objects can write to it or to a real transport alike.
    Memory stays bounded: once more than ``max_buffered_bytes`` are held, the buffer sends
    what it has early rather than grow or drop. A flushed buffer is empty and reusable.
    Safe to use from several threads.
    """

    def __init__(
        self, transport: Transport, max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    ) -> None:
        self.transport = transport
        self.max_buffered_bytes = max_buffered_bytes
        self._lines: list[bytes] = []
        self._lines_size = 0
        self._counters: dict[tuple[bytes, float], float] = {}
        self._counters_size = 0
        self._lock = threading.Lock()

    def send(self, serialized: bytes) -> None:
        """Buffer lines (joined by ``\\n``) until the next flush."""
        with self._lock:
            self._lines.append(serialized)
            self._lines_size += len(serialized) + 1
            full = self._lines_size + self._counters_size > self.max_buffered_bytes
        if full:
            self._send_early()

    def add_count(self, name: bytes, delta: float, sample_rate: float = 1.0) -> None:
        """Add ``delta`` to the counter ``name`` at ``sample_rate``."""
        if sample_rate != 1.0 or type(delta) is not int:
            counter_line(name, delta, sample_rate)  # reject a bad value now, not at flush
        key = (name, sample_rate)
        with self._lock:
            total = self._counters.get(key)
            if total is None:
                self._counters[key] = delta
                self._counters_size += len(name) + _COUNTER_OVERHEAD
            else:
                self._counters[key] = total + delta
            full = self._lines_size + self._counters_size > self.max_buffered_bytes
        if full:
            self._send_early()

    def add_line_and_count(self, serialized: bytes, counter: bytes | None) -> None:
        """Buffer a line and add one to the counter ``counter`` (if given), as :meth:`send`
        and :meth:`add_count` would, under one lock: a span's timer and its counter."""
        with self._lock:
            self._lines.append(serialized)
            self._lines_size += len(serialized) + 1
            if counter is not None:
                key = (counter, 1.0)
                total = self._counters.get(key)
                if total is None:
                    self._counters[key] = 1
                    self._counters_size += len(counter) + _COUNTER_OVERHEAD
                else:
                    self._counters[key] = total + 1
            full = self._lines_size + self._counters_size > self.max_buffered_bytes
        if full:
            self._send_early()

    def flush(self) -> None:
        """Send everything buffered and empty the buffer; never raises for a delivery problem."""
        self._send(with_counters=True)

    def _send_early(self) -> None:
        # Counters stay aggregated until the real flush unless they alone fill the buffer.
        with self._lock:
            with_counters = self._counters_size > self.max_buffered_bytes // 2
        self._send(with_counters)

    def _send(self, with_counters: bool) -> None:
        counters: dict[tuple[bytes, float], float] = {}
        with self._lock:
            lines, self._lines, self._lines_size = self._lines, [], 0
            if with_counters:
                counters, self._counters, self._counters_size = self._counters, {}, 0
        lines.extend(counter_line(name, delta, rate) for (name, rate), delta in counters.items())
        if lines:
            self.transport.send(b"\n".join(lines))

    def __len__(self) -> int:
        """Number of lines a flush would send now."""
        with self._lock:
            return len(self._lines) + len(self._counters)
