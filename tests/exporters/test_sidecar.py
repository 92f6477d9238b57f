"""The sidecar exporter on a real POSIX message queue, and the trace publisher daemon."""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import posix_ipc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from baseplate.diagnostics.tracing.publisher import TraceBatch
from exporters.sidecar import FULL_QUEUE_PATIENCE, SidecarExporter, trace_queue_path
from otel_bridge import semconv

from .fixtures import Receiver, SpanMaker, wait_for

REPO = pathlib.Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000  # ns
ENDPOINT = '{"serviceName": "my-service", "ipv4": "10.0.0.7"}'


def read_messages(queue_name: str) -> list[bytes]:
    queue = posix_ipc.MessageQueue(trace_queue_path(queue_name))
    messages = []
    try:
        while True:
            message, _ = queue.receive(timeout=0)
            messages.append(message)
    except posix_ipc.BusyError:
        pass
    finally:
        queue.close()
    return messages


def make_request(spans: SpanMaker) -> None:
    """A server span (id 0xA1) with a client child (0xB2, failed) and a local child (0xC3)."""
    tracer = spans.tracer
    spans.ids.trace_ids.append(0x1234)
    spans.ids.span_ids.extend([0xA1, 0xB2, 0xC3])
    server = tracer.start_span("GET /things", kind=SpanKind.SERVER, start_time=T0)
    server.set_attribute("http.status_code", 200)
    parent = trace.set_span_in_context(server)
    client = tracer.start_span("redis.GET", parent, kind=SpanKind.CLIENT, start_time=T0 + 1_000_000)
    client.set_status(Status(StatusCode.ERROR, "timeout"))
    client.end(end_time=T0 + 3_000_000)
    local = tracer.start_span(
        "render",
        parent,
        kind=SpanKind.INTERNAL,
        attributes={semconv.ATTR_COMPONENT: "templates", "cached": False},
        start_time=T0 + 4_000_000,
    )
    local.end(end_time=T0 + 9_000_000)
    server.end(end_time=T0 + 12_000_000)


def test_spans_are_zipkin_v1_messages_on_the_queue(spans: SpanMaker, trace_queue_name: str) -> None:
    make_request(spans)
    exporter = SidecarExporter("my-service", trace_queue_name, ipv4="10.0.0.7")

    assert exporter.export(spans.finished()) is SpanExportResult.SUCCESS

    client, local, server = read_messages(trace_queue_name)
    assert (
        client
        == (
            '{"traceId": 4660, "name": "redis.GET", "id": 178, "timestamp": 1700000000001000, '
            '"duration": 2000, "annotations": ['
            f'{{"endpoint": {ENDPOINT}, "timestamp": 1700000000001000, "value": "cs"}}, '
            f'{{"endpoint": {ENDPOINT}, "timestamp": 1700000000003000, "value": "cr"}}], '
            f'"binaryAnnotations": [{{"key": "error", "value": true, "endpoint": {ENDPOINT}}}], '
            '"parentId": 161}'
        ).encode()
    )
    assert (
        local
        == (
            '{"traceId": 4660, "name": "render", "id": 195, "timestamp": 1700000000004000, '
            '"duration": 5000, "annotations": [], "binaryAnnotations": ['
            f'{{"key": "lc", "value": "templates", "endpoint": {ENDPOINT}}}, '
            f'{{"key": "cached", "value": false, "endpoint": {ENDPOINT}}}], '
            '"parentId": 161}'
        ).encode()
    )
    assert (
        server
        == (
            '{"traceId": 4660, "name": "GET /things", "id": 161, "timestamp": 1700000000000000, '
            '"duration": 12000, "annotations": ['
            f'{{"endpoint": {ENDPOINT}, "timestamp": 1700000000000000, "value": "sr"}}, '
            f'{{"endpoint": {ENDPOINT}, "timestamp": 1700000000012000, "value": "ss"}}], '
            f'"binaryAnnotations": [{{"key": "http.status_code", "value": "200", '
            f'"endpoint": {ENDPOINT}}}], '
            '"parentId": 0}'
        ).encode()
    )
    assert exporter.sent_spans == 3


def test_oversize_span_is_dropped_and_counted(spans: SpanMaker, trace_queue_name: str) -> None:
    exporter = SidecarExporter("svc", trace_queue_name)
    with spans.tracer.start_as_current_span("huge") as span:
        span.set_attribute("blob", "x" * (exporter.max_span_size + 1))
    with spans.tracer.start_as_current_span("small"):
        pass

    assert exporter.export(spans.finished()) is SpanExportResult.FAILURE

    assert exporter.oversize_spans == 1
    assert [json.loads(m)["name"] for m in read_messages(trace_queue_name)] == ["small"]


