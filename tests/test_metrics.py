"""baseplate.metrics and the statsd wire code: exact bytes on a real UDP socket, a real daemon."""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate import config, metrics, metrics_client_from_config
from exporters.statsd import (
    DEFAULT_MAX_DATAGRAM_SIZE,
    NullTransport,
    UDPTransport,
    format_value,
    metric_name,
    pack_datagrams,
    safe_metric_name,
)
from tests.statsd_helpers import UDPReceiver, free_port, running_statsd


@pytest.fixture
def receiver() -> Iterator[UDPReceiver]:
    udp = UDPReceiver()
    yield udp
    udp.close()


@pytest.fixture
def client(receiver: UDPReceiver) -> metrics.Client:
    return metrics.make_client("ns", config.Endpoint(receiver.endpoint))


# --- single metrics: one datagram each, exact bytes ---


def test_counter_lines(client: metrics.Client, receiver: UDPReceiver) -> None:
    counter = client.counter("events.connect")
    counter.increment()
    counter.increment(delta=10)
    counter.increment(delta=2, sample_rate=0.5)
    counter.decrement()
    counter.decrement(delta=3, sample_rate=0.25)
    counter.send(7, 1.0)

    assert receiver.receive(6) == [
        b"ns.events.connect:1|c",
        b"ns.events.connect:10|c",
        b"ns.events.connect:2|c|@0.5",
        b"ns.events.connect:-1|c",
        b"ns.events.connect:-3|c|@0.25",
        b"ns.events.connect:7|c",
    ]


def test_timer_send_is_milliseconds(client: metrics.Client, receiver: UDPReceiver) -> None:
    client.timer("work").send(4)
    client.timer("work").send(3.14)
    client.timer("work").send(0.0015)

    assert receiver.receive(3) == [b"ns.work:4000|ms", b"ns.work:3140|ms", b"ns.work:1.5|ms"]


