"""Statsd timers and counters for every baseplate span, one batch per request.

:class:`StatsdSpanProcessor` is an OpenTelemetry span processor. For spans of the
``baseplate`` instrumentation scope it records, in the request's metrics batch:

* server spans (``SERVER``/``CONSUMER``): timer ``server.<span name>`` and counter
  ``server.<span name>.success`` or ``.failure`` (status ERROR is a failure);
* client spans (``CLIENT``/``PRODUCER``): timer ``clients.<span name>`` and counter
  ``clients.<span name>.success`` or ``.failure``, and ``errors.<class>`` for each
  ``error.object`` the span logged (``span.log("error.object", exc)``);
* local spans (``INTERNAL``): timer ``<component name>.<span name>``; an internal span without
  a component name records nothing.

The batch adds the application's namespace in front of these names. Names come from span
data, so anything the statsd wire cannot carry is replaced with ``_`` instead of raising.

A request is the tree of spans under one local root: a baseplate server span, or any span
whose parent is remote, absent or unknown. Its metrics stay in its batch until the root
ends and then go out together, in as few datagrams as fit. Spans ending after their root are
sent as they end. Unsampled requests are measured too: their spans are recording.

Vendor spans (any other instrumentation scope, e.g. OpenTelemetry auto-instrumentation) are
not measured, because their names are not bounded (URLs, SQL text) and would flood statsd
with metric names. They still link a baseplate span to its request when they sit between
the two, and a vendor root span delimits a request like any other root.

With ``announced_requests_only``, only requests announced through
:meth:`StatsdSpanProcessor.batch_for_request` before their server span starts are measured
(with the spans under them); everything else is left alone. That keeps processors of several
``Baseplate`` objects sharing one tracer provider from measuring each other's requests.

Memory is bounded: at most ``max_open_spans`` unfinished spans and ``max_pending_requests``
batches handed out by :meth:`StatsdSpanProcessor.batch_for_request` for spans not started yet
are remembered; past that the oldest is forgotten and its batch sent as it stands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, NamedTuple, Optional, Protocol, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from exporters._ratelimit import RateLimitedLog
from exporters.defaults import DEFAULT_FLUSH_TIMEOUT_MILLIS
from exporters.statsd.wire import safe_metric_name
from otel_bridge._sdk import has_events
from otel_bridge.semconv import (
    ATTR_COMPONENT,
    ATTR_LOG_PAYLOAD_TYPE,
    EVENT_ERROR_OBJECT,
    is_baseplate_span,
)

logger = logging.getLogger(__name__)

_SERVER_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)
_CLIENT_KINDS = (SpanKind.CLIENT, SpanKind.PRODUCER)

DEFAULT_MAX_OPEN_SPANS = 100_000
DEFAULT_MAX_PENDING_REQUESTS = 10_000


class TimerMetric(Protocol):
    """The part of a statsd timer the processor uses."""

    def send(self, elapsed: float) -> None:
        """Record ``elapsed`` seconds."""


class CounterMetric(Protocol):
    """The part of a statsd counter the processor uses."""

    def increment(self, delta: float = 1, sample_rate: float = 1.0) -> None:
        """Add ``delta`` to the counter."""


class MetricsBatch(Protocol):
    """A batch of metrics sent together on ``flush()`` (``baseplate.metrics.Batch`` is one)."""

    def timer(self, name: str) -> TimerMetric:
        """Return the timer ``name``."""

    def counter(self, name: str) -> CounterMetric:
        """Return the counter ``name``."""

    def flush(self) -> None:
        """Send the batched metrics and empty the batch."""

    # Optional, and used when present: ``record_span(timer, seconds, counter)`` records the
    # timer and adds one to the counter (None for none) in one call.


_Batch = TypeVar("_Batch", bound=MetricsBatch)


def span_metric_name(span: ReadableSpan) -> bytes | None:
    """Return the statsd name a baseplate span is timed under, or None if it is not timed.

    ``server.<name>``, ``clients.<name>`` or ``<component>.<name>`` (see the module docs).
    """
    if span.kind in _SERVER_KINDS:
        return safe_metric_name("server", span.name)
    if span.kind in _CLIENT_KINDS:
        return safe_metric_name("clients", span.name)
    component = (span.attributes or {}).get(ATTR_COMPONENT)
    if not component:
        return None
    return safe_metric_name(str(component), span.name)


class _SpanNames(NamedTuple):
    timer: str
    success: str
    failure: str


# Span names repeat on every request; building metric names is the costly part of a span.
_NAMES_CACHE_SIZE = 4096




class _Request(Generic[_Batch]):
    """The metrics of one request: its batch (made when first needed) and whether it ended."""

    __slots__ = ("batch", "ended")

    def __init__(self, batch: _Batch | None) -> None:
        self.batch = batch
        self.ended = False


# An open span, under the id() of its span context: its request, that span context (held, so
# the id is not reused while the span is open) and whether it is its request's root. The SDK
# hands a span's processors the same span context object at its start and at its end, and
# as its children's parent, so every lookup is by identity and two spans with the same ids (a
# server span for a call from this same process keeps its caller's) never mix. A tuple: one
# is made for every span.
_OpenSpan = tuple["_Request[_Batch]", SpanContext, bool]


class StatsdSpanProcessor(SpanProcessor, Generic[_Batch]):
    """Record statsd metrics for baseplate spans, sending each request's metrics together.

    :param new_batch: Makes an empty metrics batch; called once per request that has
        metrics (``client.batch`` of a ``baseplate.metrics.Client``).
    :param announced_requests_only: Measure only the requests whose server span's batch was
        asked for with :meth:`batch_for_request` before it started.
    :param max_open_spans: How many unfinished spans to remember.
    :param max_pending_requests: How many batches handed out for server spans that have
        not started yet to remember.
    """

    def __init__(
        self,
        new_batch: Callable[[], _Batch],
        *,
        announced_requests_only: bool = False,
        max_open_spans: int = DEFAULT_MAX_OPEN_SPANS,
        max_pending_requests: int = DEFAULT_MAX_PENDING_REQUESTS,
    ) -> None:
        self.new_batch = new_batch
        self.announced_requests_only = announced_requests_only
        self.max_open_spans = max_open_spans
        self.max_pending_requests = max_pending_requests
        # Every span start and end touches _open: plain dictionary operations, each atomic,
        # without a lock. The lock guards what is rare: eviction and batches being made.
        self._open: dict[int, _OpenSpan[_Batch]] = {}
        # The open server spans that root a request, by ids, for batch_for_request.
        self._roots: dict[tuple[int, int], _Request[_Batch]] = {}
        self._pending: dict[tuple[int, int], _Batch] = {}
        self._lock = threading.Lock()
        self._errors = RateLimitedLog(logger)
        # Metric names by span name (server, client) or (component, span name) (local): built
        # once per name. Separate tables, so no SpanKind (whose hash is Python code) is hashed.
        self._server_names: dict[str, _SpanNames] = {}
        self._client_names: dict[str, _SpanNames] = {}
        self._local_names: dict[tuple[str, str], _SpanNames] = {}

    def batch_for_request(self, trace_id: int, span_id: int) -> _Batch:
        """Return the batch that is sent when the server span with these ids ends.

        May be called before the span starts (the batch is kept until it does) or while it
        is open. The application's own metrics added to it go out with the request's.
        """
        key = (trace_id, span_id)
        with self._lock:
            request = self._roots.get(key)
            if request is not None and request.batch is not None:
                return request.batch
            batch = self._pending.get(key)
            if batch is not None:
                return batch
        batch = self.new_batch()
        evicted: list[_Batch] = []
        with self._lock:
            if request is not None:
                if request.batch is None:
                    request.batch = batch
                return request.batch
            batch = self._pending.setdefault(key, batch)
            while len(self._pending) > self.max_pending_requests:
                evicted.append(self._pending.pop(next(iter(self._pending))))
        self._send_evicted(evicted, "requests that never started")
        return batch

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        try:
            context = span.context
            if context is None:
                return
            if span.kind in _SERVER_KINDS and is_baseplate_span(span):
                key = (context.trace_id, context.span_id)
                request: _Request[_Batch] = _Request(self._pending.pop(key, None))
                if request.batch is None and self.announced_requests_only:
                    return
                self._roots.setdefault(key, request)
                entry: _OpenSpan[_Batch] = (request, context, True)
            else:
                parent = span.parent
                parent_entry = None if parent is None else self._open.get(id(parent))
                if parent_entry is not None:
                    entry = (parent_entry[0], context, False)
                elif self.announced_requests_only:
                    return
                else:
                    entry = (_Request(None), context, True)
            open_spans = self._open
            open_spans[id(context)] = entry
            if len(open_spans) > self.max_open_spans:
                self._evict()
        except Exception:
            self._errors.warning("statsd metrics failed for a starting span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            context = span.context
            if context is None:
                return
            entry = self._open.pop(id(context), None)
            if entry is None:
                if self.announced_requests_only:
                    return
                request: _Request[_Batch] = _Request(None)
                request.ended = True
            else:
                request = entry[0]
                if entry[2]:
                    request.ended = True
                    self._forget_root(context, request)
            if is_baseplate_span(span):
                self._record(span, request)
            if request.ended and request.batch is not None:
                self._flush(request.batch)
        except Exception:
            self._errors.warning("statsd metrics failed for an ending span", exc_info=True)

    def shutdown(self) -> None:
        """Send the batches of requests that are still open."""
        with self._lock:
            batches = list(self._pending.values())
            batches.extend(
                entry[0].batch
                for entry in self._open.values()
                if entry[2] and entry[0].batch is not None
            )
            self._pending.clear()
            self._open.clear()
            self._roots.clear()
        for batch in batches:
            self._flush(batch)

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Nothing waits here: a request's metrics are sent when its root span ends."""
        return True

    def _forget_root(self, context: SpanContext, request: _Request[_Batch]) -> None:
        key = (context.trace_id, context.span_id)
        if self._roots.get(key) is request:
            self._roots.pop(key, None)

    def _record(self, span: ReadableSpan, request: _Request[_Batch]) -> None:
        kind = span.kind
        if kind in _SERVER_KINDS:
            names = self._server_names.get(span.name) or self._new_names(span)
        elif kind in _CLIENT_KINDS:
            names = self._client_names.get(span.name) or self._new_names(span)
        else:
            component = (span.attributes or {}).get(ATTR_COMPONENT)
            if not component:
                return
            names = self._local_names.get((str(component), span.name)) or self._new_names(span)
        batch = request.batch
        if batch is None:
            batch = self._batch_of(request)
        counter = None
        if kind is not SpanKind.INTERNAL:
            failed = span.status.status_code is StatusCode.ERROR
            counter = names.failure if failed else names.success
        start, end = span.start_time, span.end_time
        if start is not None and end is not None:
            seconds = (end - start) / 1e9
            record = getattr(batch, "record_span", None)
            if record is not None:
                record(names.timer, seconds, counter)
                counter = None
            else:
                batch.timer(names.timer).send(seconds)
        if counter is not None:
            batch.counter(counter).increment()
        if kind in _CLIENT_KINDS and has_events(span):
            self._count_error_objects(span, batch)

    @staticmethod
    def _count_error_objects(span: ReadableSpan, batch: MetricsBatch) -> None:
        # span.log("error.object", exc) on a client span: errors.<class of exc>, as in 0.28
        for event in span.events:
            if event.name == EVENT_ERROR_OBJECT:
                kind = (event.attributes or {}).get(ATTR_LOG_PAYLOAD_TYPE)
                if kind:
                    batch.counter(safe_metric_name("errors", str(kind)).decode("ascii")).increment()

    def _new_names(self, span: ReadableSpan) -> _SpanNames:
        """Build and remember the metric names of a span (only called for a timed span)."""
        name = span_metric_name(span)
        assert name is not None
        timer = name.decode("ascii")
        names = _SpanNames(timer, timer + ".success", timer + ".failure")
        kind = span.kind
        with self._lock:
            if kind in _SERVER_KINDS:
                table: dict[object, _SpanNames] = self._server_names  # type: ignore[assignment]
                key: object = span.name
            elif kind in _CLIENT_KINDS:
                table, key = self._client_names, span.name  # type: ignore[assignment]
            else:
                component = str((span.attributes or {}).get(ATTR_COMPONENT))
                table, key = self._local_names, (component, span.name)  # type: ignore[assignment]
            if len(table) >= _NAMES_CACHE_SIZE:
                table.clear()
            table[key] = names
        return names

    def _evict(self) -> None:
        evicted: list[_Batch] = []
        with self._lock:
            while len(self._open) > self.max_open_spans:
                try:
                    request, context, is_root = self._open.pop(next(iter(self._open)))
                except (RuntimeError, StopIteration, KeyError):  # changed meanwhile: look again
                    continue
                if is_root:
                    request.ended = True
                    self._forget_root(context, request)
                    if request.batch is not None:
                        evicted.append(request.batch)
        self._send_evicted(evicted, "spans that never ended")

    def _batch_of(self, request: _Request[_Batch]) -> _Batch:
        batch = request.batch
        if batch is None:
            made = self.new_batch()
            with self._lock:
                if request.batch is None:
                    request.batch = made
                batch = request.batch
        return batch

    def _flush(self, batch: MetricsBatch) -> None:
        try:
            batch.flush()
        except Exception:
            self._errors.warning("could not send a metrics batch", exc_info=True)

    def _send_evicted(self, batches: list[_Batch], what: str) -> None:
        if not batches:
            return
        self._errors.warning(
            "statsd metrics: forgot %d %s to bound memory; sending their metrics now",
            len(batches),
            what,
        )
        for batch in batches:
            self._flush(batch)
