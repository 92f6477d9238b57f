"""Building events and handing them to the local event publisher.

Events are serialized in the application and put onto a POSIX message queue named
``/events-<name>`` on the same host; the event publisher daemon
(``python -m baseplate.events.publisher``) batches them and sends them to the collector.
:py:meth:`EventQueue.put` never blocks: a full queue or an oversize event is an immediate
exception the application may ignore.
"""

from __future__ import annotations

import calendar
import datetime
import json
import logging
import time
import uuid
import warnings
from collections.abc import Callable
from enum import Enum
from typing import Any, Optional, Union

from baseplate.context import ContextFactory
from baseplate.message_queue import (
    MQUEUE_LIMITS_DIR,
    InvalidParametersError,
    MessageQueue,
    TimedOutError,
)

logger = logging.getLogger(__name__)

#: The largest serialized event, in bytes, that the event queue accepts.
MAX_EVENT_SIZE = 102400
#: How many serialized events the event queue holds before puts fail.
MAX_QUEUE_SIZE = 10000


def _kernel_limit(name: str) -> Optional[int]:
    try:
        with open(f"{MQUEUE_LIMITS_DIR}/{name}") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return None


def open_event_queue(name: str, max_messages: int = MAX_QUEUE_SIZE) -> MessageQueue:
    """Open (creating if needed) the POSIX queue ``/events-<name>``.

    A new queue holds ``max_messages`` events of up to :py:data:`MAX_EVENT_SIZE` bytes.
    Where the kernel's limits (``fs.mqueue.msg_max`` and ``fs.mqueue.msgsize_max``) are
    lower, as they are by default on Linux, the queue is created as large as they allow
    and a warning says how to raise them; events larger than the queue's message size
    are then refused with :py:exc:`EventTooLargeError`.

    :raises ValueError: ``name`` is empty, too long or contains a slash.
    """
    queue_name = "/events-" + name
    if not name or "/" in name or len(queue_name) > 255:
        raise ValueError(
            f"invalid event queue name {name!r}: it must be 1 to 247 characters, without '/'"
        )
    try:
        return MessageQueue(queue_name, max_messages=max_messages, max_message_size=MAX_EVENT_SIZE)
    except InvalidParametersError as exc:
        msg_max = _kernel_limit("msg_max")
        msgsize_max = _kernel_limit("msgsize_max")
        if msg_max is None or msgsize_max is None:
            raise
        logger.warning("%s Using the largest queue the kernel allows instead.", exc)
        return MessageQueue(
            queue_name,
            max_messages=min(max_messages, msg_max),
            max_message_size=min(MAX_EVENT_SIZE, msgsize_max),
        )


class FieldKind(Enum):
    """Field kinds: where a field goes in a v1 event's payload."""

    NORMAL = None
    """For fields normal fields with no hashing/indexing requirements."""

    OBFUSCATED = "obfuscated_data"
    """For fields containing sensitive information like IP addresses that must be treated
    with care."""

    HIGH_CARDINALITY = "interana_excluded"
    """For fields that should not be indexed due to high cardinality (e.g. not used in
    Interana)."""


class EventError(Exception):
    """Base class for event related exceptions."""


class EventTooLargeError(EventError):
    """Raised when a serialized event is too large to send."""

    def __init__(self, size: int, limit: int = MAX_EVENT_SIZE) -> None:
        super().__init__(f"Event is too large to send ({size:d} bytes, at most {limit:d})")
        self.size = size
        self.limit = limit


class EventQueueFullError(EventError):
    """Raised when the queue of events is full.

    This usually indicates that the event publisher is having trouble talking to the
    event collector.
    """

    def __init__(self, name: str = "") -> None:
        queue = f" {name!r}" if name else ""
        super().__init__(f"The event queue{queue} is full.")


def _check_serializable(key: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"event field {key!r}: value {value!r} of type {type(value).__name__} "
            f"cannot be serialized as JSON ({exc})"
        ) from None