def test_timer_start_stop_and_context_manager(
    client: metrics.Client, receiver: UDPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wall clock is replaced so the elapsed time, and so the bytes, are exact.
    now = [1000.0]
    monkeypatch.setattr(metrics.time, "time", lambda: now[0])

    timer = client.timer("something.todo")
    timer.start()
    now[0] = 1004.0
    timer.stop()

    with client.timer("block"):
        now[0] = 1007.5

    assert receiver.receive(2) == [b"ns.something.todo:4000|ms", b"ns.block:3500|ms"]


def test_timer_misuse_is_an_error(client: metrics.Client) -> None:
    timer = client.timer("t")
    with pytest.raises(RuntimeError, match="not started"):
        timer.stop()
    timer.start()
    with pytest.raises(RuntimeError, match="already started"):
        timer.start()
    timer.stop()
    with pytest.raises(RuntimeError, match="already stopped"):
        timer.stop()


def test_gauge_and_histogram(client: metrics.Client, receiver: UDPReceiver) -> None:
    client.gauge("workers").replace(4)
    client.gauge("workers").replace(0)
    client.gauge("load").replace(0.75)
    client.histogram("sizes").add_sample(320)

    assert receiver.receive(4) == [
        b"ns.workers:4|g",
        b"ns.workers:0|g",
        b"ns.load:0.75|g",
        b"ns.sizes:320|h",
    ]


def test_negative_gauge_is_rejected_and_not_sent(
    client: metrics.Client, receiver: UDPReceiver
) -> None:
    with pytest.raises(ValueError, match=r"gauge 'ns.workers' cannot be set to a negative"):
        client.gauge("workers").replace(-2)
    assert receiver.receive_all(quiet=0.05) == []


@pytest.mark.parametrize("rate", [0, -0.5, 1.5])
def test_bad_sample_rate_is_rejected(client: metrics.Client, rate: float) -> None:
    with pytest.raises(ValueError, match="sample_rate of counter 'ns.c'"):
        client.counter("c").increment(sample_rate=rate)


def test_non_finite_values_are_rejected(client: metrics.Client) -> None:
    with pytest.raises(ValueError, match="finite"):
        client.timer("t").send(math.inf)
    with pytest.raises(ValueError, match="finite"):
        client.histogram("h").add_sample(math.nan)


# --- names ---


def test_names_join_namespace_without_empty_levels() -> None:
    assert metric_name("single") == b"single"
    assert metric_name("first", "second") == b"first.second"
    assert metric_name("first.second", "third.fourth") == b"first.second.third.fourth"
    assert metric_name("first.", "second") == b"first.second"
    assert metric_name("first", ".second.") == b"first.second"
    assert metric_name("a..b", "", "c") == b"a.b.c"

    client = metrics.make_client("ns.", None)
    assert client.namespace == b"ns"
    assert client.counter(".events..connect.").name == b"ns.events.connect"
    assert client.batch().timer("t").name == b"ns.t"
    assert metrics.make_client("", None).gauge("g").name == b"g"


def test_names_must_be_ascii() -> None:
    with pytest.raises(UnicodeEncodeError, match="must be ASCII"):
        metrics.make_client("ns", None).counter("\u2603")
    with pytest.raises(UnicodeEncodeError):
        metrics.make_client("\u2603", None)


@pytest.mark.parametrize("name", ["a:b", "a|b", "a\nb", ""])
def test_names_that_would_break_the_line_are_rejected(name: str) -> None:
    with pytest.raises(ValueError):
        metrics.make_client("ns", None).counter(name) if name else metric_name(name)


def test_safe_names_replace_what_the_wire_cannot_carry() -> None:
    assert safe_metric_name("server", "GET /a:b|c\u2603") == b"server.GET_/a_b_c_"
    assert safe_metric_name("clients", "redis.GET") == b"clients.redis.GET"
    assert safe_metric_name("", "") == b"_"


# --- batches ---


def test_batch_sends_one_datagram_with_aggregated_counters(
    client: metrics.Client, receiver: UDPReceiver
) -> None:
    with client.batch() as batch:
        batch.counter("froozles").increment()
        batch.counter("froozles").increment()
        batch.counter("blargs").decrement(delta=3)
        batch.counter("froozles").increment(sample_rate=0.5)
        batch.timer("something").send(0.25)
        batch.gauge("workers").replace(4)
        batch.histogram("sizes").add_sample(320)
        assert receiver.receive_all(quiet=0.05) == []

    (datagram,) = receiver.receive(1)
    lines = datagram.split(b"\n")
    assert lines[:3] == [b"ns.something:250|ms", b"ns.workers:4|g", b"ns.sizes:320|h"]
    assert sorted(lines[3:]) == [b"ns.blargs:-3|c", b"ns.froozles:1|c|@0.5", b"ns.froozles:2|c"]
    assert receiver.receive_all(quiet=0.05) == []


def test_flushed_batch_is_empty(client: metrics.Client, receiver: UDPReceiver) -> None:
    batch = client.batch()
    batch.counter("c").increment()
    batch.flush()
    batch.flush()
    batch.counter("c").increment(5)
    batch.flush()

    assert receiver.receive_all() == [b"ns.c:1|c", b"ns.c:5|c"]


def test_batch_timer_context_manager(client: metrics.Client, receiver: UDPReceiver) -> None:
    with client.batch() as batch, batch.timer("block"):
        pass
    (datagram,) = receiver.receive(1)
    assert datagram.startswith(b"ns.block:") and datagram.endswith(b"|ms")


@pytest.mark.parametrize("limit", [DEFAULT_MAX_DATAGRAM_SIZE, 512])
def test_large_batch_arrives_whole_in_datagrams_within_the_limit(
    receiver: UDPReceiver, limit: int
) -> None:
    client = metrics.make_client("ns", config.Endpoint(receiver.endpoint), max_datagram_size=limit)
    expected = set()
    with client.batch() as batch:
        for i in range(3000):
            batch.timer(f"timer.{i}").send(i / 1000)
            expected.add(f"ns.timer.{i}:{i}|ms".encode())
        for i in range(2000):
            batch.counter(f"counter.{i % 500}").increment()
        expected.update(f"ns.counter.{i}:4|c".encode() for i in range(500))

    datagrams = receiver.receive_all()
    assert len(datagrams) > 10
    assert all(len(datagram) <= limit for datagram in datagrams)
    received = [line for datagram in datagrams for line in datagram.split(b"\n")]
    assert len(received) == len(expected)
    assert set(received) == expected


def test_batch_memory_is_bounded_and_nothing_is_lost(receiver: UDPReceiver) -> None:
    transport = UDPTransport(socket.AF_INET, ("127.0.0.1", receiver.port))
    batch = metrics.Batch(transport, "ns", max_buffered_bytes=1000)
    for i in range(200):
        batch.timer("t").send(i)
        # Never more than the bound (plus the line that crossed it) is held.
        assert len(batch.buffer) * len(b"ns.t:200|ms\n") < 1100
    batch.flush()

    received = [line for d in receiver.receive_all() for line in d.split(b"\n")]
    assert received == [f"ns.t:{i * 1000}|ms".encode() for i in range(200)]


# --- configuration ---


def test_metrics_client_from_config(receiver: UDPReceiver) -> None:
    client = metrics_client_from_config(
        {"metrics.namespace": "myservice", "metrics.endpoint": receiver.endpoint}
    )
    assert isinstance(client, metrics.Client)
    client.counter("events.connect").increment()
    assert receiver.receive(1) == [b"myservice.events.connect:1|c"]


def test_metrics_client_from_config_max_datagram_size(receiver: UDPReceiver) -> None:
    client = metrics_client_from_config(
        {
            "metrics.namespace": "n",
            "metrics.endpoint": receiver.endpoint,
            "metrics.max_datagram_size": "20",
        }
    )
    with client.batch() as batch:
        for i in range(4):
            batch.gauge(f"g{i}").replace(i)
    assert receiver.receive_all() == [b"n.g0:0|g\nn.g1:1|g", b"n.g2:2|g\nn.g3:3|g"]


def test_empty_endpoint_gives_a_client_that_discards(receiver: UDPReceiver) -> None:
    client = metrics_client_from_config({"metrics.namespace": "ns", "metrics.endpoint": ""})
    assert isinstance(client.transport, NullTransport)
    client.counter("c").increment()
    client.gauge("g").replace(1)
    with client.batch() as batch:
        batch.counter("c").increment()
    assert metrics.make_client("ns", None).transport.__class__ is NullTransport


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"metrics.endpoint": ""}, "metrics.namespace"),
        ({"metrics.namespace": "ns", "metrics.endpoint": "nocolon"}, "metrics.endpoint"),
        ({"metrics.namespace": "ns", "metrics.endpoint": "h:99999"}, "metrics.endpoint"),
        (
            {"metrics.namespace": "ns", "metrics.endpoint": "", "metrics.max_datagram_size": "0"},
            "metrics.max_datagram_size",
        ),
        ({"metrics.namespace": "a:b", "metrics.endpoint": ""}, "metrics.namespace"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, str], key: str) -> None:
    with pytest.raises(config.ConfigurationError) as info:
        metrics_client_from_config(raw)
    assert info.value.key == key