def test_full_queue_drops_without_blocking(spans: SpanMaker, trace_queue_name: str) -> None:
    # A small queue, as an operator with default kernel limits would have.
    exporter = SidecarExporter("svc", trace_queue_name, max_messages=5, max_message_size=4096)
    for index in range(8):
        with spans.tracer.start_as_current_span(f"op-{index}"):
            pass

    assert exporter.export(spans.finished()) is SpanExportResult.FAILURE

    assert exporter.sent_spans == 5
    assert exporter.queue_full_spans == 3
    assert exporter.dropped_spans == 3
    assert len(read_messages(trace_queue_name)) == 5


def test_bad_queue_name_is_rejected() -> None:
    with pytest.raises(ValueError):
        trace_queue_path("a/b")


def test_trace_batch_respects_its_size() -> None:
    batch = TraceBatch(max_size=20)
    assert batch.fits(b"x" * 100)  # an empty batch takes even an oversize span
    batch.add(b'{"a": 1}')
    assert batch.fits(b'{"b": 2}')
    batch.add(b'{"b": 2}')
    assert not batch.fits(b"{}")
    assert batch.serialize() == b'[{"a": 1},{"b": 2}]'
    assert len(batch.serialize()) <= 20


# -- the publisher daemon -------------------------------------------------------------------------


@pytest.fixture
def statsd() -> Iterator[socket.socket]:
    """A UDP socket standing where statsd listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        yield sock


@pytest.fixture
def publisher(
    tmp_path: pathlib.Path, receiver: Receiver, trace_queue_name: str, statsd: socket.socket
) -> Iterator[subprocess.Popen]:
    config = tmp_path / "publisher.ini"
    config.write_text(
        f"[trace-publisher:{trace_queue_name}]\n"
        f"zipkin_api_url = {receiver.url}/api/v1\n"
        "post_timeout = 2\n"
        "max_batch_size = 1200\n"
        "retry_limit = 3\n"
        "metrics.namespace = trace-publisher\n"
        f"metrics.endpoint = 127.0.0.1:{statsd.getsockname()[1]}\n"
    )
    # The queue exists before the publisher starts, as when services started first.
    SidecarExporter("svc", trace_queue_name).shutdown()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "baseplate.diagnostics.tracing.publisher",
            str(config),
            "--queue-name",
            trace_queue_name,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(10)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.stderr.close()


def test_publisher_posts_queued_spans_to_zipkin(
    publisher: subprocess.Popen,
    receiver: Receiver,
    spans: SpanMaker,
    trace_queue_name: str,
    statsd: socket.socket,
) -> None:
    make_request(spans)
    exporter = SidecarExporter("my-service", trace_queue_name, ipv4="10.0.0.7")
    exporter.export(spans.finished())

    wait_for(lambda: len(receiver.spans()) == 3)

    assert {request.path for request in receiver.requests} == {"/api/v1/spans"}
    assert all(len(request.body) <= 1200 for request in receiver.requests)
    assert receiver.requests[0].headers["content-type"] == "application/json"
    names = sorted(span["name"] for span in receiver.spans())
    assert names == ["GET /things", "redis.GET", "render"]
    server = next(span for span in receiver.spans() if span["name"] == "GET /things")
    assert server["traceId"] == 0x1234 and server["id"] == 0xA1 and server["parentId"] == 0
    lines: list[str] = []
    while sum(int(line.split(":")[1].split("|")[0]) for line in lines if ".sent:" in line) < 3:
        lines.extend(statsd.recv(65536).decode().splitlines())
    assert any(line.startswith("trace-publisher.post:") and line.endswith("|ms") for line in lines)

    publisher.send_signal(signal.SIGTERM)
    assert publisher.wait(10) == 0


def test_publisher_retries_server_errors(
    publisher: subprocess.Popen, receiver: Receiver, spans: SpanMaker, trace_queue_name: str
) -> None:
    receiver.answers.extend([500, 503])
    with spans.tracer.start_as_current_span("retried"):
        pass
    SidecarExporter("svc", trace_queue_name).export(spans.finished())

    wait_for(lambda: len(receiver.requests) == 3)

    assert len({request.body for request in receiver.requests}) == 1
    assert [span["name"] for span in receiver.requests[-1].json()] == ["retried"]
    publisher.send_signal(signal.SIGTERM)
    assert publisher.wait(10) == 0


def test_publisher_rejects_a_bad_config(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "publisher.ini"
    config.write_text("[trace-publisher:main]\nzipkin_api_url = http://zipkin\npost_timeout = x\n")

    result = subprocess.run(
        [sys.executable, "-m", "baseplate.diagnostics.tracing.publisher", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "post_timeout" in result.stderr


def test_full_queue_encodes_nothing(
    spans: SpanMaker, trace_queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = SidecarExporter("svc", trace_queue_name, max_messages=2, max_message_size=4096)
    for index in range(2):
        with spans.tracer.start_as_current_span(f"fill-{index}"):
            pass
    assert exporter.export(spans.finished()) is SpanExportResult.SUCCESS
    encoded = []
    original = exporter.encode

    def counting_encode(span: Any) -> bytes:
        encoded.append(span.name)
        return original(span)

    monkeypatch.setattr(exporter, "encode", counting_encode)
    for index in range(50):
        with spans.tracer.start_as_current_span(f"late-{index}"):
            pass
    batch = [span for span in spans.finished() if span.name.startswith("late-")]
    try:
        assert exporter.export(batch) is SpanExportResult.FAILURE
        assert encoded == []  # the queue was full: no span was encoded only to be dropped
        assert exporter.queue_full_spans == 50
    finally:
        exporter.shutdown()  # queues count against the user's mqueue quota until closed


def test_a_reader_slower_than_the_batch_loses_nothing(
    spans: SpanMaker, trace_queue_name: str
) -> None:
    # The trace publisher takes one message at a time; a batch is written faster than that,
    # and the kernel's default queue holds 10 messages (here 2).
    exporter = SidecarExporter("svc", trace_queue_name, max_messages=2, max_message_size=4096)
    for index in range(30):
        with spans.tracer.start_as_current_span(f"op-{index}"):
            pass
    reader = posix_ipc.MessageQueue(trace_queue_path(trace_queue_name))
    received: list[bytes] = []
    done = threading.Event()

    def read_slowly() -> None:
        while not done.is_set():
            try:
                message, _ = reader.receive(timeout=0.1)
            except posix_ipc.BusyError:
                continue
            received.append(message)
            time.sleep(0.002)

    thread = threading.Thread(target=read_slowly, daemon=True)
    thread.start()
    try:
        assert exporter.export(spans.finished()) is SpanExportResult.SUCCESS
        wait_for(lambda: len(received) == 30)
    finally:
        done.set()
        thread.join(5)
        reader.close()
        exporter.shutdown()

    assert exporter.sent_spans == 30
    assert exporter.dropped_spans == 0
    assert [json.loads(m)["name"] for m in received] == [f"op-{i}" for i in range(30)]


def test_a_queue_nobody_reads_is_waited_for_once(spans: SpanMaker, trace_queue_name: str) -> None:
    exporter = SidecarExporter("svc", trace_queue_name, max_messages=2, max_message_size=4096)
    for index in range(12):
        with spans.tracer.start_as_current_span(f"op-{index}"):
            pass
    batch = spans.finished()
    try:
        started = time.monotonic()
        assert exporter.export(batch[:6]) is SpanExportResult.FAILURE  # 2 sent, then full
        first = time.monotonic() - started
        started = time.monotonic()
        assert exporter.export(batch[6:]) is SpanExportResult.FAILURE
        second = time.monotonic() - started
    finally:
        exporter.shutdown()

    assert first >= FULL_QUEUE_PATIENCE  # the reader had its chance
    assert second < FULL_QUEUE_PATIENCE / 2  # known full: dropped at once
    assert (exporter.sent_spans, exporter.queue_full_spans) == (2, 10)


GEVENT_EXPORT_SCRIPT = """
import gevent.monkey
gevent.monkey.patch_all()
import json, sys, time
import gevent
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from exporters.sidecar import SidecarExporter

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("baseplate")
for n in range(512):  # a full batch of request spans
    tracer.start_span(
        "hello",
        kind=SpanKind.SERVER,
        attributes={"http.url": "http://svc/hello", "http.method": "GET", "peer.ipv4": "10.0.0.1",
                    "http.status_code": 200},
    ).end()