def _timestamp_ms(timestamp: datetime.datetime) -> int:
    offset = timestamp.utcoffset()
    if offset is not None and offset.total_seconds() != 0:
        raise ValueError(f"event timestamps must be in UTC, got {timestamp.isoformat()}")
    # whole seconds, as baseplate has always sent them
    return calendar.timegm(timestamp.timetuple()) * 1000


class Event:
    """An event.

    :param topic: The event topic (``event_topic`` on the wire).
    :param event_type: The event type (``event_type`` on the wire).
    :param timestamp: When the event happened, a :py:class:`datetime.datetime` in UTC
        (naive values are taken to be UTC), sent in whole seconds; now (to the
        millisecond) if not given.
    :param id: A unique id for the event (``uuid`` on the wire); a new random UUID if not
        given.
    :raises ValueError: ``timestamp`` has a time zone other than UTC.
    """

    def __init__(
        self,
        topic: str,
        event_type: str,
        timestamp: Optional[datetime.datetime] = None,
        id: Any = None,
    ) -> None:
        self.topic = topic
        self.event_type = event_type
        self.timestamp: float
        if timestamp:
            self.timestamp = _timestamp_ms(timestamp)
        else:
            self.timestamp = time.time() * 1000
        self.id = id or uuid.uuid4()
        self.payload: dict[str, Any] = {}
        self.payload_types: dict[str, FieldKind] = {}

    def get_field(self, key: str) -> Any:
        """Get the value of a field in the event.

        If the field is not present, :py:data:`None` is returned.

        :param key: The name of the field.
        """
        return self.payload.get(key)

    def set_field(
        self,
        key: str,
        value: Any,
        obfuscate: bool = False,
        kind: FieldKind = FieldKind.NORMAL,
    ) -> None:
        """Set the value for a field in the event.

        ``None`` and ``""`` are not sent (the collector treats a missing field the same
        way), so setting them leaves the event unchanged; ``0`` and ``False`` are sent.
        The value is stored as given: one that cannot be serialized as JSON makes
        :py:meth:`serialize` (and so :py:meth:`EventQueue.put`) raise :py:exc:`TypeError`.

        :param key: The name of the field.
        :param value: The value to set the field to. Should be JSON serializable.
        :param obfuscate: Deprecated; the same as ``kind=FieldKind.OBFUSCATED``.
        :param kind: The kind the field is. Used to determine what section of the payload
            the field belongs in when serialized.
        """
        if value is None or (isinstance(value, str) and value == ""):
            return

        if obfuscate:
            warnings.warn(
                "Passing obfuscate to set_field is deprecated in favor of passing "
                "kind=FieldKind.OBFUSCATED.",
                DeprecationWarning,
                stacklevel=2,
            )
            kind = FieldKind.OBFUSCATED

        self.payload[key] = value
        self.payload_types[key] = kind

    def serialize(self) -> bytes:
        """Return the event in the v1 JSON format, UTF-8 encoded.

        Fields of kind OBFUSCATED go under ``payload.obfuscated_data`` and fields of kind
        HIGH_CARDINALITY under ``payload.interana_excluded``.

        :raises TypeError: The event cannot be serialized: a field's value is not JSON
            (the message names the field; NaN and infinities are not JSON either), or a
            NORMAL field is named like the section its event also has fields of another
            kind in.
        """
        payload: dict[str, Any] = {}
        sections: set[str] = set()
        for key, value in self.payload.items():
            section_name = self.payload_types[key].value
            if section_name is None:
                if key in sections:
                    raise self._collision(key)
                payload[key] = value
            else:
                if section_name in payload and section_name not in sections:
                    raise self._collision(section_name)
                sections.add(section_name)
                payload.setdefault(section_name, {})[key] = value

        document = {
            "event_topic": self.topic,
            "event_type": self.event_type,
            "event_ts": int(self.timestamp),
            "uuid": str(self.id),
            "payload": payload,
        }
        try:
            return json.dumps(document, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            for key, value in self.payload.items():
                _check_serializable(key, value)
            raise TypeError(f"the event cannot be serialized as JSON ({exc})") from None

    def _collision(self, section_name: str) -> TypeError:
        return TypeError(
            f"event field {section_name!r} is named like the payload section that fields "
            f"of kind {FieldKind(section_name).name} go in; give one of them another name"
        )


def serialize_v1_event(event: Event) -> Any:
    """Serialize an Event object for the V1 event protocol.

    :param event: An event object.
    :return: ``event.serialize()``: the v1 JSON document as bytes.
    """
    return event.serialize()


def serialize_v2_event(event: Any) -> bytes:
    """Serialize a Thrift struct to bytes for the V2 event protocol.

    The struct is written with Thrift's TJSONProtocol.

    :param event: A Thrift struct from the event schemas.
    :raises TypeError: ``event`` is not a Thrift struct.
    """
    if not callable(getattr(event, "write", None)):
        raise TypeError(f"a v2 event must be a Thrift struct, got {type(event).__name__}")
    # thrift is an optional dependency, needed only by applications sending v2 events.
    from thrift import TSerialization
    from thrift.protocol.TJSONProtocol import TJSONProtocolFactory

    return TSerialization.serialize(event, TJSONProtocolFactory())


class EventLogger:
    """Something that records events described by keyword arguments.

    :py:class:`baseplate.experiments.Experiments` calls :py:meth:`log` for bucketing and
    exposure events; applications provide an implementation that turns the arguments into
    events for their pipeline (e.g. put onto an :py:class:`EventQueue`).
    """

    def log(self, **kwargs: Any) -> None:
        """Record one event."""
        raise NotImplementedError


class DebugLogger(EventLogger):
    """An :py:class:`EventLogger` that only writes the events to the debug log."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(__name__)

    def log(self, **kwargs: Any) -> None:
        """Write the event's arguments to the debug log."""
        self.logger.debug("Would send event: %s", kwargs)


class EventQueue(ContextFactory):
    """A queue to transfer events to the publisher.

    :param name: The name of the event queue to send to. This specifies which publisher
        should send the events which can be useful for routing to different event
        pipelines (prod/test/v2 etc.). The POSIX queue is ``/events-<name>``, created if
        missing with room for :py:data:`MAX_QUEUE_SIZE` events of at most
        :py:data:`MAX_EVENT_SIZE` bytes (or as much as the kernel's limits allow, see
        :py:func:`open_event_queue`).
    :param event_serializer: A callable that takes an event object and returns serialized
        bytes ready to send on the wire. See below for options.
    :param queue: (Optional) An already open
        :py:class:`~baseplate.message_queue.MessageQueue` to use instead of opening
        ``/events-<name>``.

    The EventQueue also implements ``ContextFactory`` so it can be used with
    :py:meth:`~baseplate.core.Baseplate.add_to_context`; the context attribute is the
    queue itself.
    """

    def __init__(
        self,
        name: str,
        event_serializer: Callable[[Any], Union[bytes, str]] = serialize_v1_event,
        queue: Optional[MessageQueue] = None,
    ) -> None:
        self.name = name
        self.queue = queue if queue is not None else open_event_queue(name)
        self.serialize_event = event_serializer

    def put(self, event: Any) -> None:
        """Add an event to the queue.

        The queue is local to the server this code is run on. The event publisher on the
        server will take these events and send them to the collector. This never blocks.

        :param event: The event to send. The type of event object passed in depends on
            the selected ``event_serializer``.
        :raises: :py:exc:`EventTooLargeError` The serialized event is too large.
        :raises: :py:exc:`EventQueueFullError` The queue is full. Events are not being
            published fast enough.
        :raises: :py:exc:`TypeError` or :py:exc:`ValueError` The serializer could not
            serialize the event.
        """
        serialized = self.serialize_event(event)
        size = len(serialized.encode("utf-8") if isinstance(serialized, str) else serialized)
        if size > MAX_EVENT_SIZE:
            raise EventTooLargeError(size)

        try:
            self.queue.put(serialized, timeout=0)
        except TimedOutError:
            raise EventQueueFullError(self.name)
        except InvalidParametersError:
            # An existing queue may have been created with a smaller message size limit.
            raise EventTooLargeError(size, self.queue.max_message_size)

    def make_object_for_context(self, name: str, span: Any) -> EventQueue:
        """Return this queue: the same object serves every request."""
        return self
