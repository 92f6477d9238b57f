"""Per-request cost of each metrics backend: statsd, OTLP, Prometheus, and the raw OTel SDK.

One request is a Pyramid-like server span (``http.method``, ``http.status_code``,
``http.url``), 3 client child spans and one local span, plus the application's own counter
and timer through ``context.metrics``; traces are sampled out (recording only), so what is
measured is the metrics. Variants, measured in one run, in interleaved rounds (the order
rotates each round; medians of the rounds):

* no metrics: the same spans without ``configure_metrics`` (the baseline subtracted below);
* statsd: ``metrics_client_from_config`` with ``metrics.exporter = statsd`` to a local UDP
  socket (11 lines a request, one datagram);
* otlp: ``metrics.exporter = otlp`` to a local HTTP sink that answers 200, the interval long
  enough that each round ends with one export (a ``flush``, timed with the round);
* prometheus: ``metrics.exporter = prometheus`` on a free port, each round ending with one
  scrape of ``/metrics`` (timed with the round);
* raw OTel SDK: the same spans plus a hand-written span processor recording one histogram
  and one counter per span (the same attributes, no request tracking) and the application's
  counter and histogram on a bare ``MeterProvider`` with the same OTLP reader and sink,
  flushed at the end of each round.

Each round checks what arrived: the statsd lines, the OTLP data points exported without a
failure, the scraped ``baseplate_span_calls_total``; a shortfall stops the run.

    .venv/bin/python benchmarks/metrics_backends.py --requests 5000 --rounds 9
"""

from __future__ import annotations

import argparse
import gc
import http.server
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from sinks import UDPSink

from baseplate.core import Baseplate, RequestContext
from baseplate.metrics import OTelClient, metrics_client_from_config
from exporters.otel_metrics import DURATION_BUCKETS, shutdown_pipelines
from exporters.otlp_metrics import make_otlp_metrics_reader

CLIENT_CALLS = 3
#: statsd lines of one request: a timer for each of the 5 spans, a counter for the server and
#: client spans, and the application's counter and timer.
LINES_PER_REQUEST = 5 + 4 + 2

NONE = "no metrics (spans only)"
STATSD = "statsd"
OTLP = "otlp"
PROMETHEUS = "prometheus"
RAW = "raw OTel metrics SDK"


class OTLPSink(http.server.ThreadingHTTPServer):
    """A local OTLP/HTTP endpoint that takes every export (200, empty body) and counts it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.posts = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def one_request(bp: Baseplate) -> None:
    context = RequestContext()
    with bp.make_server_span(context, "get_user") as span:
        span.set_tag("http.method", "GET")
        span.set_tag("http.url", "http://service/users/1")
        for index in range(CLIENT_CALLS):
            with span.make_child(f"backend.call{index}") as child:
                child.set_tag("peer", "backend")
        with span.make_child("render", local=True, component_name="templates"):
            pass
        metrics = getattr(context, "metrics", None)  # none in the spans-only baseline
        if metrics is not None:
            metrics.counter("users.fetched").increment()
            metrics.timer("users.render").send(0.002)
        span.set_tag("http.status_code", 200)


class RawSpanMetrics(SpanProcessor):
    """What a user would write on the bare SDK: one histogram and one counter per span."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("raw")
        self.duration = meter.create_histogram(
            "raw.span.duration", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
        )
        self.calls = meter.create_counter("raw.span.calls")

    def on_end(self, span: ReadableSpan) -> None:
        if span.start_time is None or span.end_time is None:
            return
        kind = {SpanKind.SERVER: "server", SpanKind.CLIENT: "client"}.get(span.kind, "local")
        attributes = {
            "baseplate.span.kind": kind,
            "baseplate.span.name": span.name,
            "baseplate.success": span.status.status_code is not StatusCode.ERROR,
        }
        self.duration.record((span.end_time - span.start_time) / 1e9, attributes)
        if kind != "local":
            self.calls.add(1, attributes)


