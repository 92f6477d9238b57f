"""Memory a queued span costs: what ``tracing.max_span_queue_size`` holds while a collector hangs.

``baseplate-serve`` runs the hello-world Pyramid app of ``serve_throughput.py`` (baseplate's
Pyramid integration: one server span a request, with its 4 tags; every request sampled;
statsd metrics to a local socket) with the Zipkin exporter posting to a collector that
accepts connections and never answers, and ``tracing.exporter.timeout`` at its 300 s
maximum. The first batch's export hangs for the whole run, so every later span stays
queued. After a warm-up (whose spans fill the batch in flight), the server's resident
memory is read, ``--requests`` more requests are sent (fewer than the queue's 50 000, so
none is dropped), and the growth is divided by the number of spans queued meanwhile::

    .venv/bin/python benchmarks/span_queue_memory.py --requests 40000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

from sinks import UDPSink

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
BIN = pathlib.Path(sys.executable).parent
REQUEST = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"
#: Default ``tracing.max_span_queue_size``.
QUEUE_SIZE = 50_000


def _rss(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _load(port: int, requests: int, connections: int) -> None:
    async def worker(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(REQUEST)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected response: {head[:80]!r}")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
        finally:
            writer.close()

    share, extra = divmod(requests, connections)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(connections)))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--warm-up", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if args.warm_up + args.requests > QUEUE_SIZE:
        parser.error(f"--warm-up + --requests must stay within the queue ({QUEUE_SIZE})")

    collector = socket.socket()  # accepts (the kernel does) and never answers
    collector.bind(("127.0.0.1", 0))
    collector.listen(16)
    statsd = UDPSink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="span-queue-memory-"))
    ini = workdir / "app.ini"
    ini.write_text(
        "\n".join(
            [
                "[app:main]",
                "factory = serve_throughput:make_wsgi_app",
                "tracing.service_name = bench",
                "tracing.sample_rate = 1.0",
                "tracing.exporter = zipkin",
                f"tracing.exporter.endpoint = 127.0.0.1:{collector.getsockname()[1]}",
                "tracing.exporter.timeout = 300 seconds",
                "metrics.namespace = bench",
                f"metrics.endpoint = {statsd.endpoint}",
                "",
                "[server:main]",
                "factory = baseplate.server.wsgi",
                "",
            ]
        )
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO_ROOT)]))
    process = subprocess.Popen(
        [str(BIN / "baseplate-serve"), str(ini), "--bind", f"127.0.0.1:{port}"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        asyncio.run(_load(port, args.warm_up, args.connections))
        time.sleep(1.0)  # the first batch is taken by the export that hangs
        before = _rss(process.pid)
        asyncio.run(_load(port, args.requests, args.connections))
        time.sleep(1.0)
        after = _rss(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        collector.close()
    growth = after - before
    per_span = growth / args.requests
    print(f"{args.requests} spans queued: resident memory grew {growth / 1e6:.1f} MB")
    print(
        f"{per_span:.0f} bytes per queued span; the default queue ({QUEUE_SIZE} spans) "
        f"holds ~{per_span * QUEUE_SIZE / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
