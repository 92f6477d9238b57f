"""BaseKombuConsumer and KombuConsumer against the real RabbitMQ."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import pytest
from opentelemetry.trace import SpanKind

from baseplate.core import Baseplate, RequestContext
from baseplate.queue_consumer import BaseKombuConsumer, KombuConsumer

from .conftest import AMQP_URL, RecordingProcessor, declare_queue, queue_depth, wait_for


@pytest.fixture
def stop_consumers() -> Iterator[list[BaseKombuConsumer]]:
    consumers: list[BaseKombuConsumer] = []
    yield consumers
    for consumer in consumers:
        consumer.stop()


def test_get_message_returns_messages_in_order_and_leaves_acking_to_the_caller(
    connection: kombu.Connection,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    stop_consumers: list[BaseKombuConsumer],
) -> None:
    message_queue = declare_queue(exchange, names.queue, ["key"])
    for n in range(3):
        publish({"n": n}, "key")
    consumer = BaseKombuConsumer.new(connection, [message_queue])
    stop_consumers.append(consumer)

    messages = [consumer.get_message(timeout=20) for _ in range(3)]

    assert [message.decode() for message in messages] == [{"n": 0}, {"n": 1}, {"n": 2}]
    messages[0].ack()
    messages[1].ack()
    consumer.stop()
    # The unacknowledged message goes back to the queue when the consumer stops.
    wait_for(lambda: queue_depth(names.queue) == 1)


def test_get_message_times_out_with_queue_empty(
    connection: kombu.Connection,
    exchange: kombu.Exchange,
    names: Any,
    stop_consumers: list[BaseKombuConsumer],
) -> None:
    consumer = BaseKombuConsumer.new(connection, [declare_queue(exchange, names.queue, ["key"])])
    stop_consumers.append(consumer)

    with pytest.raises(queue.Empty):
        consumer.get_message(timeout=0.2)


def test_get_batch_returns_at_most_max_items_and_what_arrived_by_the_timeout(
    connection: kombu.Connection,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    stop_consumers: list[BaseKombuConsumer],
) -> None:
    message_queue = declare_queue(exchange, names.queue, ["key"])
    for n in range(5):
        publish(n, "key")
    consumer = BaseKombuConsumer.new(connection, [message_queue])
    stop_consumers.append(consumer)

    first = consumer.get_batch(max_items=3, timeout=20)
    rest = consumer.get_batch(max_items=10, timeout=0.3)
    nothing = consumer.get_batch(max_items=10, timeout=0)

    assert [message.decode() for message in first] == [0, 1, 2]
    assert [message.decode() for message in rest] == [3, 4]
    assert nothing == []
    for message in first + rest:
        message.ack()


def test_queue_size_limits_what_the_broker_sends_ahead(
    connection: kombu.Connection,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    stop_consumers: list[BaseKombuConsumer],
) -> None:
    message_queue = declare_queue(exchange, names.queue, ["key"])
    for n in range(5):
        publish(n, "key")
    consumer = BaseKombuConsumer.new(connection, [message_queue], queue_size=2)
    stop_consumers.append(consumer)

    wait_for(lambda: consumer.worker.work_queue.qsize() == 2)
    assert queue_depth(names.queue) == 3  # the rest wait at the broker

    # Unacknowledged messages count against the limit: acking makes room for more.
    taken = consumer.get_batch(max_items=5, timeout=0.3)
    assert [message.decode() for message in taken] == [0, 1]
    for message in taken:
        message.ack()
    rest = []
    for _ in range(3):
        message = consumer.get_message(timeout=20)
        message.ack()
        rest.append(message.decode())
    assert rest == [2, 3, 4]

    with pytest.raises(ValueError, match="queue_size"):
        BaseKombuConsumer.new(connection, [message_queue], queue_size=-1)


def test_kombu_consumer_records_a_child_span_per_call(
    baseplate: Baseplate,
    connection: kombu.Connection,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    recorder: RecordingProcessor,
    stop_consumers: list[BaseKombuConsumer],
) -> None:
    message_queue = declare_queue(exchange, names.queue, ["key"])
    for n in range(3):
        publish(n, "key")
    consumer = KombuConsumer.new(connection, [message_queue])
    stop_consumers.append(consumer)

    context = RequestContext()
    with baseplate.make_server_span(context, "batch_job") as server_span:
        message = consumer.get_message(server_span)
        batch = consumer.get_batch(server_span, max_items=5, timeout=0.5)
    for taken in [message, *batch]:
        taken.ack()

    assert message.decode() == 0
    assert [taken.decode() for taken in batch] == [1, 2]

    (server,) = recorder.named("batch_job")
    (get_message,) = recorder.named("kombu.get_message")
    (get_batch,) = recorder.named("kombu.get_batch")
    for child in (get_message, get_batch):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None and child.parent.span_id == server.context.span_id
        assert child.attributes["kind"] == "consumer"  # type: ignore[index]
    assert get_message.attributes == {
        "kind": "consumer",
        "routing_key": "key",
        "consumer_tag": message.delivery_info["consumer_tag"],
        "delivery_tag": message.delivery_info["delivery_tag"],
        "exchange": names.exchange,
    }
    assert get_batch.attributes["message_count"] == 2  # type: ignore[index]


def test_kombu_consumer_without_a_span_records_nothing(
    connection: kombu.Connection,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    recorder: RecordingProcessor,
    stop_consumers: list[BaseKombuConsumer],
) -> None:
    message_queue = declare_queue(exchange, names.queue, ["key"])
    publish("plain", "key")
    consumer = KombuConsumer.new(connection, [message_queue])
    stop_consumers.append(consumer)

    message = consumer.get_message(timeout=20)
    message.ack()

    assert message.decode() == "plain"
    assert recorder.ended == []


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()

import sys
import gevent
import kombu
from baseplate.queue_consumer import BaseKombuConsumer

exchange = kombu.Exchange(sys.argv[2], "direct", durable=False)
message_queue = kombu.Queue(sys.argv[3], exchange=exchange, routing_key="key")
consumer = BaseKombuConsumer.new(kombu.Connection(sys.argv[1]), [message_queue])
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(20)])
message = consumer.get_message(timeout=20)
message.ack()
ticker.join()
consumer.stop()
print(type(consumer.worker_thread).__module__, message.decode(), len(ticks))
"""


def test_works_under_gevent(
    exchange: kombu.Exchange, names: Any, publish: Callable[..., None]
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    declare_queue(exchange, names.queue, ["key"])
    publish("from a greenlet", "key")

    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, AMQP_URL, names.exchange, names.queue],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    # The pump is a greenlet, and other greenlets kept running while it waited.
    assert result.stdout.split() == ["gevent.threading", "from", "a", "greenlet", "20"]
