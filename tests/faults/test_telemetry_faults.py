"""Telemetry never hurts the service: a real ``baseplate-serve`` under load, each fault injected.

Each test starts two ``baseplate-serve`` processes of the same Pyramid application (tracing
through baseplate's own exporter, statsd metrics over UDP, Sentry where the fault is about
it): a *healthy twin* whose back ends answer at once, and a *faulty* one whose back end
refuses, hangs, answers 500 or answers slowly. With the sidecar exporter the back end is the
POSIX trace queue: the twin's is read by a process as the trace publisher reads it, the
faulty one's is full (2 messages) and nobody reads it. Both get the same load, in interleaved rounds
(a few keep-alive connections, a bounded number of requests), and for the faulty one:

* no request fails (every ``/hello`` is a 200, no connection error);
* its p99 latency is within :data:`P99_FACTOR` times the twin's (or at most
  :data:`P99_SLACK` above it, so that noise on latencies of a few milliseconds does not
  count);
* its resident memory grows by less than :data:`RSS_GROWTH_LIMIT` during the load;
* SIGTERM to exit takes at most :data:`STOP_LIMIT` (the 5 s telemetry budget, the rest of
  the stop, and a margin for the process's own exit on busy cores);
* no log line of its telemetry repeats (each is rate-limited to one a minute; the runs are
  shorter), no telemetry traceback is written, and a handful of lines at most;
* every sampled span that ended is exactly one of exported, failed, dropped, lost, queued
  or in flight (counted by the application at exit, ``serve_apps`` ``test.counts_path``).

A statsd host whose DNS never answers cannot be made from outside the process; the suite
uses a name that does not resolve (``statsd.invalid``), which fails at once. The resolver
that never answers is tested against the transport itself (tests/exporters).

The measurements are printed (``pytest -s``) and, when ``FAULT_REPORT`` names a file,
appended to it as JSON lines.
"""

from __future__ import annotations

import collections
import http.client
import json
import math
import os
import pathlib
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.server.conftest import ServeProcess, read_json_lines, write_ini

from .fakes import SIDECAR_QUEUE_MESSAGES, FakeHTTPBackend, SidecarQueue, StatsdSink

#: The faulty run's p99 may be this many times the healthy twin's ...
P99_FACTOR = 3.0
#: ... or this many seconds more than it.
P99_SLACK = 0.05
#: Most the faulty server's resident memory may grow during the load (bytes).
RSS_GROWTH_LIMIT = 50 * 1024 * 1024
#: SIGTERM to exit: the 5 s telemetry budget, plus 0.5 s for the stop and the exit, plus a
#: margin for two busy cores.
STOP_LIMIT = 5.5 + 1.0

#: Keep-alive connections the load uses at once, and requests per connection per round.
CONNECTIONS = 4
PER_CONNECTION = 25
ROUNDS = 3
WARM_UP = 20

#: Log lines of these loggers are the telemetry's.
TELEMETRY_LOGGERS = (
    "exporters",
    "baseplate.diagnostics",
    "otel_bridge",
    "opentelemetry",
    "sentry",
    "raven",
    "urllib3",
    "requests",
)
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d [\d:,]+ (?P<level>[A-Z]+) \[\d+\] \[trace_id=[^\]]*\] "
    r"(?P<logger>[\w.]+): (?P<message>.*)$"
)

SPAN_OUTCOMES = (
    "spans.exported",
    "spans.failed",
    "spans.dropped",
    "spans.lost",
    "spans.queued",
    "spans.in_flight",
)


@dataclass(frozen=True)
class Fault:
    """What is broken: the collector of ``exporter`` (for ``sidecar``, its POSIX queue),
    statsd, or Sentry."""

    exporter: str = "zipkin"
    collector: str = "healthy"
    statsd: str = "local"
    sentry: str | None = None

    @property
    def name(self) -> str:
        if self.sentry and self.sentry != "healthy":
            return f"sentry-{self.sentry}"
        if self.statsd != "local":
            return f"statsd-{self.statsd}"
        return f"{self.exporter}-{self.collector}"


FAULTS = [
    *(Fault("zipkin", mode) for mode in ("refused", "hanging", "500", "slow")),
    *(Fault("otlp", mode) for mode in ("refused", "hanging", "500", "slow")),
    Fault("sidecar", "full"),
    Fault(statsd="unresolvable"),
    Fault(sentry="refused"),
]


