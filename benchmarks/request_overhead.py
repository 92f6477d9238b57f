"""Per-request cost of baseplate spans against the raw OpenTelemetry SDK doing the same work.

One "request" is a server span with 3 tags, 3 client child spans with 2 tags each and one
local span. Both sides export through a batch processor to an exporter that discards spans.
With ``--metrics`` the baseplate side also sends statsd metrics through ``configure_metrics``
and the raw side through a minimal hand-written statsd span processor doing the same (a
timer and a counter per span, one datagram per request), both to a local UDP socket.

With ``--exporter zipkin`` both sides send sampled spans to the same local Zipkin-like
receiver instead: baseplate through ``configure_tracing`` (its own exporter behind its bounded
batch processor), the raw side through the stock ``opentelemetry-exporter-zipkin-json``
exporter behind the SDK's ``BatchSpanProcessor``.

Run: ``.venv/bin/python benchmarks/request_overhead.py [--requests N] [--metrics]
[--exporter discard|zipkin]``
"""

from __future__ import annotations

import argparse
import gc
import socket
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from baseplate.core import Baseplate, RequestContext


class DiscardingExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class RawStatsdProcessor(SpanProcessor):
    """The same metrics as baseplate's, written directly against the OTel SDK."""

    def __init__(self, namespace: str, address: tuple[str, int]):
        self.prefix = namespace + "."
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(address)
        self.lines: dict[int, list[str]] = {}

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None and span.end_time and span.start_time
        ms = (span.end_time - span.start_time) / 1e6
        kind = {SpanKind.SERVER: "server.", SpanKind.CLIENT: "clients."}.get(span.kind)
        name = self.prefix + (kind or "templates.") + span.name
        lines = self.lines.setdefault(span.context.trace_id, [])
        lines.append(f"{name}:{ms:g}|ms")
        if kind:
            lines.append(f"{name}.success:1|c")
        if span.parent is None or span.parent.is_remote:
            self.sock.send("\n".join(self.lines.pop(span.context.trace_id)).encode())


def make_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    return BatchSpanProcessor(exporter, max_queue_size=100_000, max_export_batch_size=512)


def baseplate_request(baseplate: Baseplate) -> Callable[[], None]:
    def request() -> None:
        context = RequestContext()
        server = baseplate.make_server_span(context, "endpoint")
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

    return request


def raw_request(provider: TracerProvider) -> Callable[[], None]:
    tracer = provider.get_tracer("raw")

    def request() -> None:
        with tracer.start_as_current_span("endpoint", kind=SpanKind.SERVER) as server:
            server.set_attribute("http.method", "GET")
            server.set_attribute("http.url", "/hello")
            server.set_attribute("peer.ipv4", "127.0.0.1")
            for call in ("redis.GET", "db.execute", "thrift.call"):
                with tracer.start_as_current_span(call, kind=SpanKind.CLIENT) as child:
                    child.set_attribute("key", "value")
                    child.set_attribute("size", 3)
            with tracer.start_as_current_span(
                "render", attributes={"component": "templates"}
            ):
                pass

    return request


def timed_round(request: Callable[[], None], provider: TracerProvider, requests: int) -> float:
    """Microseconds per request for one round, its export flushed inside the round."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(requests):
        request()
    provider.force_flush()
    return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--metrics", action="store_true", help="also produce statsd metrics")
    parser.add_argument("--exporter", choices=("discard", "zipkin"), default="discard")
    args = parser.parse_args()

    raw_provider = TracerProvider()
    bp_provider = TracerProvider()
    baseplate = Baseplate(tracer_provider=bp_provider)
    baseplate.sampler.sample_rate = 1.0
    if args.exporter == "zipkin":
        from export_throughput import CountingReceiver
        from opentelemetry.exporter.zipkin.json import ZipkinExporter as StockZipkinExporter

        from baseplate import tracing_client_from_config

        receiver = CountingReceiver()
        raw_provider.add_span_processor(
            make_processor(StockZipkinExporter(endpoint=receiver.url + "/api/v2/spans"))
        )
        baseplate.configure_tracing(
            tracing_client_from_config(
                {
                    "tracing.service_name": "bench",
                    "tracing.exporter": "zipkin",
                    "tracing.exporter.endpoint": receiver.url,
                    "tracing.sample_rate": "100%",
                }
            )
        )
    else:
        raw_provider.add_span_processor(make_processor(DiscardingExporter()))
        bp_provider.add_span_processor(make_processor(DiscardingExporter()))

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.metrics:
        from baseplate.metrics import make_client

        sink.bind(("127.0.0.1", 0))
        address = sink.getsockname()
        baseplate.configure_metrics(make_client("bench", f"{address[0]}:{address[1]}"))
        raw_provider.add_span_processor(RawStatsdProcessor("bench", address))

    raw, bp = raw_request(raw_provider), baseplate_request(baseplate)
    for _ in range(min(args.requests, 2000)):  # warm up both
        raw()
        bp()
    # Alternate rounds so that drifting machine noise hits both alike; the ratio is the
    # median of the per-pair ratios.
    raw_times, bp_times, ratios = [], [], []
    for _ in range(args.rounds):
        raw_us = timed_round(raw, raw_provider, args.requests)
        bp_us = timed_round(bp, bp_provider, args.requests)
        raw_times.append(raw_us)
        bp_times.append(bp_us)
        ratios.append(bp_us / raw_us)
    raw_us, bp_us = statistics.median(raw_times), statistics.median(bp_times)
    label = f"tracing to {args.exporter}" + (" + statsd metrics" if args.metrics else "")
    print(f"request overhead ({label}, {args.requests} requests x {args.rounds} rounds)")
    print(f"  raw OpenTelemetry SDK : {raw_us:8.1f} us/request")
    print(f"  baseplate             : {bp_us:8.1f} us/request")
    print(f"  ratio baseplate/raw   : {statistics.median(ratios):8.2f}x (median of pairs)")
    raw_provider.shutdown()
    bp_provider.shutdown()
    sink.close()


if __name__ == "__main__":
    main()
