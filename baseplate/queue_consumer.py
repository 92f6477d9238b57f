"""Long-running consumers of AMQP (RabbitMQ) queues, built on kombu.

:func:`consume` runs a handler for every message of a queue, each inside its own server span,
acknowledging a message only once its handler has returned. :class:`KombuConsumer` and
:class:`BaseKombuConsumer` give more direct control: a background message pump fills a local
work queue, and the application takes messages (and acks them) itself.

Messages whose headers carry trace headers (baseplate's ``X-Trace``, ``X-Parent``,
``X-Span``, ``X-Sampled``, ``X-Flags``, W3C ``traceparent`` or B3) continue the producer's
trace.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import kombu
from kombu import Queue, binding
from kombu.message import Message
from kombu.mixins import ConsumerMixin
from opentelemetry.context import Context

from baseplate._span import RequestContext, TraceInfo, trace_info_from_context
from otel_bridge.propagation import case_insensitive_getter, http_propagator

if TYPE_CHECKING:
    from baseplate.core import Baseplate, Span

logger = logging.getLogger(__name__)

#: What :func:`consume` calls for each message: ``handler(context, message_body, message)``.
Handler = Callable[[RequestContext, Any, Message], None]

ConsumerT = TypeVar("ConsumerT", bound="BaseKombuConsumer")

#: How many unacknowledged messages the broker hands a consumer by default.
DEFAULT_QUEUE_SIZE = 100

_DELIVERY_INFO_TAGS = ("routing_key", "consumer_tag", "delivery_tag", "exchange")


def trace_info_from_message(message: Message) -> TraceInfo | None:
    """Return the upstream trace info carried in a message's headers, if any.

    Header names are case-insensitive; values that are not valid trace headers are ignored,
    in which case the message starts a new trace.
    """
    headers = message.headers or {}
    carrier: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # AMQP tables carry numbers natively
        if isinstance(name, str) and isinstance(value, str):
            carrier[name] = value
    if not carrier:
        return None
    extracted = http_propagator().extract(carrier, Context(), getter=case_insensitive_getter)
    return trace_info_from_context(extracted)


def _tag_delivery_info(span: Span, message: Message) -> None:
    delivery_info = message.delivery_info or {}
    for key in _DELIVERY_INFO_TAGS:
        span.set_tag(key, delivery_info.get(key, ""))


def consume(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    connection: kombu.Connection,
    queue_name: str,
    routing_keys: Sequence[str],
    handler: Handler,
) -> NoReturn:
    """Create a long-running process to consume messages from a queue.

    A queue with name ``queue_name`` is created and bound to the ``routing_keys`` so messages
    published to the ``routing_keys`` are routed to the queue.

    Next, the process registers a consumer that receives messages from the queue and feeds
    them to the ``handler``.

    The ``handler`` function must take 3 arguments:

    * ``context``: a baseplate context
    * ``message_body``: the body of the message (``message.body``)
    * ``message``: :py:class:`kombu.message.Message`

    Each message is handled inside its own server span named ``queue_name`` (so it is traced
    and timed like a request); when the message headers carry trace headers, the span
    continues that trace. As with :py:meth:`KombuConsumer.get_message`, the server span has a
    ``kombu.get_message`` child span tagged with the message's delivery information (the
    wait for the message happens before the server span starts, since the span's trace comes
    from the message, so this child span records the delivery rather than the wait).

    The consumer will automatically ``ack`` each message after the handler method exits. If
    there is an error in processing and the message must be retried the handler should raise
    an exception to crash the process. This will prevent the ``ack`` and the message will be
    re-queued at the head of the queue; the exception is re-raised from this function.

    :param baseplate: A baseplate instance for the service.
    :param exchange: The exchange the queue is bound to.
    :param connection: The broker connection (the consumer uses its own copy of it).
    :param queue_name: The name of the queue.
    :param routing_keys: List of routing keys.
    :param handler: The handler method.
    """
    message_queue = Queue(
        name=queue_name,
        exchange=exchange,
        bindings=[binding(exchange, routing_key=routing_key) for routing_key in routing_keys],
    )
    handler_name = getattr(handler, "__name__", repr(handler))
    logger.info("registering %s as a handler for %r", handler_name, message_queue)
    consumer = BaseKombuConsumer.new(connection, [message_queue])

    logger.info("waiting for messages")
    try:
        while True:
            # The message is taken before its server span exists because the span's trace
            # comes from the message headers; the span times the handling, not the wait.
            message = consumer.get_message()
            context = RequestContext()
            server_span = baseplate.make_server_span(
                context, queue_name, trace_info_from_message(message)
            )
            try:
                with server_span:
                    _tag_delivery_info(server_span, message)
                    _record_delivery(server_span, message)
                    handler(context, message.body, message)
                    message.ack()
            except BaseException:
                _requeue(message)
                raise
    finally:
        consumer.stop()


def _record_delivery(server_span: Span, message: Message) -> None:
    # The child span KombuConsumer.get_message records for taking a message, recorded once
    # the message is taken (the wait for it came before the server span started).
    child_span = server_span.make_child("kombu.get_message")
    child_span.set_tag("kind", "consumer")
    with child_span:
        _tag_delivery_info(child_span, message)


def _requeue(message: Message) -> None:
    # The broker would requeue the message anyway once the connection closes; rejecting it
    # now puts it back straight away, before the process finishes crashing.
    try:
        if not message.acknowledged:
            message.requeue()
    except Exception as exc:
        logger.warning("could not requeue message: %s", exc)


class _ConsumerWorker(ConsumerMixin):
    """Receives messages on its own connection and puts them on the work queue."""

    def __init__(
        self,
        connection: kombu.Connection,
        queues: Sequence[kombu.Queue],
        work_queue: queue.Queue[Message],
        prefetch_count: int | None,
    ) -> None:
        self.connection = connection
        self.queues = list(queues)
        self.work_queue = work_queue
        self.prefetch_count = prefetch_count

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:
        # The broker sends at most as many unacknowledged messages as the work queue holds,
        # so the pump never waits on a full work queue for long (``None``: no limit).
        return [
            Consumer(
                queues=self.queues,
                on_message=self.on_message,
                prefetch_count=self.prefetch_count,
            )
        ]

    def on_message(self, message: Message) -> None:
        self.work_queue.put(message)


class BaseKombuConsumer:
    """Base object for consuming messages from a queue.

    A worker thread accepts messages from the queue and puts them in a local work queue. The
    "real" consumer can then get messages with :py:meth:`get_message` or
    :py:meth:`get_batch`. It is that consumer's responsibility to ``ack`` or ``reject``
    messages.

    Can be used directly, outside of standard baseplate context.
    """

    def __init__(self, worker: _ConsumerWorker, worker_thread: threading.Thread) -> None:
        self.worker = worker
        self.worker_thread = worker_thread

    @classmethod
    def new(
        cls: type[ConsumerT],
        connection: kombu.Connection,
        queues: Sequence[kombu.Queue],
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> ConsumerT:
        """Create and initialize a consumer.

        :param connection: The broker connection (the worker uses its own copy of it).
        :param queues: List of :py:class:`kombu.Queue` objects to consume from.
        :param queue_size: The most messages the broker hands this consumer before they are
            acknowledged (its prefetch count); they wait in the local work queue until taken
            with :py:meth:`get_message` or :py:meth:`get_batch`. Messages taken but not yet
            acknowledged count too, so ack (or reject) messages to receive more. ``0`` means
            no limit (not recommended: the broker sends the whole queue ahead).
        :raises ValueError: ``queue_size`` is negative.
        """
        if queue_size < 0:
            raise ValueError(f"queue_size must not be negative, not {queue_size!r}")
        work_queue: queue.Queue[Message] = queue.Queue(maxsize=queue_size)
        worker = _ConsumerWorker(connection, queues, work_queue, queue_size or None)
        worker_thread = threading.Thread(
            target=worker.run, name="consumer message pump", daemon=True
        )
        worker_thread.start()
        return cls(worker, worker_thread)

    def get_message(self, timeout: float | None = None) -> Message:
        """Return a single message.

        :param timeout: The maximum time to wait in seconds, or ``None`` to wait as long as
            it takes.
        :raises queue.Empty: No message arrived within ``timeout``.
        """
        return self.worker.work_queue.get(timeout=timeout)

    def get_batch(self, max_items: int, timeout: float | None) -> list[Message]:
        """Return a batch of messages.

        Returns as soon as ``max_items`` messages are available or ``timeout`` has passed,
        whichever comes first (so possibly with an empty list).

        :param max_items: The maximum batch size.
        :param timeout: The maximum time to wait in seconds, or ``None`` for no timeout.
        """
        work_queue = self.worker.work_queue
        deadline = None if timeout is None else time.monotonic() + timeout
        batch: list[Message] = []
        while len(batch) < max_items:
            try:
                if deadline is None:
                    batch.append(work_queue.get())
                    continue
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    batch.append(work_queue.get(timeout=remaining))
                else:
                    batch.append(work_queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the message pump and close its connection.

        Messages not acknowledged by then (including any still in the local work queue)
        return to the broker's queue; they can no longer be acknowledged through this
        consumer.
        """
        self.worker.should_stop = True
        if self.worker_thread is not threading.current_thread():
            self.worker_thread.join(timeout)


