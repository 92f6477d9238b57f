"""Error reporting: exceptions ending server spans reach Sentry; Sentry outages never hurt.

No Sentry server can run here: a local HTTP receiver speaking the store endpoint that raven
posts to stands in for it.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import baseplate
from baseplate.config import ConfigurationError
from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.diagnostics import sentry as sentry_diagnostics


class SentryReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: SentryReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            body = zlib.decompress(body)
        except zlib.error:
            body = zlib.decompress(base64.b64decode(body))
        self.server.events.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "1"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[SentryReceiver]:
    server = SentryReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def make_baseplate(client: Any) -> Baseplate:
    bp = Baseplate(tracer_provider=TracerProvider())
    bp.configure_error_reporting(client)
    return bp


def test_exception_ending_server_span_is_reported(receiver: SentryReceiver) -> None:
    port = receiver.server_address[1]
    client = baseplate.error_reporter_from_config(
        {"sentry.dsn": f"http://public:secret@127.0.0.1:{port}/1",
         "sentry.environment": "test", "sentry.site": "here"},
        __name__,
    )
    bp = make_baseplate(client)
    context = RequestContext()
    span = bp.make_server_span(context, "handler", TraceInfo.from_upstream(99, 1, 2, True, None))
    assert context.sentry is client  # type: ignore[attr-defined]
    with pytest.raises(ZeroDivisionError), span:
        span.set_tag("route", "handler")
        1 / 0  # noqa: B018
    wait_for(lambda: receiver.events)
    (event,) = receiver.events
    assert event["exception"]["values"][0]["type"] == "ZeroDivisionError"
    assert event["tags"]["trace_id"] == "99"
    assert event["tags"]["span_id"] == "2"
    assert event["environment"] == "test"
    assert "route" in json.dumps(event["extra"])


def test_successful_and_client_span_errors_are_not_reported(receiver: SentryReceiver) -> None:
    reports: list[Any] = []

    class FakeRaven:
        """Records calls; stands in for raven to count reports without a network."""

        def captureException(self, **kwargs: Any) -> None:
            reports.append(kwargs)

    bp = make_baseplate(FakeRaven())
    span = bp.make_server_span(RequestContext(), "ok")
    with span:
        try:
            with span.make_child("failing.call"):
                raise KeyError("handled by the app")
        except KeyError:
            pass
    assert reports == []


def test_sentry_down_never_reaches_the_request() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    client = baseplate.error_reporter_from_config(
        {"sentry.dsn": f"http://public:secret@127.0.0.1:{port}/1"}, __name__
    )
    bp = make_baseplate(client)
    for _ in range(500):
        span = bp.make_server_span(RequestContext(), "handler")
        with pytest.raises(ValueError), span:
            raise ValueError("boom")
    worker = sentry_diagnostics.report_sender(client)
    assert worker is not None
    assert worker.pending() <= sentry_diagnostics.MAX_QUEUED_EVENTS


def test_reporter_that_raises_is_contained() -> None:
    class Broken:
        def captureException(self, **kwargs: Any) -> None:
            raise RuntimeError("sentry client bug")

    bp = make_baseplate(Broken())
    span = bp.make_server_span(RequestContext(), "handler")
    with pytest.raises(ValueError), span:
        raise ValueError("the app's own error")


def test_sentry_sdk_is_accepted(receiver: SentryReceiver) -> None:
    import sentry_sdk

    events: list[Any] = []

    class Transport(sentry_sdk.transport.Transport):
        """Collects envelopes in memory; stands in for Sentry's ingestion endpoint."""

        def capture_envelope(self, envelope: Any) -> None:
            events.append(envelope.get_event())

    # no integrations: sentry-sdk would otherwise patch Pyramid, Redis ... for the whole run
    sentry_sdk.init(dsn="http://public@127.0.0.1:1/1", transport=Transport(),
                    default_integrations=False, auto_enabling_integrations=False)
    try:
        bp = make_baseplate(sentry_sdk)
        info = TraceInfo.from_upstream(5, 1, 6, True, None)
        span = bp.make_server_span(RequestContext(), "h", info)
        with pytest.raises(LookupError), span:
            raise LookupError("missing")
        sentry_sdk.flush()
    finally:
        sentry_sdk.init(dsn=None, default_integrations=False, auto_enabling_integrations=False)
    (event,) = [e for e in events if e]
    assert event["tags"]["trace_id"] == "5"
    assert event["exception"]["values"][0]["type"] == "LookupError"


def test_bad_sentry_config_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match="sentry.sample_rate"):
        baseplate.error_reporter_from_config({"sentry.sample_rate": "lots"}, __name__)


def test_blank_dsn_discards() -> None:
    client = baseplate.error_reporter_from_config({"sentry.dsn": ""}, __name__)
    assert not client.is_enabled()


