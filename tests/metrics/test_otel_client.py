"""The baseplate.metrics client API on OpenTelemetry instruments: timers, counters, gauges,
histograms and batches record into the pipeline's meter, with statsd's checks."""

from __future__ import annotations

import logging
import math

import pytest

from baseplate.core import Baseplate, RequestContext
from baseplate.metrics import (
    Batch,
    Client,
    Counter,
    NegativeGaugeError,
    OTelBatch,
    TimerStateError,
)
from tests.metrics.receivers import one, read_memory


def test_each_metric_kind_maps_onto_an_instrument_named_with_the_namespace(
    memory_client,
) -> None:
    client, reader = memory_client("my_service")

    client.counter("events.connect").increment()
    client.counter("events.connect").increment(delta=2)
    client.counter("sampled").increment(sample_rate=0.5)
    client.gauge("workers").replace(4)
    client.gauge("workers").replace(3)
    client.histogram("payload.bytes").add_sample(320)
    client.timer("something.todo").send(0.5)
    with client.timer("something.todo"):
        pass

    points = read_memory(reader)
    assert one(points, "my_service.events.connect").value == 3
    assert one(points, "my_service.sampled").value == 2  # scaled up as statsd does
    assert one(points, "my_service.workers").value == 3
    histogram = one(points, "my_service.payload.bytes")
    assert (histogram.count, histogram.sum) == (1, 320)
    timer = one(points, "my_service.something.todo")
    assert timer.unit == "s" and timer.count == 2 and 0.5 <= timer.sum < 1.5


def test_the_client_is_a_client_and_its_batch_a_batch(memory_client) -> None:
    client, reader = memory_client()
    assert isinstance(client, Client)
    with client.batch() as batch:
        assert isinstance(batch, Batch) and isinstance(batch, OTelBatch)
        counter = batch.counter("froozles")
        assert isinstance(counter, Counter)
        counter.increment()
        batch.counter("froozles").increment()
        batch.record_span("span.timer", 0.1, "span.timer.success")
        with batch.timer("something"):
            pass
    points = read_memory(reader)
    assert one(points, "svc.froozles").value == 2
    assert one(points, "svc.span.timer").count == 1
    assert one(points, "svc.span.timer.success").value == 1
    assert one(points, "svc.something").count == 1


def test_context_metrics_is_the_same_meter(provider, memory_client) -> None:
    client, reader = memory_client()
    bp = Baseplate(tracer_provider=provider)
    bp.configure_metrics(client)
    for _ in range(2):
        context = RequestContext()
        with bp.make_server_span(context, "op"):
            assert isinstance(context.metrics, OTelBatch)
            context.metrics.counter("app.hits").increment()
    points = read_memory(reader)
    assert one(points, "svc.app.hits").value == 2
    assert one(points, "baseplate.span.calls").value == 2


def test_decrements_are_refused_counted_and_logged(memory_client, caplog) -> None:
    client, reader = memory_client()
    with caplog.at_level(logging.WARNING, logger="baseplate.metrics"):
        client.counter("blargs").increment(5)
        client.counter("blargs").decrement(delta=3)
        client.histogram("h").add_sample(-1)
    assert one(read_memory(reader), "svc.blargs").value == 5
    assert client.telemetry_counts()["metrics.rejected"] == 2
    assert "'svc.blargs' refused -3" in caplog.text


def test_what_statsd_refuses_is_refused_too(memory_client) -> None:
    client, _ = memory_client()
    with pytest.raises(NegativeGaugeError):
        client.gauge("g").replace(-1)
    with pytest.raises(ValueError, match="finite"):
        client.timer("t").send(math.nan)
    with pytest.raises(ValueError, match="finite"):
        client.counter("c").increment(math.inf)
    with pytest.raises(ValueError, match="sample_rate"):
        client.counter("c").increment(sample_rate=0)
    with pytest.raises(UnicodeEncodeError):
        client.counter("caf\xe9")
    with pytest.raises(ValueError):
        client.counter("a:b")
    timer = client.timer("t")
    with pytest.raises(TimerStateError):
        timer.stop()


def test_names_instruments_cannot_carry_are_cleaned(memory_client) -> None:
    client, reader = memory_client("")
    client.counter("9lives.with space").increment()
    assert one(read_memory(reader), "m_9lives.with_space").value == 1


def test_a_negative_elapsed_time_counts_as_zero(memory_client) -> None:
    client, reader = memory_client()
    client.timer("clock.step").send(-0.5)
    point = one(read_memory(reader), "svc.clock.step")
    assert (point.count, point.sum) == (1, 0)
