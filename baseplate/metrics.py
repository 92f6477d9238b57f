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

The same API records OpenTelemetry metrics when ``metrics.exporter`` is ``otlp`` or
``prometheus`` (:class:`OTelClient`): a timer is a histogram in seconds, a counter a
counter, a gauge a gauge and a histogram a histogram, each named ``<namespace>.<name>``;
aggregation happens in process and the meter provider exports (OTLP) or serves
(Prometheus) the aggregates in the background. Application code does not change.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import socket
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

from baseplate import config
from exporters._ratelimit import RateLimitedLog
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT
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
from otel_bridge import environment

if TYPE_CHECKING:
    from exporters.otel_metrics import (
        GaugeAggregate,
        HistogramAggregate,
        MetricsPipeline,
        SumAggregate,
    )

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def _encode_namespace(namespace: Union[str, bytes]) -> bytes:
    # Cached: every request's batch is made with its client's namespace.
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
        self.buffer.add_line_and_count(
            timer_line(_full_name(namespace, timer), seconds * 1000.0),
            None if counter is None else _full_name(namespace, counter),
        )

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


class OTelClient(Client):
    """A metrics client recording OpenTelemetry metrics (``metrics.exporter`` of ``otlp`` or
    ``prometheus``), with the API of :class:`Client`.

    Each name becomes an OpenTelemetry metric called ``<namespace>.<name>`` in the scope
    ``baseplate`` (names are checked as for statsd), aggregated in process
    (:class:`exporters.otel_metrics.Aggregates`) and exported by the pipeline's reader:

    * :meth:`timer`: a histogram in seconds (``unit="s"``), buckets from 5 ms to 10 s;
    * :meth:`counter`: a counter; ``sample_rate`` scales the increment up (``delta /
      sample_rate``) as statsd does. OpenTelemetry counters only grow: a decrement (or a
      negative delta) is refused, counted (``metrics.rejected`` in
      :meth:`telemetry_counts`) and logged (rate-limited), never raised;
    * :meth:`gauge`: a gauge (the last value set); negative values raise
      :exc:`NegativeGaugeError`, as with statsd, so code behaves the same on every backend;
    * :meth:`histogram`: a histogram with the SDK's default buckets (negative samples are
      refused and counted like decrements).

    :meth:`batch` gives an :class:`OTelBatch`: aggregation happens in process, so there is
    nothing to send when it ends.

    :param pipeline: The meter provider and instruments (:mod:`exporters.otel_metrics`).
    :param namespace: The root key prefixed to every metric name.
    """

    def __init__(self, pipeline: MetricsPipeline, namespace: Union[str, bytes]) -> None:
        super().__init__(_NULL_TRANSPORT, namespace)
        #: Where the measurements go.
        self.pipeline = pipeline
        self._rejections = RateLimitedLog(logger)

    def _instrument_name(self, name: str) -> bytes:
        return _full_name(self.namespace, name)

    def timer(self, name: str) -> OTelTimer:
        """Return a timer recording into the histogram ``<namespace>.<name>`` (seconds)."""
        full = self._instrument_name(name)
        return OTelTimer(self.pipeline.instruments.timer(full.decode("ascii")), full)

    def counter(self, name: str) -> OTelCounter:
        """Return a counter adding to the counter ``<namespace>.<name>``."""
        full = self._instrument_name(name)
        return OTelCounter(self, self.pipeline.instruments.counter(full.decode("ascii")), full)

    def gauge(self, name: str) -> OTelGauge:
        """Return a gauge setting the gauge ``<namespace>.<name>``."""
        full = self._instrument_name(name)
        return OTelGauge(self.pipeline.instruments.gauge(full.decode("ascii")), full)

    def histogram(self, name: str) -> OTelHistogram:
        """Return a histogram recording into the histogram ``<namespace>.<name>``."""
        full = self._instrument_name(name)
        return OTelHistogram(self, self.pipeline.instruments.histogram(full.decode("ascii")), full)

    def batch(self) -> OTelBatch:
        """Return a batch: the same instruments, for code written against :class:`Batch`."""
        return OTelBatch(self)

    def flush(self, timeout: float = DEFAULT_EXPORT_TIMEOUT) -> bool:
        """Export what is aggregated now (OTLP; a no-op for Prometheus, which is scraped),
        within ``timeout`` seconds; whether it was exported."""
        return self.pipeline.flush(timeout)

    def telemetry_counts(self) -> dict[str, int]:
        """What became of the metrics (see :meth:`MetricsPipeline.telemetry_counts
        <exporters.otel_metrics.MetricsPipeline.telemetry_counts>`)."""
        return self.pipeline.telemetry_counts()

    def _reject(self, what: str, name: bytes, value: float) -> None:
        self.pipeline.instruments.rejected += 1
        self._rejections.warning(
            "%s %r refused %r: OpenTelemetry %ss take no negative values",
            what,
            name.decode("ascii"),
            value,
            what,
        )


