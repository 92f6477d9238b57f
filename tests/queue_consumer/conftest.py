"""Fixtures for the queue consumer tests: the real RabbitMQ, unique queues, inspectable spans."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from baseplate.core import Baseplate

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


class RecordingProcessor(SpanProcessor):
    """Keeps every span that ends, sampled or not."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.ended if span.name == name]


def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


@pytest.fixture
def recorder() -> RecordingProcessor:
    return RecordingProcessor()


@pytest.fixture
def baseplate(recorder: RecordingProcessor) -> Iterator[Baseplate]:
    provider = TracerProvider()
    provider.add_span_processor(recorder)
    bp = Baseplate(tracer_provider=provider)
    rate = bp.sampler.sample_rate
    bp.sampler.sample_rate = 1.0
    yield bp
    bp.sampler.sample_rate = rate
    provider.shutdown()


@pytest.fixture
def connection() -> Iterator[kombu.Connection]:
    conn = kombu.Connection(AMQP_URL)
    yield conn
    conn.release()


@pytest.fixture
def names() -> Iterator[Any]:
    """Unique queue and exchange names for one test; both deleted afterwards."""

    class Names:
        suffix = uuid.uuid4().hex[:12]
        queue = f"baseplate-test-q-{suffix}"
        exchange = f"baseplate-test-x-{suffix}"

    yield Names
    with kombu.Connection(AMQP_URL) as conn:
        channel = conn.channel()
        channel.queue_delete(Names.queue)
        channel.exchange_delete(Names.exchange)


@pytest.fixture
def exchange(names: Any) -> kombu.Exchange:
    return kombu.Exchange(names.exchange, "direct", durable=False)


@pytest.fixture
def publish(exchange: kombu.Exchange) -> Iterator[Callable[..., None]]:
    """Publish messages to the test exchange (declaring it)."""
    conn = kombu.Connection(AMQP_URL)
    producer = conn.Producer()

    def send(body: Any, routing_key: str, headers: dict[str, Any] | None = None) -> None:
        producer.publish(
            body, exchange=exchange, routing_key=routing_key, headers=headers or {},
            declare=[exchange], retry=True,
        )

    yield send
    conn.release()


def queue_depth(queue_name: str) -> int:
    """Messages ready in the broker's queue (not counting ones delivered but unacked)."""
    with kombu.Connection(AMQP_URL) as conn:
        _, message_count, _ = conn.channel().queue_declare(queue_name, passive=True)
        return int(message_count)


def declare_queue(
    exchange: kombu.Exchange, queue_name: str, routing_keys: list[str]
) -> kombu.Queue:
    """Declare the queue and its bindings so messages published before consuming are kept."""
    queue = kombu.Queue(
        queue_name,
        exchange=exchange,
        bindings=[kombu.binding(exchange, routing_key=key) for key in routing_keys],
    )
    with kombu.Connection(AMQP_URL) as conn:
        queue(conn.channel()).declare()
    return queue