def healthy_twin(fault: Fault) -> Fault:
    return Fault(fault.exporter, "healthy", "local", "healthy" if fault.sentry else None)


#: Messages the full sidecar queue holds (it is full from the start).
FULL_SIDECAR_QUEUE = 2


class Backends:
    """The collector (or sidecar queue), statsd and Sentry one server sends to."""

    def __init__(self, fault: Fault) -> None:
        self.collector: FakeHTTPBackend | SidecarQueue
        if fault.exporter == "sidecar":
            full = fault.collector == "full"
            size = FULL_SIDECAR_QUEUE if full else SIDECAR_QUEUE_MESSAGES
            self.collector = SidecarQueue(fault.collector, size)
        else:
            status = 202 if fault.exporter == "zipkin" else 200
            self.collector = FakeHTTPBackend(fault.collector, healthy_status=status)
        self.statsd = StatsdSink()
        self.sentry = (
            FakeHTTPBackend(fault.sentry, body=b'{"id": "1"}') if fault.sentry else None
        )

    def close(self) -> None:
        self.collector.close()
        self.statsd.close()
        if self.sentry is not None:
            self.sentry.close()


def app_ini(directory: pathlib.Path, fault: Fault, backends: Backends) -> pathlib.Path:
    directory.mkdir()
    collector = backends.collector
    if isinstance(collector, SidecarQueue):
        destination = {"tracing.queue_name": collector.queue_name}
    else:
        endpoint = collector.address if fault.exporter == "zipkin" else collector.url
        destination = {"tracing.exporter.endpoint": endpoint}
    app = {
        "factory": "serve_apps:make_wsgi_app",
        "tracing.service_name": "faults",
        "tracing.sample_rate": "1.0",
        "tracing.exporter": fault.exporter,
        **destination,
        "metrics.namespace": "faults",
        "metrics.endpoint": (
            backends.statsd.endpoint if fault.statsd == "local" else "statsd.invalid:8125"
        ),
        "test.tracing": "true",
        "test.counts_path": str(directory / "counts.jsonl"),
    }
    if backends.sentry is not None:
        app["test.error_reporting"] = "true"
        app["sentry.dsn"] = f"http://public:secret@{backends.sentry.address}/1"
    server = {"factory": "baseplate.server.wsgi", "stop_timeout": "10"}
    return write_ini(directory / "app.ini", app, server)


# -- load -------------------------------------------------------------------------------


@dataclass
class Outcome:
    path: str
    latency: float
    status: int  # 0: the request failed (connection error, timeout)
    error: str = ""


def _one_connection(port: int, paths: list[str], outcomes: list[Outcome]) -> None:
    connection: http.client.HTTPConnection | None = None
    for path in paths:
        started = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            outcomes.append(Outcome(path, time.perf_counter() - started, response.status))
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except Exception as exc:
            outcomes.append(Outcome(path, time.perf_counter() - started, 0, repr(exc)))
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


def load(port: int | None, paths: list[str]) -> list[Outcome]:
    """Send ``paths`` over :data:`CONNECTIONS` keep-alive connections at once."""
    assert port is not None
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=_one_connection, args=(port, paths[i::CONNECTIONS], outcomes))
        for i in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def round_paths(with_errors: bool) -> list[str]:
    paths = ["/hello"] * (CONNECTIONS * PER_CONNECTION)
    if with_errors:  # errors to report: every tenth request fails in the application
        paths[::10] = ["/fail"] * len(paths[::10])
    return paths


def p99(outcomes: list[Outcome]) -> float:
    latencies = sorted(outcome.latency for outcome in outcomes)
    return latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)]


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def stop_all(servers: list[ServeProcess]) -> list[float]:
    """SIGTERM every server at once; seconds from the signal to each one's exit."""
    stopped: list[float] = [math.inf] * len(servers)
    statuses: list[int | None] = [None] * len(servers)

    def wait(index: int, started: float) -> None:
        statuses[index] = servers[index].process.wait(60)
        stopped[index] = time.monotonic() - started

    threads = []
    for index, server in enumerate(servers):
        started = time.monotonic()
        server.send(signal.SIGTERM)
        threads.append(threading.Thread(target=wait, args=(index, started)))
        threads[-1].start()
    for thread in threads:
        thread.join(90)
    assert statuses == [0] * len(servers), [s.log()[-3000:] for s in servers]
    return stopped


