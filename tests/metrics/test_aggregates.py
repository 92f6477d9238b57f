"""The in-process aggregates: OpenTelemetry's histogram bucket rule, the cardinality bound,
collections that carry the SDK's own instruments too, and a forked child starting from zero."""

from __future__ import annotations

import os

from exporters.otel_metrics import Aggregates, MemoryMetricReader, MetricsPipeline
from tests.metrics.receivers import one, read_memory


def test_a_value_on_a_bound_counts_in_the_bucket_it_ends(memory_client) -> None:
    client, reader = memory_client()
    histogram = client.pipeline.aggregates.histogram("h", bounds=(1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 2.0, 7.0):
        histogram.record(value)
    data = reader.get_metrics_data()
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert list(point.bucket_counts) == [2, 2, 1]
    assert (point.count, point.sum, point.min, point.max) == (5, 12.0, 0.5, 7.0)


def test_series_past_the_limit_go_to_one_overflow_series() -> None:
    aggregates = Aggregates(max_series=2)
    calls = aggregates.sum("calls")
    for name in ("a", "b", "c", "d"):
        calls.add(1, (("name", name),))
    calls.add(1, (("name", "a"),))
    assert calls.series == {
        (("name", "a"),): 2,
        (("name", "b"),): 1,
        (("otel.metric.overflow", True),): 2,
    }


def test_one_collection_carries_the_aggregates_and_the_sdks_instruments() -> None:
    reader = MemoryMetricReader()
    pipeline = MetricsPipeline(reader, "memory")
    try:
        pipeline.meter.create_up_down_counter("app.queue.depth").add(3)
        pipeline.aggregates.sum("app.jobs").add(2)
        data = reader.get_metrics_data()
        (resource_metrics,) = data.resource_metrics
        (scope_metrics,) = resource_metrics.scope_metrics  # both in the scope "baseplate"
        assert scope_metrics.scope.name == "baseplate"
        assert {metric.name for metric in scope_metrics.metrics} == {"app.queue.depth", "app.jobs"}
    finally:
        pipeline.shutdown(1.0)


def test_cumulative_values_grow_from_one_collection_to_the_next(memory_client) -> None:
    client, reader = memory_client()
    client.counter("jobs").increment()
    assert one(read_memory(reader), "svc.jobs").value == 1
    client.counter("jobs").increment(2)
    assert one(read_memory(reader), "svc.jobs").value == 3


def test_a_forked_child_starts_from_zero() -> None:
    aggregates = Aggregates()
    aggregates.sum("jobs").add(5)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            aggregates.sum("jobs").add(1)
            os.write(write_end, repr(aggregates.sum("jobs").series).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        assert pipe.read() == "{(): 1}"
    assert aggregates.sum("jobs").series == {(): 5}


def test_a_forked_childs_metrics_are_a_stream_of_their_own() -> None:
    reader = MemoryMetricReader()
    pipeline = MetricsPipeline(reader, "memory")
    parent_id = reader.aggregates_resource.attributes["service.instance.id"]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            child_id = reader.aggregates_resource.attributes["service.instance.id"]
            os.write(write_end, str(child_id).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child_id = pipe.read()
    pipeline.shutdown(1.0)
    assert child_id and child_id != parent_id
    assert reader.aggregates_resource.attributes["service.instance.id"] == parent_id
