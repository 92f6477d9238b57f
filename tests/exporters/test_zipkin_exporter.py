"""The Zipkin v2 exporter against a local HTTP receiver, validated with the v2 JSON schema."""

from __future__ import annotations

import gc
import json
import pathlib
import subprocess
import sys
import textwrap
import time
import tracemalloc

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from exporters.zipkin import ZipkinExporter, encode_v2_span, zipkin_spans_url
from otel_bridge import semconv

from .fixtures import SCHEMA_PATH, Receiver, SpanMaker

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def make_request_spans(spans: SpanMaker) -> None:
    """A server span with a client child, a local child (with a log) and a vendor span."""
    tracer = spans.tracer
    spans.ids.trace_ids.append(0x1234)
    spans.ids.span_ids.extend([0xA1, 0xB2, 0xC3, 0xD4])
    with tracer.start_as_current_span("GET /things", kind=SpanKind.SERVER) as server:
        server.set_attribute("http.method", "GET")
        with tracer.start_as_current_span("redis.GET", kind=SpanKind.CLIENT) as client:
            client.set_attribute("redis.key_count", 3)
            client.set_attribute("cached", True)
        with tracer.start_as_current_span(
            "render", kind=SpanKind.INTERNAL, attributes={semconv.ATTR_COMPONENT: "templates"}
        ) as local:
            local.add_event("cache-miss", {semconv.ATTR_LOG_PAYLOAD: "key=abc"})
        with spans.vendor_tracer().start_as_current_span("GET", kind=SpanKind.CLIENT) as vendor:
            vendor.set_attribute("server.address", "10.1.2.3")
            vendor.set_attribute("server.port", 8080)


def test_request_spans_are_valid_zipkin_v2(
    receiver: Receiver, spans: SpanMaker, zipkin_schema: dict
) -> None:
    make_request_spans(spans)
    exporter = ZipkinExporter("my-service", receiver.address, local_ipv4="10.0.0.7")

    assert exporter.export(spans.finished()) is SpanExportResult.SUCCESS

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/api/v2/spans"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    jsonschema.validate(body, zipkin_schema)
    by_name = {span["name"]: span for span in body}

    server = by_name["GET /things"]
    assert server["traceId"] == "0000000000001234"
    assert server["id"] == "00000000000000a1"
    assert "parentId" not in server
    assert server["kind"] == "SERVER"
    assert server["localEndpoint"] == {"serviceName": "my-service", "ipv4": "10.0.0.7"}
    assert server["tags"] == {"http.method": "GET"}
    assert "debug" not in server and "shared" not in server

    client = by_name["redis.GET"]
    assert client["kind"] == "CLIENT"
    assert client["parentId"] == "00000000000000a1"
    assert client["tags"] == {"redis.key_count": "3", "cached": "true"}

    local = by_name["render"]
    assert "kind" not in local
    assert local["tags"] == {"lc": "templates"}
    assert local["annotations"][0]["value"] == "cache-miss: key=abc"

    vendor = by_name["GET"]
    assert vendor["tags"]["otel.scope.name"] == "opentelemetry.instrumentation.requests"
    assert vendor["remoteEndpoint"] == {"ipv4": "10.1.2.3", "port": 8080}
    assert exporter.sent_spans == 4


def test_timestamps_and_durations_are_microseconds(receiver: Receiver, spans: SpanMaker) -> None:
    before = time.time_ns() // 1000
    with spans.tracer.start_as_current_span("slow"):
        time.sleep(0.02)
    after = time.time_ns() // 1000
    exporter = ZipkinExporter("svc", receiver.url)

    exporter.export(spans.finished())

    (span,) = receiver.spans()
    assert before <= span["timestamp"] <= after
    assert 20_000 <= span["duration"] <= after - before


