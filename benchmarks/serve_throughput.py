"""Requests per second of ``baseplate-serve`` against the alternatives, on the same application.

Two services:

* WSGI: a hello-world Pyramid app with baseplate's integration, tracing (every request sampled,
  exported to Zipkin on a local sink) and statsd metrics (to a local UDP socket), served by
  ``baseplate-serve`` (``baseplate.server.wsgi``), by a bare ``gevent.pywsgi.WSGIServer`` (the
  same app and instrumentation), and the same app written for reddit's baseplate 1.5.5
  (``reddit15.make_wsgi_app``: ``Baseplate(app_config)``, ``configure_observers()``, its Pyramid
  integration, spans posted to the same sink by its ``RemoteRecorder``) on reddit's own
  ``baseplate-serve`` from ``.services/reddit-baseplate-1.5`` (``bash benchmarks/setup.sh``),
  once as shipped and once with ``handler = reddit15:NoDelayHandler`` (TCP_NODELAY: reddit's
  server leaves Nagle's algorithm on, and its chunked responses wait on delayed ACKs);
* Thrift: a ``BaseplateService`` processor with the same instrumentation, served by
  ``baseplate-serve`` (``baseplate.server.thrift``) and by a bare gevent ``StreamServer`` running
  the processor over THeader.

Each server runs in its own process; the load generator (asyncio, ``--connections`` keep-alive
connections on loopback, one request in flight on each) sends ``--requests`` requests after a
warm-up, giving up after ``--max-seconds``. Rounds alternate between the servers (the order
rotating); the medians count, and each ratio is the median of the per-round ratios. After each
measurement the benchmark waits (bounded) for every request's span at the Zipkin sink and its
two statsd lines (``server.<route>`` timer and ``.success`` counter) at the UDP socket, counts
them and stops if any is missing. Prints requests per second and the ratios::

    .venv/bin/python benchmarks/serve_throughput.py --requests 20000 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import pathlib
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from typing import Any, NamedTuple

from sinks import UDPSink

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
BIN = pathlib.Path(sys.executable).parent
REDDIT_BIN = REPO_ROOT / ".services" / "reddit-baseplate-1.5" / "bin"

OURS = "baseplate-serve"
BARE = "bare gevent"
REDDIT = "reddit 1.5.5 baseplate-serve"
REDDIT_NODELAY = "reddit 1.5.5, TCP_NODELAY handler"
#: statsd lines each request sends (its server span's timer and success counter).
LINES_PER_REQUEST = 2


# -- the applications (imported by the server processes) -----------------------------------


def _instrumented_baseplate(app_config: dict[str, str]) -> Any:
    import baseplate
    from baseplate.core import Baseplate

    bp = Baseplate()
    bp.configure_metrics(baseplate.metrics_client_from_config(app_config))
    bp.configure_tracing(baseplate.tracing_client_from_config(app_config))
    return bp


def make_wsgi_app(app_config: dict[str, str]) -> Any:
    """Hello world in Pyramid, with baseplate tracing and metrics."""
    from pyramid.config import Configurator
    from pyramid.response import Response

    from baseplate.integration.pyramid import BaseplateConfigurator

    bp = _instrumented_baseplate(app_config)
    configurator = Configurator()
    configurator.include(BaseplateConfigurator(bp, trust_trace_headers=True).includeme)
    configurator.add_route("hello", "/hello")
    configurator.add_view(lambda request: Response(b"Hello, world!"), route_name="hello")
    return configurator.make_wsgi_app()


class _Handler:
    def is_healthy(self, context: Any) -> bool:
        return True


def make_thrift_processor(app_config: dict[str, str]) -> Any:
    """A ``BaseplateService`` processor, with baseplate tracing and metrics."""
    import logging

    from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor
    from baseplate.thrift import BaseplateService

    bp = _instrumented_baseplate(app_config)
    processor = ContextProcessor(BaseplateService.Processor(_Handler()))
    processor.setEventHandler(BaseplateProcessorEventHandler(logging.getLogger("bench"), bp))
    return processor


def _app_config(zipkin_url: str, statsd_endpoint: str) -> dict[str, str]:
    return {
        "tracing.service_name": "bench",
        "tracing.sample_rate": "1.0",
        "tracing.exporter": "zipkin",
        "tracing.exporter.endpoint": zipkin_url,
        "metrics.namespace": "bench",
        "metrics.endpoint": statsd_endpoint,
    }


def run_bare_server(kind: str, port: int, zipkin_url: str, statsd_endpoint: str) -> None:
    """Serve the app on a plain gevent server (the baseline), until SIGTERM."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent import pywsgi
    from gevent.server import StreamServer

    config = _app_config(zipkin_url, statsd_endpoint)
    server: Any
    if kind == "wsgi":

        class NoDelayWSGIServer(pywsgi.WSGIServer):
            # As baseplate-serve does; otherwise Nagle's delay, not the app, is measured.
            def handle(self, sock: Any, address: Any) -> None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().handle(sock, address)

        server = NoDelayWSGIServer(("127.0.0.1", port), make_wsgi_app(config), log=None)
    else:
        from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
        from thrift.transport.TSocket import TSocket
        from thrift.transport.TTransport import TTransportException

        processor = make_thrift_processor(config)
        factory = THeaderProtocolFactory()

        def handle(client_socket: Any, address: Any) -> None:
            transport = TSocket()
            transport.setHandle(client_socket)
            protocol = factory.getProtocol(transport)
            try:
                while True:
                    processor.process(protocol, protocol)
            except TTransportException:
                pass
            finally:
                transport.close()

        server = StreamServer(("127.0.0.1", port), handle)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


