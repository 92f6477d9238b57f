"""Real receivers for the metrics backends, and what each one got, in one shape.

* :class:`MetricsCollector`: a rotel agent (the OTLP collector the export tests use) that
  logs every metric it receives; :meth:`MetricsCollector.metrics` parses that log.
* :func:`scrape`: an HTTP GET of a Prometheus endpoint, parsed with ``prometheus_client``'s
  own parser.
* :func:`read_memory`: the data points of an in-memory metric reader.

Each gives :class:`Point` records (name, attributes, and a count, sum or value), so a test
can ask the same question of every backend.
"""

from __future__ import annotations

import pathlib
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint

from exporters.otel_metrics import MemoryMetricReader
from tests.exporters.fixtures import ROTEL, free_port, wait_for


@dataclass
class Point:
    """One data point: a counter or gauge's value, or a histogram's count and sum."""

    name: str
    attributes: dict[str, Any]
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    unit: str = ""
    kind: str = ""
    buckets: list[float] = field(default_factory=list)

    def has(self, **attributes: Any) -> bool:
        """Whether the point carries these attributes (dots written as ``__``)."""
        return all(
            self.attributes.get(key.replace("__", ".")) == value
            for key, value in attributes.items()
        )


def find(points: list[Point], name: str, **attributes: Any) -> list[Point]:
    """The points named ``name`` carrying ``attributes`` (dots in names written ``__``)."""
    return [point for point in points if point.name == name and point.has(**attributes)]


def one(points: list[Point], name: str, **attributes: Any) -> Point:
    """The one point named ``name`` with ``attributes``."""
    found = find(points, name, **attributes)
    assert len(found) == 1, (name, attributes, found, sorted({p.name for p in points}))
    return found[0]


# -- OTLP: the rotel collector's detailed metrics log -------------------------------------------

_ATTRIBUTE = re.compile(r"^\s*-> ([^:]+): (Str|Bool|Int|Double)\((.*)\)$")
_DESCRIPTOR = re.compile(r"^\s*-> (Name|Unit|DataType|IsMonotonic): ?(.*)$")


def _value(kind: str, text: str) -> Any:
    if kind == "Bool":
        return text == "true"
    if kind == "Int":
        return int(text)
    if kind == "Double":
        return float(text)
    return text


def parse_rotel_metrics(text: str) -> list[list[Point]]:
    """The exports in rotel's ``--debug-log metrics --debug-log-verbosity detailed`` output:
    one list of points per ``ResourceMetrics`` block, in the order received."""
    exports: list[list[Point]] = []
    resource: dict[str, Any] = {}
    metric: dict[str, str] = {}
    point: Point | None = None
    section = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("ResourceMetrics #"):
            exports.append([])
            resource = {}
            section = "resource"
            continue
        if line.startswith("Resource attributes:"):
            section = "resource"
            continue
        if line.startswith("Metric #"):
            metric, point, section = {}, None, "descriptor"
            continue
        if line.startswith(("HistogramDataPoints #", "NumberDataPoints #")):
            point = Point(
                metric.get("Name", ""),
                {},
                unit=metric.get("Unit", ""),
                kind=metric.get("DataType", ""),
            )
            point.attributes["service.name"] = resource.get("service.name")
            exports[-1].append(point)
            section = "point"
            continue
        if line.startswith("Data point attributes:"):
            section = "attributes"
            continue
        match = _ATTRIBUTE.match(line)
        if match and section == "resource":
            resource[match.group(1)] = _value(match.group(2), match.group(3))
            continue
        if match and section == "attributes" and point is not None:
            point.attributes[match.group(1)] = _value(match.group(2), match.group(3))
            continue
        match = _DESCRIPTOR.match(line)
        if match and section == "descriptor":
            metric[match.group(1)] = match.group(2).strip()
            continue
        if point is not None:
            if line.startswith("Count: "):
                point.count = int(line.split(": ", 1)[1])
            elif line.startswith("Sum: "):
                point.sum = float(line.split(": ", 1)[1])
            elif line.startswith("Value: "):
                point.value = float(line.split(": ", 1)[1])
            elif line.startswith("ExplicitBounds #"):
                point.buckets.append(float(line.split(": ", 1)[1]))
    return exports


