"""The process lifecycle: flushing on a clean stop, streamed responses, interrupted spans.

Each scenario runs the example service both under ``opentelemetry-instrument`` and as plain
``baseplate-serve``, and checks that stderr carries none of the usual noise ("Failed to
detach context" above all) while the spans come out right.
"""

from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator

import pytest

from tests.ecosystem.servers import Service, assert_quiet, wait_for
from tests.ecosystem.spanlog import LoggedSpan


@pytest.fixture(scope="module", params=["instrumented", "plain"])
def service(request: pytest.FixtureRequest, module_dir: pathlib.Path) -> Iterator[Service]:
    running = Service(
        module_dir, instrumented=request.param == "instrumented", name=request.param
    )
    yield running
    running.server.kill()


def _trace_of(service: Service, name: str, count: int) -> list[LoggedSpan]:
    """The spans of the one trace whose baseplate server span is called ``name``."""

    def find() -> list[LoggedSpan] | None:
        spans = service.spans()
        servers = [s for s in spans if s.is_baseplate and s.kind == "SERVER" and s.name == name]
        if not servers:
            return None
        found = [s for s in spans if s.trace_id == servers[-1].trace_id]
        return found if len(found) >= count else None

    return wait_for(find)


def _without_timeout_report(stderr: str) -> str:
    """stderr minus gevent's report of the unhandled ``gevent.Timeout`` of ``/slow``."""
    kept, skipping = [], False
    for line in stderr.splitlines():
        if line.startswith("Traceback"):
            skipping = True
        if not skipping:
            kept.append(line)
        if skipping and "Timeout" in line and not line.startswith(" "):
            skipping = False
    return "\n".join(kept)


def _names(service: Service, trace_id: int) -> set[str]:
    return {span.name for span in service.spans() if span.trace_id == trace_id}


def test_streamed_response_spans(service: Service) -> None:
    response = service.get("/stream", params={"chunks": "4"})
    assert response.text == "".join(f"chunk {i}\n" for i in range(4))

    spans = _trace_of(service, "stream", 5)
    server = next(s for s in spans if s.is_baseplate and s.kind == "SERVER")
    chunks = sorted((s for s in spans if s.name.startswith("chunk_")), key=lambda s: s.name)
    assert [chunk.name for chunk in chunks] == [f"chunk_{i}" for i in range(4)]
    assert all(chunk.parent_id == server.span_id for chunk in chunks)
    assert all(chunk.status == "UNSET" for chunk in chunks)


def test_client_leaving_a_stream_early_ends_its_span(service: Service) -> None:
    # Read the first chunk, then hang up: the server closes the generator mid-span.
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /stream?chunks=50&delay=0.02 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while b"chunk 0" not in received:
            data = sock.recv(65536)
            assert data, received
            received += data

    def aborted_chunk() -> list[LoggedSpan] | None:
        chunks = [s for s in _trace_of(service, "stream", 2) if s.name.startswith("chunk_")]
        return chunks if any(chunk.status == "ERROR" for chunk in chunks) else None

    chunks = sorted(wait_for(aborted_chunk), key=lambda s: int(s.name.split("_")[1]))
    # The generator was closed early; the chunk it was in ended, cut short, the ones
    # before it ended normally.
    assert len(chunks) < 50
    assert [chunk.status for chunk in chunks] == ["UNSET"] * (len(chunks) - 1) + ["ERROR"]
    assert "exception" in chunks[-1].events


def test_gevent_timeout_interrupting_a_span(service: Service) -> None:
    response = service.get("/slow", params={"timeout": "0.05"})
    assert response.status_code == 504

    spans = _trace_of(service, "slow", 2)
    server = next(s for s in spans if s.is_baseplate and s.kind == "SERVER")
    interrupted = next(s for s in spans if s.name == "slow_work")
    assert interrupted.parent_id == server.span_id
    assert interrupted.status == "ERROR"
    assert "exception" in interrupted.events
    assert server.status == "UNSET"  # the view handled the timeout


def test_gevent_timeout_ending_the_request(service: Service) -> None:
    response = service.get("/slow", params={"timeout": "0.05", "handle": "0"})
    assert response.status_code == 500

    def ended() -> list[LoggedSpan] | None:
        spans = _trace_of(service, "slow", 2)
        return spans if any(s.name == "slow" and s.status == "ERROR" for s in spans) else None

    spans = wait_for(ended)
    server = next(s for s in spans if s.is_baseplate and s.kind == "SERVER")
    interrupted = next(s for s in spans if s.name == "slow_work")
    assert server.status == interrupted.status == "ERROR"
    assert "exception" in server.events
    # The unhandled exception is logged by the server (through logging, to standard
    # output); nothing about contexts is.
    assert "Timeout" in service.server.stdout
    assert "Failed to detach context" not in service.server.stderr


def test_no_noise_and_a_clean_stop(service: Service) -> None:
    service.get("/fanout")
    assert service.stop() == 0
    stderr = service.server.stderr
    # Drop the report of the deliberately unhandled timeout (test above), check the rest.
    assert stderr.count("Traceback") <= 1
    assert_quiet(_without_timeout_report(stderr))


@pytest.mark.parametrize("instrumented", [True, False], ids=["instrumented", "plain"])
def test_stop_exports_what_is_queued(tmp_path: pathlib.Path, instrumented: bool) -> None:
    # The export interval is far longer than the test: only the stop can export the spans.
    service = Service(
        tmp_path, instrumented=instrumented, settings={"test.schedule_delay": "600"}
    )
    trace_ids = [service.get("/orders/1").json()["trace_id"] for _ in range(3)]
    assert not [s for s in service.spans() if s.trace_id in trace_ids]

    assert service.stop() == 0
    for trace_id in trace_ids:
        assert _names(service, trace_id) >= {"order", "load_order"}
    assert_quiet(service.server.stderr)


@pytest.fixture
def hanging_collector() -> Iterator[str]:
    """An address that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"


@pytest.mark.parametrize("instrumented", [True, False], ids=["instrumented", "plain"])
def test_stop_is_bounded_when_the_collector_hangs(
    tmp_path: pathlib.Path, hanging_collector: str, instrumented: bool
) -> None:
    # Zipkin export hangs far longer than the harness waits (ServerProcess.stop gives 30 s
    # before killing); the stop must give up on it and still export the other processor's
    # spans.
    service = Service(
        tmp_path,
        instrumented=instrumented,
        settings={
            "tracing.exporter": "zipkin",
            "tracing.exporter.endpoint": hanging_collector,
            "tracing.exporter.timeout": "300 seconds",
            "test.schedule_delay": "600",
        },
    )
    trace_id = service.get("/orders/2").json()["trace_id"]

    assert service.stop() == 0
    assert _names(service, trace_id) >= {"order", "load_order"}
