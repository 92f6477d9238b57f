"""attach_context: where the edge context goes on the context object, and how long outbound
calls forward it."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from baseplate.core import Baseplate, RequestContext
from baseplate.edge_context import EdgeRequestContextFactory
from otel_bridge.context import edge_request
from otel_bridge.propagation import http_propagator

from .conftest import REPO_ROOT


def test_attach_context_sets_the_0_28_attributes(factory: EdgeRequestContextFactory) -> None:
    edge_context = factory.new(loid_id="t2_abc", session_id="s")
    context: Any = RequestContext()
    edge_context.attach_context(context)
    assert context.request_context is edge_context
    assert context.raw_request_context == edge_context.header


def test_header_is_forwarded_while_the_server_span_runs(
    factory: EdgeRequestContextFactory,
) -> None:
    baseplate = Baseplate(tracer_provider=TracerProvider())
    edge_context = factory.new(loid_id="t2_abc")
    context: Any = RequestContext()

    span = baseplate.make_server_span(context, "handle")
    span.start()
    edge_context.attach_context(context)
    headers: dict[str, str] = {}
    http_propagator().inject(headers)
    assert edge_request() == edge_context.header
    span.finish()

    assert edge_request() is None  # gone with the request
    assert headers["X-Edge-Request"] == base64.b64encode(edge_context.header).decode()


def test_concurrent_requests_forward_their_own_header(
    factory: EdgeRequestContextFactory,
) -> None:
    baseplate = Baseplate(tracer_provider=TracerProvider())
    barrier = threading.Barrier(4)
    results: dict[str, str | None] = {}

    def handle(loid: str) -> None:
        context: Any = RequestContext()
        with baseplate.make_server_span(context, "handle"):
            edge_context = factory.new(loid_id=loid)
            edge_context.attach_context(context)
            barrier.wait(10)  # all requests are in flight at once
            forwarded = edge_request()
            assert forwarded is not None
            results[loid] = factory.from_upstream(forwarded).user.loid

    threads = [threading.Thread(target=handle, args=(f"t2_{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {f"t2_{n}": f"t2_{n}" for n in range(4)}


def test_importing_the_module_needs_neither_thrift_nor_jwt() -> None:
    code = (
        "import sys, baseplate.core, baseplate.edge_context; "
        "print(sorted(m for m in ('thrift', 'jwt', 'cryptography') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
