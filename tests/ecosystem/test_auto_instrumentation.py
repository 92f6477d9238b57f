"""``opentelemetry-instrument baseplate-serve app.ini``: one provider, one trace tree.

The example service runs under the OpenTelemetry distro with the vendor requests, redis,
SQLAlchemy and Pyramid (WSGI) instrumentations; it calls a plain-OpenTelemetry service
that only speaks W3C ``traceparent``, and that service calls it back.
"""

from __future__ import annotations

import base64
import pathlib
from collections.abc import Iterator

import pytest

from tests.ecosystem.servers import Service, VendorService, assert_quiet, wait_for
from tests.ecosystem.spanlog import LoggedSpan

PYRAMID_SCOPE = "opentelemetry.instrumentation.pyramid.callbacks"


@pytest.fixture(scope="module")
def service(module_dir: pathlib.Path, vendor: VendorService) -> Iterator[Service]:
    running = Service(module_dir, settings={"downstream.url": vendor.url + "/echo"})
    yield running
    running.server.kill()


def _one(spans: list[LoggedSpan], **match: object) -> LoggedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


def _by_scope(spans: list[LoggedSpan], scope_part: str) -> list[LoggedSpan]:
    return [span for span in spans if scope_part in span.scope]


def test_baseplate_adopts_the_distro_provider(service: Service) -> None:
    info = service.get("/_debug/provider").json()

    assert info["provider"] == "opentelemetry.sdk.trace.TracerProvider"
    assert info["baseplate_uses_global"]
    # The distro's resource (it set telemetry.auto.version) named after tracing.service_name.
    assert "telemetry.auto.version" in info["resource"]
    assert info["resource"]["service.name"] == "vendor_mix"
    # OTEL_TRACES_EXPORTER=none: the only exporter is the one the app added.
    assert info["processors"] == [
        {"processor": "BoundedBatchSpanProcessor", "exporter": "JsonLinesExporter"}
    ]
    # Vendor-instrumented clients send baseplate's headers as well as W3C and B3.
    assert {"X-Trace", "X-Parent", "X-Span", "X-Sampled", "X-Edge-Request"} <= set(
        info["propagator_fields"]
    )
    assert "traceparent" in info["propagator_fields"]


def test_vendor_and_baseplate_spans_form_one_tree(
    service: Service, vendor: VendorService
) -> None:
    body = service.get("/orders/7").json()
    trace_id = body["trace_id"]
    spans = service.trace(trace_id, 7)
    vendor_spans = wait_for(lambda: [s for s in vendor.spans() if s.trace_id == trace_id])

    assert {span.trace_id for span in spans} == {trace_id}
    vendor_server = _one(_by_scope(spans, "pyramid"), kind="SERVER")
    server = _one(spans, scope="baseplate", kind="SERVER")
    local = _one(spans, scope="baseplate", kind="INTERNAL", name="load_order")
    redis_get = _one(_by_scope(spans, "redis"), name="GET")
    sql = [s for s in _by_scope(spans, "sqlalchemy") if s.name.startswith("SELECT")]
    http_client = _one(_by_scope(spans, "requests"), kind="CLIENT")
    downstream = _one(vendor_spans, kind="SERVER")

    # vendor WSGI/Pyramid span -> baseplate server span -> local span -> redis, SQL
    assert vendor_server.parent_id is None
    assert server.parent_id == vendor_server.span_id
    assert server.span_id == body["span_id"]
    assert local.parent_id == server.span_id
    assert redis_get.parent_id == local.span_id
    assert sql and all(span.parent_id == local.span_id for span in sql)
    # baseplate server span -> vendor requests span -> the vendor service's server span
    assert http_client.parent_id == server.span_id
    assert downstream.parent_id == http_client.span_id and downstream.parent_remote
    assert downstream.service == "vendor"
    # New traces get 64-bit ids, which legacy baseplate peers can parse.
    assert trace_id < 2**64


def test_downstream_call_carries_baseplate_and_w3c_headers(service: Service) -> None:
    body = service.get("/orders/8").json()
    headers = body["downstream"]["headers"]
    trace_id = body["trace_id"]
    spans = service.trace(trace_id, 7)
    http_client = _one(_by_scope(spans, "requests"), kind="CLIENT")

    assert headers["x-trace"] == str(trace_id)
    assert headers["x-span"] == str(http_client.span_id)
    assert headers["x-parent"] == str(body["span_id"])
    assert headers["x-sampled"] == "1"
    assert base64.b64decode(headers["x-edge-request"]) == b""
    assert headers["traceparent"] == f"00-{trace_id:032x}-{http_client.span_id:016x}-01"
    # The plain-OTel service continued the trace from traceparent alone.
    assert body["downstream"]["trace_id"] == trace_id


