"""A bounded batch span processor that is safe under gevent and after ``os.fork()``.

:class:`BoundedBatchSpanProcessor` queues finished, *sampled* spans and exports them in
batches from one background worker. It differs from the SDK's ``BatchSpanProcessor`` where
that one is known to fail in baseplate's gevent servers:

* The application side never takes a lock or waits on a condition: ``on_end`` appends to a
  bounded deque (an atomic operation in CPython) and, when a batch is ready, sets an event
  only if it runs on the same OS thread as the worker. Sharing gevent primitives between OS
  threads is what raises ``AssertionError`` in ``AbstractLinkable._notify_links``, and a
  worker holding a lock during a blocking export is what deadlocked flushes.
* The worker is created lazily, on the first span, with whatever ``threading`` module is in
  place at that time. A processor built before ``gevent.monkey.patch_all()`` therefore gets a
  greenlet worker, and no half-started thread is carried across a fork (the cause of the
  ``KeyError`` in ``threading._limbo``).
* After ``os.fork()`` the child drops the parent's queue and its worker handle; a new worker
  starts with the child's first span.
* ``force_flush`` and ``shutdown`` wait by polling with short sleeps and give up at their
  timeout, so a collector that is down or hangs cannot hold the process: what is left is
  dropped and counted.
* Like the SDK's processors, it calls the exporter with OpenTelemetry instrumentation
  suppressed (the worker's exports and the exporter's shutdown): otherwise, with e.g. the
  ``requests`` instrumentation active, each OTLP export is a traced POST whose span is
  queued and exported in turn, a loop that never drains.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from exporters._ratelimit import RateLimitedLog
from exporters.defaults import (
    DEFAULT_EXPORT_TIMEOUT,
    DEFAULT_FLUSH_TIMEOUT_MILLIS,
    DEFAULT_MAX_EXPORT_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_SCHEDULE_DELAY,
)
from otel_bridge.context import instrumentation_suppressed

logger = logging.getLogger(__name__)

# force_flush and shutdown poll the queue: first soon (most flushes finish within a
# millisecond or two), then less often, up to this interval.
_FIRST_POLL_INTERVAL = 0.0005
_POLL_INTERVAL = 0.01


def _native_thread_id() -> int:
    # gevent does not patch get_native_id: it names the OS thread, which is what decides
    # whether an event can be shared with the worker.
    return threading.get_native_id()


def _threading_is_gevent_patched() -> bool:
    # Only asks gevent if the application already imported it; never imports it.
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    try:
        return bool(monkey.is_module_patched("threading"))
    except Exception:
        return False


class BoundedBatchSpanProcessor(SpanProcessor):
    """Export sampled spans in batches from a background worker, with bounded memory and time.

    :param exporter: Where batches of spans go.
    :param max_queue_size: Spans waiting for export beyond this number are dropped (and
        counted in :attr:`dropped_spans`).
    :param max_export_batch_size: Most spans passed to one ``exporter.export`` call.
    :param schedule_delay: Seconds between exports when fewer than a batch of spans wait.
    :param shutdown_timeout: Seconds ``shutdown`` waits for queued spans to be exported.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_export_batch_size: int = DEFAULT_MAX_EXPORT_BATCH_SIZE,
        schedule_delay: float = DEFAULT_SCHEDULE_DELAY,
        shutdown_timeout: float = DEFAULT_EXPORT_TIMEOUT,
    ) -> None:
        if max_queue_size <= 0:
            raise ValueError(f"max_queue_size must be positive, not {max_queue_size!r}")
        if max_export_batch_size <= 0:
            raise ValueError(
                f"max_export_batch_size must be positive, not {max_export_batch_size!r}"
            )
        if schedule_delay <= 0:
            raise ValueError(f"schedule_delay must be positive, not {schedule_delay!r}")
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self.schedule_delay = schedule_delay
        self.shutdown_timeout = shutdown_timeout

        #: Spans dropped because the queue was full, or because they ended after shutdown.
        self.dropped_spans = 0
        #: Spans still queued when shutdown ran out of time, never exported.
        self.lost_spans = 0
        #: Spans the exporter reported as failed (or raised on).
        self.failed_spans = 0
        #: Spans the exporter accepted.
        self.exported_spans = 0
        #: Spans handed to the exporter and not answered yet.
        self.in_flight_spans = 0

        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._start_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._worker_os_thread = 0
        self._wake_from_any_thread = True
        self._wakeup: threading.Event | None = None
        self._exporting = 0
        self._stopping = False
        self._shut_down = False
        self._log = RateLimitedLog(logger)

        if hasattr(os, "register_at_fork"):
            self_ref = weakref.ref(self)

            def after_fork_in_child() -> None:
                processor = self_ref()
                if processor is not None:
                    processor._reset_after_fork()

            os.register_at_fork(after_in_child=after_fork_in_child)

    # -- SpanProcessor -------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a finished span for export if it is sampled; drop it if the queue is full."""
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        if self._shut_down:
            self.dropped_spans += 1
            return
        if len(self._queue) >= self.max_queue_size:
            self.dropped_spans += 1
            self._log.warning(
                "span export queue is full (%d spans); dropping spans", self.max_queue_size
            )
            return
        self._queue.append(span)
        if self._worker is None:
            self._start_worker()
        elif len(self._queue) >= self.max_export_batch_size:
            self._wake_worker()

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Export everything queued so far; return False if that took longer than the timeout."""
        if self._worker is None:
            if not self._queue:
                return True
            self._start_worker()
        return self._wait_until_drained(timeout_millis / 1000.0)

    def shutdown(self) -> None:
        """Export what is queued (waiting at most ``shutdown_timeout``), then stop the worker.

        Spans still queued when the time is up are dropped and counted. The exporter is shut
        down in any case.
        """
        if self._shut_down:
            return
        self._shut_down = True
        if self._queue and self._worker is None:
            self._start_worker()
        self._wait_until_drained(self.shutdown_timeout)
        self._stopping = True
        self._wake_worker()
        left = len(self._queue)
        in_flight = self.in_flight_spans
        if left:
            self._queue.clear()
            self.lost_spans += left
        if left or in_flight:
            logger.warning(
                "%d spans were not exported before shutdown (%d queued, %d being exported)",
                left + in_flight,
                left,
                in_flight,
            )
        try:
            with instrumentation_suppressed():
                self.exporter.shutdown()
        except Exception:
            logger.exception("span exporter failed to shut down")

    # -- worker --------------------------------------------------------------------------

    def _start_worker(self) -> None:
        with self._start_lock:
            if self._worker is not None or self._stopping:
                return
            # Looked up now, not at import: under gevent these are the patched classes.
            self._wakeup = threading.Event()
            worker = threading.Thread(target=self._run, name="BaseplateSpanExport", daemon=True)
            self._worker = worker
            self._worker_os_thread = _native_thread_id()
            # A gevent event may only be set from the OS thread whose hub runs the worker.
            self._wake_from_any_thread = not _threading_is_gevent_patched()
            worker.start()

    def _wake_worker(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return
        if self._wake_from_any_thread or _native_thread_id() == self._worker_os_thread:
            wakeup.set()

    def _run(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while not self._stopping:
            if len(self._queue) < self.max_export_batch_size:
                wakeup.wait(self.schedule_delay)
                wakeup.clear()
            if self._stopping:
                break
            self._export_queued()

    def _export_queued(self) -> None:
        while self._queue and not self._stopping:
            batch: list[ReadableSpan] = []
            self._exporting += 1
            try:
                while self._queue and len(batch) < self.max_export_batch_size:
                    batch.append(self._queue.popleft())
                self._export(batch)
            finally:
                self._exporting -= 1

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        self.in_flight_spans += len(batch)
        try:
            with instrumentation_suppressed():
                result = self.exporter.export(batch)
        except Exception as exc:
            result = SpanExportResult.FAILURE
            self._log.error("span exporter raised %r", exc)
        finally:
            self.in_flight_spans -= len(batch)
        if result is SpanExportResult.SUCCESS:
            self.exported_spans += len(batch)
        else:
            self.failed_spans += len(batch)

    def telemetry_counts(self) -> dict[str, int]:
        """What became of the sampled spans this processor was given, for the health metrics
        (see :mod:`exporters.health`): each one is exactly one of these."""
        return {
            "spans.exported": self.exported_spans,
            "spans.failed": self.failed_spans,
            "spans.dropped": self.dropped_spans,
            "spans.lost": self.lost_spans,
            "spans.queued": len(self._queue),
            "spans.in_flight": self.in_flight_spans,
        }

    def _wait_until_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        self._wake_worker()
        interval = _FIRST_POLL_INTERVAL
        while self._queue or self._exporting:
            now = time.monotonic()
            if now >= deadline:
                return False
            if self._worker is not None and not self._worker.is_alive():
                return False
            # time.sleep yields to the worker greenlet when gevent has patched it.
            time.sleep(min(interval, deadline - now))
            interval = min(interval * 2, _POLL_INTERVAL)
            if self._queue:
                self._wake_worker()
        return True

    def _reset_after_fork(self) -> None:
        # The parent's spans are the parent's to export; the worker did not survive the fork.
        self._queue = collections.deque()
        self._start_lock = threading.Lock()
        self._worker = None
        self._wakeup = None
        self._exporting = 0
