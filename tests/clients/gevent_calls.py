"""Run by ``test_requests_processes.py``: InternalRequestsClient under gevent.

``monkey.patch_all()`` first, as ``baseplate-serve`` does; a gevent WSGI server on loopback
answers what each request carried, after a cooperative sleep so that the calls overlap.
Twenty greenlets, each serving its own request (server span, Edge-Request), call it at once.
Prints one JSON object: what each call saw, the spans, and the most calls in flight at once.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.socket  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from baseplate.clients.requests import InternalRequestsClient  # noqa: E402
from baseplate.core import Baseplate, RequestContext  # noqa: E402
from otel_bridge.context import set_edge_request  # noqa: E402

CALLS = 20
in_flight = 0
most_in_flight = 0


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    global in_flight, most_in_flight
    in_flight += 1
    most_in_flight = max(most_in_flight, in_flight)
    gevent.sleep(0.05)
    in_flight -= 1
    seen = {
        name: environ.get("HTTP_" + name.upper().replace("-", "_"))
        for name in ("X-Trace", "X-Parent", "X-Span", "X-Edge-Request")
    }
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def main() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = WSGIServer(listener, app, log=None)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    baseplate = Baseplate(tracer_provider=provider)
    baseplate.sampler.sample_rate = 1.0
    baseplate.add_to_context("peer", InternalRequestsClient())

    def serve(index: int) -> dict[str, Any]:
        context: Any = RequestContext()
        with baseplate.make_server_span(context, f"request_{index}") as span:
            set_edge_request(bytes([index]))
            seen = context.peer.get(url, timeout=30).json()
        return {"trace_id": span.trace_id, "span_id": span.id, "index": index, "seen": seen}

    greenlets = [gevent.spawn(serve, index) for index in range(CALLS)]
    gevent.joinall(greenlets, raise_error=True)
    server.stop()
    spans = [
        {
            "name": s.name,
            "kind": s.kind.name,
            "span_id": s.context.span_id,
            "trace_id": s.context.trace_id,
            "parent_id": s.parent.span_id if s.parent else None,
        }
        for s in exporter.get_finished_spans()
    ]
    print(
        json.dumps(
            {
                "patched": socket.socket is gevent.socket.socket,
                "calls": [g.value for g in greenlets],
                "spans": spans,
                "most_in_flight": most_in_flight,
            }
        )
    )


if __name__ == "__main__":
    main()