def test_debug_only_for_the_debug_flag_and_128_bit_ids_kept(
    receiver: Receiver, spans: SpanMaker, zipkin_schema: dict
) -> None:
    trace_id_128 = 0x0AF7651916CD43DD8448EB211C80319C
    sampled_parent = spans.remote_parent(trace_id_128, 0x1111, sampled=True)
    debug_parent = spans.remote_parent(0x42, 0x2222, sampled=True, flags=1)
    spans.ids.span_ids.extend([0x3333, 0x4444])
    tracer = spans.tracer
    with tracer.start_as_current_span("sampled", context=sampled_parent, kind=SpanKind.SERVER):
        pass
    with tracer.start_as_current_span("debug", context=debug_parent, kind=SpanKind.SERVER):
        pass

    ZipkinExporter("svc", receiver.url).export(spans.finished())

    body = receiver.requests[0].json()
    jsonschema.validate(body, zipkin_schema)
    sampled, debug = sorted(body, key=lambda span: span["name"] != "sampled")
    assert sampled["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert "debug" not in sampled
    assert debug["debug"] is True
    assert debug["traceId"] == "0000000000000042"


def test_server_span_continuing_an_upstream_span_is_shared(
    receiver: Receiver, spans: SpanMaker
) -> None:
    upstream = spans.remote_parent(0x77, 0x10, sampled=True)
    spans.ids.span_ids.append(0x20)  # the id the upstream client span sent as X-Span
    with spans.tracer.start_as_current_span(
        "handler",
        context=upstream,
        kind=SpanKind.SERVER,
        attributes={semconv.ATTR_SHARED_SPAN: True},
    ):
        with spans.tracer.start_as_current_span("child", kind=SpanKind.CLIENT):
            pass
    # A W3C caller: the server span has a span id of its own, so it is not shared.
    with spans.tracer.start_as_current_span("w3c", context=upstream, kind=SpanKind.SERVER):
        pass

    ZipkinExporter("svc", receiver.url).export(spans.finished())

    by_name = {span["name"]: span for span in receiver.spans()}
    assert by_name["handler"]["shared"] is True
    assert by_name["handler"]["parentId"] == "0000000000000010"
    assert by_name["handler"]["id"] == "0000000000000020"
    assert semconv.ATTR_SHARED_SPAN not in by_name["handler"].get("tags", {})  # not a tag
    assert "shared" not in by_name["child"]
    assert "shared" not in by_name["w3c"]


def test_error_status_and_exception_become_error_tag_and_annotation(
    receiver: Receiver, spans: SpanMaker, zipkin_schema: dict
) -> None:
    with spans.tracer.start_as_current_span("fails", kind=SpanKind.CLIENT) as span:
        span.record_exception(ValueError("bad thing"))
        span.set_status(Status(StatusCode.ERROR, "ValueError: bad thing"))
    with spans.tracer.start_as_current_span("fails-quietly") as span:
        span.set_status(Status(StatusCode.ERROR))

    ZipkinExporter("svc", receiver.url).export(spans.finished())

    body = receiver.requests[0].json()
    jsonschema.validate(body, zipkin_schema)
    fails, quiet = body
    assert fails["tags"]["error"] == "ValueError: bad thing"
    assert fails["annotations"][0]["value"] == "exception: ValueError: bad thing"
    assert quiet["tags"]["error"] == "true"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("zipkin:9411", "http://zipkin:9411/api/v2/spans"),
        ("http://zipkin:9411", "http://zipkin:9411/api/v2/spans"),
        ("http://zipkin:9411/", "http://zipkin:9411/api/v2/spans"),
        ("https://collector/custom/spans", "https://collector/custom/spans"),
    ],
)
def test_endpoint_url(endpoint: str, url: str) -> None:
    assert zipkin_spans_url(endpoint) == url


@pytest.mark.parametrize("endpoint", ["", "ftp://zipkin", "zipkin:notaport"])
def test_bad_endpoint_is_rejected(endpoint: str) -> None:
    with pytest.raises(ValueError):
        zipkin_spans_url(endpoint)


# -- faults -------------------------------------------------------------------------------------


def _one_span(spans: SpanMaker) -> list:
    with spans.tracer.start_as_current_span("op"):
        pass
    return spans.finished()


def test_collector_down_fails_without_raising(refused_address: str, spans: SpanMaker) -> None:
    exporter = ZipkinExporter("svc", refused_address, timeout=1)

    assert exporter.export(_one_span(spans)) is SpanExportResult.FAILURE
    assert exporter.dropped_spans == 1


def test_hanging_collector_fails_after_the_timeout(hanging_address: str, spans: SpanMaker) -> None:
    exporter = ZipkinExporter("svc", hanging_address, timeout=0.2)

    assert exporter.export(_one_span(spans)) is SpanExportResult.FAILURE
    assert exporter.dropped_spans == 1


def test_collector_error_answer_counts_drops(receiver: Receiver, spans: SpanMaker) -> None:
    receiver.status = 500
    exporter = ZipkinExporter("svc", receiver.url)
    batch = _one_span(spans)

    assert exporter.export(batch) is SpanExportResult.FAILURE
    assert exporter.export(batch) is SpanExportResult.FAILURE
    assert exporter.dropped_spans == 2
    assert len(receiver.requests) == 2  # the connection is reused after an error answer

    receiver.status = 202
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert exporter.sent_spans == 1


def test_export_after_shutdown_fails(receiver: Receiver, spans: SpanMaker) -> None:
    exporter = ZipkinExporter("svc", receiver.url)
    exporter.shutdown()

    assert exporter.export(_one_span(spans)) is SpanExportResult.FAILURE
    assert receiver.requests == []