# -- the sinks for telemetry ------------------------------------------------------------------


class ZipkinSink:
    """Accepts span posts (Zipkin v2 JSON from ours, v1 from reddit's) and throws them away,
    counting posts and spans (a ``"traceId"`` key per span in both versions)."""

    def __init__(self) -> None:
        self.posts = 0
        self.spans = 0
        sink = self
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    sink.posts += 1
                    sink.spans += body.count(b'"traceId"')
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


# -- the load generator -------------------------------------------------------------------------


def _http_request() -> bytes:
    return b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"


def _thrift_request() -> bytes:
    from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
    from thrift.transport.TTransport import TMemoryBuffer

    from baseplate.thrift import BaseplateService

    buffer = TMemoryBuffer()
    protocol = THeaderProtocolFactory().getProtocol(buffer)
    BaseplateService.Client(protocol).send_is_healthy()
    return buffer.getvalue()


async def _http_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response: {head[:80]!r}")
    length = 0
    chunked = False
    for line in head.split(b"\r\n"):
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return
    # reddit's Pyramid integration wraps the body iterator, so its responses come chunked.
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        await reader.readexactly(size + 2)  # the chunk and its CRLF
        if size == 0:
            return


async def _thrift_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> None:
    writer.write(request)
    (size,) = struct.unpack("!i", await reader.readexactly(4))
    await reader.readexactly(size)


async def _load(
    kind: str, port: int, requests: int, connections: int, max_seconds: float
) -> tuple[int, float]:
    request = _http_request() if kind == "wsgi" else _thrift_request()
    exchange = _http_exchange if kind == "wsgi" else _thrift_exchange
    remaining = requests
    deadline = time.monotonic() + max_seconds
    done = 0

    async def worker() -> None:
        nonlocal remaining, done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                await exchange(reader, writer, request)
                done += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done, time.perf_counter() - started


def _check_thrift_reply(port: int) -> None:
    from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
    from thrift.transport.TSocket import TSocket

    from baseplate.thrift import BaseplateService

    transport = TSocket("127.0.0.1", port)
    transport.open()
    try:
        client = BaseplateService.Client(THeaderProtocolFactory().getProtocol(transport))
        assert client.is_healthy() is True
    finally:
        transport.close()


# -- running the servers ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening")


def _write_ini(
    path: pathlib.Path, factory: str, app: dict[str, str], server: str, *extra: str
) -> None:
    lines = ["[app:main]", f"factory = {factory}"]
    lines += [f"{key} = {value}" for key, value in app.items()]
    lines += ["", "[server:main]", f"factory = {server}", "stop_timeout = 5 seconds", *extra, ""]
    path.write_text("\n".join(lines))


def _start(
    how: str, kind: str, port: int, workdir: pathlib.Path, zipkin: str, statsd: str
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO_ROOT)]))
    bind = ["--bind", f"127.0.0.1:{port}"]
    if how == OURS:
        factory = "make_wsgi_app" if kind == "wsgi" else "make_thrift_processor"
        ini = workdir / f"{kind}.ini"
        config = _app_config(zipkin, statsd)
        _write_ini(ini, f"serve_throughput:{factory}", config, f"baseplate.server.{kind}")
        command = [str(BIN / "baseplate-serve"), str(ini), *bind]
    elif how in (REDDIT, REDDIT_NODELAY):
        # reddit's baseplate-serve, its virtualenv's packages, and this directory only (for
        # reddit15.py): the repository root must not be on the path, or ``import baseplate``
        # would find this project.
        assert kind == "wsgi"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(HERE)}
        config = {
            "tracing.service_name": "bench",
            "tracing.sample_rate": "1.0",
            "tracing.endpoint": zipkin.removeprefix("http://"),
            "metrics.namespace": "bench",
            "metrics.endpoint": statsd,
            "server_timeout.default": "infinite",
        }
        ini = workdir / "reddit-wsgi.ini"
        extra = ["handler = reddit15:NoDelayHandler"] if how == REDDIT_NODELAY else []
        _write_ini(ini, "reddit15:make_wsgi_app", config, "baseplate.server.wsgi", *extra)
        command = [str(REDDIT_BIN / "baseplate-serve"), str(ini), *bind]
    else:
        command = [sys.executable, __file__, "--bare", kind, str(port), zipkin, statsd]
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_port(port, process)
    return process


