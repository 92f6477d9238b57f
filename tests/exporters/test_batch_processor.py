"""The bounded batch span processor: sampling, bounds, faults, fork and gevent."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from exporters.batch import BoundedBatchSpanProcessor
from exporters.zipkin import ZipkinExporter

from .fixtures import Receiver, SpanMaker, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def finished_span(name: str, sampled: bool = True, span_id: int = 1) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(0xABC, span_id, is_remote=False, trace_flags=flags)
    now = time.time_ns()
    return ReadableSpan(name, context=context, start_time=now, end_time=now + 1000)


def received_names(receiver: Receiver) -> list[str]:
    return [span["name"] for span in receiver.spans()]


def test_only_sampled_spans_are_exported(receiver: Receiver) -> None:
    processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", receiver.url))
    processor.on_end(finished_span("sampled", sampled=True, span_id=1))
    processor.on_end(finished_span("unsampled", sampled=False, span_id=2))

    assert processor.force_flush(10_000)

    assert received_names(receiver) == ["sampled"]
    assert processor.exported_spans == 1
    processor.shutdown()


def test_spans_from_a_provider_are_batched(receiver: Receiver, spans: SpanMaker) -> None:
    processor = BoundedBatchSpanProcessor(
        ZipkinExporter("svc", receiver.url), max_export_batch_size=10
    )
    spans.provider.add_span_processor(processor)
    for index in range(25):
        with spans.tracer.start_as_current_span(f"op-{index}"):
            pass

    assert processor.force_flush(10_000)

    assert sorted(received_names(receiver)) == sorted(f"op-{index}" for index in range(25))
    assert all(len(request.json()) <= 10 for request in receiver.requests)


def test_worker_exports_without_a_flush(receiver: Receiver) -> None:
    processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", receiver.url), schedule_delay=0.05)
    processor.on_end(finished_span("background"))

    wait_for(lambda: receiver.requests)

    assert received_names(receiver) == ["background"]
    processor.shutdown()


def test_full_queue_drops_and_counts(hanging_address: str) -> None:
    # The collector never answers, so the worker is stuck in its first export (600 s is
    # longer than the test's time limit: shutdown must not wait for it).
    exporter = ZipkinExporter("svc", hanging_address, timeout=600)
    processor = BoundedBatchSpanProcessor(
        exporter, max_queue_size=10, max_export_batch_size=5, shutdown_timeout=0.1
    )
    for index in range(100):
        processor.on_end(finished_span(f"op-{index}", span_id=index + 1))
        assert len(processor._queue) <= 10

    assert processor.dropped_spans >= 85
    processor.shutdown()


def test_shutdown_does_not_wait_for_a_hanging_collector(hanging_address: str) -> None:
    exporter = ZipkinExporter("svc", hanging_address, timeout=600)
    processor = BoundedBatchSpanProcessor(exporter, max_export_batch_size=2, shutdown_timeout=0.2)
    for index in range(6):
        processor.on_end(finished_span(f"op-{index}", span_id=index + 1))
    wait_for(lambda: processor._exporting)

    # The exporter would wait 600 s for an answer, longer than the test's time limit.
    processor.shutdown()

    assert processor.lost_spans == 4
    # the export in progress was aborted, and its spans counted
    wait_for(lambda: exporter.dropped_spans == 2)
    processor.on_end(finished_span("late"))
    assert processor.dropped_spans == 1
    wait_for(lambda: processor.in_flight_spans == 0)
    counts = processor.telemetry_counts()
    assert counts["spans.failed"] == 2 and counts["spans.lost"] == 4
    assert sum(counts[k] for k in counts) == 7  # every span counted exactly once


def test_force_flush_gives_up_on_a_hanging_collector(hanging_address: str) -> None:
    processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", hanging_address, timeout=600))
    processor.on_end(finished_span("stuck"))

    assert processor.force_flush(100) is False
    processor.shutdown_timeout = 0
    processor.shutdown()


def test_collector_down_counts_failed_spans(refused_address: str) -> None:
    processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", refused_address, timeout=1))
    for index in range(3):
        processor.on_end(finished_span(f"op-{index}", span_id=index + 1))

    assert processor.force_flush(10_000)

    assert processor.failed_spans == 3
    processor.shutdown()


class RaisingExporter(SpanExporter):
    """An exporter breaking its contract by raising, which the processor must absorb."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("exporter bug")


