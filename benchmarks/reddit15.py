"""The reddit baseplate 1.5.5 side of the benchmarks; runs only in .services/reddit-baseplate-1.5.

Nothing here imports this project: the interpreter is the one of the virtualenv that
``benchmarks/setup.sh`` makes, and ``import baseplate`` is reddit's package.

* ``request_overhead.py`` runs this file as ``python -I benchmarks/reddit15.py --requests N
  --statsd HOST:PORT`` (``-I``: nothing from the caller's environment or directory on the path).
  It warms up, prints a JSON line ``{"ready": ...}``, then for each ``round`` line on stdin runs
  one timed round of the same request workload as the other variants and prints a JSON line
  with its timing and the spans its recorder got. ``quit`` or the end of stdin stops it.
* ``serve_throughput.py`` names :func:`make_wsgi_app` as the app factory of reddit's
  ``baseplate-serve`` (with only this directory on ``PYTHONPATH``), and in one variant
  ``NoDelayHandler`` as its WSGI server's ``handler`` (1.5's option for a pywsgi handler class).

The API is 1.5's documented one: ``Baseplate(app_config)``, ``configure_observers()`` for the
server, ``configure_tracing(TracingClient(...))`` and ``configure_metrics(client)`` for the
request workload (whose recorder must count what it gets), ``make_context_object``,
``make_server_span``, ``make_child``, ``set_tag``, ``start`` / ``finish`` (``with``).
"""

from __future__ import annotations

import argparse
import gc
import json
import queue
import sys
import threading
import time
from typing import Any

#: The spans of one request (a server span, three client spans, one local span).
SPANS_PER_REQUEST = 5


def make_wsgi_app(app_config: dict[str, str]) -> Any:
    """Hello world in Pyramid on reddit's baseplate 1.5, observers from the app config."""
    from baseplate.frameworks.pyramid import BaseplateConfigurator
    from pyramid.config import Configurator
    from pyramid.response import Response

    from baseplate import Baseplate

    bp = Baseplate(app_config)
    bp.configure_observers()
    configurator = Configurator(settings=app_config)
    configurator.include(BaseplateConfigurator(bp).includeme)
    configurator.add_route("hello", "/hello")
    configurator.add_view(lambda request: Response(b"Hello, world!"), route_name="hello")
    return configurator.make_wsgi_app()


def __getattr__(name: str) -> Any:
    """``NoDelayHandler``: gevent's pywsgi handler with TCP_NODELAY on its connection.

    reddit's 1.5 WSGI server leaves Nagle's algorithm on; its Pyramid responses go out chunked,
    in two writes, and the second waits for the client's delayed ACK (~40 ms a request on
    keep-alive). Made on first use so that the request workload never imports gevent's server.
    """
    if name != "NoDelayHandler":
        raise AttributeError(name)
    import socket

    from gevent.pywsgi import WSGIHandler

    class NoDelayHandler(WSGIHandler):  # type: ignore[misc]
        def handle(self) -> Any:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle()

    globals()["NoDelayHandler"] = NoDelayHandler
    return NoDelayHandler


def _counting_recorder() -> Any:
    """1.5's ``NullRecorder`` (background workers serializing spans, then dropping them), made
    to count the spans it serialized; ``drain`` serializes what is still queued right away."""
    from baseplate.observers.tracing import NullRecorder

    class CountingRecorder(NullRecorder):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self._count_lock = threading.Lock()

        def flush_func(self, spans: list[dict[str, Any]]) -> None:
            with self._count_lock:
                self.count += len(spans)

        def drain(self, expected: int, limit: float = 30.0) -> None:
            """Serialize and count the queued spans here, then wait for the workers' last
            batches, until ``expected`` spans were counted (or ``limit`` seconds passed)."""
            spans = []
            try:
                while True:
                    spans.append(self.span_queue.get_nowait()._serialize())
            except queue.Empty:
                pass
            if spans:
                self.flush_func(spans)
            deadline = time.monotonic() + limit
            while self.count < expected and time.monotonic() < deadline:
                time.sleep(0.0002)

    return CountingRecorder()


def _request_workload(statsd: str) -> tuple[Any, Any]:
    from baseplate.lib.metrics import metrics_client_from_config
    from baseplate.observers.tracing import TracingClient

    import baseplate

    app_config = {
        "baseplate.service_name": "bench",
        "metrics.namespace": "bench",
        "metrics.endpoint": statsd,
    }
    bp = baseplate.Baseplate(app_config)
    recorder = _counting_recorder()
    bp.configure_tracing(TracingClient("bench", 1.0, recorder))
    bp.configure_metrics(metrics_client_from_config(app_config))

    def request() -> None:
        context = bp.make_context_object()
        server = bp.make_server_span(context, "endpoint")
        with server:
            server.set_tag("http.method", "GET")
            server.set_tag("http.url", "/hello")
            server.set_tag("peer.ipv4", "127.0.0.1")
            for call in ("redis.GET", "db.execute", "thrift.call"):
                with server.make_child(call) as child:
                    child.set_tag("key", "value")
                    child.set_tag("size", 3)
            with server.make_child("render", local=True, component_name="templates"):
                pass

    return request, recorder


def _run(request: Any, recorder: Any, requests: int, max_seconds: float) -> dict[str, Any]:
    """One round: ``requests`` requests (fewer if ``max_seconds`` runs out), spans drained."""
    gc.collect()
    before = recorder.count
    start = time.perf_counter()
    deadline = start + max_seconds
    done = 0
    while done < requests:
        request()
        done += 1
        if done % 100 == 0 and time.perf_counter() > deadline:
            break
    recorder.drain(before + done * SPANS_PER_REQUEST)
    elapsed = time.perf_counter() - start
    return {"us": elapsed / done * 1e6, "requests": done, "spans": recorder.count - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, required=True, help="requests per round")
    parser.add_argument("--warmup", type=int, default=2000, help="requests before the rounds")
    parser.add_argument("--statsd", required=True, help="HOST:PORT of the metrics socket")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="limit of one round")
    args = parser.parse_args()

    import importlib.metadata

    request, recorder = _request_workload(args.statsd)
    warm = _run(request, recorder, args.warmup, args.max_seconds)
    version = importlib.metadata.version("baseplate")
    print(json.dumps({"ready": True, "baseplate": version, **warm}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            print(json.dumps(_run(request, recorder, args.requests, args.max_seconds)), flush=True)
        elif command == "quit":
            break


if __name__ == "__main__":
    main()