class OTelBatch(Batch):
    """What :meth:`OTelClient.batch` returns, and ``context.metrics`` during a request: the
    client's instruments under the :class:`Batch` API. Measurements are aggregated as they
    are made, so :meth:`flush` has nothing to send."""

    def __init__(self, client: OTelClient) -> None:  # no buffer: nothing is sent from here
        self.client = client
        self.transport = client.transport
        self.namespace = client.namespace

    def flush(self) -> None:
        """Nothing to send: the meter provider exports on its own schedule."""

    def timer(self, name: str) -> OTelTimer:
        """See :meth:`OTelClient.timer`."""
        return self.client.timer(name)

    def counter(self, name: str) -> OTelCounter:
        """See :meth:`OTelClient.counter`."""
        return self.client.counter(name)

    def gauge(self, name: str) -> OTelGauge:
        """See :meth:`OTelClient.gauge`."""
        return self.client.gauge(name)

    def histogram(self, name: str) -> OTelHistogram:
        """See :meth:`OTelClient.histogram`."""
        return self.client.histogram(name)

    def record_span(self, timer: str, seconds: float, counter: str | None = None) -> None:
        """Record ``seconds`` in the timer ``timer`` and add one to ``counter`` (if given)."""
        self.client.timer(timer).send(seconds)
        if counter is not None:
            self.client.counter(counter).increment()


def _finite(value: float, name: bytes) -> float:
    # what the statsd line format refuses (format_value), refused here too
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(
            f"metric {name.decode('ascii')!r}: value must be a finite number, got {value!r}"
        )
    return number


class OTelTimer(Timer):
    """A :class:`Timer` recording into an OpenTelemetry histogram, in seconds."""

    def __init__(self, instrument: HistogramAggregate, name: bytes) -> None:
        super().__init__(_NULL_TRANSPORT, name)
        self.instrument = instrument

    def send(self, elapsed: float) -> None:
        """Record ``elapsed`` seconds (a negative time, from a clock step, counts as 0)."""
        self.instrument.record(max(_finite(elapsed, self.name), 0.0))


class OTelCounter(BatchCounter):
    """A :class:`Counter` adding to an OpenTelemetry counter."""

    def __init__(self, client: OTelClient, instrument: SumAggregate, name: bytes):
        self.transport = _NULL_TRANSPORT
        self.name = name
        self.client = client
        self.instrument = instrument

    def send(self, delta: float, sample_rate: float = 1.0) -> None:
        """Add ``delta / sample_rate``; a negative delta is refused and counted."""
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(
                f"sample_rate of counter {self.name.decode()!r} must be in (0, 1], "
                f"got {sample_rate!r}"
            )
        amount = _finite(delta, self.name)
        if amount < 0:
            self.client._reject("counter", self.name, delta)
            return
        self.instrument.add(delta if sample_rate == 1.0 else amount / sample_rate)


class OTelGauge(Gauge):
    """A :class:`Gauge` setting an OpenTelemetry gauge."""

    def __init__(self, instrument: GaugeAggregate, name: bytes) -> None:
        super().__init__(_NULL_TRANSPORT, name)
        self.instrument = instrument

    def replace(self, new_value: float) -> None:
        """Set the gauge to ``new_value``; negative values raise :exc:`NegativeGaugeError`
        as with statsd."""
        value = _finite(new_value, self.name)
        if value < 0:
            raise NegativeGaugeError(
                f"gauge {self.name.decode()!r} cannot be set to a negative value "
                f"({new_value!r}): statsd would read it as a decrement"
            )
        self.instrument.set(new_value if type(new_value) is int else value)


class OTelHistogram(Histogram):
    """A :class:`Histogram` recording into an OpenTelemetry histogram."""

    def __init__(self, client: OTelClient, instrument: HistogramAggregate, name: bytes):
        super().__init__(_NULL_TRANSPORT, name)
        self.client = client
        self.instrument = instrument

    def add_sample(self, value: float) -> None:
        """Record ``value``; a negative one is refused and counted."""
        number = _finite(value, self.name)
        if number < 0:
            self.client._reject("histogram", self.name, value)
            return
        self.instrument.record(value if type(value) is int else number)