def test_upstream_vendor_service_is_continued(service: Service, vendor: VendorService) -> None:
    import requests

    answer = requests.get(
        vendor.url + "/call", params={"url": service.url + "/orders/10"}, timeout=30
    ).json()
    trace_id = answer["trace_id"]
    assert answer["status"] == 200
    assert answer["body"]["trace_id"] == trace_id

    vendor_spans = wait_for(lambda: [s for s in vendor.spans() if s.trace_id == trace_id])
    vendor_client = wait_for(lambda: [s for s in vendor.spans()
                                      if s.trace_id == trace_id and s.kind == "CLIENT"])[0]
    spans = service.trace(trace_id, 7)
    our_root = _one(_by_scope(spans, "pyramid"), kind="SERVER")
    assert our_root.parent_id == vendor_client.span_id and our_root.parent_remote
    assert _one(spans, scope="baseplate", kind="SERVER").parent_id == our_root.span_id
    assert len(vendor_spans) >= 2


def test_upstream_baseplate_headers_are_continued(service: Service) -> None:
    body = service.get(
        "/orders/11",
        headers={"X-Trace": "1234567890123", "X-Parent": "11", "X-Span": "22", "X-Sampled": "1"},
    ).json()

    assert body["trace_id"] == 1234567890123
    spans = service.trace(1234567890123, 7)
    our_root = _one(_by_scope(spans, "pyramid"), kind="SERVER")
    assert our_root.parent_id == 22 and our_root.parent_remote


def test_stderr_has_no_noise(service: Service) -> None:
    service.get("/stream")
    service.get("/slow")
    service.get("/fanout")
    assert service.stop() == 0
    assert_quiet(service.server.stderr)


def _exporters(info: dict) -> list[tuple[str, str]]:
    return [(p["processor"], p["exporter"]) for p in info["processors"]]


def test_otel_traces_exporter_alone_is_left_to_the_distro(tmp_path: pathlib.Path) -> None:
    # The distro exports to the console from OTEL_TRACES_EXPORTER; baseplate, with no
    # tracing.exporter in the INI file, must not add a second console exporter.
    service = Service(
        tmp_path, env={"OTEL_TRACES_EXPORTER": "console"}, settings={"tracing.exporter": ""}
    )
    try:
        info = service.get("/_debug/provider").json()
        trace_id = service.get("/orders/12").json()["trace_id"]
        spans = service.trace(trace_id, 6)
    finally:
        assert service.stop() == 0

    assert _exporters(info) == [
        ("BatchSpanProcessor", "ConsoleSpanExporter"),
        ("BoundedBatchSpanProcessor", "JsonLinesExporter"),
    ]
    # The distro's console exporter printed the request's spans once, as JSON on stdout.
    assert service.server.stdout.count(f'"trace_id": "0x{trace_id:032x}"') == len(spans)
    assert_quiet(service.server.stderr)


def test_ini_exporter_runs_beside_the_distro_exporter(tmp_path: pathlib.Path) -> None:
    service = Service(
        tmp_path,
        env={"OTEL_TRACES_EXPORTER": "console"},
        settings={"tracing.exporter": "console"},
    )
    try:
        info = service.get("/_debug/provider").json()
    finally:
        assert service.stop() == 0

    assert _exporters(info) == [
        ("BatchSpanProcessor", "ConsoleSpanExporter"),
        ("BoundedBatchSpanProcessor", "RequestTreeConsoleExporter"),
        ("BoundedBatchSpanProcessor", "JsonLinesExporter"),
    ]


def test_works_without_the_distro_patching_gevent_first(tmp_path: pathlib.Path) -> None:
    # Plain `opentelemetry-instrument baseplate-serve app.ini`: the distro loads before
    # baseplate-serve patches, so gevent warns about ssl, but requests keep their traces.
    service = Service(
        tmp_path, env={"OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH": None}
    )
    try:
        body = service.get("/fanout").json()
        order = service.get("/orders/13").json()
        spans = service.trace(order["trace_id"], 6)
    finally:
        assert service.stop() == 0

    assert body["greenlets"] == [body["trace_id"]] * 3
    assert body["threads"] == [body["trace_id"]] * 2
    assert {span.scope.split(".")[-1] for span in spans} >= {"baseplate", "redis"}
    stderr = service.server.stderr
    assert "MonkeyPatchWarning" in stderr  # what the recommended variable avoids
    assert_quiet(stderr.replace("MonkeyPatchWarning", ""))


def test_the_example_runs_as_documented(tmp_path: pathlib.Path) -> None:
    # examples/vendor_mix/app.ini as shipped: baseplate's console exporter prints each
    # request as a tree on stderr.
    ini = pathlib.Path(__file__).resolve().parents[2] / "examples/vendor_mix/app.ini"
    service = Service(tmp_path, ini=ini)
    try:
        body = service.get("/orders/14").json()
        stream = service.get("/stream").text
    finally:
        assert service.stop() == 0

    assert body["row"] == 1
    assert stream == "chunk 0\nchunk 1\nchunk 2\n"
    stderr = service.server.stderr
    assert f"trace {body['trace_id']:016x}" in stderr and "load_order (local)" in stderr
    assert_quiet(stderr)