class KombuConsumer(BaseKombuConsumer):
    """Consumer for use in baseplate.

    The :py:meth:`get_message` and :py:meth:`get_batch` methods will automatically record
    diagnostic information: a child span of the given server span.
    """

    def get_message(  # type: ignore[override]
        self, server_span: Span | None = None, timeout: float | None = None
    ) -> Message:
        """Return a single message, inside a ``kombu.get_message`` child span.

        The child span is tagged with the message's ``routing_key``, ``consumer_tag``,
        ``delivery_tag`` and ``exchange``.

        :param server_span: The span of the work the message is for (without one, nothing
            is recorded).
        :param timeout: The maximum time to wait in seconds, or ``None`` to wait as long as
            it takes.
        :raises queue.Empty: No message arrived within ``timeout``.
        """
        if server_span is None:
            return BaseKombuConsumer.get_message(self, timeout)
        child_span = server_span.make_child("kombu.get_message")
        child_span.set_tag("kind", "consumer")
        with child_span:
            message = BaseKombuConsumer.get_message(self, timeout)
            _tag_delivery_info(child_span, message)
            return message

    def get_batch(  # type: ignore[override]
        self, server_span: Span, max_items: int, timeout: float | None
    ) -> list[Message]:
        """Return a batch of messages, inside a ``kombu.get_batch`` child span.

        The child span is tagged with the ``message_count``.

        :param server_span: The span of the work the messages are for.
        :param max_items: The maximum batch size.
        :param timeout: The maximum time to wait in seconds, or ``None`` for no timeout.
        """
        child_span = server_span.make_child("kombu.get_batch")
        child_span.set_tag("kind", "consumer")
        with child_span:
            messages = BaseKombuConsumer.get_batch(self, max_items, timeout)
            child_span.set_tag("message_count", len(messages))
            return messages


__all__ = [
    "BaseKombuConsumer",
    "KombuConsumer",
    "consume",
    "trace_info_from_message",
]