class Measurement(NamedTuple):
    rate: float
    requests: int  # served, warm-up included
    spans: int
    lines: int


def _measure(
    how: str,
    kind: str,
    args: argparse.Namespace,
    workdir: pathlib.Path,
    zipkin: ZipkinSink,
    statsd: UDPSink,
) -> Measurement:
    """Requests per second of one server process, and the telemetry its requests sent."""
    port = _free_port()
    spans_before, lines_before = zipkin.spans, statsd.matched
    process = _start(how, kind, port, workdir, zipkin.url, statsd.endpoint)
    try:
        if kind == "thrift":
            _check_thrift_reply(port)
        warm = min(args.requests // 10 + 1, 2000)
        warm_done, _ = asyncio.run(_load(kind, port, warm, args.connections, args.max_seconds))
        done, elapsed = asyncio.run(
            _load(kind, port, args.requests, args.connections, args.max_seconds)
        )
        served = warm_done + done + (1 if kind == "thrift" else 0)
        # Every request's span and statsd lines, before the server is stopped (reddit's
        # RemoteRecorder drops what is still queued at exit).
        deadline = time.monotonic() + args.telemetry_wait
        while zipkin.spans - spans_before < served and time.monotonic() < deadline:
            time.sleep(0.05)
        statsd.drain(lines_before + served * LINES_PER_REQUEST, limit=args.telemetry_wait)
        return Measurement(
            done / elapsed, served, zipkin.spans - spans_before, statsd.matched - lines_before
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ratio(results: dict[str, list[Measurement]], top: str, bottom: str) -> float:
    """The median over rounds of top's rate / bottom's rate measured in the same round."""
    pairs = zip(results[top], results[bottom], strict=True)
    return statistics.median(a.rate / b.rate for a, b in pairs)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        run_bare_server(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per measurement")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each server")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="time limit of one measurement"
    )
    parser.add_argument(
        "--telemetry-wait",
        type=float,
        default=20.0,
        help="how long to wait for the last spans and statsd lines of a measurement",
    )
    parser.add_argument(
        "--kind", choices=["wsgi", "thrift", "both"], default="both", help="which service"
    )
    parser.add_argument(
        "--skip-reddit", action="store_true", help="leave out reddit's baseplate-serve"
    )
    args = parser.parse_args()
    if not args.skip_reddit and args.kind != "thrift" and not REDDIT_BIN.exists():
        raise SystemExit(f"{REDDIT_BIN} is missing: run bash benchmarks/setup.sh")

    import tempfile

    zipkin = ZipkinSink()
    statsd = UDPSink(match=b"bench.server.")
    kinds = ["wsgi", "thrift"] if args.kind == "both" else [args.kind]
    print(
        f"{args.requests} requests per measurement after a warm-up, {args.connections} "
        f"keep-alive connections, {args.rounds} rounds (order rotating), medians",
        flush=True,
    )
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            servers = [OURS, BARE]
            if kind == "wsgi" and not args.skip_reddit:
                servers += [REDDIT, REDDIT_NODELAY]
            results: dict[str, list[Measurement]] = {how: [] for how in servers}
            for number in range(args.rounds):
                shift = number % len(servers)
                for how in servers[shift:] + servers[:shift]:
                    result = _measure(how, kind, args, pathlib.Path(workdir), zipkin, statsd)
                    results[how].append(result)
                    if (result.spans, result.lines) != (
                        result.requests,
                        result.requests * LINES_PER_REQUEST,
                    ):
                        failures.append(
                            f"{kind} {how}: {result.requests} requests, {result.spans} spans, "
                            f"{result.lines} server statsd lines"
                        )

            print()
            header = (
                f"{kind:<7}{'server':<35} {'req/s':>8}  {'x bare gevent':>13}"
                "  rounds (req/s)      counted (spans, server statsd lines)"
            )
            print(header)
            print("-" * len(header))
            for how in servers:
                rate = statistics.median(m.rate for m in results[how])
                requests = sum(m.requests for m in results[how])
                spans = sum(m.spans for m in results[how])
                lines = sum(m.lines for m in results[how])
                rounds = " ".join(f"{m.rate:.0f}" for m in results[how])
                print(
                    f"{'':<7}{how:<35} {rate:>8.0f}  {_ratio(results, how, BARE):>12.2f}x"
                    f"  {rounds:<18}  {requests} requests: {spans} spans, {lines} lines"
                )
            if REDDIT in results:
                for theirs in (REDDIT, REDDIT_NODELAY):
                    mine = _ratio(results, OURS, theirs)
                    print(f"  baseplate-serve / {theirs:<34}: {mine:5.2f}x")
            print(flush=True)
    print(f"(spans posted to the Zipkin sink in {zipkin.posts} batches)")
    statsd.close()
    if failures:
        raise SystemExit("telemetry missing:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
