"""Background span export in a gevent-patched process that forks: run as a subprocess.

``python -m tests.ecosystem.export_under_gevent PROCESSOR SCENARIO SPAN_LOG`` where
``PROCESSOR`` is ``bounded`` (baseplate's ``BoundedBatchSpanProcessor``) or ``stock`` (the
SDK's ``BatchSpanProcessor``), and ``SCENARIO`` reproduces the conditions of the gevent
failures reported against the stock processor:

* ``fork``: ``patch_all()`` first, the processor made and its worker running, then
  subprocesses are started and the process forks twice (at-fork handlers, a worker
  carried across the fork: the
  ``AssertionError`` in ``AbstractLinkable._notify_links`` and the ``KeyError`` in
  ``threading._limbo``); each child and the parent export spans made on many greenlets.
* ``hang``: the exporter blocks (a collector that never answers) while request greenlets
  keep ending spans and one of them flushes (the flush deadlock).

The script prints one JSON line of results on stdout; spans go to ``SPAN_LOG``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import ctypes.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from exporters.batch import BoundedBatchSpanProcessor  # noqa: E402
from tests.ecosystem.spanlog import JsonLinesExporter  # noqa: E402

GREENLETS = 50


class HangingExporter(SpanExporter):
    """An exporter whose collector never answers: ``export`` blocks for a minute."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        time.sleep(60)
        return SpanExportResult.FAILURE


def make_processor(kind: str, exporter: SpanExporter) -> SpanProcessor:
    if kind == "bounded":
        return BoundedBatchSpanProcessor(
            exporter, schedule_delay=0.05, max_export_batch_size=16, shutdown_timeout=2.0
        )
    return BatchSpanProcessor(exporter, schedule_delay_millis=50, max_export_batch_size=16)


def spans_on_greenlets(provider: TracerProvider, prefix: str) -> None:
    tracer = provider.get_tracer("export_under_gevent")

    def one(index: int) -> None:
        with tracer.start_as_current_span(f"{prefix}-{index}"):
            gevent.sleep(0.001)

    gevent.joinall([gevent.spawn(one, index) for index in range(GREENLETS)], raise_error=True)


def fork_scenario(kind: str, span_log: str) -> dict[str, Any]:
    provider = TracerProvider()
    provider.add_span_processor(make_processor(kind, JsonLinesExporter(span_log)))
    spans_on_greenlets(provider, "parent-before")
    gevent.sleep(0.2)  # the worker is running and has exported when the fork happens
    # Subprocesses fork too, running the at-fork handlers (how ctypes' library lookup set
    # off the AssertionError in the reports).
    subprocess.run(["true"], check=True)
    ctypes.util.find_library("c")

    children = []
    for child in range(2):
        pid = os.fork()
        if pid == 0:
            spans_on_greenlets(provider, f"child{child}")
            flushed = provider.force_flush(10000)
            provider.shutdown()
            os._exit(0 if flushed else 3)
        children.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in children]
    spans_on_greenlets(provider, "parent-after")
    flushed = provider.force_flush(10000)
    provider.shutdown()
    return {"children": [os.waitstatus_to_exitcode(s) for s in statuses], "flushed": flushed}


def hang_scenario(kind: str) -> dict[str, Any]:
    provider = TracerProvider()
    exporter = HangingExporter()
    processor = make_processor(kind, exporter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("export_under_gevent")
    ended = 0

    def request(index: int) -> None:
        nonlocal ended
        for _ in range(20):
            with tracer.start_as_current_span(f"request-{index}"):
                gevent.sleep(0.001)
            ended += 1

    workers = [gevent.spawn(request, index) for index in range(GREENLETS)]
    gevent.sleep(0.1)  # the worker is now stuck in export
    flush_started = time.monotonic()
    flushed = processor.force_flush(300)
    flush_seconds = time.monotonic() - flush_started
    gevent.joinall(workers, timeout=30)
    shutdown_started = time.monotonic()
    processor.shutdown()
    return {
        "flushed": flushed,
        "flush_seconds": flush_seconds,
        "shutdown_seconds": time.monotonic() - shutdown_started,
        "ended": ended,
        "export_calls": exporter.calls,
    }


def main() -> None:
    kind, scenario = sys.argv[1], sys.argv[2]
    result = fork_scenario(kind, sys.argv[3]) if scenario == "fork" else hang_scenario(kind)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
