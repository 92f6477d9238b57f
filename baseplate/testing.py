"""Helpers for a service's own test suite: spans and metrics captured in memory.

Tests of a baseplate service usually want to know which spans a request made and which
metrics it sent, without a tracing backend, a statsd daemon or a network. In 0.28 that
meant patching baseplate's internals (span recorders, metrics transports, ``socket``);
these helpers give the same answers through public API::

    from baseplate.testing import capture_metrics, capture_spans

    def test_hello() -> None:
        metrics = capture_metrics("myservice")
        with capture_spans() as captured:
            captured.baseplate.configure_metrics(metrics.client)
            app = make_app(captured.baseplate)  # however the service builds its app
            ...                                 # make a request

        assert [span.name for span in captured.spans] == ["redis.get", "hello"]
        assert "myservice.server.hello" in metrics.names()

As pytest fixtures::

    @pytest.fixture
    def captured() -> Iterator[CapturedSpans]:
        with capture_spans() as captured:
            yield captured

Fixed ids work the 0.28 way: ``mock.patch("random.getrandbits", return_value=1234)``
gives new traces and spans exactly those ids.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import NamedTuple, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from baseplate.core import Baseplate
from baseplate.metrics import Client
from exporters.statsd import DEFAULT_MAX_DATAGRAM_SIZE, pack_datagrams


class _SpanRecorder(SpanProcessor):
    """Keeps every span that ends while active, sampled or not."""

    def __init__(self) -> None:
        self.active = True
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            with self._lock:
                self._spans.append(span)

    def shutdown(self) -> None:
        self.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def spans(self) -> list[ReadableSpan]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()


class CapturedSpans:
    """The spans finished during :func:`capture_spans`, as OpenTelemetry ``ReadableSpan``.

    Each has the baseplate span's ``name``, its ids (``span.context.trace_id`` and
    ``span_id``, ``span.parent.span_id``), its tags as ``attributes``, its logs as
    ``events``, its ``kind`` (``SERVER`` for server spans, ``CLIENT`` for children,
    ``INTERNAL`` for local spans) and its ``status`` (``ERROR`` for a failed span).
    Unsampled spans are captured too (``span.context.trace_flags.sampled`` is False): they
    are recorded, only not exported.
    """

    def __init__(self, baseplate: Baseplate, recorder: _SpanRecorder) -> None:
        #: The Baseplate whose spans are captured; give it to the code under test.
        self.baseplate = baseplate
        #: Its OpenTelemetry tracer provider.
        self.tracer_provider: TracerProvider = baseplate.tracer_provider
        self._recorder = recorder

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in the order they ended (children before their parents)."""
        return self._recorder.spans()

    def named(self, name: str) -> list[ReadableSpan]:
        """The finished spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``; :exc:`AssertionError` if there are more or
        none."""
        found = self.named(name)
        assert len(found) == 1, (
            f"{len(found)} spans named {name!r}; finished: {[s.name for s in self.spans]}"
        )
        return found[0]

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self._recorder.clear()


@contextlib.contextmanager
def capture_spans(baseplate: Baseplate | None = None) -> Iterator[CapturedSpans]:
    """Capture in memory the spans that end inside the ``with`` block.

    Without ``baseplate``, a new :class:`~baseplate.core.Baseplate` with a tracer provider
    of its own is made (``captured.baseplate``): nothing is exported, nothing touches the
    process's global provider, and the provider is shut down when the block ends. With a
    ``baseplate``, its own provider's spans are captured (vendor spans on it too) until the
    block ends; an OpenTelemetry provider cannot drop a processor, so the capturing
    processor stays registered but records nothing more. Either way the spans stay
    readable after the block.
    """
    recorder = _SpanRecorder()
    own = baseplate is None
    if baseplate is None:
        baseplate = Baseplate(tracer_provider=TracerProvider())
    baseplate.add_span_processor(recorder)
    try:
        yield CapturedSpans(baseplate, recorder)
    finally:
        recorder.active = False
        if own:
            baseplate.tracer_provider.shutdown()


class Metric(NamedTuple):
    """One statsd line: ``name:value|type`` (``|@sample_rate`` when sampled)."""

    #: The full name, namespace included (``myservice.server.hello``).
    name: str
    value: float
    #: ``c`` (counter), ``ms`` (timer, milliseconds), ``g`` (gauge) or ``h`` (histogram).
    type: str
    sample_rate: float = 1.0

    @classmethod
    def parse(cls, line: str) -> Metric:
        """Read one statsd line."""
        name, _, rest = line.partition(":")
        fields = rest.split("|")
        value = float(fields[0]) if "." in fields[0] else int(fields[0])
        rate = 1.0
        if len(fields) > 2 and fields[2].startswith("@"):
            rate = float(fields[2][1:])
        return cls(name, value, fields[1], rate)


class CapturingTransport:
    """A metrics transport that keeps the datagrams it would have sent.

    Batches are split into datagrams of at most ``max_datagram_size`` bytes as the UDP
    transport splits them, so a test can check how many packets a request sends.
    """

    def __init__(self, max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE) -> None:
        self.max_datagram_size = max_datagram_size
        #: Every datagram, in the order sent.
        self.datagrams: list[bytes] = []
        self._lock = threading.Lock()

    def send(self, serialized: bytes) -> None:
        """Keep the lines (joined by ``\\n``) as the datagrams they would travel in."""
        datagrams = list(pack_datagrams(serialized.split(b"\n"), self.max_datagram_size))
        with self._lock:
            self.datagrams.extend(datagrams)

    def sent(self) -> list[bytes]:
        """A copy of the datagrams sent so far."""
        with self._lock:
            return list(self.datagrams)

    def clear(self) -> None:
        """Forget the datagrams sent so far."""
        with self._lock:
            self.datagrams.clear()


class CapturedMetrics:
    """What a :class:`baseplate.metrics.Client` sent, kept in memory (see
    :func:`capture_metrics`)."""

    def __init__(self, namespace: str, max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE):
        #: Where the client's lines go.
        self.transport = CapturingTransport(max_datagram_size)
        #: The client to hand to the code under test (``configure_metrics`` included).
        self.client = Client(self.transport, namespace)

    @property
    def datagrams(self) -> list[bytes]:
        """The datagrams sent, as on the wire."""
        return self.transport.sent()

    @property
    def lines(self) -> list[str]:
        """Every statsd line sent, in order."""
        return [
            line.decode("ascii") for datagram in self.datagrams for line in datagram.split(b"\n")
        ]

    @property
    def metrics(self) -> list[Metric]:
        """Every line sent, parsed."""
        return [Metric.parse(line) for line in self.lines]

    def names(self) -> list[str]:
        """The full names of the metrics sent, in order (repeated if sent more than once)."""
        return [metric.name for metric in self.metrics]

    def named(self, name: str) -> list[Metric]:
        """The metrics sent under the full name ``name``."""
        return [metric for metric in self.metrics if metric.name == name]

    def clear(self) -> None:
        """Forget what was sent so far."""
        self.transport.clear()


def capture_metrics(
    namespace: str = "test", max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE
) -> CapturedMetrics:
    """Return a metrics client (``.client``) that keeps what it sends instead of sending it.

    Use it where the service would use ``metrics_client_from_config``'s client: pass it to
    ``Baseplate.configure_metrics`` (each request's metrics then arrive when its server span
    ends) or call it directly. No socket is opened.
    """
    return CapturedMetrics(namespace, max_datagram_size)


__all__ = [
    "CapturedMetrics",
    "CapturedSpans",
    "CapturingTransport",
    "Metric",
    "capture_metrics",
    "capture_spans",
]
