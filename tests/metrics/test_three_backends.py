"""One service under the real ``baseplate-serve``, started three times with only
``metrics.exporter`` changed, delivers the same request metrics to statsd, to the OTLP
collector (exported when the server stops) and to a Prometheus scrape; a bad backend value
stops it with one line."""

from __future__ import annotations

import pathlib
import re
import socket
import subprocess
from collections import Counter
from typing import Any

from tests.metrics.receivers import MetricsCollector, Point, parse_prometheus, scrape
from tests.metrics.service import expected_facts
from tests.server.conftest import command, free_port, subprocess_env, wait_until, write_ini

HELLOS = 3


def service_ini(
    tmp_path: pathlib.Path, exporter: str, statsd: str, collector: str, port: int
) -> pathlib.Path:
    """The same INI file each time but for ``metrics.exporter``."""
    app = {
        "factory": "tests.metrics.service:make_app",
        "metrics.exporter": exporter,
        "metrics.namespace": "svc",
        "metrics.endpoint": statsd,
        "metrics.otlp.endpoint": collector,
        "metrics.otlp.interval": "60 seconds",
        "metrics.prometheus.host": "127.0.0.1",
        "metrics.prometheus.port": str(port),
    }
    server = {"factory": "baseplate.server.wsgi", "stop_timeout": "5"}
    return write_ini(tmp_path / f"{exporter}.ini", app, server)


def run_requests(server: Any) -> None:
    for _ in range(HELLOS):
        assert server.get_json("/hello") == {"hello": "world"}
    status, _, _ = server.get("/fail")
    assert status == 500


# -- each backend's data as the same facts ----------------------------------------------------

_STATSD_LINE = re.compile(r"^svc\.(?P<name>[^:]+):(?P<value>[0-9.]+)\|(?P<type>ms|c)$")


def statsd_facts(lines: list[str]) -> dict[str, Any]:
    calls: Counter[tuple[str, str, bool]] = Counter()
    local: Counter[tuple[str, str]] = Counter()
    errors: Counter[str] = Counter()
    greetings = render = 0
    for line in lines:
        match = _STATSD_LINE.match(line)
        if not match:
            continue
        name, value, kind = match["name"], float(match["value"]), match["type"]
        if kind == "c" and name.startswith(("server.", "clients.")):
            prefix, _, rest = name.partition(".")
            span, _, outcome = rest.rpartition(".")
            side = "server" if prefix == "server" else "client"
            calls[(side, span, outcome == "success")] += int(value)
        elif kind == "c" and name.startswith("errors."):
            errors[name[len("errors.") :]] += int(value)
        elif kind == "c" and name == "greetings":
            greetings += int(value)
        elif kind == "ms" and name == "render":
            render += 1
        elif kind == "ms" and name.startswith("greeting."):
            local[("greeting", name[len("greeting.") :])] += 1
    return {
        "calls": dict(calls),
        "local": dict(local),
        "errors": dict(errors),
        "greetings": greetings,
        "render": render,
    }


def otel_facts(points: list[Point], prometheus: bool) -> dict[str, Any]:
    """Facts from OTLP points (dotted names) or Prometheus points (underscored, suffixed)."""

    def key(name: str) -> str:
        return name.replace(".", "_") if prometheus else name

    def boolean(value: Any) -> bool:
        return value in (True, "true")

    names = {
        "calls": "baseplate_span_calls_total" if prometheus else "baseplate.span.calls",
        "duration": "baseplate_span_duration_seconds" if prometheus else "baseplate.span.duration",
        "errors": "baseplate_span_errors_total" if prometheus else "baseplate.span.errors",
        "greetings": "svc_greetings_total" if prometheus else "svc.greetings",
        "render": "svc_render_seconds" if prometheus else "svc.render",
    }
    facts: dict[str, Any] = {"calls": {}, "local": {}, "errors": {}, "greetings": 0, "render": 0}
    for point in points:
        attributes = point.attributes
        if point.name == names["calls"]:
            span = (
                attributes[key("baseplate.span.kind")],
                attributes[key("baseplate.span.name")],
                boolean(attributes[key("baseplate.success")]),
            )
            facts["calls"][span] = int(point.value or 0)
        elif point.name == names["duration"] and attributes[key("baseplate.span.kind")] == "local":
            span_name = attributes[key("baseplate.span.name")]
            facts["local"][(attributes[key("baseplate.component_name")], span_name)] = point.count
        elif point.name == names["errors"]:
            facts["errors"][attributes[key("error.type")]] = int(point.value or 0)
        elif point.name == names["greetings"]:
            facts["greetings"] = int(point.value or 0)
        elif point.name == names["render"]:
            facts["render"] = point.count
    return facts


def test_statsd_otlp_and_prometheus_get_the_same_request_metrics(
    tmp_path: pathlib.Path, serve: Any, statsd: Any, collector: MetricsCollector
) -> None:
    port = free_port()
    expected = expected_facts(HELLOS)

    def ini(exporter: str) -> pathlib.Path:
        return service_ini(tmp_path, exporter, statsd.endpoint, collector.http_endpoint, port)

    # statsd: each request's metrics arrive when its server span ends
    server = serve(ini("statsd"))
    run_requests(server)
    from_statsd = wait_until(
        lambda: (facts := statsd_facts(statsd.lines())) == expected and facts,
        "the statsd lines of every request",
    )
    assert server.stop() == 0

    # Prometheus: scraped while the service runs
    server = serve(ini("prometheus"))
    server.wait_for_log(f"Serving Prometheus metrics on http://127.0.0.1:{port}/metrics")
    run_requests(server)
    _, body = scrape(f"http://127.0.0.1:{port}/metrics")
    from_prometheus = otel_facts(parse_prometheus(body), prometheus=True)
    assert server.stop() == 0

    # OTLP: the interval is a minute, so this is the export when the server stops
    server = serve(ini("otlp"))
    run_requests(server)
    assert server.stop() == 0
    points = collector.wait_for("svc.greetings")
    from_otlp = otel_facts(points, prometheus=False)
    assert {p.attributes["service.name"] for p in points} == {"svc"}

    assert from_statsd == expected
    assert from_prometheus == expected
    assert from_otlp == expected


def test_a_bad_backend_value_stops_baseplate_serve_with_one_line(
    tmp_path: pathlib.Path, statsd: Any, collector: MetricsCollector
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            "prometheus": (port, f"metrics.prometheus.port: cannot listen on 127.0.0.1:{port}"),
            "prometeus": (port, "metrics.exporter: expected one of 'statsd', 'otlp'"),
        }
        for exporter, (listen_on, expected) in cases.items():
            ini = service_ini(
                tmp_path, exporter, statsd.endpoint, collector.http_endpoint, listen_on
            )
            result = subprocess.run(
                [*command("baseplate-serve"), str(ini), "--bind", f"127.0.0.1:{free_port()}"],
                capture_output=True,
                text=True,
                env=subprocess_env(),
                cwd=tmp_path,
            )
            assert result.returncode == 1, result.stderr
            errors = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(errors) == 1 and expected in errors[0], result.stderr
