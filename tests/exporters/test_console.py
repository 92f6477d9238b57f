"""The development console exporter: one readable tree with a waterfall per request."""

from __future__ import annotations

import io
import json
import pathlib
import subprocess
import sys
import textwrap

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from exporters import console
from exporters.console import RequestTreeConsoleExporter
from otel_bridge import semconv

from .fixtures import SpanMaker

REPO = pathlib.Path(__file__).resolve().parents[2]
MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def request_with_children(spans: SpanMaker, trace_id: int = 0x1234) -> None:
    """A 10 ms request: a 5 ms client call at 0 ms, a failed 2 ms local span at 6 ms."""
    tracer = spans.tracer
    spans.ids.trace_ids.append(trace_id)
    server = tracer.start_span("GET /things", kind=SpanKind.SERVER, start_time=T0)
    parent = trace.set_span_in_context(server)
    client = tracer.start_span("redis.GET", parent, kind=SpanKind.CLIENT, start_time=T0)
    client.end(end_time=T0 + 5 * MS)
    local = tracer.start_span(
        "render",
        parent,
        attributes={semconv.ATTR_COMPONENT: "templates"},
        start_time=T0 + 6 * MS,
    )
    local.set_status(Status(StatusCode.ERROR))
    local.end(end_time=T0 + 8 * MS)
    server.end(end_time=T0 + 10 * MS)


def test_request_is_printed_as_a_tree_with_a_waterfall(spans: SpanMaker) -> None:
    request_with_children(spans)
    out = io.StringIO()
    exporter = RequestTreeConsoleExporter(out=out, bar_width=10)

    exporter.export(spans.finished())

    assert out.getvalue() == (
        "trace 0000000000001234  GET /things  10.00 ms\n"
        "  GET /things               10.00 ms  [##########]\n"
        "  ├─ redis.GET               5.00 ms  [#####     ]\n"
        "  └─ render (local) !error   2.00 ms  [      ##  ]\n"
    )


def test_nothing_is_printed_until_the_request_ends(spans: SpanMaker) -> None:
    request_with_children(spans)
    children, root = spans.finished()[:-1], spans.finished()[-1:]
    out = io.StringIO()
    exporter = RequestTreeConsoleExporter(out=out)

    exporter.export(children)
    assert out.getvalue() == ""

    exporter.export(root)
    assert out.getvalue().count("\n") == 4


def test_each_request_gets_its_own_tree(spans: SpanMaker) -> None:
    request_with_children(spans, trace_id=0x1)
    request_with_children(spans, trace_id=0x2)
    out = io.StringIO()

    RequestTreeConsoleExporter(out=out).export(spans.finished())

    text = out.getvalue()
    assert text.count("trace 0000000000000001") == 1
    assert text.count("trace 0000000000000002") == 1
    assert text.count("redis.GET") == 2


def test_held_spans_are_bounded(spans: SpanMaker) -> None:
    out = io.StringIO()
    exporter = RequestTreeConsoleExporter(out=out, max_pending_spans=3)
    root = spans.tracer.start_span("never-ends", start_time=T0)
    parent = trace.set_span_in_context(root)
    for index in range(5):
        child = spans.tracer.start_span(f"child-{index}", parent, start_time=T0 + index * MS)
        child.end(end_time=T0 + (index + 1) * MS)

    exporter.export(spans.finished())

    assert exporter._pending_count <= 3
    assert "child-0" in out.getvalue()


def test_shutdown_prints_partial_requests(spans: SpanMaker) -> None:
    request_with_children(spans)
    out = io.StringIO()
    exporter = RequestTreeConsoleExporter(out=out)
    exporter.export(spans.finished()[:1])

    exporter.shutdown()

    assert "redis.GET" in out.getvalue()


def test_the_first_name_is_an_alias_and_not_opentelemetrys() -> None:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter as OTelConsoleSpanExporter

    assert console.ConsoleSpanExporter is RequestTreeConsoleExporter
    assert RequestTreeConsoleExporter.__name__ != OTelConsoleSpanExporter.__name__


GEVENT_EXPORT_SCRIPT = """
import gevent.monkey
gevent.monkey.patch_all()
import io, json
import gevent
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from exporters.console import RequestTreeConsoleExporter, format_trace_tree

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("baseplate")
for n in range(512):  # a full batch of requests, a span each
    tracer.start_span("GET /hello", kind=SpanKind.SERVER).end()
batch = memory.get_finished_spans()
events = []
out = io.StringIO()
exporter = RequestTreeConsoleExporter(out=out)


def another_request():  # wakes on a timer, as a request wakes on its socket
    while True:
        gevent.sleep(0.001)
        events.append("tick")


ticker = gevent.spawn(another_request)
gevent.sleep(0.01)
events.append("export")
result = exporter.export(batch)
events.append("exported")
ticker.kill()
start, end = events.index("export"), events.index("exported")
printed = out.getvalue() == "".join(format_trace_tree([span]) for span in batch)
print(json.dumps({"result": result.name, "printed": printed,
                  "ticks_during": events[start:end].count("tick")}))
"""


def test_under_gevent_an_export_lets_other_greenlets_run() -> None:
    # Under baseplate-serve the export worker is a greenlet on the requests' event loop:
    # printing a batch of 512 requests (a few ms) must not hold the loop for all of it.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GEVENT_EXPORT_SCRIPT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["result"] == "SUCCESS"
    assert outcome["printed"]  # every request, in order
    assert outcome["ticks_during"] >= 2, outcome
