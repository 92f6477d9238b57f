"""Real sockets and a real statsd daemon for the metrics tests."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATSD_MAIN = REPO / ".services" / "npm" / "node_modules" / "statsd" / "stats.js"


class UDPReceiver:
    """A UDP socket bound on loopback that collects the datagrams sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.endpoint = f"127.0.0.1:{self.port}"

    def receive(self, count: int = 1, timeout: float = 2.0) -> list[bytes]:
        """Return exactly ``count`` datagrams, waiting at most ``timeout`` for each."""
        self.sock.settimeout(timeout)
        return [self.sock.recv(65536) for _ in range(count)]

    def receive_all(self, quiet: float = 0.2) -> list[bytes]:
        """Return every datagram that arrives until none has come for ``quiet`` seconds."""
        received = []
        self.sock.settimeout(quiet)
        while True:
            try:
                received.append(self.sock.recv(65536))
            except TimeoutError:
                return received

    def close(self) -> None:
        self.sock.close()


def free_port(kind: int) -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StatsdDaemon:
    """The npm statsd daemon on loopback, echoing every message it receives to its log."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.mgmt_port = free_port(socket.SOCK_STREAM)
        self.log_path = workdir / "statsd.log"
        settings = {
            "address": "127.0.0.1",
            "port": self.port,
            "mgmt_address": "127.0.0.1",
            "mgmt_port": self.mgmt_port,
            "backends": ["./backends/console"],
            "dumpMessages": True,
            # Nothing is flushed (and reset) while a test looks at the totals.
            "flushInterval": 600000,
            "console": {"prettyprint": False},
        }
        config_path = workdir / "statsd-config.js"
        config_path.write_text(json.dumps(settings))
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["node", str(STATSD_MAIN), str(config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=STATSD_MAIN.parent,
        )
        self._wait_until_up()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"statsd exited: {self.log()}")
            with contextlib.suppress(OSError):
                self.management("stats")
                return
            time.sleep(0.05)
        raise RuntimeError(f"statsd did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def management(self, command: str) -> str:
        """Run a command on the daemon's management port and return its answer."""
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=5) as conn:
            conn.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.rstrip().endswith(b"END"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return answer.decode()

    def received_lines(self) -> list[str]:
        """The metric lines the daemon logged as received, in order."""
        return [
            line.split(" - DEBUG: ", 1)[1]
            for line in self.log().splitlines()
            if " - DEBUG: " in line and "Bad line" not in line
        ]

    def wait_for_lines(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.received_lines()
            if len(lines) >= count:
                return lines
            time.sleep(0.02)
        return self.received_lines()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running_statsd(workdir: Path) -> Iterator[StatsdDaemon]:
    daemon = StatsdDaemon(workdir)
    try:
        yield daemon
    finally:
        daemon.stop()