def test_unix_datagram_endpoint(tmp_path: Path) -> None:
    path = str(tmp_path / "statsd.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        client = metrics.make_client("ns", config.Endpoint(path))
        client.counter("c").increment()
        assert sock.recv(100) == b"ns.c:1|c"


def test_ipv6_endpoint() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        sock.settimeout(2)
        client = metrics.make_client("ns", config.Endpoint(f"[::1]:{sock.getsockname()[1]}"))
        client.counter("c").increment()
        assert sock.recv(100) == b"ns.c:1|c"


# --- faults: never raised, logged rate-limited ---


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("exporters.statsd")]


def test_unresolvable_host_is_logged_once_and_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = metrics.make_client("ns", config.Endpoint("statsd.invalid:8125"))
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            client.counter("c").increment()
            with client.batch() as batch:
                batch.timer("t").send(1)
        assert isinstance(client.transport, UDPTransport)
        assert client.transport.flush(10)
    records = _warnings(caplog)
    assert len(records) == 1
    assert "statsd.invalid:8125" in records[0].getMessage()
    assert client.transport.send_errors == 100
    assert client.transport.datagrams_sent == 0


def test_nothing_listening_is_logged_once_and_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    client = metrics.make_client("ns", config.Endpoint(f"127.0.0.1:{port}"))
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            client.counter("c").increment()
            assert isinstance(client.transport, UDPTransport)
            client.transport.flush(10)  # each one sent before the next: refusals come back
    records = _warnings(caplog)
    assert len(records) == 1
    assert "Connection refused" in records[0].getMessage()
    assert client.transport.send_errors > 0


