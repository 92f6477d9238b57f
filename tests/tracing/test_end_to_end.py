"""Baseplate spans exported through configure_tracing, as an application sets it up."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import jsonschema
import posix_ipc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.diagnostics.tracing import TraceBaseplateObserver, tracing_client_from_config
from exporters.sidecar import trace_queue_path
from otel_bridge import propagation

from .conftest import Receiver

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def process_wide_settings() -> Iterator[None]:
    """Restore what configure_tracing changes for the whole process: the propagators."""
    yield
    propagation.configure_propagators(None)


@pytest.fixture
def baseplate_app(process_wide_settings: None) -> Iterator[Baseplate]:
    provider = TracerProvider()
    yield Baseplate(tracer_provider=provider)
    provider.shutdown()


def zipkin_config(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        "tracing.service_name": "e2e-service",
        "tracing.exporter": "zipkin",
        "tracing.exporter.endpoint": receiver.url,
        **extra,
    }


def handle_request(app: Baseplate, trace_info: TraceInfo | None) -> None:
    context = RequestContext()
    server = app.make_server_span(context, "do_thing", trace_info)
    with server:
        child = server.make_child("redis.GET")
        with child:
            child.set_tag("key_count", 2)
        local = server.make_child("render", local=True, component_name="templates")
        with local:
            local.log("cache", "miss")


def test_request_spans_reach_zipkin(
    baseplate_app: Baseplate, receiver: Receiver, zipkin_schema: dict
) -> None:
    client = tracing_client_from_config(zipkin_config(receiver), environ={})
    baseplate_app.configure_tracing(client)

    handle_request(baseplate_app, TraceInfo.from_upstream(0x1234, 0x10, 0x20, True, None))
    assert baseplate_app.tracer_provider.force_flush(10_000)

    body = receiver.spans()
    jsonschema.validate(body, zipkin_schema)
    by_name = {span["name"]: span for span in body}
    server = by_name["do_thing"]
    assert server["traceId"] == "0000000000001234"
    assert server["id"] == "0000000000000020"
    assert server["parentId"] == "0000000000000010"
    assert server["kind"] == "SERVER"
    assert server["shared"] is True
    assert server["localEndpoint"]["serviceName"] == "e2e-service"
    client_span = by_name["redis.GET"]
    assert client_span["kind"] == "CLIENT"
    assert client_span["parentId"] == server["id"]
    assert client_span["tags"]["key_count"] == "2"
    local = by_name["render"]
    assert "kind" not in local
    assert local["tags"]["lc"] == "templates"
    assert local["annotations"][0]["value"] == "cache: miss"


def test_sample_rate_and_debug_flag(baseplate_app: Baseplate, receiver: Receiver) -> None:
    client = tracing_client_from_config(
        zipkin_config(receiver, **{"tracing.sample_rate": "0%"}), environ={}
    )
    baseplate_app.configure_tracing(client)
    assert baseplate_app.sampler.sample_rate == 0.0

    handle_request(baseplate_app, None)  # a new trace: not sampled at 0%
    handle_request(baseplate_app, TraceInfo.from_upstream(0x99, 0x1, 0x2, False, 1))
    assert baseplate_app.tracer_provider.force_flush(10_000)

    spans = receiver.spans()
    assert {span["traceId"] for span in spans} == {"0000000000000099"}
    assert all(span["debug"] is True for span in spans)
    assert len(spans) == 3


def test_configuring_twice_exports_once(baseplate_app: Baseplate, receiver: Receiver) -> None:
    client = tracing_client_from_config(zipkin_config(receiver), environ={})
    baseplate_app.configure_tracing(client)
    baseplate_app.configure_tracing(client)

    handle_request(baseplate_app, TraceInfo.from_upstream(0x5, 0x1, 0x2, True, None))
    assert baseplate_app.tracer_provider.force_flush(10_000)

    assert len(receiver.spans()) == 3
    observers = [o for o in baseplate_app.observers if isinstance(o, TraceBaseplateObserver)]
    assert len(observers) == 1


def test_sidecar_queue_gets_the_request(baseplate_app: Baseplate, trace_queue_name: str) -> None:
    client = tracing_client_from_config(
        {"tracing.service_name": "e2e-service", "tracing.queue_name": trace_queue_name},
        environ={},
    )
    baseplate_app.configure_tracing(client)

    handle_request(baseplate_app, TraceInfo.from_upstream(0x1234, 0x10, 0x20, True, None))
    assert baseplate_app.tracer_provider.force_flush(10_000)

    queue = posix_ipc.MessageQueue(trace_queue_path(trace_queue_name))
    messages = [json.loads(queue.receive(timeout=0)[0]) for _ in range(3)]
    queue.close()
    server = next(message for message in messages if message["name"] == "do_thing")
    assert (server["traceId"], server["id"], server["parentId"]) == (0x1234, 0x20, 0x10)
    assert [a["value"] for a in server["annotations"]] == ["sr", "ss"]
    assert server["annotations"][0]["endpoint"]["serviceName"] == "e2e-service"
    local = next(message for message in messages if message["name"] == "render")
    assert local["binaryAnnotations"][0] == {
        "key": "lc",
        "value": "templates",
        "endpoint": server["annotations"][0]["endpoint"],
    }


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.usefixtures("process_wide_settings")
def test_provider_exporting_on_its_own_is_not_doubled(receiver: Receiver, explicit: bool) -> None:
    # As under opentelemetry-instrument: the provider already exports per OTEL_TRACES_EXPORTER.
    provider = TracerProvider()
    distro_exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(distro_exporter))
    app = Baseplate(tracer_provider=provider)
    environ = {"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_ENDPOINT": receiver.url}
    raw = {"tracing.service_name": "svc", **({"tracing.exporter": "zipkin"} if explicit else {})}
    app.configure_tracing(tracing_client_from_config(raw, environ=environ))

    handle_request(app, TraceInfo.from_upstream(0x5, 0x1, 0x2, True, None))
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert len(distro_exporter.get_finished_spans()) == 3
    assert len(receiver.spans()) == (3 if explicit else 0)


def test_propagators_from_config(baseplate_app: Baseplate, receiver: Receiver) -> None:
    client = tracing_client_from_config(
        zipkin_config(receiver, **{"tracing.propagators": "b3"}), environ={}
    )
    baseplate_app.configure_tracing(client)

    assert propagation.http_propagator().fields == {"b3"}


HAND_REGISTERED = """
import sys
from opentelemetry import trace
from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.diagnostics.tracing import TraceBaseplateObserver, tracing_client_from_config

