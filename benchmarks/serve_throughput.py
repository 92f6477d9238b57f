"""Requests per second of ``baseplate-serve`` against the same application on a bare gevent server.

Two services, each served two ways:

* WSGI: a hello-world Pyramid app with baseplate's integration, tracing (every request sampled,
  exported to Zipkin on a local sink) and statsd metrics (to a local UDP socket), served by
  ``baseplate-serve`` (``baseplate.server.wsgi``) and by a bare ``gevent.pywsgi.WSGIServer``;
* Thrift: a ``BaseplateService`` processor with the same instrumentation, served by
  ``baseplate-serve`` (``baseplate.server.thrift``) and by a bare gevent ``StreamServer`` running
  the processor over THeader.

Each server runs in its own process; the load generator (asyncio, ``--connections`` keep-alive
connections on loopback, one request in flight on each) sends ``--requests`` requests after a
warm-up, giving up after ``--max-seconds``. Rounds alternate between the two servers and the
best round of each counts. Prints requests per second and the ratio::

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
import struct
import subprocess
import sys
import threading
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
BIN = pathlib.Path(sys.executable).parent


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
    """Accepts span posts and throws them away (counting them)."""

    def __init__(self) -> None:
        self.posts = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.posts += 1
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
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


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


def _start(
    how: str, kind: str, port: int, workdir: pathlib.Path, zipkin: str, statsd: str
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO_ROOT)]))
    if how == "baseplate-serve":
        config = _app_config(zipkin, statsd)
        factory = "make_wsgi_app" if kind == "wsgi" else "make_thrift_processor"
        lines = ["[app:main]", f"factory = serve_throughput:{factory}"]
        lines += [f"{key} = {value}" for key, value in config.items()]
        lines += ["", "[server:main]", f"factory = baseplate.server.{kind}", "stop_timeout = 5"]
        ini = workdir / f"{kind}.ini"
        ini.write_text("\n".join(lines) + "\n")
        command = [str(BIN / "baseplate-serve"), str(ini), "--bind", f"127.0.0.1:{port}"]
    else:
        command = [sys.executable, __file__, "--bare", kind, str(port), zipkin, statsd]
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_port(port, process)
    return process


def _measure(
    how: str, kind: str, args: argparse.Namespace, workdir: pathlib.Path, sinks: tuple[str, str]
) -> float:
    port = _free_port()
    process = _start(how, kind, port, workdir, *sinks)
    try:
        if kind == "thrift":
            _check_thrift_reply(port)
        warm = min(args.requests // 10 + 1, 2000)
        asyncio.run(_load(kind, port, warm, args.connections, args.max_seconds))
        done, elapsed = asyncio.run(
            _load(kind, port, args.requests, args.connections, args.max_seconds)
        )
        return done / elapsed
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        run_bare_server(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per measurement")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each server")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="time limit of one measurement"
    )
    parser.add_argument(
        "--kind", choices=["wsgi", "thrift", "both"], default="both", help="which service"
    )
    args = parser.parse_args()

    import tempfile

    zipkin = ZipkinSink()
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never read: the kernel drops
    statsd.bind(("127.0.0.1", 0))
    sinks = (zipkin.url, f"127.0.0.1:{statsd.getsockname()[1]}")
    kinds = ["wsgi", "thrift"] if args.kind == "both" else [args.kind]
    with tempfile.TemporaryDirectory() as workdir:
        for kind in kinds:
            best = {"baseplate-serve": 0.0, "bare gevent": 0.0}
            for _ in range(args.rounds):
                for how in best:
                    rate = _measure(how, kind, args, pathlib.Path(workdir), sinks)
                    best[how] = max(best[how], rate)
            ratio = best["baseplate-serve"] / best["bare gevent"]
            line = (
                f"{kind:6}  baseplate-serve {best['baseplate-serve']:8.0f} req/s   "
                f"bare gevent {best['bare gevent']:8.0f} req/s   ratio {ratio:.2f}"
            )
            print(line, flush=True)
    print(f"(spans posted to the Zipkin sink in {zipkin.posts} batches)")


if __name__ == "__main__":
    main()