batch = memory.get_finished_spans()


class RoomyQueue:
    # as a queue whose reader keeps up: always room
    name = "/traces-roomy"
    max_messages = 10**6
    current_messages = 0
    max_message_size = 102400

    def __init__(self):
        self.sent = []

    def send(self, message, timeout=None):
        self.sent.append(message)

    def close(self):
        pass


exporter = SidecarExporter("svc", sys.argv[1], ipv4="10.0.0.7")
exporter.queue.close()
exporter.queue = RoomyQueue()
ticks = []

def another_request():  # wakes on a timer, as a request wakes on its socket
    while True:
        gevent.sleep(0.001)
        ticks.append(time.perf_counter())

ticker = gevent.spawn(another_request)
gevent.sleep(0.01)
started = time.perf_counter()
result = exporter.export(batch)
ended = time.perf_counter()
ticker.kill()
during = [tick for tick in ticks if started < tick < ended]
wire = exporter.queue.sent == [exporter.encode(span) for span in batch]
print(json.dumps({"result": result.name, "sent": len(exporter.queue.sent), "wire": wire,
                  "export_ms": (ended - started) * 1000, "ticks_during": len(during)}))
"""


def test_under_gevent_an_export_lets_other_greenlets_run(trace_queue_name: str) -> None:
    # baseplate-serve's export worker is a greenlet on the requests' event loop: encoding a
    # batch of 512 spans (several ms) must not hold the loop for all of it.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GEVENT_EXPORT_SCRIPT), trace_queue_name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["result"] == "SUCCESS"
    assert outcome["sent"] == 512
    assert outcome["wire"]  # the same messages, in the same order
    # the other greenlet ran while the batch was encoded (it could not if the export held
    # the loop until it was done)
    assert outcome["ticks_during"] >= 2, outcome