client = tracing_client_from_config(
    {"tracing.service_name": "by-hand", "tracing.endpoint": sys.argv[1]}, environ={}
)
app = Baseplate()
app.register(TraceBaseplateObserver(client))
info = TraceInfo.from_upstream(7, 1, 2, True, None)
server = app.make_server_span(RequestContext(), "handler", info)
with server:
    with server.make_child("redis.GET"):
        pass
assert trace.get_tracer_provider().force_flush(10000)
"""


def test_observer_registered_by_hand_exports(receiver: Receiver) -> None:
    # A process of its own: the observer attaches to the global tracer provider.
    result = subprocess.run(
        [sys.executable, "-c", HAND_REGISTERED, receiver.address],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert sorted(span["name"] for span in receiver.spans()) == ["handler", "redis.GET"]
    assert {span["localEndpoint"]["serviceName"] for span in receiver.spans()} == {"by-hand"}


def test_unconfigured_tracing_prints_request_trees(
    baseplate_app: Baseplate, capsys: pytest.CaptureFixture[str]
) -> None:
    client = tracing_client_from_config(
        {"tracing.service_name": "dev", "tracing.sample_rate": "100%"}, environ={}
    )
    baseplate_app.configure_tracing(client)

    handle_request(baseplate_app, None)
    assert baseplate_app.tracer_provider.force_flush(10_000)

    err = capsys.readouterr().err
    assert "  do_thing " in err
    assert "├─ redis.GET " in err
    assert "└─ render (local) " in err
