"""Fixtures for the metrics backend tests: a real OTLP collector, in-memory pipelines, and
no meter provider left running from one test to the next."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from baseplate.metrics import OTelClient
from exporters.otel_metrics import MemoryMetricReader, MetricsPipeline, shutdown_pipelines
from tests.metrics.receivers import MetricsCollector, start_collector, stop_collector
from tests.server.conftest import serve, statsd  # noqa: F401


@pytest.fixture(autouse=True)
def _no_pipeline_left_running() -> Iterator[None]:
    yield
    shutdown_pipelines(timeout=1.0)


@pytest.fixture
def collector(tmp_path: pathlib.Path) -> Iterator[MetricsCollector]:
    """A rotel agent receiving OTLP/HTTP metrics on a free loopback port."""
    running = start_collector(tmp_path / "rotel-metrics.out")
    yield running
    shutdown_pipelines(timeout=1.0)  # while the collector still takes the last export
    stop_collector(running.process)


@pytest.fixture
def memory_client() -> Iterator[Callable[..., tuple[OTelClient, MemoryMetricReader]]]:
    """Makes an :class:`OTelClient` whose pipeline has an in-memory reader."""
    pipelines: list[MetricsPipeline] = []

    def make(namespace: str = "svc") -> tuple[OTelClient, MemoryMetricReader]:
        reader = MemoryMetricReader()
        pipeline = MetricsPipeline(reader, "memory")
        pipelines.append(pipeline)
        return OTelClient(pipeline, namespace), reader

    yield make
    for pipeline in pipelines:
        pipeline.shutdown(1.0)