def test_oversize_datagram_is_logged_and_not_raised(
    receiver: UDPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    client = metrics.make_client("ns", config.Endpoint(receiver.endpoint))
    with caplog.at_level(logging.WARNING):
        client.gauge("x" * 70000).replace(1)
        client.gauge("small").replace(1)
        assert receiver.receive(1) == [b"ns.small:1|g"]
    assert len(_warnings(caplog)) == 1


def test_rate_limited_log_reports_suppressed_count(caplog: pytest.LogCaptureFixture) -> None:
    from exporters._ratelimit import RateLimitedLog

    log = RateLimitedLog(logging.getLogger("exporters.statsd.test"), interval=0.0)
    limited = RateLimitedLog(logging.getLogger("exporters.statsd.test"), interval=3600)
    with caplog.at_level(logging.WARNING):
        log.warning("a %s", 1)
        log.warning("a %s", 2)
        for _ in range(5):
            limited.warning("b")
    assert [r.getMessage() for r in caplog.records] == ["a 1", "a 2", "b"]


# --- the real statsd daemon accepts what we send ---


def test_statsd_daemon_accepts_our_lines(tmp_path: Path) -> None:
    with running_statsd(tmp_path) as daemon:
        client = metrics_client_from_config(
            {"metrics.namespace": "svc", "metrics.endpoint": daemon.endpoint}
        )
        client.counter("events.connect").increment()
        client.counter("sampled").increment(2, sample_rate=0.5)
        client.timer("todo").send(4)
        client.gauge("workers").replace(4)
        client.histogram("sizes").add_sample(320)
        with client.batch() as batch:
            for i in range(400):
                batch.counter("batched").increment()
                batch.timer(f"batch.timer{i}").send(0.001)

        lines = daemon.wait_for_lines(5 + 1 + 400)
        assert lines[:5] == [
            "svc.events.connect:1|c",
            "svc.sampled:2|c|@0.5",
            "svc.todo:4000|ms",
            "svc.workers:4|g",
            "svc.sizes:320|h",
        ]
        assert len(lines) == 406
        assert "svc.batched:400|c" in lines

        counters = daemon.management("counters")
        assert "'statsd.bad_lines_seen': 0" in counters
        assert "'svc.events.connect': 1" in counters
        assert "'svc.sampled': 4" in counters  # statsd scales by 1 / sample rate
        assert "'svc.batched': 400" in counters
        assert "'svc.todo': [ 4000 ]" in daemon.management("timers")
        assert "'svc.workers': 4" in daemon.management("gauges")


# --- properties of the wire code ---


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(min_size=1, max_size=80).map(lambda b: b.replace(b"\n", b"_"))),
    limit=st.integers(min_value=1, max_value=300),
)
def test_packing_keeps_every_line_in_order_within_the_limit(lines: list[bytes], limit: int) -> None:
    datagrams = list(pack_datagrams(lines, limit))
    assert [line for d in datagrams for line in d.split(b"\n")] == lines
    for datagram in datagrams:
        assert len(datagram) <= limit or b"\n" not in datagram
    # Greedy packing: no two neighbouring datagrams could have been one.
    for first, second in zip(datagrams, datagrams[1:], strict=False):
        assert len(first) + 1 + len(second.split(b"\n")[0]) > limit


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_values_read_back_as_sent(value: float) -> None:
    text = format_value(value)
    assert b"e" not in text or abs(value) < 1e-4
    assert float(text) == pytest.approx(value, abs=1e-6)