_NULL_TRANSPORT = NullTransport()

# -- configuration ----------------------------------------------------------------------------

#: The backends ``metrics.exporter`` may name.
EXPORTERS = ("statsd", "otlp", "prometheus", "none")

#: Every ``metrics.*`` key :func:`metrics_client_from_config` reads.
KNOWN_KEYS = (
    "exporter",
    "namespace",
    "endpoint",
    "max_datagram_size",
    "otlp.endpoint",
    "otlp.interval",
    "otlp.timeout",
    "prometheus.host",
    "prometheus.port",
)

#: The keys only one backend reads.
_BACKEND_KEYS = {
    "statsd": ("endpoint", "max_datagram_size"),
    "otlp": ("otlp.endpoint", "otlp.interval", "otlp.timeout"),
    "prometheus": ("prometheus.host", "prometheus.port"),
}

#: Python modules each backend needs, and the extra that installs them.
_EXTRAS = {
    "otlp": (("opentelemetry.exporter.otlp.proto.http",), "otlp"),
    "prometheus": (("opentelemetry.exporter.prometheus", "prometheus_client"), "prometheus"),
}

#: Shortest and longest ``metrics.otlp.interval`` (seconds).
MIN_EXPORT_INTERVAL = 0.1
MAX_EXPORT_INTERVAL = 3600.0

_exporter = config.OneOf(**{name: name for name in EXPORTERS})
_interval = config.Seconds(max=MAX_EXPORT_INTERVAL, allow_zero=False)
_timeout = config.Seconds(max=300.0, allow_zero=False)
_port = config.IntegerRange(0, 65535)
_milliseconds = config.IntegerRange(1, int(MAX_EXPORT_INTERVAL * 1000))


def _exporter_name(text: str) -> str:
    return _exporter(text.strip().lower())


def _export_interval(text: str) -> float:
    seconds = _interval(text)
    if seconds < MIN_EXPORT_INTERVAL:
        raise ValueError(f"{text.strip()!r} is out of range: expected at least 100 milliseconds")
    return seconds


def _otlp_endpoint(text: str) -> str:
    from exporters.otlp_metrics import otlp_metrics_url

    return otlp_metrics_url(text)


def _otlp_base_endpoint(text: str) -> str:
    from exporters.otlp_metrics import OTLP_METRICS_PATH

    return _otlp_endpoint(text.strip().rstrip("/") + OTLP_METRICS_PATH)


def _otlp_protocol(text: str) -> str:
    protocol = text.strip().lower()
    if protocol != "http/protobuf":
        raise ValueError(
            f"protocol {text!r} is not supported: baseplate's OTLP exporter speaks "
            "http/protobuf"
        )
    return protocol


def _host(text: str) -> str:
    host = text.strip()
    if not host or any(character.isspace() for character in host):
        raise ValueError(f"not a host name or address: {text!r}")
    return host.strip("[]")


def _parse(raw_config: Mapping[str, Any], key: str, value_type: Any) -> Any:
    return config.CallableParser(config.Optional(value_type)).parse(key, raw_config)


def _parse_env(environ: Mapping[str, str] | None, name: str, value_type: Any) -> Any:
    value = environment.get(name, environ)
    if value is None:
        return None
    try:
        return value_type(value)
    except Exception as exc:
        raise config.ConfigurationError(name, exc)


def _require_extra(exporter: str) -> None:
    """Stop with one line naming the missing extra, rather than an import traceback later."""
    modules, extra = _EXTRAS[exporter]
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise config.ConfigurationError(
                "metrics.exporter",
                f"the {exporter} backend needs the {extra!r} extra: "
                f"pip install 'baseplate-otel[{extra}]'",
            )


def _report_unused_keys(raw_config: Mapping[str, Any], exporter: str) -> None:
    """Warn about ``metrics.*`` keys nobody reads (typos) and keys of another backend."""
    unknown = set(config.warn_unknown_keys(raw_config, "metrics.", KNOWN_KEYS, logger))
    for key in sorted(k for k in raw_config if isinstance(k, str) and k.startswith("metrics.")):
        if key in unknown:
            continue
        name = key[len("metrics.") :]
        for backend, keys in _BACKEND_KEYS.items():
            if name in keys and backend != exporter and raw_config.get(key):
                logger.warning(
                    "%s is for metrics.exporter = %s; ignored with metrics.exporter = %s",
                    key,
                    backend,
                    exporter,
                )


