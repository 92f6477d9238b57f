"""Span exporter for the legacy trace publisher sidecar: Zipkin v1 JSON on a POSIX queue.

Each sampled span becomes one message on the POSIX message queue ``/traces-<queue_name>``;
the publisher sidecar (``python -m baseplate.diagnostics.tracing.publisher``) batches those
messages and posts them to Zipkin. The message is the Zipkin v1 JSON object existing
baseplate services write: integer ids (``parentId`` 0 for a root), microsecond ``timestamp``
and ``duration``, ``sr``/``ss`` (server) or ``cs``/``cr`` (client) annotations, and
``binaryAnnotations`` for tags, ``lc`` (a local span's component), ``error`` and, on every
span of a trace carrying baseplate's debug flag, ``debug`` (legacy consumers filter on it).

Writing never blocks and never fails the request: a full queue or a span larger than a
message is dropped, logged (rate-limited) and counted.

Exports run in the batch processor's worker, which under gevent (``baseplate-serve``
monkey-patches ``threading``) is a greenlet on the same OS thread, and so the same event loop,
as the requests. The exporter therefore:

* looks for room on the queue before encoding a span, so a full queue costs no encoding;
* gives the event loop back (a cooperative sleep) whenever it has held it for
  ``MAX_LOOP_HOLD`` (0.5 ms, :class:`otel_bridge.concurrency.LoopHold`, as the Zipkin and
  console exporters do) while encoding a batch: a batch of 512 request spans takes 7-12 ms
  to encode and write, which would otherwise hold every request waiting on the loop for all
  of it. Encoding in a native thread instead was measured to be worse (fewer requests a
  second, higher p99): the encoding thread holds the GIL for up to the interpreter's 5 ms
  switch interval each time the event loop lets it go for a system call;
* when the queue fills in the middle of a batch (the trace publisher reads it one message at
  a time, and the kernel's default queue holds only 10), waits for room a little, sleeping
  cooperatively, before it drops spans: :data:`FULL_QUEUE_PATIENCE` without the reader taking
  a message means the queue is full, and later batches drop at once, without waiting or
  encoding, until the queue has room again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from exporters._ratelimit import RateLimitedLog
from exporters.defaults import DEFAULT_FLUSH_TIMEOUT_MILLIS
from exporters.spans import (
    TAG_ERROR,
    TAG_LOCAL_COMPONENT,
    duration_microseconds,
    event_annotation_value,
    local_ipv4,
    microseconds,
    span_tags,
)
from otel_bridge import semconv
from otel_bridge.concurrency import LoopHold
from otel_bridge.context import instrumentation_suppressed

logger = logging.getLogger(__name__)

#: Most bytes in one span message (the publisher creates the queue with this size).
MAX_SPAN_SIZE = 102400
#: Most messages the trace queue holds.
MAX_QUEUE_SIZE = 10000
#: Prefix of the trace queue's name; the queue is ``/traces-<queue_name>``.
QUEUE_NAME_PREFIX = "/traces-"

#: Endpoint address used when the host name does not resolve.
UNRESOLVED_IPV4 = "127.0.0.1"

#: Binary annotation baseplate's recorder put on every span of a debug-flagged trace.
TAG_DEBUG = "debug"

#: Longest a queue may stay full while its reader is expected to take messages (seconds).
FULL_QUEUE_PATIENCE = 0.05
#: Interval at which a full queue is looked at again while waiting for room (seconds).
_ROOM_POLL_INTERVAL = 0.001

_SERVER_ANNOTATIONS = ("sr", "ss")
_CLIENT_ANNOTATIONS = ("cs", "cr")
_ANNOTATIONS_BY_KIND = {
    SpanKind.SERVER: _SERVER_ANNOTATIONS,
    SpanKind.CONSUMER: _SERVER_ANNOTATIONS,
    SpanKind.CLIENT: _CLIENT_ANNOTATIONS,
    SpanKind.PRODUCER: _CLIENT_ANNOTATIONS,
}


def trace_queue_path(queue_name: str) -> str:
    """Return the POSIX queue name for a ``tracing.queue_name`` (``/traces-<name>``)."""
    if not queue_name or "/" in queue_name:
        raise ValueError(f"invalid trace queue name: {queue_name!r}")
    return QUEUE_NAME_PREFIX + queue_name


def _kernel_limit(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/fs/mqueue/{name}") as limit_file:
            return int(limit_file.read().strip())
    except (OSError, ValueError):
        return default


def open_trace_queue(
    queue_name: str, max_messages: int = MAX_QUEUE_SIZE, max_message_size: int = MAX_SPAN_SIZE
) -> Any:
    """Open (creating if needed) the trace queue for ``queue_name``; return a posix_ipc queue.

    An existing queue keeps the sizes it was created with. When the kernel refuses the
    requested sizes (``fs.mqueue.msg_max`` / ``msgsize_max`` too low for an unprivileged
    process), the queue is created with the largest sizes it allows and a warning is logged.
    """
    import posix_ipc

    path = trace_queue_path(queue_name)
    try:
        return posix_ipc.MessageQueue(
            path, posix_ipc.O_CREAT, max_messages=max_messages, max_message_size=max_message_size
        )
    except (ValueError, OSError, posix_ipc.Error) as exc:
        allowed_messages = min(max_messages, _kernel_limit("msg_max", 10))
        allowed_size = min(max_message_size, _kernel_limit("msgsize_max", 8192))
        logger.warning(
            "could not create %s with %d messages of %d bytes (%s); using the kernel limits "
            "%d x %d (raise fs.mqueue.msg_max and fs.mqueue.msgsize_max)",
            path,
            max_messages,
            max_message_size,
            exc,
            allowed_messages,
            allowed_size,
        )
        return posix_ipc.MessageQueue(
            path,
            posix_ipc.O_CREAT,
            max_messages=allowed_messages,
            max_message_size=allowed_size,
        )


def _binary_value(value: Any) -> bool | str:
    # The legacy format allows only booleans and strings.
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def encode_v1_span(span: ReadableSpan, endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Zipkin v1 JSON object the trace publisher sidecar expects for one span."""
    context = span.context
    assert context is not None
    start = microseconds(span.start_time)
    duration = duration_microseconds(span)
    end = start + duration

    annotations: list[dict[str, Any]] = []
    pair = _ANNOTATIONS_BY_KIND.get(span.kind)
    if pair is not None:
        annotations.append({"endpoint": dict(endpoint), "timestamp": start, "value": pair[0]})
        annotations.append({"endpoint": dict(endpoint), "timestamp": end, "value": pair[1]})
    for event in span.events:
        annotations.append(
            {
                "endpoint": dict(endpoint),
                "timestamp": microseconds(event.timestamp),
                "value": event_annotation_value(event),
            }
        )

    tags = span_tags(span)
    binary_annotations: list[dict[str, Any]] = []
    if span.kind is SpanKind.INTERNAL:
        component = tags.pop(TAG_LOCAL_COMPONENT, None)
        if component is None:
            scope = span.instrumentation_scope
            component = scope.name if scope is not None else ""
        binary_annotations.append(
            {
                "key": TAG_LOCAL_COMPONENT,
                "value": _binary_value(component),
                "endpoint": dict(endpoint),
            }
        )
    for key, value in tags.items():
        if key == TAG_ERROR:
            # Legacy consumers look for the boolean, as baseplate wrote it.
            value = True
        binary_annotations.append(
            {"key": key, "value": _binary_value(value), "endpoint": dict(endpoint)}
        )
    if semconv.is_debug(context):
        binary_annotations.append({"key": TAG_DEBUG, "value": True, "endpoint": dict(endpoint)})

    return {
        "traceId": context.trace_id,
        "name": span.name,
        "id": context.span_id,
        "timestamp": start,
        "duration": duration,
        "annotations": annotations,
        "binaryAnnotations": binary_annotations,
        "parentId": span.parent.span_id if span.parent is not None else 0,
    }