@dataclass
class Variant:
    name: str
    bp: Baseplate
    request: Callable[[Baseplate], None] = one_request
    #: Ends a round (export or scrape), timed with it.
    finish: Callable[[], None] = lambda: None
    #: Checks what the backend received after ``requests`` more requests; raises if short.
    check: Callable[[int], None] = lambda requests: None
    times: list[float] = field(default_factory=list)
    detail: str = ""


def unsampled_baseplate() -> Baseplate:
    bp = Baseplate(tracer_provider=TracerProvider())
    bp.sampler.sample_rate = 0.0  # recording-only spans: only the metrics are at work
    return bp


def make_variants(otlp_sink: OTLPSink, udp: UDPSink) -> list[Variant]:
    variants = [Variant(NONE, unsampled_baseplate())]

    bp = unsampled_baseplate()
    bp.configure_metrics(
        metrics_client_from_config(
            {
                "metrics.exporter": "statsd",
                "metrics.namespace": "bench",
                "metrics.endpoint": udp.endpoint,
            }
        )
    )
    statsd = Variant(STATSD, bp)
    statsd_seen = [0]

    def check_statsd(requests: int) -> None:
        statsd_seen[0] += requests * LINES_PER_REQUEST
        udp.drain(statsd_seen[0])
        if udp.lines < statsd_seen[0]:
            raise SystemExit(f"statsd: {udp.lines} lines arrived, {statsd_seen[0]} sent")
        statsd.detail = f"{udp.lines} lines"

    statsd.check = check_statsd
    variants.append(statsd)

    bp = unsampled_baseplate()
    otlp_client = metrics_client_from_config(
        {
            "metrics.exporter": "otlp",
            "metrics.namespace": "bench",
            "metrics.otlp.endpoint": otlp_sink.endpoint,
            "metrics.otlp.interval": "1 hour",
        }
    )
    assert isinstance(otlp_client, OTelClient)
    bp.configure_metrics(otlp_client)
    otlp = Variant(OTLP, bp, finish=lambda: _flushed(otlp_client.flush(10), OTLP))

    def check_otlp(requests: int) -> None:
        counts = otlp_client.telemetry_counts()
        if counts.get("metrics.failed"):
            raise SystemExit(f"otlp: {counts}")
        otlp.detail = f"{counts['metrics.exported']} points exported"

    otlp.check = check_otlp
    variants.append(otlp)

    bp = unsampled_baseplate()
    prometheus_client = metrics_client_from_config(
        {
            "metrics.exporter": "prometheus",
            "metrics.namespace": "bench",
            "metrics.prometheus.host": "127.0.0.1",
            "metrics.prometheus.port": "0",
        }
    )
    assert isinstance(prometheus_client, OTelClient)
    bp.configure_metrics(prometheus_client)
    url = prometheus_client.pipeline.prometheus_endpoint.url  # type: ignore[attr-defined]
    scraped: list[str] = [""]

    def scrape() -> None:
        with urllib.request.urlopen(url, timeout=10) as response:
            scraped[0] = response.read().decode()

    prometheus = Variant(PROMETHEUS, bp, finish=scrape)
    prometheus_total = [0]

    def check_prometheus(requests: int) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        prometheus_total[0] += requests
        for family in text_string_to_metric_families(scraped[0]):
            for sample in family.samples:
                if (
                    sample.name == "baseplate_span_calls_total"
                    and sample.labels.get("baseplate_span_kind") == "server"
                ):
                    if int(sample.value) != prometheus_total[0]:
                        raise SystemExit(f"prometheus: {sample.value} != {prometheus_total[0]}")
                    prometheus.detail = f"{int(sample.value)} requests scraped"
                    return
        raise SystemExit("prometheus: no baseplate_span_calls_total in the scrape")

    prometheus.check = check_prometheus
    variants.append(prometheus)

    bp = unsampled_baseplate()
    reader, exporter = make_otlp_metrics_reader(otlp_sink.endpoint, interval=3600, timeout=5)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    bp.add_span_processor(RawSpanMetrics(provider))
    meter = provider.get_meter("raw")
    counter = meter.create_counter("bench.users.fetched")
    render = meter.create_histogram(
        "bench.users.render", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
    )

    def raw_request(bp: Baseplate) -> None:
        context = RequestContext()
        with bp.make_server_span(context, "get_user") as span:
            span.set_tag("http.method", "GET")
            span.set_tag("http.url", "http://service/users/1")
            for index in range(CLIENT_CALLS):
                with span.make_child(f"backend.call{index}") as child:
                    child.set_tag("peer", "backend")
            with span.make_child("render", local=True, component_name="templates"):
                pass
            counter.add(1)
            render.record(0.002)
            span.set_tag("http.status_code", 200)

    raw = Variant(RAW, bp, request=raw_request, finish=lambda: provider.force_flush(10_000))

    def check_raw(requests: int) -> None:
        counts = exporter.telemetry_counts()
        if counts["metrics.failed"]:
            raise SystemExit(f"raw: {counts}")
        raw.detail = f"{counts['metrics.exported']} points exported"

    raw.check = check_raw
    variants.append(raw)
    return variants