def latest(exports: list[list[Point]]) -> list[Point]:
    """The last value received for each (name, attributes): exports are cumulative."""
    points: dict[tuple[str, frozenset[tuple[str, Any]]], Point] = {}
    for export in exports:
        for point in export:
            points[(point.name, frozenset(point.attributes.items()))] = point
    return list(points.values())


@dataclass
class MetricsCollector:
    """A running rotel agent with an OTLP/HTTP receiver logging every metric it receives."""

    http_endpoint: str
    output: pathlib.Path
    process: subprocess.Popen[bytes]

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def metrics(self) -> list[Point]:
        """The latest value of every metric received so far."""
        return latest(parse_rotel_metrics(self.text()))

    def wait_for(self, name: str, **attributes: Any) -> list[Point]:
        """Wait until a point named ``name`` with ``attributes`` arrived; all points then."""

        def arrived() -> list[Point] | None:
            points = self.metrics()
            return points if find(points, name, **attributes) else None

        return list(wait_for(arrived, timeout=30))


def start_collector(output: pathlib.Path) -> MetricsCollector:
    """Start rotel on free loopback ports; it logs metrics to ``output``."""
    http_port, grpc_port = free_port(), free_port()
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [
                str(ROTEL),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{grpc_port}",
                "--exporter",
                "blackhole",
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def accepting() -> bool:
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
            return True
        except OSError:
            return False

    try:
        wait_for(accepting, timeout=20)
    except BaseException:
        stop_collector(process)
        raise
    return MetricsCollector(f"http://127.0.0.1:{http_port}", output, process)


def stop_collector(process: subprocess.Popen[bytes]) -> None:
    """Stop rotel (at once: what it received is in its log already)."""
    process.kill()
    process.wait()


# -- Prometheus: a real scrape ------------------------------------------------------------------


def scrape(url: str) -> tuple[str, str]:
    """GET a Prometheus endpoint: its content type and body."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode()


def parse_prometheus(text: str) -> list[Point]:
    """Points from the text exposition format, read by ``prometheus_client``'s parser.

    Histograms give one point per label set with ``count`` and ``sum`` (from ``_count`` and
    ``_sum``); counters and gauges their value. Names are the Prometheus family names.
    """
    from prometheus_client.parser import text_string_to_metric_families

    points: list[Point] = []
    for family in text_string_to_metric_families(text):
        histograms: dict[frozenset[tuple[str, str]], Point] = {}
        for sample in family.samples:
            labels = dict(sample.labels)
            if family.type == "histogram":
                le = labels.pop("le", None)
                key = frozenset(labels.items())
                point = histograms.get(key)
                if point is None:
                    point = histograms[key] = Point(family.name, labels, kind="histogram")
                    points.append(point)
                if sample.name.endswith("_count"):
                    point.count = int(sample.value)
                elif sample.name.endswith("_sum"):
                    point.sum = sample.value
                elif le is not None and le != "+Inf":
                    point.buckets.append(float(le))
            else:
                points.append(Point(sample.name, labels, value=sample.value, kind=family.type))
    return points


# -- in memory ----------------------------------------------------------------------------------


def read_memory(reader: MemoryMetricReader) -> list[Point]:
    """The points an in-memory reader collects now."""
    data = reader.get_metrics_data()
    points: list[Point] = []
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for data_point in metric.data.data_points:
                    point = Point(metric.name, dict(data_point.attributes or {}), unit=metric.unit)
                    if isinstance(data_point, HistogramDataPoint):
                        point.count, point.sum = data_point.count, data_point.sum
                        point.buckets = list(data_point.explicit_bounds)
                    else:
                        point.value = data_point.value
                    points.append(point)
    return points


def iter_names(points: list[Point]) -> Iterator[str]:
    yield from sorted({point.name for point in points})