# -- the log -------------------------------------------------------------------------------


def telemetry_lines(log: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) of every line the telemetry logged."""
    lines = []
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match and match["logger"].startswith(TELEMETRY_LOGGERS):
            lines.append((match["level"], match["logger"], match["message"]))
    return lines


def repeated_lines(log: str) -> dict[tuple[str, str], int]:
    """Log messages (logger, message) written more than once, application errors apart."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match and not match["message"].startswith("Unexpected error handling GET /fail"):
            counts[(match["logger"], match["message"])] += 1
    return {key: count for key, count in counts.items() if count > 1}


def exit_counts(directory: pathlib.Path) -> dict[str, Any]:
    (record,) = read_json_lines(directory / "counts.jsonl")
    return dict(record)


def report(result: dict[str, Any]) -> None:
    print(json.dumps(result))
    path = os.environ.get("FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(result) + "\n")


# -- the test ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
def test_a_telemetry_fault_costs_the_service_nothing(
    tmp_path: pathlib.Path, serve: Callable[..., ServeProcess], fault: Fault
) -> None:
    twin = healthy_twin(fault)
    backends: dict[str, Backends] = {}
    try:  # closed in any case: a sidecar queue outlives the process that made it
        backends["healthy"] = Backends(twin)
        backends["faulty"] = Backends(fault)
        _measure(tmp_path, serve, fault, twin, backends)
    finally:
        for each in backends.values():
            each.close()


def _measure(
    tmp_path: pathlib.Path,
    serve: Callable[..., ServeProcess],
    fault: Fault,
    twin: Fault,
    backends: dict[str, Backends],
) -> None:
    kinds = ("healthy", "faulty")
    dirs = {kind: tmp_path / kind for kind in kinds}
    inis = {
        "healthy": app_ini(dirs["healthy"], twin, backends["healthy"]),
        "faulty": app_ini(dirs["faulty"], fault, backends["faulty"]),
    }
    # both start at once (the start-up is most of a test's time), then each waits
    servers = {kind: serve(inis[kind], wait=False) for kind in kinds}
    for server in servers.values():
        server.wait_for_log("Listening on")
    with_errors = fault.sentry is not None

    for kind in kinds:
        load(servers[kind].port, ["/hello"] * WARM_UP)
    rss_before = {kind: rss_bytes(servers[kind].pid) for kind in kinds}
    outcomes: dict[str, list[Outcome]] = {kind: [] for kind in kinds}
    for index in range(ROUNDS):  # interleaved, in alternating order: drift hits both alike
        for kind in kinds if index % 2 == 0 else kinds[::-1]:
            outcomes[kind] += load(servers[kind].port, round_paths(with_errors))
    rss_after = {kind: rss_bytes(servers[kind].pid) for kind in kinds}
    stop_times = dict(zip(kinds, stop_all([servers[kind] for kind in kinds]), strict=True))
    logs = {kind: servers[kind].log() for kind in kinds}
    counts = {kind: exit_counts(dirs[kind]) for kind in kinds}
    latency = {kind: p99(outcomes[kind]) for kind in kinds}

    report(
        {
            "fault": fault.name,
            "requests": len(outcomes["faulty"]),
            "p99_healthy_ms": round(latency["healthy"] * 1000, 1),
            "p99_faulty_ms": round(latency["faulty"] * 1000, 1),
            "rss_growth_kb": {k: (rss_after[k] - rss_before[k]) // 1024 for k in kinds},
            "stop_s": {kind: round(stop_times[kind], 2) for kind in kinds},
            "telemetry": counts["faulty"]["telemetry"],
            "telemetry_log": [line[2] for line in telemetry_lines(logs["faulty"])],
        }
    )

    # the fault was there, and the twin was healthy
    _assert_fault_was_injected(fault, backends, counts)

    # no request failed
    for kind in kinds:
        failed = [
            outcome
            for outcome in outcomes[kind]
            if outcome.status != (500 if outcome.path == "/fail" else 200)
        ]
        assert not failed, (kind, failed[:5])
    assert len(outcomes["faulty"]) == ROUNDS * CONNECTIONS * PER_CONNECTION

    # no slower than the twin
    limit = max(P99_FACTOR * latency["healthy"], latency["healthy"] + P99_SLACK)
    assert latency["faulty"] <= limit, latency

    # memory stays bounded
    assert rss_after["faulty"] - rss_before["faulty"] < RSS_GROWTH_LIMIT

    # a bounded stop
    assert stop_times["faulty"] <= STOP_LIMIT, (stop_times, logs["faulty"][-2000:])
    assert stop_times["healthy"] <= STOP_LIMIT, stop_times

    # a quiet log: nothing repeated, no telemetry traceback, a handful of lines
    for kind in kinds:
        assert not repeated_lines(logs[kind]), (kind, repeated_lines(logs[kind]))
    assert logs["faulty"].count("Traceback") == logs["healthy"].count("Traceback")
    assert len(telemetry_lines(logs["faulty"])) <= 5, telemetry_lines(logs["faulty"])

    # every sampled span that ended is accounted for, exactly once
    for kind in kinds:
        telemetry = counts[kind]["telemetry"]
        ended = counts[kind]["ended_sampled"]
        assert ended >= WARM_UP + ROUNDS * CONNECTIONS * PER_CONNECTION
        assert sum(telemetry.get(name, 0) for name in SPAN_OUTCOMES) == ended, counts[kind]
    healthy = counts["healthy"]["telemetry"]
    assert healthy["spans.exported"] == counts["healthy"]["ended_sampled"]


def _assert_fault_was_injected(
    fault: Fault, backends: dict[str, Backends], counts: dict[str, dict[str, Any]]
) -> None:
    faulty = counts["faulty"]["telemetry"]
    healthy = counts["healthy"]["telemetry"]
    for each in backends.values():
        if isinstance(each.collector, SidecarQueue):
            each.collector.stop()  # the reader's count is known once it stopped
    assert backends["healthy"].collector.requests > 0
    if fault.exporter == "sidecar":  # the reader had every span, one message each
        assert backends["healthy"].collector.requests == counts["healthy"]["ended_sampled"]
    assert backends["healthy"].statsd.datagrams > 0
    if fault.collector != "healthy":
        if fault.collector == "slow":  # slower than healthy, within the export timeout
            lost = sum(faulty[name] for name in ("spans.failed", "spans.dropped", "spans.lost"))
            assert lost == 0, faulty
        else:
            assert faulty["spans.exported"] == 0, faulty
        queue = backends["faulty"].collector
        if isinstance(queue, SidecarQueue):  # full: nothing was read, nothing more written
            assert queue.requests == 0
            assert queue.current_messages == FULL_SIDECAR_QUEUE
            assert faulty["spans.failed"] == counts["faulty"]["ended_sampled"], faulty
        elif fault.collector != "refused":
            assert backends["faulty"].collector.requests > 0
    if fault.statsd != "local":
        assert backends["faulty"].statsd.datagrams == 0
        assert faulty.get("metrics.sent", 0) == 0, faulty
    if fault.sentry and fault.sentry != "healthy":
        assert healthy["error_reports.sent"] > 0, healthy
        assert faulty.get("error_reports.sent", 0) == 0, faulty
        assert faulty["error_reports.failed"] + faulty["error_reports.dropped"] > 0, faulty


def test_with_sentry_down_every_error_report_is_counted(
    tmp_path: pathlib.Path, serve: Callable[..., ServeProcess]
) -> None:
    fault = Fault(sentry="refused")
    backends = Backends(fault)
    try:
        server = serve(app_ini(tmp_path / "faulty", fault, backends))
        outcomes = load(server.port, ["/fail"] * 20)
        assert [outcome.status for outcome in outcomes] == [500] * 20
        (stop_time,) = stop_all([server])
    finally:
        backends.close()
    assert stop_time <= STOP_LIMIT
    telemetry = exit_counts(tmp_path / "faulty")["telemetry"]
    reports = ("error_reports.sent", "error_reports.failed", "error_reports.dropped")
    counted = sum(telemetry.get(name, 0) for name in (*reports, "error_reports.queued"))
    assert counted == 20, telemetry