def _namespace(raw_config: Mapping[str, Any]) -> str:
    namespace: str = _parse(raw_config, "metrics.namespace", config.String) or ""
    try:
        _encode_namespace(namespace)
    except ValueError as exc:
        raise config.ConfigurationError("metrics.namespace", exc)
    return namespace


def _einhorn_child_index() -> int | None:
    from baseplate import _einhorn

    return _einhorn.child_index()


def _otlp_client(
    raw_config: Mapping[str, Any], namespace: str, environ: Mapping[str, str] | None
) -> OTelClient:
    from exporters.otel_metrics import MetricsPipeline, make_resource, shared_pipeline
    from exporters.otlp_metrics import DEFAULT_EXPORT_INTERVAL, DEFAULT_OTLP_METRICS_ENDPOINT

    url = (
        _parse(raw_config, "metrics.otlp.endpoint", _otlp_endpoint)
        or _parse_env(environ, environment.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, _otlp_endpoint)
        or _parse_env(environ, environment.OTEL_EXPORTER_OTLP_ENDPOINT, _otlp_base_endpoint)
        or DEFAULT_OTLP_METRICS_ENDPOINT
    )
    for variable in (
        environment.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
        environment.OTEL_EXPORTER_OTLP_PROTOCOL,
    ):
        if environment.is_distro_default(variable, environ):
            continue  # opentelemetry-distro's grpc for its own exporters, not for this one
        if _parse_env(environ, variable, _otlp_protocol):
            break
    interval = _parse(raw_config, "metrics.otlp.interval", _export_interval)
    if interval is None:
        millis = _parse_env(environ, environment.OTEL_METRIC_EXPORT_INTERVAL, _milliseconds)
        interval = max(millis / 1000, MIN_EXPORT_INTERVAL) if millis else DEFAULT_EXPORT_INTERVAL
    timeout = _parse(raw_config, "metrics.otlp.timeout", _timeout)
    if timeout is None:
        # the metrics-specific variables first, each in its own unit (the exporter's in
        # seconds, as the SDK reads it; the reader's in milliseconds), then the general one
        timeout = _parse_env(environ, environment.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, _timeout)
    if timeout is None:
        millis = _parse_env(environ, environment.OTEL_METRIC_EXPORT_TIMEOUT, _milliseconds)
        timeout = min(millis / 1000, 300.0) if millis else None
    if timeout is None:
        timeout = _parse_env(environ, environment.OTEL_EXPORTER_OTLP_TIMEOUT, _timeout)
    if timeout is None:
        timeout = DEFAULT_EXPORT_TIMEOUT

    def build() -> MetricsPipeline:
        from exporters.otlp_metrics import make_otlp_metrics_reader

        reader, exporter = make_otlp_metrics_reader(url, interval, timeout)
        return MetricsPipeline(
            reader,
            f"OTLP {url}",
            make_resource(namespace or None),
            counts=exporter.telemetry_counts,
            exit_timeout=timeout,
        )

    return OTelClient(shared_pipeline(("otlp", url), build), namespace)


def _prometheus_client(
    raw_config: Mapping[str, Any], namespace: str, environ: Mapping[str, str] | None
) -> OTelClient:
    from exporters.otel_metrics import MetricsPipeline, make_resource, shared_pipeline
    from exporters.prometheus import (
        DEFAULT_PROMETHEUS_HOST,
        DEFAULT_PROMETHEUS_PORT,
        PrometheusEndpoint,
    )

    host_key = "metrics.prometheus.host"
    host = _parse(raw_config, host_key, _host)
    if host is None:
        host_key = environment.OTEL_EXPORTER_PROMETHEUS_HOST
        host = _parse_env(environ, host_key, _host) or DEFAULT_PROMETHEUS_HOST
    port_key = "metrics.prometheus.port"
    port = _parse(raw_config, port_key, _port)
    if port is None:
        port_key = environment.OTEL_EXPORTER_PROMETHEUS_PORT
        port = _parse_env(environ, port_key, _port)
    if port is None:
        port = DEFAULT_PROMETHEUS_PORT
    index = _einhorn_child_index() if port else None
    if index:
        # one endpoint per worker process: worker i listens on port + i
        if port + index > 65535:
            raise config.ConfigurationError(
                port_key, f"{port} + Einhorn worker index {index} is past 65535"
            )
        port += index

    def build() -> MetricsPipeline:
        try:
            endpoint = PrometheusEndpoint(host, port)
        except socket.gaierror as exc:
            raise config.ConfigurationError(host_key, f"cannot listen on {host!r}: {exc}")
        except OSError as exc:
            raise config.ConfigurationError(
                port_key, f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            )
        logger.info("Serving Prometheus metrics on %s", endpoint.url)
        pipeline = MetricsPipeline(
            endpoint.reader,
            f"Prometheus {endpoint.url}",
            make_resource(namespace or None),
            on_shutdown=endpoint.stop,
        )
        pipeline.prometheus_endpoint = endpoint  # type: ignore[attr-defined]
        return pipeline

    return OTelClient(shared_pipeline(("prometheus", host, port), build), namespace)


