"""Greenlets and thread pools started through the framework stay in the caller's trace.

In-process, with an in-memory exporter. The spans made inside the handed-over work come
from a plain OpenTelemetry tracer, as a vendor instrumentation's would: they only nest
correctly if the OpenTelemetry context travelled with the work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import gevent
import gevent.pool
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import baseplate.concurrency as public_concurrency
import otel_bridge.concurrency as bridge_concurrency
from baseplate.concurrency import (
    ContextThreadPoolExecutor,
    spawn,
    spawn_in_pool,
    spawn_later,
    submit,
)
from baseplate.core import Baseplate, RequestContext, ServerSpan, TraceInfo


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def baseplate(provider: TracerProvider) -> Baseplate:
    return Baseplate(tracer_provider=provider)


@pytest.fixture
def vendor_tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("vendor.instrumentation")


@pytest.fixture
def request_span(baseplate: Baseplate) -> Iterator[ServerSpan]:
    span = baseplate.make_server_span(
        RequestContext(), "request", TraceInfo(123456789, None, 42, True, None)
    )
    with span:
        yield span


def _current_ids() -> tuple[int, int]:
    context = trace.get_current_span().get_span_context()
    return context.trace_id, context.span_id


def _vendor_span_parent(tracer: trace.Tracer, name: str) -> int | None:
    with tracer.start_as_current_span(name) as span:
        parent = span.parent  # type: ignore[attr-defined]
        return parent.span_id if parent is not None else None


def test_spawned_greenlet_continues_the_trace(
    request_span: ServerSpan, vendor_tracer: trace.Tracer
) -> None:
    greenlet = spawn(lambda: (_current_ids(), _vendor_span_parent(vendor_tracer, "work")))

    assert greenlet.get(timeout=10) == ((123456789, 42), 42)


def test_plain_gevent_spawn_starts_empty(request_span: ServerSpan) -> None:
    # Why the helpers exist: a new greenlet has an empty context.
    assert gevent.spawn(_current_ids).get(timeout=10) == (0, 0)


def test_spawn_later_and_pools_continue_the_trace(request_span: ServerSpan) -> None:
    pool = gevent.pool.Pool(2)
    later = spawn_later(0.001, _current_ids)
    pooled = [spawn_in_pool(pool, _current_ids) for _ in range(4)]

    assert later.get(timeout=10) == (123456789, 42)
    assert [greenlet.get(timeout=10) for greenlet in pooled] == [(123456789, 42)] * 4


def test_arguments_and_exceptions_pass_through(request_span: ServerSpan) -> None:
    def divide(a: int, b: int = 1) -> float:
        return a / b

    assert spawn(divide, 6, b=3).get(timeout=10) == 2
    with pytest.raises(ZeroDivisionError):
        spawn(divide, 1, b=0).get(timeout=10)
    with ThreadPoolExecutor(max_workers=1) as executor:
        with pytest.raises(ZeroDivisionError):
            submit(executor, divide, 1, b=0).result(timeout=10)


def test_context_is_the_one_at_spawn_time(
    baseplate: Baseplate, request_span: ServerSpan, vendor_tracer: trace.Tracer
) -> None:
    with request_span.make_child("step", local=True, component_name="c") as local:
        greenlet = spawn(lambda: _vendor_span_parent(vendor_tracer, "late"))
    # The local span ended before the greenlet ran; its work still belongs under it.
    assert _current_ids() == (123456789, 42)
    assert greenlet.get(timeout=10) == local.id


def test_what_a_task_does_stays_in_the_task(
    request_span: ServerSpan, vendor_tracer: trace.Tracer
) -> None:
    def leave_a_span_current() -> None:
        span = vendor_tracer.start_span("left-open")
        trace.use_span(span).__enter__()  # never exited: must not leak out

    spawn(leave_a_span_current).join(timeout=10)
    with ContextThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(leave_a_span_current).result(timeout=10)

    assert _current_ids() == (123456789, 42)


def test_thread_pool_tasks_continue_the_trace(
    request_span: ServerSpan, vendor_tracer: trace.Tracer
) -> None:
    with ThreadPoolExecutor(max_workers=2) as executor:
        plain = executor.submit(_current_ids).result(timeout=10)
        helped = submit(executor, _current_ids).result(timeout=10)
    with ContextThreadPoolExecutor(max_workers=2) as pool:
        submitted = pool.submit(_vendor_span_parent, vendor_tracer, "task").result(timeout=10)
        mapped = list(pool.map(lambda _: _current_ids(), range(5)))

    assert plain == (0, 0)
    assert helped == (123456789, 42)
    assert submitted == 42
    assert mapped == [(123456789, 42)] * 5


def test_concurrent_requests_do_not_share_contexts(
    baseplate: Baseplate, exporter: InMemorySpanExporter, vendor_tracer: trace.Tracer
) -> None:
    def handle(index: int) -> list[int]:
        trace_id = 1000 + index
        span = baseplate.make_server_span(
            RequestContext(), "request", TraceInfo(trace_id, None, 5000 + index, True, None)
        )
        with span:
            gevent.sleep(0.001 * (index % 3))
            workers = [spawn(_vendor_span_parent, vendor_tracer, f"w{index}") for _ in range(3)]
            gevent.joinall(workers, raise_error=True)
            gevent.sleep(0)
            return [_current_ids()[0]] + [worker.value for worker in workers]

    # Each request runs on its own greenlet, as the server runs them.
    requests = [gevent.spawn(handle, index) for index in range(50)]
    gevent.joinall(requests, raise_error=True)

    for index, request in enumerate(requests):
        assert request.value == [1000 + index] + [5000 + index] * 3
    vendor_spans = [s for s in exporter.get_finished_spans() if s.name.startswith("w")]
    assert len(vendor_spans) == 150
    for span in vendor_spans:
        index = int(span.name[1:])
        assert span.context.trace_id == 1000 + index
        assert span.parent is not None and span.parent.span_id == 5000 + index


def test_span_finished_on_another_greenlet_is_quiet(
    request_span: ServerSpan, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    # Started here, finished by a greenlet: its activation token belongs to this context.
    caplog.set_level(logging.DEBUG)
    local = request_span.make_child("handed_over", local=True, component_name="c")
    local.start()
    spawn(local.finish).join(timeout=10)

    assert "handed_over" in [span.name for span in exporter.get_finished_spans()]
    assert "Failed to detach context" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_baseplate_reexports_the_bridge_helpers() -> None:
    assert public_concurrency.__all__ == bridge_concurrency.__all__
    for name in public_concurrency.__all__:
        assert getattr(public_concurrency, name) is getattr(bridge_concurrency, name)