def test_raising_exporter_is_contained() -> None:
    exporter = RaisingExporter()
    processor = BoundedBatchSpanProcessor(exporter)
    processor.on_end(finished_span("op"))

    assert processor.force_flush(10_000)

    assert exporter.calls == 1
    assert processor.failed_spans == 1
    processor.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_export_batch_size": 0}, "max_export_batch_size"),
        ({"schedule_delay": 0}, "schedule_delay"),
    ],
)
def test_bad_settings_are_rejected(receiver: Receiver, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BoundedBatchSpanProcessor(ZipkinExporter("svc", receiver.url), **kwargs)


def test_child_process_gets_its_own_worker_and_queue(receiver: Receiver) -> None:
    processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", receiver.url), schedule_delay=30)
    processor.on_end(finished_span("before-fork", span_id=1))  # starts the parent's worker

    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            processor.on_end(finished_span("in-child", span_id=2))
            status = 0 if processor.force_flush(10_000) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert received_names(receiver) == ["in-child"]
    assert processor.force_flush(10_000)
    assert sorted(received_names(receiver)) == ["before-fork", "in-child"]
    processor.shutdown()


def test_fork_during_an_export_does_not_reuse_the_parents_connection(receiver: Receiver) -> None:
    receiver.hold_next = True  # the parent's export hangs until released
    processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", receiver.url, timeout=30))
    processor.on_end(finished_span("parent", span_id=1))
    wait_for(lambda: receiver.requests)

    pid = os.fork()
    if pid == 0:  # the child, forked while the parent's post holds the connection
        status = 1
        try:
            processor.on_end(finished_span("child", span_id=2))
            status = 0 if processor.force_flush(10_000) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    receiver.release.set()

    assert os.waitstatus_to_exitcode(status) == 0
    assert processor.force_flush(10_000)
    assert sorted(received_names(receiver)) == ["child", "parent"]
    processor.shutdown()


GEVENT_SCRIPT = """
import os, sys
{early}
import gevent.monkey
gevent.monkey.patch_all()
import gevent
from opentelemetry.sdk.trace import TracerProvider
from exporters.batch import BoundedBatchSpanProcessor
from exporters.zipkin import ZipkinExporter
{late}
provider = TracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("baseplate")

def request(n):
    with tracer.start_as_current_span("request-%d" % n):
        gevent.sleep(0.001)
        with tracer.start_as_current_span("child-%d" % n):
            gevent.sleep(0.001)

gevent.joinall([gevent.spawn(request, n) for n in range(50)])
assert processor.force_flush(10000), "flush timed out"

pid = os.fork()
if pid == 0:
    gevent.joinall([gevent.spawn(request, n) for n in range(100, 110)])
    ok = processor.force_flush(10000)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
provider.shutdown()
print("exported", processor.exported_spans, "dropped", processor.dropped_spans)
"""

EARLY_PROCESSOR = """
from exporters.batch import BoundedBatchSpanProcessor
from exporters.zipkin import ZipkinExporter
processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", sys.argv[1]), schedule_delay=0.05)
"""
LATE_PROCESSOR = """
processor = BoundedBatchSpanProcessor(ZipkinExporter("svc", sys.argv[1]), schedule_delay=0.05)
"""


@pytest.mark.parametrize("created", ["after-patching", "before-patching"])
def test_under_gevent(receiver: Receiver, created: str) -> None:
    if created == "before-patching":
        script = GEVENT_SCRIPT.format(early=EARLY_PROCESSOR, late="")
    else:
        script = GEVENT_SCRIPT.format(early="", late=LATE_PROCESSOR)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), receiver.url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert result.returncode == 0, result.stderr
    for known_failure in ("AssertionError", "KeyError", "Traceback"):
        assert known_failure not in result.stderr
    assert "exported 100 dropped 0" in result.stdout
    names = received_names(receiver)
    assert len(names) == 120
    assert len(set(names)) == 120
