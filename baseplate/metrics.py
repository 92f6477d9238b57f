"""Application metrics via statsd.

A client for the application metrics aggregator statsd. Metrics sent to statsd are
aggregated and written to graphite. Statsd is generally used for whole-system health
monitoring and insight into usage patterns.

Basic example usage::

    from baseplate import metrics_client_from_config

    client = metrics_client_from_config(app_config)
    client.counter("events.connect").increment()
    client.gauge("workers").replace(4)

    with client.timer("something.todo"):
        do_something()
        do_something_else()

If you have multiple metrics to send, you can batch them up for efficiency::

    with client.batch() as batch:
        batch.counter("froozles").increment()
        batch.counter("blargs").decrement(delta=3)

        with batch.timer("something"):
            do_another_thing()

and the batch will be sent in as few packets as possible when the ``with`` block ends.

Metric names are ``<namespace>.<name>``; names must be ASCII. Sending never raises: a
statsd outage is logged (rate-limited) and the metrics are dropped.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Union

from baseplate import config
from exporters.statsd import (
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_DATAGRAM_SIZE,
    MetricsBuffer,
    NullTransport,
    Transport,
    UDPTransport,
    counter_line,
    gauge_line,
    histogram_line,
    metric_name,
    timer_line,
)


def _encode_namespace(namespace: Union[str, bytes]) -> bytes:
    if isinstance(namespace, bytes):
        namespace = namespace.decode("ascii")
    if not namespace:
        return b""
    return metric_name(namespace)


@functools.lru_cache(maxsize=4096)
def _full_name(namespace: bytes, name: str) -> bytes:
    # Cached: the same few names are built on every request.
    return metric_name(namespace.decode("ascii"), name)


class TimerStateError(RuntimeError, AssertionError):
    """A :class:`Timer` used out of order: started twice, or stopped before it was started
    or after it was stopped.

    It is an :exc:`AssertionError` too, as baseplate's timers have always raised one.
    """


class NegativeGaugeError(ValueError, AssertionError):
    """A :class:`Gauge` replaced with a negative value, which statsd would read as a
    decrement. It is an :exc:`AssertionError` too, as baseplate's gauges have always raised.
    """


class BaseClient:
    """What :class:`Client` and :class:`Batch` have in common: making named metrics."""

    def __init__(self, transport: Transport, namespace: Union[str, bytes]) -> None:
        self.transport = transport
        #: The root key prefixed to every metric name (ASCII bytes).
        self.namespace = _encode_namespace(namespace)

    def timer(self, name: str) -> Timer:
        """Return a Timer with the given name.

        :param str name: The name the timer should have.
        :rtype: :class:`Timer`
        """
        return Timer(self.transport, _full_name(self.namespace, name))

    def counter(self, name: str) -> Counter:
        """Return a Counter with the given name.

        The sample rate is currently up to your application to enforce.

        :param str name: The name the counter should have.
        :rtype: :class:`Counter`
        """
        return Counter(self.transport, _full_name(self.namespace, name))

    def gauge(self, name: str) -> Gauge:
        """Return a Gauge with the given name.

        :param str name: The name the gauge should have.
        :rtype: :class:`Gauge`
        """
        return Gauge(self.transport, _full_name(self.namespace, name))

    def histogram(self, name: str) -> Histogram:
        """Return a Histogram with the given name.

        :param str name: The name the histogram should have.
        :rtype: :class:`Histogram`
        """
        return Histogram(self.transport, _full_name(self.namespace, name))


class Client(BaseClient):
    """A client for statsd."""

    def batch(self) -> Batch:
        """Return a client-like object which batches up metrics.

        Batching metrics can reduce the number of packets that are sent to the stats
        aggregator.

        :rtype: :class:`Batch`
        """
        return Batch(self.transport, self.namespace)


class Batch(BaseClient):
    """A batch of metrics to send to statsd.

    The batch also supports the context manager protocol, for use with Python's ``with``
    statement. When the context is exited, the batch will automatically :meth:`flush`.

    Counters are aggregated: all increments of one counter (at one sample rate) are sent as
    a single line. The batch is split into as many datagrams as needed to fit the
    transport's size limit; past ``max_buffered_bytes`` it sends early instead of growing.
    """

    def __init__(
        self,
        transport: Transport,
        namespace: Union[str, bytes],
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        self.buffer = MetricsBuffer(transport, max_buffered_bytes)
        super().__init__(self.buffer, namespace)

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.flush()

    def flush(self) -> None:
        """Immediately send the batched metrics."""
        self.buffer.flush()

    def record_span(self, timer: str, seconds: float, counter: str | None = None) -> None:
        """Record a span's timing under ``timer`` and add one to ``counter`` (if given):
        what ``timer(timer).send(seconds)`` and ``counter(counter).increment()`` do, in one
        call, for the span processors that measure every span."""
        namespace = self.namespace
        self.buffer.send(timer_line(_full_name(namespace, timer), seconds * 1000.0))
        if counter is not None:
            self.buffer.add_count(_full_name(namespace, counter), 1)

    def counter(self, name: str) -> BatchCounter:
        """Return a BatchCounter with the given name.

        The sample rate is currently up to your application to enforce.

        :param str name: The name the counter should have.
        :rtype: :class:`Counter`
        """
        return BatchCounter(self.buffer, _full_name(self.namespace, name))


class Timer:
    """A timer for recording elapsed times.

    The timer also supports the context manager protocol, for use with Python's ``with``
    statement. When the context is entered the timer will :meth:`start` and when exited,
    the timer will automatically :meth:`stop`.
    """

    def __init__(self, transport: Transport, name: bytes) -> None:
        self.transport = transport
        self.name = name
        self.start_time: float | None = None
        self.stopped = False

    def start(self) -> None:
        """Record the current time as the start of the timer.

        :raises TimerStateError: if the timer was started already.
        """
        if self.start_time is not None:
            raise TimerStateError(f"timer {self.name.decode()!r} already started")
        self.start_time = time.time()

    def stop(self) -> None:
        """Stop the timer and record the total elapsed time.

        :raises TimerStateError: if the timer was not started, or was stopped already.
        """
        if self.start_time is None:
            raise TimerStateError(f"timer {self.name.decode()!r} not started")
        if self.stopped:
            raise TimerStateError(f"timer {self.name.decode()!r} already stopped")
        elapsed = time.time() - self.start_time
        self.stopped = True
        self.send(elapsed)

    def send(self, elapsed: float) -> None:
        """Directly send a timer value without having to stop/start.

        This can be useful when the timing was managed elsewhere and we just want to
        report the result.

        :param float elapsed: The elapsed time in seconds to report (sent in milliseconds).
        """
        self.transport.send(timer_line(self.name, elapsed * 1000.0))

    def __enter__(self) -> Timer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Counter:
    """A counter for counting events over time."""

    def __init__(self, transport: Transport, name: bytes) -> None:
        self.transport = transport
        self.name = name

    def increment(self, delta: float = 1, sample_rate: float = 1.0) -> None:
        """Increment the counter.

        :param float delta: The amount to increase the counter by.
        :param float sample_rate: What rate this counter is sampled at. [0-1].
        """
        self.send(delta, sample_rate)

    def decrement(self, delta: float = 1, sample_rate: float = 1.0) -> None:
        """Decrement the counter.

        This is equivalent to :meth:`increment` with delta negated.
        """
        self.increment(delta=-delta, sample_rate=sample_rate)

    def send(self, delta: float, sample_rate: float) -> None:
        """Send the counter to the backend.

        :param float delta: The amount to increase the counter by.
        :param float sample_rate: What rate this counter is sampled at. [0-1].
        """
        self.transport.send(counter_line(self.name, delta, sample_rate))


class BatchCounter(Counter):
    """A counter in a :class:`Batch`: its increments are summed and sent as one line.

    One line is sent per sample rate used, holding the sum of the deltas at that rate.
    """

    def __init__(self, buffer: MetricsBuffer, name: bytes) -> None:
        super().__init__(buffer, name)
        self.buffer = buffer

    def send(self, delta: float, sample_rate: float = 1.0) -> None:
        """Add ``delta`` to what the batch will send for this counter at ``sample_rate``."""
        self.buffer.add_count(self.name, delta, sample_rate)


class Gauge:
    """A gauge representing an arbitrary value.

    .. note:: The statsd protocol supports incrementing/decrementing gauges from their
        current value. We do not support that here because this feature is unpredictable
        in face of the statsd server restarting and the "current value" being lost.
    """

    def __init__(self, transport: Transport, name: bytes) -> None:
        self.transport = transport
        self.name = name

    def replace(self, new_value: float) -> None:
        """Replace the value held by the gauge.

        This will replace the value held by the gauge with no concern for its previous
        value.

        .. note:: Due to the way the protocol works, it is not possible to replace gauge
            values with negative numbers: they raise :exc:`NegativeGaugeError` (a
            :exc:`ValueError` and an :exc:`AssertionError`).

        :param float new_value: The new value to store in the gauge.
        """
        try:
            line = gauge_line(self.name, new_value)
        except ValueError as exc:
            if isinstance(new_value, (int, float)) and new_value < 0:
                raise NegativeGaugeError(str(exc)) from None
            raise
        self.transport.send(line)


class Histogram:
    """A bucketed distribution of integer values across a specific range.

    Records data value counts across a configurable integer value range with configurable
    buckets of value precision within that range.

    Configuration of each histogram is managed by the backend service, not by this
    interface. This implementation also depends on histograms being supported by the StatsD
    backend. Specifically, the StatsD backend must support the ``h`` key, e.g.
    ``metric_name:320|h``.
    """

    def __init__(self, transport: Transport, name: bytes) -> None:
        self.transport = transport
        self.name = name

    def add_sample(self, value: float) -> None:
        """Add a new value to the histogram.

        This records a new value to the histogram; the bucket it goes in is determined by
        the backend service configurations.
        """
        self.transport.send(histogram_line(self.name, value))


def make_client(
    namespace: str,
    endpoint: config.EndpointConfiguration | str | None,
    max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
) -> Client:
    """Return a configured client.

    :param str namespace: The root key to prefix all metrics with.
    :param baseplate.config.EndpointConfiguration endpoint: The endpoint to send metrics to
        or :data:`None`. If :data:`None`, the returned client will discard all metrics. A
        ``"host:port"`` string is accepted too.
    :param int max_datagram_size: The largest datagram to send; batches are split to fit.
    :return: A configured client.
    :rtype: :class:`baseplate.metrics.Client`

    .. seealso:: :func:`baseplate.metrics_client_from_config`.
    """
    if isinstance(endpoint, str):
        endpoint = config.Endpoint(endpoint) if endpoint else None
    transport: Transport
    if endpoint:
        family, address = endpoint
        if family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            raise ValueError(f"unsupported address family for metrics endpoint: {family!r}")
        if isinstance(address, str):
            transport = UDPTransport(family, address, max_datagram_size)
        else:
            transport = UDPTransport(family, (address[0], address[1]), max_datagram_size)
    else:
        transport = NullTransport()
    return Client(transport, namespace)


def metrics_client_from_config(raw_config: Mapping[str, Any]) -> Client:
    """Configure and return a metrics client.

    This expects two configuration options:

    ``metrics.namespace``
        The root key to prefix all metrics in this application with.
    ``metrics.endpoint``
        A ``host:port`` pair, e.g. ``localhost:2014``. If an empty string, a client that
        discards all metrics will be returned.

    and takes one optional one:

    ``metrics.max_datagram_size``
        The largest datagram to send, in bytes (default 1432, safe for an Ethernet MTU;
        1 to 65507, the most a UDP datagram carries).

    :param dict raw_config: The application configuration which should have settings for
        the metrics client.
    :return: A configured client.
    :rtype: :class:`baseplate.metrics.Client`
    """
    cfg = config.parse_config(
        raw_config,
        {
            "metrics": {
                "namespace": config.String,
                "endpoint": config.Optional(config.Endpoint),
                # 65507 bytes: the largest payload of a UDP datagram over IPv4
                "max_datagram_size": config.Optional(
                    config.IntegerRange(1, 65507), default=DEFAULT_MAX_DATAGRAM_SIZE
                ),
            }
        },
    )
    try:
        _encode_namespace(cfg.metrics.namespace)
    except ValueError as exc:
        raise config.ConfigurationError("metrics.namespace", exc)
    return make_client(cfg.metrics.namespace, cfg.metrics.endpoint, cfg.metrics.max_datagram_size)


__all__ = [
    "Batch",
    "BatchCounter",
    "Client",
    "Counter",
    "Gauge",
    "Histogram",
    "NegativeGaugeError",
    "Timer",
    "TimerStateError",
    "make_client",
    "metrics_client_from_config",
]
