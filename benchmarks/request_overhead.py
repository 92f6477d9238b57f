"""Per-request cost of baseplate's spans and metrics against what a user would pick instead.

One request is a server span with 3 tags, 3 client child spans with 2 tags each and one local
span. Spans go to an exporter that counts and discards them, behind a batch processor; statsd
metrics go to a local UDP socket that the benchmark drains and counts. Five variants, measured
in one run, in interleaved rounds (the order rotates each round; medians of the rounds):

* this project, tracing + metrics: ``configure_tracing`` (``tracing.exporter = none``,
  sample rate 100%) with baseplate's own ``BoundedBatchSpanProcessor`` added for the counting
  exporter, and ``configure_metrics(baseplate.metrics.make_client(...))``;
* this project, tracing only (the same without ``configure_metrics``);
* the raw OpenTelemetry SDK with the SDK's ``BatchSpanProcessor``, alone and with a span
  processor sending through the ``statsd`` library (``statsd.StatsClient(...).pipeline()``, one
  pipeline per request: a timer per span, a ``.success`` counter per server and client span,
  the same names as baseplate's);
* reddit's baseplate 1.5.5, tracing (a ``NullRecorder`` that counts) + metrics, in its own
  virtualenv (``benchmarks/setup.sh``), run as a ``python -I`` subprocess (``reddit15.py``)
  that times its rounds when told to and reports them as JSON.

Each round of each variant checks that all its spans were exported and all its statsd lines
arrived; a shortfall stops the run. Time spent draining the UDP socket is outside the rounds.

Run ``bash benchmarks/setup.sh`` once, then::

    .venv/bin/python benchmarks/request_overhead.py --requests 5000 --rounds 15
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import selectors
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from sinks import UDPSink

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
REDDIT_PYTHON = REPO_ROOT / ".services" / "reddit-baseplate-1.5" / "bin" / "python"

SPANS_PER_REQUEST = 5
#: statsd lines of one request: a timer for each of the 5 spans, a counter for 4 of them.
LINES_PER_REQUEST = 9
#: The span queue of every batch processor (0.28's ``tracing.max_span_queue_size`` default)
#: and its export interval (``tracing.span_batch_interval``).
MAX_QUEUE_SIZE = 50000
SCHEDULE_DELAY = 0.5

OURS_FULL = "this project, tracing + metrics"
OURS_TRACING = "this project, tracing only"
RAW_STATSD = "raw OTel SDK + statsd library pipeline"
RAW_ALONE = "raw OTel SDK alone"
REDDIT = "reddit baseplate 1.5.5, tracing + metrics"


class CountingExporter(SpanExporter):
    """Discards spans, counting them."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.count += len(spans)
        return SpanExportResult.SUCCESS


class StatsdLibraryProcessor(SpanProcessor):
    """The metrics baseplate sends, through the ``statsd`` library: one pipeline per request,
    sent when the request's root span ends."""

    def __init__(self, namespace: str, address: tuple[str, int]) -> None:
        import statsd

        self.client = statsd.StatsClient(address[0], address[1], prefix=namespace)
        self.pipelines: dict[int, Any] = {}

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        assert context is not None and span.end_time and span.start_time
        pipeline = self.pipelines.get(context.trace_id)
        if pipeline is None:
            pipeline = self.pipelines[context.trace_id] = self.client.pipeline()
        kind = span.kind
        if kind is SpanKind.SERVER:
            name = "server." + span.name
        elif kind is SpanKind.CLIENT:
            name = "clients." + span.name
        else:
            name = f"{(span.attributes or {}).get('component')}.{span.name}"
        pipeline.timing(name, (span.end_time - span.start_time) / 1e6)
        if kind is not SpanKind.INTERNAL:
            failed = span.status.status_code is StatusCode.ERROR
            pipeline.incr(name + (".failure" if failed else ".success"))
        if span.parent is None or span.parent.is_remote:
            del self.pipelines[context.trace_id]
            pipeline.send()


# -- the request, written against each API ---------------------------------------------------


def baseplate_request(baseplate: Any) -> Callable[[], None]:
    from baseplate.core import RequestContext

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
            with tracer.start_as_current_span("render", attributes={"component": "templates"}):
                pass

    return request


# -- the variants -------------------------------------------------------------------------------


@dataclass
class Result:
    us: float
    requests: int
    spans: int


