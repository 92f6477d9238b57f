"""Run by ``test_requests_processes.py`` under ``opentelemetry-instrument``: the distro has
installed the SDK provider and ``opentelemetry-instrumentation-requests`` is instrumenting
``requests``. One call through InternalRequestsClient and one plain ``requests.get``, each
inside a baseplate server span; prints the finished spans as JSON.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import requests
from opentelemetry import trace
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baseplate.clients.requests import InternalRequestsClient
from baseplate.core import Baseplate, RequestContext


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    provider: Any = trace.get_tracer_provider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    baseplate = Baseplate(tracer_provider=provider)
    baseplate.sampler.sample_rate = 1.0
    baseplate.add_to_context("peer", InternalRequestsClient())

    context: Any = RequestContext()
    with baseplate.make_server_span(context, "through_baseplate"):
        through_baseplate = context.peer.get(url, timeout=30).json()
    with baseplate.make_server_span(RequestContext(), "plain"):
        plain = requests.get(url, timeout=30).json()
    server.shutdown()
    print(
        json.dumps(
            {
                "vendor_active": RequestsInstrumentor().is_instrumented_by_opentelemetry,
                "provider": type(provider).__module__ + "." + type(provider).__name__,
                "through_baseplate": through_baseplate,
                "plain": plain,
                "spans": [
                    {
                        "name": s.name,
                        "kind": s.kind.name,
                        "scope": s.instrumentation_scope.name if s.instrumentation_scope else "",
                        "span_id": s.context.span_id,
                        "parent_id": s.parent.span_id if s.parent else None,
                    }
                    for s in exporter.get_finished_spans()
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
