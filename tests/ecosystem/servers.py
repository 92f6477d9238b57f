"""Real servers in subprocesses for the ecosystem tests, and their span logs.

The service under test is the ``examples/vendor_mix`` app (through ``tests.ecosystem.apps``)
served by ``baseplate-serve`` under gevent, optionally wrapped in ``opentelemetry-instrument``.
Its spans, and those of the plain-OpenTelemetry "vendor" service, are read back from
JSON-lines files (``tests.ecosystem.spanlog``).
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import requests

from tests.ecosystem.spanlog import LoggedSpan, read_spans

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
OPENTELEMETRY_INSTRUMENT = str(VENV_BIN / "opentelemetry-instrument")
BASEPLATE_SERVE = str(VENV_BIN / "baseplate-serve")

#: Lines that must never appear on a server's stderr.
NOISE = (
    "Failed to detach context",
    "Overriding of current TracerProvider is not allowed",
    "AssertionError",
    "KeyError",
    "_limbo",
    "Traceback",
    "MonkeyPatchWarning",
)

#: The distro's own exporters off: baseplate's INI-driven processors do the exporting.
DISTRO_ENV = {
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    # The distro initialises before the server runs: gevent must patch before that.
    "OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH": "patch_all",
}


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any ``OTEL_*`` variable, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHONWARNINGS", None)
    env.update(extra)
    return env


def write_ini(
    path: pathlib.Path, span_log: pathlib.Path, settings: dict[str, str] | None = None
) -> pathlib.Path:
    """Write a test INI file for the example app; ``settings`` adds or replaces app keys."""
    keys = {
        "factory": "tests.ecosystem.apps:make_app",
        "test.span_log": str(span_log),
        "tracing.service_name": "vendor_mix",
        "tracing.sample_rate": "1.0",
        "tracing.exporter": "none",
        "redis.url": "redis://127.0.0.1:6379/0",
        "database.url": "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    }
    keys.update(settings or {})
    lines = ["[app:main]"]
    lines += [f"{name} = {value}" for name, value in keys.items()]
    lines += ["", "[server:main]", "factory = baseplate.server.wsgi", "stop_timeout = 5", ""]
    path.write_text("\n".join(lines))
    return path


class ServerProcess:
    """A server subprocess; stdout and stderr go to files kept for the assertions."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: pathlib.Path, name: str):
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            args, env=env, cwd=str(ROOT), stdout=self._stdout, stderr=self._stderr
        )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit (killing it if it hangs); returns the status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stdout.close()
        self._stderr.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stdout.close()
        self._stderr.close()


class Service:
    """The example app served by ``baseplate-serve`` in a subprocess.

    By default from a test INI file (:func:`write_ini` with ``settings``); ``ini`` serves
    another file as it is.
    """

    def __init__(
        self,
        workdir: pathlib.Path,
        instrumented: bool = True,
        env: dict[str, str | None] | None = None,
        name: str = "service",
        settings: dict[str, str] | None = None,
        ini: pathlib.Path | None = None,
    ) -> None:
        self.span_log = workdir / f"{name}.spans.jsonl"
        self.url = ""
        if ini is None:
            ini = write_ini(workdir / f"{name}.ini", self.span_log, settings)
        # Port 0: the server picks a free port and logs it.
        args = [BASEPLATE_SERVE, str(ini), "--bind", "127.0.0.1:0"]
        if instrumented:
            args = [OPENTELEMETRY_INSTRUMENT, *args]
            environment = clean_env(**DISTRO_ENV)
        else:
            environment = clean_env()
        for key, value in (env or {}).items():  # None removes a variable
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        self.server = ServerProcess(args, environment, workdir, name)
        try:
            wait_for(self._healthy, timeout=60)
        except AssertionError:
            self.server.kill()
            raise AssertionError(f"the service did not start:\n{self.server.stderr}")

    def _healthy(self) -> bool:
        if self.server.process.poll() is not None:
            raise AssertionError(f"the service exited:\n{self.server.stderr}")
        if not self.url:
            found = re.search(r"Listening on 127\.0\.0\.1:(\d+)", self.server.stdout)
            if not found:
                return False
            self.url = f"http://127.0.0.1:{found.group(1)}"
        try:
            return requests.get(self.url + "/health", timeout=10).ok
        except requests.ConnectionError:
            return False

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)

    def spans(self) -> list[LoggedSpan]:
        return read_spans(self.span_log)

    def trace(self, trace_id: int, count: int) -> list[LoggedSpan]:
        """Wait until at least ``count`` spans of ``trace_id`` were exported; return them."""
        return wait_for(
            lambda: (found if len(found := [s for s in self.spans() if s.trace_id == trace_id])
                     >= count else None)
        )

    def stop(self) -> int:
        return self.server.stop()


class VendorService:
    """The plain-OpenTelemetry service (``tests.ecosystem.vendor_service``) in a subprocess."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.span_log = workdir / "vendor.spans.jsonl"
        self.server = ServerProcess(
            [PYTHON, "-m", "tests.ecosystem.vendor_service", str(self.span_log)],
            clean_env(),
            workdir,
            "vendor",
        )
        line = wait_for(self._port_line)
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def _port_line(self) -> str | None:
        if self.server.process.poll() is not None:
            raise AssertionError(f"the vendor service exited:\n{self.server.stderr}")
        for line in self.server.stdout.splitlines():
            if line.startswith("PORT "):
                return line
        return None

    def spans(self) -> list[LoggedSpan]:
        return read_spans(self.span_log)


def assert_quiet(stderr: str) -> None:
    """No known noise (detach failures, provider override, gevent/thread errors) in ``stderr``."""
    for noise in NOISE:
        assert noise not in stderr, f"{noise!r} on stderr:\n{stderr}"
