"""The statsd line protocol: metric names, one line per metric, lines packed into datagrams.

A line is ``<name>:<value>|<type>`` with an optional ``|@<sample rate>`` for counters
(``name:1|c``, ``name:2|c|@0.5``, ``name:4000|ms``, ``name:4|g``, ``name:320|h``). Several
lines travel in one datagram joined by ``\\n``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

#: Largest datagram payload sent by default: an Ethernet MTU (1500) minus IPv6 and UDP headers,
#: with room for tunnel overhead, so a datagram is never fragmented on the way to the daemon.
DEFAULT_MAX_DATAGRAM_SIZE = 1432

# ':' ends the name and '|' separates fields; control characters (newline) end the line.
_BREAKS_LINE = re.compile(r"[:|\x00-\x1f\x7f]")
_UNSAFE = re.compile(r"[^\x21-\x7e]|[:|@]")
_EMPTY_LEVELS = re.compile(r"\.{2,}")


def _join(parts: Iterable[str]) -> str:
    # Dots at the edges of a part, or doubled, would make empty levels in graphite.
    levels = (_EMPTY_LEVELS.sub(".", part).strip(".") for part in parts)
    return ".".join(level for level in levels if level)


def metric_name(*parts: str) -> bytes:
    """Join name parts with dots into a metric name, rejecting what the wire cannot carry.

    Dots at the edges of a part never make an empty level: ``metric_name("first.", "second")``
    is ``b"first.second"``. Raises :exc:`UnicodeEncodeError` for a non-ASCII name and
    :exc:`ValueError` for an empty name or one containing ``:``, ``|`` or a control character.
    """
    joined = _join(parts)
    try:
        encoded = joined.encode("ascii")
    except UnicodeEncodeError as exc:
        raise UnicodeEncodeError(
            "ascii",
            joined,
            exc.start,
            exc.end,
            f"metric name {joined!r} must be ASCII",
        )
    if not encoded:
        raise ValueError(f"metric name {parts!r} is empty")
    if _BREAKS_LINE.search(joined):
        raise ValueError(
            f"metric name {joined!r} contains ':', '|' or a control character,"
            " which the statsd line format cannot carry"
        )
    return encoded


def safe_metric_name(*parts: str) -> bytes:
    """Like :func:`metric_name`, but replace anything the wire cannot carry with ``_``.

    For names taken from data (span names) rather than from code: it never raises, and an
    empty result becomes ``_``.
    """
    return _join(_UNSAFE.sub("_", part) for part in parts).encode("ascii") or b"_"


def format_value(value: float) -> bytes:
    """Format a metric value the way statsd reads it: no exponent, no needless fraction.

    Values are rounded to six decimal places. Raises :exc:`ValueError` for NaN and infinity.
    """
    if type(value) is int:
        return b"%d" % value
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"metric value must be a finite number, got {value!r}")
    text = (b"%.6f" % number).rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text


def counter_line(name: bytes, delta: float, sample_rate: float = 1.0) -> bytes:
    """Return a counter line: ``name:1|c``, or ``name:2|c|@0.5`` when sampled."""
    line = name + b":" + format_value(delta) + b"|c"
    if sample_rate != 1.0:
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(
                f"sample_rate of counter {name.decode()!r} must be in (0, 1], got {sample_rate!r}"
            )
        line += b"|@" + format_value(sample_rate)
    return line


def timer_line(name: bytes, milliseconds: float) -> bytes:
    """Return a timer line: ``name:4000|ms``."""
    return name + b":" + format_value(milliseconds) + b"|ms"


def gauge_line(name: bytes, value: float) -> bytes:
    """Return a gauge line: ``name:4|g``.

    Negative values are rejected: statsd reads a leading sign as a change to the current
    value, not as a new value.
    """
    if value < 0:
        raise ValueError(
            f"gauge {name.decode()!r} cannot be set to a negative value ({value!r}):"
            " statsd would read it as a decrement"
        )
    return name + b":" + format_value(value) + b"|g"


def histogram_line(name: bytes, value: float) -> bytes:
    """Return a histogram line: ``name:320|h``."""
    return name + b":" + format_value(value) + b"|h"


def pack_datagrams(
    lines: Iterable[bytes], max_size: int = DEFAULT_MAX_DATAGRAM_SIZE
) -> Iterator[bytes]:
    """Join lines with ``\\n`` into as few datagrams of at most ``max_size`` bytes as possible.

    Lines keep their order and are never cut; a line longer than ``max_size`` travels alone.
    """
    current: list[bytes] = []
    size = 0
    for line in lines:
        added = len(line) + (1 if current else 0)
        if current and size + added > max_size:
            yield b"\n".join(current)
            current, size, added = [], 0, len(line)
        current.append(line)
        size += added
    if current:
        yield b"\n".join(current)