class SidecarExporter(SpanExporter):
    """Write each span as one Zipkin v1 JSON message on the trace queue.

    :param service_name: ``endpoint.serviceName`` of every annotation (``tracing.service_name``).
    :param queue_name: ``tracing.queue_name``; spans go to ``/traces-<queue_name>``.
    :param max_messages: Queue length used if this exporter creates the queue.
    :param max_message_size: Message size used if this exporter creates the queue; spans
        whose JSON is larger are dropped.
    :param ipv4: ``endpoint.ipv4``; resolved from the host name when not given.
    """

    def __init__(
        self,
        service_name: str,
        queue_name: str,
        max_messages: int = MAX_QUEUE_SIZE,
        max_message_size: int = MAX_SPAN_SIZE,
        ipv4: str | None = None,
    ) -> None:
        import posix_ipc

        self.service_name = service_name
        self.queue_name = queue_name
        self.queue = open_trace_queue(queue_name, max_messages, max_message_size)
        self.max_span_size = min(max_message_size, int(self.queue.max_message_size))
        self.endpoint = {
            "serviceName": service_name,
            "ipv4": ipv4 or local_ipv4() or UNRESOLVED_IPV4,
        }
        #: Spans dropped because the queue was full.
        self.queue_full_spans = 0
        #: Spans dropped because their JSON was larger than a message.
        self.oversize_spans = 0
        #: Spans written to the queue.
        self.sent_spans = 0
        self._busy_error = posix_ipc.BusyError
        self._log = RateLimitedLog(logger)
        self._closed = False
        #: The queue stayed full for FULL_QUEUE_PATIENCE: drop without waiting until it has room.
        self._stalled = False

    @property
    def dropped_spans(self) -> int:
        """Spans not written, for any reason."""
        return self.queue_full_spans + self.oversize_spans

    def encode(self, span: ReadableSpan) -> bytes:
        """Return the queue message for one span."""
        return json.dumps(encode_v1_span(span, self.endpoint)).encode("utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Put one message per span on the queue without blocking; FAILURE if any was dropped."""
        if self._closed:
            self.queue_full_spans += len(spans)
            return SpanExportResult.FAILURE
        # Every export path runs with instrumentation suppressed, whatever processor calls
        # it: no instrumentation traces posix_ipc today, but one that did would otherwise
        # make a span for every span written.
        with instrumentation_suppressed():
            return self._write(spans)

    def _room(self) -> int:
        """Messages the queue can take now (a full queue is not worth encoding spans for)."""
        try:
            return int(self.queue.max_messages) - int(self.queue.current_messages)
        except Exception:
            return 1  # cannot tell: try, and let send say

    def _wait_for_room(self, sleep: Callable[[float], None]) -> int:
        """Room on the queue, waiting up to FULL_QUEUE_PATIENCE for the reader to make some
        (unless the queue was found full before and has not had room since)."""
        room = self._room()
        if room > 0 or self._stalled:
            return room
        deadline = time.monotonic() + FULL_QUEUE_PATIENCE
        while time.monotonic() < deadline:
            sleep(_ROOM_POLL_INTERVAL)
            room = self._room()
            if room > 0:
                return room
        self._stalled = True
        return 0

    def _send(self, message: bytes, sleep: Callable[[float], None]) -> bool:
        """Put ``message`` on the queue without blocking; if it is full (another process may
        write to it too), wait for room once. False if it stayed full."""
        try:
            self.queue.send(message, timeout=0)
            return True
        except self._busy_error:
            pass
        if self._wait_for_room(sleep) <= 0:
            return False
        try:
            self.queue.send(message, timeout=0)
            return True
        except self._busy_error:
            return False

    def _write(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        dropped = 0
        room = self._room()
        if room > 0:
            self._stalled = False
        hold = LoopHold()
        sleep = hold.cooperative_sleep or time.sleep
        for index, span in enumerate(spans):
            if room <= 0:
                room = self._wait_for_room(sleep)
            if room <= 0:
                # The sidecar is behind: drop what is left of the batch without encoding it,
                # so a full queue costs the service nothing.
                left = len(spans) - index
                self.queue_full_spans += left
                dropped += left
                self._log.error(
                    "trace queue %s is full; is the trace publisher running?", self.queue.name
                )
                break
            self._stalled = False
            hold.checkpoint()  # under gevent, let the requests waiting on the loop run
            try:
                message = self.encode(span)
            except Exception as exc:
                self.oversize_spans += 1
                dropped += 1
                self._log.error("could not encode span %r: %r", span.name, exc)
                continue
            if len(message) > self.max_span_size:
                self.oversize_spans += 1
                dropped += 1
                self._log.error(
                    "span %r is %d bytes; messages on %s are limited to %d bytes. This can be "
                    "caused by too many or too large tags.",
                    span.name,
                    len(message),
                    self.queue.name,
                    self.max_span_size,
                )
                continue
            room -= 1
            try:
                sent = self._send(message, sleep)
            except (ValueError, OSError) as exc:
                self.oversize_spans += 1
                dropped += 1
                self._log.error("could not write span to %s: %r", self.queue.name, exc)
                continue
            if sent:
                self.sent_spans += 1
            else:
                self.queue_full_spans += 1
                dropped += 1
                room = 0
                self._log.error(
                    "trace queue %s is full; is the trace publisher running?", self.queue.name
                )
        return SpanExportResult.FAILURE if dropped else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Messages are written immediately; always True."""
        return True

    def __del__(self) -> None:
        # An open handle counts against the user's message-queue quota (RLIMIT_MSGQUEUE):
        # an exporter dropped without shutdown must not keep it.
        try:
            self.shutdown()
        except Exception:
            pass

    def shutdown(self) -> None:
        """Close this process's handle on the queue (the queue itself stays for the sidecar)."""
        if not self._closed:
            self._closed = True
            try:
                self.queue.close()
            except Exception:
                pass
