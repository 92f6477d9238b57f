"""EventQueue against real POSIX message queues."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from baseplate.core import Baseplate, RequestContext
from baseplate.events import (
    MAX_EVENT_SIZE,
    MAX_QUEUE_SIZE,
    Event,
    EventError,
    EventQueue,
    EventQueueFullError,
    EventTooLargeError,
    serialize_v2_event,
)
from baseplate.message_queue import TimedOutError
from baseplate.thrift.gen.baseplate.ttypes import Session

from .conftest import TEST_QUEUE_MESSAGE_SIZE, TEST_QUEUE_MESSAGES, EventQueues


def test_put_sends_the_serialized_event(queues: EventQueues) -> None:
    queue = queues.event_queue()
    event = Event("topic", "type")
    event.set_field("key", "value")

    queue.put(event)

    message = queues.reader().get(timeout=1)
    assert message == event.serialize()
    assert json.loads(message)["payload"] == {"key": "value"}


def test_v2_serializer(queues: EventQueues) -> None:
    queue = queues.event_queue(event_serializer=serialize_v2_event)

    queue.put(Session(id="abc"))

    assert queues.reader().get(timeout=1) == b'{"1":{"str":"abc"}}'


def test_event_larger_than_the_limit_is_refused(queues: EventQueues) -> None:
    queue = queues.event_queue(event_serializer=lambda event: event)

    with pytest.raises(EventTooLargeError) as info:
        queue.put(b"x" * (MAX_EVENT_SIZE + 1))

    assert info.value.size == MAX_EVENT_SIZE + 1
    assert isinstance(info.value, EventError)
    with pytest.raises(TimedOutError):
        queues.reader().get(timeout=0)


def test_event_larger_than_an_existing_smaller_queue_allows_is_refused(
    queues: EventQueues,
) -> None:
    queue = queues.event_queue(event_serializer=lambda event: event)

    with pytest.raises(EventTooLargeError, match=str(TEST_QUEUE_MESSAGE_SIZE)):
        queue.put(b"x" * (TEST_QUEUE_MESSAGE_SIZE + 1))


def test_full_queue_raises_without_blocking(queues: EventQueues) -> None:
    queue = queues.event_queue(event_serializer=lambda event: event)
    for i in range(TEST_QUEUE_MESSAGES):
        queue.put(b"%d" % i)

    with pytest.raises(EventQueueFullError, match=queues.name):
        queue.put(b"one too many")

    assert queues.reader().get(timeout=1) == b"0"


def test_unserializable_event_is_refused(queues: EventQueues) -> None:
    queue = queues.event_queue(event_serializer=serialize_v2_event)

    with pytest.raises(TypeError, match="Thrift struct"):
        queue.put(object())
    with pytest.raises(TimedOutError):
        queues.reader().get(timeout=0)


def test_queue_is_available_on_the_context(queues: EventQueues) -> None:
    queue = queues.event_queue()
    baseplate = Baseplate(tracer_provider=TracerProvider())
    baseplate.add_to_context("events", queue)
    context = RequestContext()

    baseplate.make_server_span(context, "handler")

    assert context.events is queue  # type: ignore[attr-defined]
    context.events.put(Event("topic", "type"))  # type: ignore[attr-defined]
    assert json.loads(queues.reader().get(timeout=1))["event_topic"] == "topic"


def test_new_queue_fits_the_kernel_limits(caplog: pytest.LogCaptureFixture) -> None:
    name = f"test-new-{uuid.uuid4().hex[:12]}"
    queue = EventQueue(name)
    try:
        limits = {
            limit: int(Path(f"/proc/sys/fs/mqueue/{limit}").read_text())
            for limit in ("msg_max", "msgsize_max")
        }
        assert queue.queue.max_messages == min(MAX_QUEUE_SIZE, limits["msg_max"])
        assert queue.queue.max_message_size == min(MAX_EVENT_SIZE, limits["msgsize_max"])
        if limits["msg_max"] < MAX_QUEUE_SIZE:
            assert "kernel limit" in caplog.text

        queue.put(Event("topic", "type"))
        assert json.loads(queue.queue.get(timeout=1))["event_topic"] == "topic"
    finally:
        queue.queue.unlink()
        queue.queue.close()


@pytest.mark.parametrize("name", ["", "a/b", "x" * 248])
def test_bad_queue_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid event queue name"):
        EventQueue(name)