@dataclass
class Variant:
    name: str
    sink: UDPSink | None
    times: list[float] = field(default_factory=list)
    requests: int = 0
    spans: int = 0
    lines: int = 0
    datagrams: int = 0

    def run(self, requests: int, max_seconds: float) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def round(self, requests: int, max_seconds: float, record: bool = True) -> None:
        """One timed round, then the check that every span and statsd line arrived."""
        lines_before = self.sink.lines if self.sink else 0
        datagrams_before = self.sink.datagrams if self.sink else 0
        result = self.run(requests, max_seconds)
        if result.spans != result.requests * SPANS_PER_REQUEST:
            raise SystemExit(
                f"{self.name}: {result.spans} spans exported of "
                f"{result.requests * SPANS_PER_REQUEST}: spans were dropped"
            )
        if self.sink is not None:
            expected = lines_before + result.requests * LINES_PER_REQUEST
            self.sink.drain(expected)
            if self.sink.lines != expected:
                raise SystemExit(
                    f"{self.name}: {self.sink.lines - lines_before} statsd lines arrived of "
                    f"{result.requests * LINES_PER_REQUEST}: metrics were dropped"
                )
        if record:
            self.times.append(result.us)
            self.requests += result.requests
            self.spans += result.spans
            if self.sink is not None:
                self.lines += self.sink.lines - lines_before
                self.datagrams += self.sink.datagrams - datagrams_before


class InProcess(Variant):
    def __init__(
        self,
        name: str,
        request: Callable[[], None],
        provider: TracerProvider,
        exporter: CountingExporter,
        sink: UDPSink | None = None,
    ) -> None:
        super().__init__(name, sink)
        self.request = request
        self.provider = provider
        self.exporter = exporter

    def run(self, requests: int, max_seconds: float) -> Result:
        request = self.request
        gc.collect()
        before = self.exporter.count
        start = time.perf_counter()
        deadline = start + max_seconds
        done = 0
        while done < requests:
            request()
            done += 1
            if done % 100 == 0 and time.perf_counter() > deadline:
                break
        self.provider.force_flush()
        elapsed = time.perf_counter() - start
        return Result(elapsed / done * 1e6, done, self.exporter.count - before)

    def close(self) -> None:
        self.provider.shutdown()


