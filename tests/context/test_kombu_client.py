"""baseplate.context.kombu against the running RabbitMQ (127.0.0.1:5672, guest/guest).

Every test uses its own exchange and queue names and deletes them; the fault tests go
through a TCP forwarder of our own so the shared broker is never stopped."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.exceptions import EncodeError, OperationalError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from baseplate.config import ConfigurationError
from baseplate.context.kombu import (
    KombuProducer,
    KombuProducerContextFactory,
    connection_from_config,
    exchange_from_config,
)
from baseplate.core import Baseplate, RequestContext, ServerSpan
from baseplate.queue_consumer import trace_info_from_message

from .conftest import TcpProxy, attributes, finished, free_port, only

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return {"exchange": f"bp-test-x-{suffix}", "queue": f"bp-test-q-{suffix}", "key": "links"}


@pytest.fixture
def broker(names: dict[str, str]) -> Iterator[tuple[Connection, Exchange, Queue]]:
    connection = Connection(BROKER)
    exchange = Exchange(names["exchange"], "direct", durable=False)
    queue = Queue(names["queue"], exchange, routing_key=names["key"], durable=False)
    queue(connection.default_channel).declare()
    yield connection, exchange, queue
    channel = connection.channel()
    queue(channel).delete()
    exchange(channel).delete()
    channel.close()
    connection.release()


def receive(connection: Connection, queue: Queue) -> Any:
    # basic.publish is not confirmed, so the message may still be on its way: poll briefly
    bound = queue(connection.default_channel)
    for _ in range(200):
        message = bound.get(no_ack=True)
        if message is not None:
            return message
        time.sleep(0.025)
    raise AssertionError("no message arrived")


def producer_for(
    baseplate: Baseplate, connection: Connection, exchange: Exchange
) -> tuple[KombuProducer, ServerSpan]:
    baseplate.add_to_context("amqp", KombuProducerContextFactory(connection, exchange))
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    span.start()
    return context.amqp, span


# -- configuration ---------------------------------------------------------------------


def test_connection_from_config() -> None:
    connection = connection_from_config(
        {"amqp.hostname": "amqp://guest:guest@127.0.0.1:5672", "amqp.virtual_host": "/"},
        prefix="amqp.",
        connect_timeout=3,
    )
    assert connection.hostname == "127.0.0.1"
    assert connection.port == 5672
    assert connection.virtual_host == "/"
    assert connection.connect_timeout == 3


def test_connection_from_config_keyword_arguments_win() -> None:
    connection = connection_from_config(
        {"amqp.hostname": "elsewhere", "amqp.virtual_host": "/a"},
        prefix="amqp.",
        hostname="127.0.0.1",
        virtual_host="/b",
    )
    assert (connection.hostname, connection.virtual_host) == ("127.0.0.1", "/b")


def test_connection_from_config_requires_hostname() -> None:
    with pytest.raises(ConfigurationError, match=r"amqp\.hostname"):
        connection_from_config({"amqp.virtual_host": "/"}, prefix="amqp.")
    with pytest.raises(ValueError, match="prefix"):
        connection_from_config({"amqp.hostname": "x"}, prefix="amqp")


def test_exchange_from_config() -> None:
    exchange = exchange_from_config(
        {"amqp.exchange_name": "reddit_exchange", "amqp.exchange_type": "topic"},
        prefix="amqp.",
        durable=False,
    )
    assert (exchange.name, exchange.type, exchange.durable) == ("reddit_exchange", "topic", False)
    default = exchange_from_config({"amqp.exchange_type": "direct"}, prefix="amqp.")
    assert default.name == ""
    with pytest.raises(ConfigurationError, match=r"amqp\.exchange_type"):
        exchange_from_config({"amqp.exchange_name": "x"}, prefix="amqp.")


# -- publishing --------------------------------------------------------------------------


def test_publish_is_a_span_and_carries_the_trace(
    baseplate: Baseplate,
    broker: tuple[Connection, Exchange, Queue],
    exporter: InMemorySpanExporter,
    names: dict[str, str],
) -> None:
    connection, exchange, queue = broker
    producer, server_span = producer_for(baseplate, connection, exchange)
    assert isinstance(producer, KombuProducer)
    assert KombuProducerContextFactory(connection, exchange, max_connections=2).producers.limit == 2
    producer.publish({"link": "t3_1"}, routing_key=names["key"], headers={"app": "kept"})

    span = only(exporter, "amqp.publish")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == server_span.id
    assert attributes(span) == {"kind": "producer", "message_bus.destination": names["key"]}

    message = receive(connection, queue)
    assert message.payload == {"link": "t3_1"}
    headers = message.headers
    assert headers["app"] == "kept"
    assert headers["X-Trace"] == str(server_span.trace_id)
    assert headers["X-Parent"] == str(server_span.id)
    assert headers["X-Span"] == str(span.context.span_id)
    assert headers["X-Sampled"] == "1"
    assert headers["traceparent"] == (
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    )

    # a baseplate queue consumer continues the trace with the publish span's ids
    info = trace_info_from_message(message)
    assert info is not None
    assert (info.trace_id, info.parent_id, info.span_id, info.sampled) == (
        server_span.trace_id,
        server_span.id,
        span.context.span_id,
        True,
    )


def test_caller_headers_are_not_overwritten(
    baseplate: Baseplate, broker: tuple[Connection, Exchange, Queue], names: dict[str, str]
) -> None:
    connection, exchange, queue = broker
    producer, _ = producer_for(baseplate, connection, exchange)
    producer.publish("body", routing_key=names["key"], headers={"X-Trace": "1"})
    assert receive(connection, queue).headers["X-Trace"] == "1"


def test_publish_passes_kombu_arguments(
    baseplate: Baseplate, broker: tuple[Connection, Exchange, Queue], names: dict[str, str]
) -> None:
    connection, exchange, queue = broker
    producer, _ = producer_for(baseplate, connection, exchange)
    producer.publish("plain text", routing_key=names["key"], serializer="raw", priority=3)
    message = receive(connection, queue)
    body = message.body
    assert (body.decode() if isinstance(body, bytes) else body) == "plain text"
    assert message.properties["priority"] == 3


def test_publish_error_reaches_caller_and_fails_span(
    baseplate: Baseplate,
    broker: tuple[Connection, Exchange, Queue],
    exporter: InMemorySpanExporter,
    names: dict[str, str],
) -> None:
    connection, exchange, _ = broker
    producer, _ = producer_for(baseplate, connection, exchange)
    with pytest.raises(EncodeError):
        producer.publish(object(), routing_key=names["key"], serializer="json")
    assert only(exporter, "amqp.publish").status.status_code is StatusCode.ERROR


# -- faults ------------------------------------------------------------------------------


def test_broker_down_at_start_then_recovers(
    baseplate: Baseplate,
    broker: tuple[Connection, Exchange, Queue],
    exporter: InMemorySpanExporter,
    names: dict[str, str],
) -> None:
    shared, exchange, queue = broker
    proxy = TcpProxy(("127.0.0.1", 5672), port=free_port())
    connection = Connection(f"amqp://guest:guest@127.0.0.1:{proxy.port}//", connect_timeout=1)
    producer, _ = producer_for(baseplate, connection, exchange)
    with pytest.raises(Exception) as raised:
        producer.publish("first", routing_key=names["key"])
    assert isinstance(raised.value, OSError) or "refused" in str(raised.value).lower()
    assert only(exporter, "amqp.publish").status.status_code is StatusCode.ERROR

    proxy.start()
    try:
        producer.publish("second", routing_key=names["key"])
        assert receive(shared, queue).payload == "second"
    finally:
        connection.release()
        proxy.kill()


def test_broker_connection_killed_then_recovers(
    baseplate: Baseplate,
    broker: tuple[Connection, Exchange, Queue],
    exporter: InMemorySpanExporter,
    names: dict[str, str],
) -> None:
    shared, exchange, queue = broker
    proxy = TcpProxy(("127.0.0.1", 5672))
    proxy.start()
    connection = Connection(f"amqp://guest:guest@127.0.0.1:{proxy.port}//", connect_timeout=1)
    producer, _ = producer_for(baseplate, connection, exchange)
    try:
        producer.publish("before", routing_key=names["key"])
        assert receive(shared, queue).payload == "before"
        proxy.kill()

        with pytest.raises(OSError):
            producer.publish("lost", routing_key=names["key"])
        statuses = [span.status.status_code for span in finished(exporter, "amqp.publish")]
        assert statuses == [StatusCode.UNSET, StatusCode.ERROR]

        proxy.start()
        producer.publish("after", routing_key=names["key"])
        assert receive(shared, queue).payload == "after"
    finally:
        connection.release()
        proxy.kill()


def test_broker_timeout_fails_span(
    baseplate: Baseplate, exporter: InMemorySpanExporter, names: dict[str, str]
) -> None:
    # a listener that accepts and never answers stands in for a hung broker
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        connection = Connection(f"amqp://guest:guest@127.0.0.1:{port}//", connect_timeout=0.3)
        producer, _ = producer_for(baseplate, connection, Exchange(names["exchange"], "direct"))
        with pytest.raises(OperationalError, match="timed out"):
            producer.publish("never", routing_key=names["key"])
    assert only(exporter, "amqp.publish").status.status_code is StatusCode.ERROR


def test_exchange_argument_overrides_the_factory_exchange(
    baseplate: Baseplate, broker: tuple[Connection, Exchange, Queue], names: dict[str, str]
) -> None:
    connection, exchange, queue = broker
    producer, _ = producer_for(baseplate, connection, Exchange("unused", "direct"))
    producer.publish("routed", routing_key=names["key"], exchange=exchange)
    assert receive(connection, queue).payload == "routed"
