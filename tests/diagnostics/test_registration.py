"""Each built-in diagnostic has one implementation: an observer registered by hand (as 0.28
applications do) installs the same span processors as the matching ``configure_*`` method,
on the Baseplate's own tracer provider.

Metrics go to a real UDP socket, error reports to a loopback HTTP receiver standing in for
Sentry (no Sentry server runs here), spans to an in-memory exporter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import baseplate
from baseplate import metrics
from baseplate.core import Baseplate, RequestContext, TraceInfo
from baseplate.diagnostics.metrics import MetricsBaseplateObserver
from baseplate.diagnostics.sentry import SentryBaseplateObserver
from baseplate.diagnostics.tracing import TraceBaseplateObserver, tracing_client_from_config
from otel_bridge import provider as bridge_provider
from otel_bridge.propagation import configure_propagators
from tests.diagnostics.test_sentry import SentryReceiver, wait_for
from tests.statsd_helpers import UDPReceiver

# An exception class whose name is not ASCII: statsd names carry only safe ASCII.
Ошибка = type("Ошибка", (Exception,), {})


@pytest.fixture
def udp() -> Iterator[UDPReceiver]:
    receiver = UDPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    server = SentryReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def by_hand_metrics(bp: Baseplate, client: metrics.Client) -> None:
    bp.register(MetricsBaseplateObserver(client))


def configured_metrics(bp: Baseplate, client: metrics.Client) -> None:
    bp.configure_metrics(client)


def _lines(datagrams: list[bytes]) -> list[str]:
    """Every statsd line, timer values masked (they vary)."""
    lines = []
    for datagram in datagrams:
        for line in datagram.decode("ascii").split("\n"):
            name, rest = line.split(":", 1)
            value, kind = rest.split("|", 1)
            lines.append(f"{name}:{'T' if kind == 'ms' else value}|{kind}")
    return sorted(lines)


def _request_with_failed_call(bp: Baseplate) -> None:
    context = RequestContext()
    with bp.make_server_span(context, "route") as server:
        with server.make_child("db.query") as child:
            child.log("error.object", Ошибка("refused"))
        context.metrics.counter("app.custom").increment()  # type: ignore[attr-defined]


@pytest.mark.parametrize("register", [by_hand_metrics, configured_metrics])
def test_metrics_for_a_non_ascii_error_class_are_the_same_either_way(
    register: Callable[[Baseplate, metrics.Client], None],
    udp: UDPReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bp = Baseplate(TracerProvider(shutdown_on_exit=False))
    register(bp, metrics.make_client("ns", udp.endpoint))
    with caplog.at_level(logging.DEBUG):
        _request_with_failed_call(bp)
    assert _lines(udp.receive_all()) == sorted(
        [
            "ns.server.route:T|ms",
            "ns.server.route.success:1|c",
            "ns.clients.db.query:T|ms",
            "ns.clients.db.query.success:1|c",
            "ns.errors.______:1|c",
            "ns.app.custom:1|c",
        ]
    )
    assert not [record for record in caplog.records if record.exc_info]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_metrics_observer_by_hand_installs_the_configured_processor(udp: UDPReceiver) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    bp = Baseplate(provider)
    observer = MetricsBaseplateObserver(metrics.make_client("ns", udp.endpoint))
    bp.register(observer)
    assert bridge_provider.state_of(provider).processors == [observer.processor]


def _failing_request(bp: Baseplate, trace_id: int) -> None:
    span = bp.make_server_span(
        RequestContext(), "handler", TraceInfo.from_upstream(trace_id, 1, 2, True, None)
    )
    with pytest.raises(ZeroDivisionError), span:
        span.log("cache", "miss")
        1 / 0  # noqa: B018


def _raven(sentry: SentryReceiver) -> Any:
    port = sentry.server_address[1]
    return baseplate.error_reporter_from_config(
        {"sentry.dsn": f"http://public:secret@127.0.0.1:{port}/1"}, __name__
    )


@pytest.mark.parametrize("by_hand", [True, False])
def test_sentry_report_is_the_same_either_way(by_hand: bool, sentry: SentryReceiver) -> None:
    client = _raven(sentry)
    bp = Baseplate(TracerProvider(shutdown_on_exit=False))
    if by_hand:
        bp.register(SentryBaseplateObserver(client))
    else:
        bp.configure_error_reporting(client)
    _failing_request(bp, 77)
    wait_for(lambda: sentry.events)
    (event,) = sentry.events
    assert event["exception"]["values"][0]["type"] == "ZeroDivisionError"
    assert event["tags"]["trace_id"] == "77"
    assert [crumb["category"] for crumb in event["breadcrumbs"]["values"]] == ["cache"]
    # the request's context was cleared once the report was made
    assert client.context.data == {}
    assert not client.context.breadcrumbs.get_buffer()


def test_two_baseplates_on_one_provider_report_to_their_own_sentry() -> None:
    receivers = [SentryReceiver(), SentryReceiver()]
    threads = [threading.Thread(target=r.serve_forever, daemon=True) for r in receivers]
    for thread in threads:
        thread.start()
    try:
        provider = TracerProvider(shutdown_on_exit=False)
        apps = []
        for receiver in receivers:
            bp = Baseplate(provider)
            bp.configure_error_reporting(_raven(receiver))
            apps.append(bp)
        _failing_request(apps[0], 1000)
        _failing_request(apps[1], 2000)
        for receiver, trace_id in zip(receivers, ("1000", "2000"), strict=True):
            wait_for(lambda receiver=receiver: receiver.events)
            assert [event["tags"]["trace_id"] for event in receiver.events] == [trace_id]
    finally:
        for receiver in receivers:
            receiver.shutdown()
            receiver.server_close()


def test_tracing_observer_by_hand_uses_its_baseplates_provider_and_rate() -> None:
    global_before = bridge_provider.state_of(bridge_provider.ensure_provider()).processors[:]
    provider = TracerProvider(shutdown_on_exit=False)
    bp = Baseplate(provider)
    client = tracing_client_from_config(
        {
            "tracing.service_name": "svc",
            "tracing.exporter": "console",
            "tracing.sample_rate": "0%",
            "tracing.propagators": "baseplate",
        },
        environ={},
    )
    observer = TraceBaseplateObserver(client)
    try:
        bp.register(observer)
        assert observer.span_processor is not None
        assert bridge_provider.state_of(provider).processors == [observer.span_processor]
        assert bridge_provider.state_of(trace.get_tracer_provider()).processors == global_before
        # the first request already samples at the client's rate
        span = bp.make_server_span(RequestContext(), "first")
        assert span.sampled is False
        assert bp.sampler.sample_rate == 0.0
    finally:
        configure_propagators(None)
        if observer.span_processor is not None:
            observer.span_processor.shutdown()
