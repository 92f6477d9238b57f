"""Fixtures for the server tests: the real console scripts, run as subprocesses on loopback.

Applications come from ``serve_apps.py`` beside this file (on the subprocesses'
``PYTHONPATH``). Every process a test starts is stopped by its pid when the test ends.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

SERVER_TESTS = pathlib.Path(__file__).resolve().parent
REPO_ROOT = SERVER_TESTS.parents[1]
BIN = pathlib.Path(sys.executable).parent


def command(name: str) -> list[str]:
    """The console script ``name`` installed with the package."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the package (pip install -e .)")
    return [str(path)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for the tools: the test applications importable, output unbuffered."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EINHORN_", "OTEL_"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER_TESTS), str(REPO_ROOT)])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], Any], what: str, limit: float = 30.0) -> Any:
    """Poll ``predicate`` with short sleeps until it returns something true."""
    deadline = time.monotonic() + limit
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def write_ini(
    path: pathlib.Path,
    app: dict[str, str],
    server: dict[str, str] | None = None,
    extra: str = "",
) -> pathlib.Path:
    """Write an INI file with ``[app:main]`` and ``[server:main]`` sections."""
    lines = ["[app:main]"] + [f"{key} = {value}" for key, value in app.items()]
    if server is not None:
        lines += ["", "[server:main]"] + [f"{key} = {value}" for key, value in server.items()]
    path.write_text("\n".join(lines) + "\n\n" + extra)
    return path


def read_json_lines(path: pathlib.Path) -> list[dict[str, Any]]:
    """The JSON objects in a JSON-lines file (none if it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_json_lines(path: pathlib.Path, count: int) -> list[dict[str, Any]]:
    """Wait until the JSON-lines file has at least ``count`` objects; return them."""

    def enough() -> list[dict[str, Any]] | None:
        objects = read_json_lines(path)
        return objects if len(objects) >= count else None

    return list(wait_until(enough, f"{count} line(s) in {path.name}"))


class ServeProcess:
    """A running ``baseplate-serve`` and where to find what it wrote."""

    def __init__(
        self, process: subprocess.Popen[bytes], log_path: pathlib.Path, port: int | None
    ) -> None:
        self.process = process
        self.log_path = log_path
        self.port = port

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, limit: float = 30.0) -> None:
        """Wait until ``text`` appears in the output (fail early if the process died)."""

        def seen() -> bool:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"baseplate-serve exited ({self.process.returncode}) before logging "
                    f"{text!r}:\n{self.log()}"
                )
            return False

        wait_until(seen, repr(text), limit)

    def send(self, signum: int) -> None:
        """Send a signal to the server."""
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, limit: float = 30.0) -> int:
        """Send ``signum`` and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(limit)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"baseplate-serve did not exit:\n{self.log()}")

    def get(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0
    ) -> tuple[int, dict[str, str], bytes]:
        """``GET path`` on a new connection: status, headers and body."""
        assert self.port is not None
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        status, _, body = self.get(path, headers)
        assert status == 200, (status, body)
        return json.loads(body)


@pytest.fixture
def serve(tmp_path: pathlib.Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``baseplate-serve CONFIG`` bound to a free loopback port and wait until it listens.

    Call it with the INI path, extra arguments, and ``port=None`` (with ``--bind`` in the
    arguments, or under Einhorn) to choose the listener yourself.
    """
    started: list[ServeProcess] = []

    def start(
        ini: pathlib.Path,
        *args: str,
        port: int | None | str = "free",
        env: dict[str, str] | None = None,
        wait: bool = True,
        pass_fds: tuple[int, ...] = (),
    ) -> ServeProcess:
        arguments = [*command("baseplate-serve"), str(ini), *args]
        chosen: int | None = None
        if port == "free":
            chosen = free_port()
            arguments += ["--bind", f"127.0.0.1:{chosen}"]
        elif isinstance(port, int):
            chosen = port
        log_path = tmp_path / f"serve-{len(started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                arguments,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
                env=env or subprocess_env(),
                pass_fds=pass_fds,
            )
        served = ServeProcess(process, log_path, chosen)
        started.append(served)
        if wait:
            served.wait_for_log("Listening on")
        return served

    yield start

    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait(10)


class StatsdReceiver:
    """A UDP socket standing in for statsd: collects the datagrams sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.datagrams: list[bytes] = []

    def drain(self) -> None:
        while True:
            try:
                self.datagrams.append(self.sock.recv(65536))
            except (TimeoutError, BlockingIOError):
                return

    def lines(self) -> list[str]:
        self.drain()
        return [line for datagram in self.datagrams for line in datagram.decode().split("\n")]

    def wait_for_line(self, prefix: str, limit: float = 30.0) -> str:
        """Wait for a metric line starting with ``prefix`` and return it."""

        def find() -> str | None:
            for line in self.lines():
                if line.startswith(prefix):
                    return line
            return None

        return str(wait_until(find, f"a statsd line starting {prefix!r}", limit))


@pytest.fixture
def statsd() -> Iterator[StatsdReceiver]:
    receiver = StatsdReceiver()
    yield receiver
    receiver.sock.close()