class RedditSubprocess(Variant):
    """reddit's baseplate 1.5.5 in its own interpreter; see ``reddit15.py``."""

    def __init__(self, requests: int, warmup: int, max_seconds: float, sink: UDPSink) -> None:
        super().__init__(REDDIT, sink)
        self.max_seconds = max_seconds
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [
                str(REDDIT_PYTHON),
                "-I",
                str(HERE / "reddit15.py"),
                "--requests",
                str(requests),
                "--warmup",
                str(warmup),
                "--statsd",
                sink.endpoint,
                "--max-seconds",
                str(max_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=tempfile.gettempdir(),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        self.selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.ready = self._reply()
        self.warmup = Result(self.ready["us"], self.ready["requests"], self.ready["spans"])

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        if not self.selector.select(timeout=self.max_seconds + 60):
            self.process.kill()
            raise SystemExit(f"{self.name}: no answer within {self.max_seconds + 60:.0f}s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.stderr.seek(0)
            sys.stderr.write(self.stderr.read().decode(errors="replace")[-4000:])
            raise SystemExit(f"{self.name}: exited with status {self.process.returncode}")
        return dict(json.loads(line))

    def run(self, requests: int, max_seconds: float) -> Result:
        if self.warmup is not None:  # the warm-up ran at start; its check is the first call
            warm, self.warmup = self.warmup, None  # type: ignore[assignment]
            return warm
        assert self.process.stdin is not None
        self.process.stdin.write(b"round\n")
        self.process.stdin.flush()
        reply = self._reply()
        return Result(reply["us"], reply["requests"], reply["spans"])

    def close(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            self.process.stdin.close()
            self.process.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            self.stderr.close()


def make_variants(args: argparse.Namespace) -> list[Variant]:
    import baseplate
    from baseplate.core import Baseplate
    from baseplate.metrics import make_client
    from exporters.batch import BoundedBatchSpanProcessor

    variants: list[Variant] = []

    def ours(name: str, metrics: bool) -> InProcess:
        provider = TracerProvider()
        bp = Baseplate(tracer_provider=provider)
        bp.configure_tracing(
            baseplate.tracing_client_from_config(
                {
                    "tracing.service_name": "bench",
                    "tracing.exporter": "none",
                    "tracing.sample_rate": "100%",
                }
            )
        )
        exporter = CountingExporter()
        bp.add_span_processor(
            BoundedBatchSpanProcessor(
                exporter, max_queue_size=MAX_QUEUE_SIZE, schedule_delay=SCHEDULE_DELAY
            )
        )
        sink = None
        if metrics:
            sink = UDPSink()
            bp.configure_metrics(make_client("bench", sink.endpoint))
        return InProcess(name, baseplate_request(bp), provider, exporter, sink)

    def raw(name: str, metrics: bool) -> InProcess:
        provider = TracerProvider()
        exporter = CountingExporter()
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=MAX_QUEUE_SIZE,
                schedule_delay_millis=SCHEDULE_DELAY * 1000,
            )
        )
        sink = None
        if metrics:
            sink = UDPSink()
            provider.add_span_processor(StatsdLibraryProcessor("bench", sink.address))
        return InProcess(name, raw_request(provider), provider, exporter, sink)

    variants.append(ours(OURS_FULL, metrics=True))
    variants.append(raw(RAW_STATSD, metrics=True))
    if not args.skip_reddit:
        if not REDDIT_PYTHON.exists():
            raise SystemExit(f"{REDDIT_PYTHON} is missing: run bash benchmarks/setup.sh")
        warmup = min(args.requests, args.warmup)
        variants.append(RedditSubprocess(args.requests, warmup, args.max_seconds, UDPSink()))
    variants.append(ours(OURS_TRACING, metrics=False))
    variants.append(raw(RAW_ALONE, metrics=False))
    return variants


def _pair_ratio(variants: dict[str, Variant], top: str, bottom: str) -> float:
    """The median over rounds of top/bottom measured in the same round."""
    pairs = zip(variants[top].times, variants[bottom].times, strict=True)
    return statistics.median(a / b for a, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per round (5000)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of each variant (15)")
    parser.add_argument("--warmup", type=int, default=2000, help="warm-up requests (2000)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="time limit of one round (60)"
    )
    parser.add_argument(
        "--skip-reddit", action="store_true", help="leave out reddit baseplate 1.5.5"
    )
    args = parser.parse_args()

    variants = make_variants(args)
    try:
        for variant in variants:  # warm up (the reddit side warmed up as it started)
            variant.round(min(args.requests, args.warmup), args.max_seconds, record=False)
        for number in range(args.rounds):
            shift = number % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                variant.round(args.requests, args.max_seconds)
    finally:
        for variant in variants:
            variant.close()

    by_name = {variant.name: variant for variant in variants}
    print(
        f"request overhead: {args.requests} requests x {args.rounds} rounds, interleaved "
        f"(order rotating), medians; python {sys.version.split()[0]}"
    )
    print("one request: server span + 3 tags, 3 client spans + 2 tags, 1 local span")
    print()
    header = (
        f"{'variant':<42} {'us/request':>10}  {'x raw OTel+statsd':>17}  {'x raw OTel':>10}"
        "  counted in the timed rounds (0 dropped)"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        us = statistics.median(variant.times)
        ratio = _pair_ratio(by_name, variant.name, RAW_STATSD)
        ratio_alone = _pair_ratio(by_name, variant.name, RAW_ALONE)
        counted = f"{variant.spans} spans"
        if variant.sink is not None:
            counted += f", {variant.lines} statsd lines in {variant.datagrams} datagrams"
        print(f"{variant.name:<42} {us:>10.1f}  {ratio:>16.2f}x  {ratio_alone:>9.2f}x  {counted}")
    print()
    print("ratios (median of the per-round ratios):")
    print(
        f"  tracing + metrics / raw OTel + statsd library : "
        f"{_pair_ratio(by_name, OURS_FULL, RAW_STATSD):5.2f}x   (issue 17: <= 0.85)"
    )
    if REDDIT in by_name:
        print(
            f"  tracing + metrics / reddit baseplate 1.5.5    : "
            f"{_pair_ratio(by_name, OURS_FULL, REDDIT):5.2f}x   (stretch: <= 1.00)"
        )
    print(
        f"  tracing only / raw OTel SDK alone             : "
        f"{_pair_ratio(by_name, OURS_TRACING, RAW_ALONE):5.2f}x   (issue 17: <= 1.00)"
    )
    for variant in variants:
        if variant.sink is not None:
            variant.sink.close()


if __name__ == "__main__":
    main()
