"""Events for the data pipeline: build them, queue them locally, publish them.

Applications build an :py:class:`Event` (v1, schemaless JSON) or a Thrift struct (v2),
and :py:meth:`EventQueue.put` it onto the host's POSIX queue ``/events-<name>``. The
publisher daemon ``python -m baseplate.events.publisher --queue-name <name> CONFIG``
batches, signs and sends them to the event collector.
"""

from baseplate.events.queue import (
    MAX_EVENT_SIZE,
    MAX_QUEUE_SIZE,
    DebugLogger,
    Event,
    EventError,
    EventLogger,
    EventQueue,
    EventQueueFullError,
    EventTooLargeError,
    FieldKind,
    serialize_v1_event,
    serialize_v2_event,
)

__all__ = [
    "MAX_EVENT_SIZE",
    "MAX_QUEUE_SIZE",
    "DebugLogger",
    "Event",
    "EventError",
    "EventLogger",
    "EventQueue",
    "EventQueueFullError",
    "EventTooLargeError",
    "FieldKind",
    "serialize_v1_event",
    "serialize_v2_event",
]
