"""Zipkin export throughput: our exporter against the stock OTel Zipkin JSON exporter.

Both exporters send the same finished spans, in batches, to the same local HTTP receiver
(which counts what it gets, so a run with drops is reported as such), in alternating rounds.
Prints the median spans per second of each and the median of the per-round ratios::

    .venv/bin/python benchmarks/export_throughput.py --spans 20000 --batch-size 512
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from exporters.zipkin import ZipkinExporter
from otel_bridge import semconv


class CountingReceiver:
    """A local Zipkin-like collector that counts the spans posted to it."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                count = len(json.loads(body))
                with receiver._lock:
                    receiver.spans += count
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_spans(count: int) -> list[ReadableSpan]:
    """Finished spans shaped like baseplate requests: a server span and its children."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(semconv.TRACER_NAME)
    while len(memory.get_finished_spans()) < count:
        with tracer.start_as_current_span("GET /things", kind=SpanKind.SERVER) as server:
            server.set_attribute("http.method", "GET")
            server.set_attribute("http.status_code", 200)
            with tracer.start_as_current_span("redis.GET", kind=SpanKind.CLIENT) as client:
                client.set_attribute("redis.key_count", 3)
            with tracer.start_as_current_span(
                "render", attributes={semconv.ATTR_COMPONENT: "templates"}
            ) as local:
                local.add_event("cache", {semconv.ATTR_LOG_PAYLOAD: "miss"})
    return list(memory.get_finished_spans())[:count]


def measure(
    exporter: SpanExporter, spans: Sequence[ReadableSpan], batch_size: int, receiver: Any
) -> tuple[float, int]:
    """Export ``spans`` in batches; return (spans per second, spans the receiver got)."""
    before = receiver.spans
    failures = 0
    start = time.perf_counter()
    for offset in range(0, len(spans), batch_size):
        if exporter.export(spans[offset : offset + batch_size]) is not SpanExportResult.SUCCESS:
            failures += 1
    elapsed = time.perf_counter() - start
    exporter.shutdown()
    received = receiver.spans - before
    if failures:
        print(f"  {failures} batches failed")
    return len(spans) / elapsed, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=20000, help="spans to export (20000)")
    parser.add_argument("--batch-size", type=int, default=512, help="spans per export (512)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating runs of each; medians count (5)"
    )
    args = parser.parse_args()

    from opentelemetry.exporter.zipkin.json import ZipkinExporter as StockZipkinExporter

    spans = make_spans(args.spans)
    receiver = CountingReceiver()
    ours_rates: list[float] = []
    stock_rates: list[float] = []
    ours_received, stock_received = len(spans), len(spans)
    try:
        # Alternate the two so that a busy machine slows both alike.
        for _ in range(args.rounds):
            rate, received = measure(
                ZipkinExporter("benchmark", receiver.url), spans, args.batch_size, receiver
            )
            ours_rates.append(rate)
            ours_received = min(ours_received, received)
            rate, received = measure(
                StockZipkinExporter(endpoint=f"{receiver.url}/api/v2/spans", timeout=5),
                spans,
                args.batch_size,
                receiver,
            )
            stock_rates.append(rate)
            stock_received = min(stock_received, received)
    finally:
        receiver.close()
    ours, stock = statistics.median(ours_rates), statistics.median(stock_rates)
    ratio = statistics.median(a / b for a, b in zip(ours_rates, stock_rates, strict=True))

    def line(name: str, rate: float, received: int) -> str:
        drops = len(spans) - received
        status = "no drops" if drops == 0 else f"{drops} spans DROPPED"
        return f"{name:<34} {rate:>10.0f} spans/s  ({received}/{len(spans)} received, {status})"

    print(
        f"{len(spans)} spans in batches of {args.batch_size}, medians of {args.rounds} "
        "alternating rounds (received: the fewest of any round)"
    )
    print(line("exporters.zipkin.ZipkinExporter", ours, ours_received))
    print(line("opentelemetry-exporter-zipkin-json", stock, stock_received))
    print(f"ratio (ours / stock, median of the per-round ratios): {ratio:.2f}x  (issue 17: >= 1.5)")


if __name__ == "__main__":
    main()
