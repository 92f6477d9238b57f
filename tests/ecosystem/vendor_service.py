"""A service instrumented with plain OpenTelemetry only (W3C ``traceparent``, no baseplate).

``python -m tests.ecosystem.vendor_service SPAN_LOG`` serves on a free port (printed as
``PORT <n>`` on stdout) with the vendor WSGI middleware and the vendor ``requests``
instrumentation, exporting its spans to the JSON-lines file ``SPAN_LOG``:

* ``GET /echo`` answers the request headers it received and its own span's ids;
* ``GET /call?url=URL`` calls ``URL`` with ``requests`` and answers what came back.
"""

from __future__ import annotations

import json
import socketserver
import sys
import urllib.parse
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from opentelemetry import trace
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.ecosystem.spanlog import JsonLinesExporter


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    span_context = trace.get_current_span().get_span_context()
    path = environ.get("PATH_INFO", "")
    body: dict[str, Any] = {"trace_id": span_context.trace_id, "span_id": span_context.span_id}
    if path == "/echo":
        body["headers"] = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
    elif path == "/call":
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        response = requests.get(query["url"][0], timeout=10)
        body["status"] = response.status_code
        body["body"] = response.json()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "vendor"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(sys.argv[1])))
    trace.set_tracer_provider(provider)
    RequestsInstrumentor().instrument()
    server = make_server(
        "127.0.0.1",
        0,
        OpenTelemetryMiddleware(_app),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