def test_reporter_installs_no_process_wide_hooks() -> None:
    # raven would record every HTTP request of the process (exporters included) as a
    # breadcrumb, and report every uncaught exception itself. A fresh interpreter: hooks
    # installed by other tests' clients cannot hide ours.
    check = (
        "import http.client, sys, baseplate\n"
        "hooks = (http.client.HTTPConnection.putrequest, sys.excepthook)\n"
        "baseplate.error_reporter_from_config({'sentry.dsn': 'http://p@127.0.0.1:1/1'}, 'app')\n"
        "print((http.client.HTTPConnection.putrequest, sys.excepthook) == hooks)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_configuring_twice_reports_once() -> None:
    reports: list[Any] = []

    class FakeRaven:
        """Records calls; stands in for raven to count reports without a network."""

        def captureException(self, **kwargs: Any) -> None:
            reports.append(kwargs)

    client = FakeRaven()
    bp = make_baseplate(client)
    bp.configure_error_reporting(client)
    span = bp.make_server_span(RequestContext(), "handler")
    with pytest.raises(ValueError), span:
        raise ValueError("once")
    assert len(reports) == 1


class HangingSentry:
    """Accepts connections and never answers: a Sentry that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def test_sentry_down_logs_one_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = baseplate.error_reporter_from_config(
        {"sentry.dsn": f"http://public:secret@127.0.0.1:{port}/1"}, __name__
    )
    bp = make_baseplate(client)
    with caplog.at_level(logging.DEBUG, logger="sentry"):
        for _ in range(20):
            span = bp.make_server_span(RequestContext(), "handler")
            with pytest.raises(ValueError), span:
                raise ValueError("boom")
        sender = sentry_diagnostics.report_sender(client)
        assert sender is not None
        assert sender.flush(10) == 0
    assert sender.failed >= 1
    sentry_records = [r for r in caplog.records if r.name.startswith("sentry")]
    assert 1 <= len(sentry_records) <= 2
    assert all(not r.exc_info and "\n" not in r.getMessage() for r in sentry_records)


def test_flush_waits_for_reports_and_says_what_was_not_sent(
    receiver: SentryReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = receiver.server_address[1]
    client = baseplate.error_reporter_from_config(
        {"sentry.dsn": f"http://public:secret@127.0.0.1:{port}/1"}, __name__
    )
    provider = TracerProvider(shutdown_on_exit=False)
    bp = Baseplate(tracer_provider=provider)
    bp.configure_error_reporting(client)
    span = bp.make_server_span(RequestContext(), "handler")
    with pytest.raises(ZeroDivisionError), span:
        1 / 0  # noqa: B018
    assert provider.force_flush(10_000)
    assert len(receiver.events) == 1
    sender = sentry_diagnostics.report_sender(client)
    assert sender is not None and sender.sent == 1

    hanging = HangingSentry()
    try:
        client = baseplate.error_reporter_from_config(
            {"sentry.dsn": f"http://public:secret@127.0.0.1:{hanging.port}/1?timeout=30"},
            __name__,
        )
        provider = TracerProvider(shutdown_on_exit=False)
        bp = Baseplate(tracer_provider=provider)
        bp.configure_error_reporting(client)
        for _ in range(3):
            span = bp.make_server_span(RequestContext(), "handler")
            with pytest.raises(ZeroDivisionError), span:
                1 / 0  # noqa: B018
        started = time.monotonic()
        assert provider.force_flush(300) is False
        assert time.monotonic() - started < 5
        (observer,) = [o for o in bp.observers if hasattr(o, "processor")]
        with caplog.at_level(logging.WARNING):
            observer.processor.flush = lambda timeout: sender_flush(client, 0.1)
            provider.shutdown()
        assert "3 error reports were not sent before shutdown" in caplog.text
    finally:
        hanging.close()


def test_reports_past_the_queue_bound_are_dropped_and_counted() -> None:
    hanging = HangingSentry()
    try:
        client = baseplate.error_reporter_from_config(
            {"sentry.dsn": f"http://public:secret@127.0.0.1:{hanging.port}/1?timeout=30"},
            __name__,
        )
        bp = make_baseplate(client)
        for _ in range(sentry_diagnostics.MAX_QUEUED_EVENTS + 20):
            span = bp.make_server_span(RequestContext(), "handler")
            with pytest.raises(ValueError), span:
                raise ValueError("boom")
        sender = sentry_diagnostics.report_sender(client)
        assert sender is not None
        assert sender.pending() <= sentry_diagnostics.MAX_QUEUED_EVENTS + 1
        assert sender.dropped >= 19
    finally:
        hanging.close()


def sender_flush(client: Any, timeout: float) -> int:
    sender = sentry_diagnostics.report_sender(client)
    assert sender is not None
    return sender.flush(timeout)


RAVEN_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import sys
from opentelemetry.sdk.trace import TracerProvider
import baseplate
from baseplate.core import Baseplate, RequestContext
client = baseplate.error_reporter_from_config({"sentry.dsn": sys.argv[1]}, "__main__")
provider = TracerProvider()
bp = Baseplate(tracer_provider=provider)
bp.configure_error_reporting(client)
try:
    with bp.make_server_span(RequestContext(), "handler"):
        1 / 0
except ZeroDivisionError:
    pass
provider.shutdown()
"""


def test_reports_are_sent_at_exit_under_gevent(receiver: SentryReceiver) -> None:
    port = receiver.server_address[1]
    result = subprocess.run(
        [sys.executable, "-c", RAVEN_UNDER_GEVENT, f"http://public:secret@127.0.0.1:{port}/1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "all_tasks_done" not in result.stderr
    assert "Traceback" not in result.stderr
    assert len(receiver.events) == 1