def metrics_client_from_config(
    raw_config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Client:
    """Configure and return a metrics client.

    ``metrics.exporter`` chooses the backend: ``statsd`` (the default), ``otlp``,
    ``prometheus`` or ``none``. With statsd, this expects two configuration options:

    ``metrics.namespace``
        The root key to prefix all metrics in this application with.
    ``metrics.endpoint``
        A ``host:port`` pair, e.g. ``localhost:2014``. If an empty string, a client that
        discards all metrics will be returned.

    and takes one optional one:

    ``metrics.max_datagram_size``
        The largest datagram to send, in bytes (default 1432, safe for an Ethernet MTU;
        1 to 65507, the most a UDP datagram carries).

    With ``otlp`` (an :class:`OTelClient` exporting periodically over OTLP/HTTP):

    ``metrics.otlp.endpoint``
        Collector URL or ``host:port`` (``/v1/metrics`` is appended when it has no path);
        else ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` (as given), else
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/metrics`` appended), else
        ``http://localhost:4318/v1/metrics``.
    ``metrics.otlp.interval``
        Time between exports (default ``OTEL_METRIC_EXPORT_INTERVAL``, else 60 seconds;
        100 milliseconds to an hour).
    ``metrics.otlp.timeout``
        Time one export may take, retries included (default
        ``OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`` in seconds, else ``OTEL_METRIC_EXPORT_TIMEOUT``
        in milliseconds, else ``OTEL_EXPORTER_OTLP_TIMEOUT`` in seconds, else 5 seconds; at
        most 5 minutes).

    With ``prometheus`` (an :class:`OTelClient` served at ``/metrics``):

    ``metrics.prometheus.port``
        Port of the endpoint (default ``OTEL_EXPORTER_PROMETHEUS_PORT``, else 9464; 0 picks
        a free port). In an Einhorn worker, worker *i* listens on port + *i*: one endpoint
        per process.
    ``metrics.prometheus.host``
        Address to listen on (default ``OTEL_EXPORTER_PROMETHEUS_HOST``, else ``0.0.0.0``).

    ``metrics.namespace`` is optional with ``otlp``, ``prometheus`` and ``none``; it
    prefixes the application's own metrics and names the service when
    ``OTEL_SERVICE_NAME`` does not. Clients of one process configured for the same
    collector URL, or the same Prometheus port, share one meter provider (made with the
    first one's settings), so each metric is one stream. ``environ`` replaces
    ``os.environ`` (for tests).

    :param dict raw_config: The application configuration which should have settings for
        the metrics client.
    :return: A configured client.
    :rtype: :class:`baseplate.metrics.Client`
    :raises baseplate.config.ConfigurationError: a key or variable has a bad value, the
        Prometheus port cannot be listened on, or the backend's extra is not installed.
    """
    exporter = _parse(raw_config, "metrics.exporter", _exporter_name)
    if exporter is not None:
        _report_unused_keys(raw_config, exporter)
    if exporter is None or exporter == "statsd":
        return _statsd_client(raw_config)
    namespace = _namespace(raw_config)
    if exporter == "none":
        return Client(NullTransport(), namespace)
    _require_extra(exporter)
    if exporter == "otlp":
        return _otlp_client(raw_config, namespace, environ)
    return _prometheus_client(raw_config, namespace, environ)


def _statsd_client(raw_config: Mapping[str, Any]) -> Client:
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
    "EXPORTERS",
    "Batch",
    "BatchCounter",
    "Client",
    "Counter",
    "Gauge",
    "Histogram",
    "NegativeGaugeError",
    "OTelBatch",
    "OTelClient",
    "OTelCounter",
    "OTelGauge",
    "OTelHistogram",
    "OTelTimer",
    "Timer",
    "TimerStateError",
    "make_client",
    "metrics_client_from_config",
]