def _flushed(done: bool, what: str) -> None:
    if not done:
        raise SystemExit(f"{what}: the export did not go through")


def run_round(variant: Variant, requests: int) -> float:
    gc.collect()
    request, bp = variant.request, variant.bp
    start = time.perf_counter()
    for _ in range(requests):
        request(bp)
    variant.finish()
    elapsed = time.perf_counter() - start
    variant.check(requests)
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    otlp_sink = OTLPSink()
    udp = UDPSink()
    variants = make_variants(otlp_sink, udp)
    for variant in variants:  # warm-up: instruments and names made, caches filled
        run_round(variant, min(args.requests, 500))

    ratios: dict[str, list[float]] = {v.name: [] for v in variants}
    costs: dict[str, list[float]] = {v.name: [] for v in variants}
    for round_index in range(args.rounds):
        order = variants[round_index % len(variants) :] + variants[: round_index % len(variants)]
        times = {variant.name: run_round(variant, args.requests) for variant in order}
        for variant in variants:
            variant.times.append(times[variant.name])
        base = times[NONE]
        for variant in variants:
            costs[variant.name].append(times[variant.name] - base)
            if variant.name != NONE:
                ratios[variant.name].append(
                    (times[variant.name] - base) / max(times[STATSD] - base, 1e-9)
                )

    print(
        f"{args.requests} requests a round, {args.rounds} rounds; a request: 1 server span,"
        f" {CLIENT_CALLS} client spans, 1 local span, 1 counter and 1 timer of its own"
    )
    print(f"{'variant':<26} {'us/request':>10} {'metrics us':>10} {'x statsd':>9}  received")
    for variant in variants:
        median = statistics.median(variant.times)
        cost = statistics.median(costs[variant.name])
        ratio = "" if variant.name == NONE else f"{statistics.median(ratios[variant.name]):9.2f}"
        metrics_cost = "" if variant.name == NONE else f"{cost:10.1f}"
        print(f"{variant.name:<26} {median:10.1f} {metrics_cost:>10} {ratio:>9}  {variant.detail}")
    raw_cost = statistics.median(costs[RAW])
    for name in (OTLP, PROMETHEUS):
        ours = statistics.median(costs[name])
        print(
            f"{name}: metrics cost {ours:.1f} us/request, {ours / max(raw_cost, 1e-9):.2f} x the "
            f"raw OTel SDK's ({raw_cost:.1f}), "
            f"{statistics.median(ratios[name]):.2f} x statsd's"
        )
    print(f"OTLP exports received by the sink: {otlp_sink.posts}")
    shutdown_pipelines(2.0)


if __name__ == "__main__":
    main()
