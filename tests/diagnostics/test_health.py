"""Telemetry health metrics: what became of spans, metrics and error reports, sent through
the metrics client and logged when something is lost. Real UDP socket for statsd; a closed
loopback port for a collector that refuses."""

from __future__ import annotations

import logging
import socket

import pytest
from opentelemetry.sdk.trace import TracerProvider

from baseplate import metrics
from baseplate.core import Baseplate, RequestContext
from baseplate.diagnostics.health import TelemetryHealthReporter, telemetry_counts
from exporters.batch import BoundedBatchSpanProcessor
from exporters.zipkin import ZipkinExporter
from tests.statsd_helpers import UDPReceiver


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_counts_and_metrics(caplog: pytest.LogCaptureFixture) -> None:
    receiver = UDPReceiver()
    try:
        provider = TracerProvider(shutdown_on_exit=False)
        bp = Baseplate(provider)
        bp.sampler.sample_rate = 1.0
        client = metrics.make_client("svc", receiver.endpoint)
        bp.configure_metrics(client)
        refused = BoundedBatchSpanProcessor(
            ZipkinExporter("svc", f"http://127.0.0.1:{closed_port()}", timeout=1),
            max_queue_size=2,
            schedule_delay=60,
        )
        bp.add_span_processor(refused)
        for _ in range(5):
            with bp.make_server_span(RequestContext(), "route"):
                pass
        assert provider.force_flush(5000) is True
        counts = telemetry_counts(bp)
        dropped, failed = counts["spans.dropped"], counts["spans.failed"]
        assert dropped >= 1  # the queue holds 2 (how many the worker took first varies)
        assert failed >= 2  # the collector refused them
        assert counts["spans.exported"] == 0
        assert dropped + failed == 5  # each span exactly once
        assert client.transport.flush(5)
        receiver.receive_all()

        reporter = TelemetryHealthReporter(bp, client)
        with caplog.at_level(logging.WARNING):
            changes = reporter.report(bp)
        assert changes["spans.dropped"] == dropped and changes["spans.failed"] == failed
        assert client.transport.flush(5)
        lines = b"\n".join(receiver.receive_all()).decode().split("\n")
        assert f"svc.baseplate.telemetry.spans.dropped:{dropped}|c" in lines
        assert f"svc.baseplate.telemetry.spans.failed:{failed}|c" in lines
        assert any(line.startswith("svc.baseplate.telemetry.metrics.sent:") for line in lines)
        (record,) = [r for r in caplog.records if "telemetry lost" in r.getMessage()]
        assert f"{dropped} spans dropped" in record.getMessage()
        assert f"{failed} spans failed" in record.getMessage()

        # nothing new: no counters, no warning
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            changes = reporter.report(bp)
        assert set(changes) <= {"metrics.sent"}
        assert not [r for r in caplog.records if "telemetry lost" in r.getMessage()]
    finally:
        receiver.close()


def test_configure_metrics_starts_the_reporter() -> None:
    receiver = UDPReceiver()
    try:
        bp = Baseplate(TracerProvider(shutdown_on_exit=False))
        bp.configure_metrics(metrics.make_client("svc", receiver.endpoint))
        (observer,) = [o for o in bp.observers if hasattr(o, "health")]
        assert observer.health is not None and observer.health._pid
    finally:
        receiver.close()