def test_failing_exports_do_not_grow_memory(refused_address: str, spans: SpanMaker) -> None:
    exporter = ZipkinExporter("svc", refused_address, timeout=1)
    batch = _one_span(spans) * 50
    for _ in range(20):
        exporter.export(batch)
    gc.collect()
    # Only memory allocated under this test's own calls counts: threads left by other tests
    # allocate too, and would make the figure depend on what ran before.
    here = [tracemalloc.Filter(True, __file__, all_frames=True)]
    tracemalloc.start(100)
    try:
        baseline = tracemalloc.take_snapshot().filter_traces(here)
        for _ in range(100):
            exporter.export(batch)
        gc.collect()
        current = tracemalloc.take_snapshot().filter_traces(here)
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in current.compare_to(baseline, "filename"))
    assert growth < 200_000
    assert exporter.dropped_spans == 120 * 50


@settings(max_examples=200, deadline=None)
@given(
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    span_id=st.integers(min_value=1, max_value=2**64 - 1),
    parent_id=st.one_of(st.none(), st.integers(min_value=1, max_value=2**64 - 1)),
    flags=st.integers(min_value=0, max_value=3),
    kind=st.sampled_from(list(SpanKind)),
    duration=st.integers(min_value=0, max_value=10**12),
    tags=st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(st.text(), st.booleans(), st.integers(), st.floats(allow_nan=False)),
        max_size=5,
    ),
)
def test_any_span_encodes_to_valid_zipkin_v2(
    trace_id: int,
    span_id: int,
    parent_id: int | None,
    flags: int,
    kind: SpanKind,
    duration: int,
    tags: dict,
) -> None:
    state = TraceState([(semconv.TRACE_STATE_FLAGS, str(flags))]) if flags else TraceState()
    sampled = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, span_id, False, sampled, state)
    parent = SpanContext(trace_id, parent_id, True, sampled, state) if parent_id else None
    start = 1_700_000_000_000_000_000
    span = ReadableSpan(
        "op",
        context,
        parent,
        attributes=tags,
        kind=kind,
        start_time=start,
        end_time=start + duration,
    )

    encoded = encode_v2_span(span, {"serviceName": "svc"})

    SCHEMA_VALIDATOR.validate([encoded])
    assert int(encoded["traceId"], 16) == trace_id
    assert len(encoded["traceId"]) == (16 if trace_id < 2**64 else 32)
    assert int(encoded["id"], 16) == span_id
    assert encoded.get("debug", False) is bool(flags & 1)
    assert encoded["duration"] == max(1, duration // 1000)


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 40, 512])
def test_a_batch_encodes_to_the_bytes_of_the_whole_list(spans: SpanMaker, count: int) -> None:
    # The body is encoded a slice at a time; the bytes are those of dumping the list whole.
    for index in range(count):
        with spans.tracer.start_as_current_span(f"op-{index} é ✓", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.url", f'http://svc/things/{index}?q="x"')
            span.add_event("log", {semconv.ATTR_LOG_PAYLOAD: "multi\nline"})
    batch = spans.finished()
    exporter = ZipkinExporter("svc", "localhost:9411", local_ipv4="10.0.0.7")

    whole = json.dumps(
        [encode_v2_span(span, exporter.local_endpoint) for span in batch], separators=(",", ":")
    ).encode("utf-8")
    assert exporter.encode(batch) == whole
    assert len(json.loads(whole)) == count


GEVENT_EXPORT_SCRIPT = """
import gevent.monkey
gevent.monkey.patch_all()
import json
import gevent
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from exporters.zipkin import ZipkinExporter, encode_v2_span

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
events = []


class RecordingPoster:
    # as a collector that answers at once: the export's only wait is its own encoding
    def __init__(self):
        self.bodies = []

    def post(self, body):
        events.append("post")
        self.bodies.append(body)
        return 202

    def close(self):
        pass


exporter = ZipkinExporter("svc", "localhost:9411", local_ipv4="10.0.0.7")
exporter._poster = RecordingPoster()


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
start, post, end = events.index("export"), events.index("post"), events.index("exported")
whole = json.dumps(
    [encode_v2_span(span, exporter.local_endpoint) for span in batch], separators=(",", ":")
).encode("utf-8")
print(json.dumps({"result": result.name, "posts": len(exporter._poster.bodies),
                  "wire": exporter._poster.bodies == [whole],
                  "ticks_while_encoding": events[start:post].count("tick"),
                  "after_post": events[post + 1:end]}))
"""


def test_under_gevent_an_export_lets_other_greenlets_run() -> None:
    # baseplate-serve's export worker is a greenlet on the requests' event loop: encoding a
    # batch of 512 spans (a few ms) must not hold the loop for all of it.
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
    assert outcome["posts"] == 1
    assert outcome["wire"]  # the same body as the list dumped whole
    # the other greenlet ran between the start of the export and the POST, that is while the
    # batch was encoded (it could not if the export held the loop until it was done)
    assert outcome["ticks_while_encoding"] >= 2, outcome
    assert outcome["after_post"] == [], outcome
