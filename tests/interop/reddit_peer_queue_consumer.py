"""Reddit's own queue consumer and Kombu producer as a peer, against the real RabbitMQ.

Run as a script by ``test_reddit_queue_consumer_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout). Each sub-command reads its request as JSON on stdin and prints its
answer as one JSON line on stdout.

The drivers below take a :class:`~types.SimpleNamespace` of the baseplate pieces to use
(``core``, ``queue_consumer``, ``context_kombu``) and import nothing from baseplate
themselves: the test imports this file and runs the very same drivers with OUR pieces, so
both implementations run exactly the same scenarios. Every observer callback is recorded
(with ``reddit_peer_core.Recorder``), interleaved with what the handler saw.

Usage: ``python -I reddit_peer_queue_consumer.py consume|api|cross``
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import kombu

try:  # imported by the test
    from . import reddit_peer_core as core_helpers
except ImportError:  # run as the peer script (``-I``: its directory is not on sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reddit_peer_core as core_helpers  # type: ignore[no-redef]

Recorder = core_helpers.Recorder
error_name = core_helpers.error_name

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"

#: Trace ids sent in message headers (decimal); the Recorder names them ``up.*``.
UP_TRACE, UP_PARENT, UP_SPAN = 1001, 2002, 3003
TRACE_HEADERS = {"X-Trace": "1001", "X-Parent": "2002", "X-Span": "3003", "X-Sampled": "1"}

#: The name of the message pump threads both implementations start.
PUMP_THREAD = "consumer message pump"


class HandlerFailed(Exception):
    """Raised by the test handlers (on a ``"stop"`` message) to end consume()."""


# --- broker helpers ------------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def broker_state(queue_name: str) -> dict[str, Any]:
    """``{"ready": n, "consumers": n}`` of a queue, or ``{"missing": True}``."""
    with kombu.Connection(AMQP_URL) as connection:
        try:
            _, ready, consumers = connection.channel().queue_declare(queue_name, passive=True)
        except connection.channel_errors:
            return {"missing": True}
    return {"ready": ready, "consumers": consumers}


def queue_flags(queue_name: str) -> dict[str, Any]:
    """The ``durable``/``auto_delete`` flags the queue was declared with (the broker refuses
    a redeclaration with other flags), and whether another connection may use it."""
    with kombu.Connection(AMQP_URL) as connection:
        for durable in (True, False):
            for auto_delete in (False, True):
                try:
                    connection.channel().queue_declare(
                        queue_name, durable=durable, auto_delete=auto_delete, exclusive=False
                    )
                except connection.channel_errors:
                    continue
                return {"durable": durable, "auto_delete": auto_delete, "exclusive": False}
    return {"unknown": True}


def exchange_flags(name: str) -> dict[str, Any]:
    """The type and ``durable``/``auto_delete`` flags an exchange was declared with."""
    with kombu.Connection(AMQP_URL) as connection:
        for type_ in ("direct", "topic", "fanout"):
            for durable in (True, False):
                for auto_delete in (False, True):
                    try:
                        connection.channel().exchange_declare(
                            name, type_, durable=durable, auto_delete=auto_delete
                        )
                    except connection.channel_errors:
                        continue
                    return {"type": type_, "durable": durable, "auto_delete": auto_delete}
    return {"unknown": True}


def publish_plain(exchange_name: str, messages: list[list[Any]]) -> None:
    """Publish ``[body, routing_key, headers]`` messages with a plain kombu producer."""
    exchange = kombu.Exchange(exchange_name, "direct")
    with kombu.Connection(AMQP_URL) as connection:
        producer = connection.Producer()
        for body, routing_key, headers in messages:
            producer.publish(body, exchange=exchange, routing_key=routing_key, headers=headers)


def take_one(queue_name: str) -> dict[str, Any] | None:
    """Take (and ack) the message at the head of a queue."""
    with kombu.Connection(AMQP_URL) as connection:
        message = kombu.Queue(queue_name)(connection.channel()).get()
        if message is None:
            return None
        message.ack()
        return {"body": message.decode(), "redelivered": message.delivery_info["redelivered"]}


def pump_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == PUMP_THREAD and t.is_alive()]


def stop_workers(workers: list[Any], threads: list[threading.Thread]) -> None:
    """Stop message pumps (``ConsumerMixin.should_stop``), all at once, and wait for them.

    A pump waiting to put a message on a full work queue (reddit's, whose broker sends the
    whole queue ahead) only sees ``should_stop`` once there is room: the work queues are
    emptied (without acknowledging: those messages go back to the broker) until it stops.
    """
    for worker in workers:
        worker.should_stop = True
    deadline = time.monotonic() + 20
    for worker, thread in zip(workers, threads, strict=True):
        while thread.is_alive() and time.monotonic() < deadline:
            while not worker.work_queue.empty():
                worker.work_queue.get_nowait()
            thread.join(0.05)


def stop_leftover_pumps() -> None:
    """Stop the pumps nobody can reach any more (reddit's consume() leaves its own running
    when the handler raises)."""
    threads = pump_threads()
    stop_workers([thread._target.__self__ for thread in threads], threads)  # type: ignore[attr-defined]


def tidy_events(events: list[list[Any]]) -> list[list[Any]]:
    """Consumer tags are random: name them."""
    tidy = []
    for event in events:
        if event[0] == "set_tag" and event[2] == "consumer_tag" and event[3]:
            event = [*event[:3], "<consumer tag>"]
        tidy.append(event)
    return tidy


def value_of(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, str):
        return {"str": value}
    return {"other": repr(value)}


# --- consume() -----------------------------------------------------------------------------


def drive_consume(side: SimpleNamespace, case: dict[str, Any]) -> dict[str, Any]:
    """Run ``consume()`` in a thread on ``case["queue"]`` bound to ``case["routing_keys"]``,
    publish ``case["publish"]`` once it consumes, until the handler raises on ``"stop"``."""
    rec = Recorder(side.core)
    rec.symbol(UP_TRACE, "up.trace")
    rec.symbol(UP_PARENT, "up.parent")
    rec.symbol(UP_SPAN, "up.span")
    baseplate = side.core.Baseplate()
    baseplate.register(rec.baseplate_observer())
    exchange = kombu.Exchange(case["exchange"], "direct")
    queue_name = case["queue"]
    handled: list[dict[str, Any]] = []
    messages: list[Any] = []

    def handler(context: Any, message_body: Any, message: Any) -> None:
        payload = message.decode()
        rec.events.append(["handler", payload])
        messages.append(message)
        headers = dict(message.headers or {})
        handled.append(
            {
                "payload": payload,
                "body": value_of(message_body),
                "body_is_message_body": message_body is message.body,
                "message_class": f"{type(message).__module__}.{type(message).__qualname__}",
                "state_in_handler": message._state,
                "routing_key": message.delivery_info.get("routing_key"),
                "custom_header": headers.get("custom"),
                "header_names": sorted(headers),
                "context_has_trace": hasattr(context, "trace"),
                "trace": None
                if not hasattr(context, "trace")
                else [context.trace.trace_id, context.trace.parent_id, context.trace.id],
            }
        )
        if payload == "stop":
            raise HandlerFailed("stop")

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            side.queue_consumer.consume(
                baseplate=baseplate,
                exchange=exchange,
                connection=kombu.Connection(AMQP_URL),
                queue_name=queue_name,
                routing_keys=case["routing_keys"],
                handler=handler,
            )
        except BaseException as exc:  # what consume() raised is the result
            outcome["raised"] = error_name(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    # (With messages already queued, consume() may be done before it is seen consuming.)
    wait_until(lambda: not thread.is_alive() or broker_state(queue_name).get("consumers", 0) >= 1)
    outcome["while_consuming"] = broker_state(queue_name)
    outcome["queue_flags"] = queue_flags(queue_name)
    outcome["exchange_flags"] = exchange_flags(case["exchange"])
    publish_plain(case["exchange"], case["publish"])
    thread.join(30)
    outcome["consume_returned"] = not thread.is_alive()
    # Right after consume() raised: is the message still held, is anything still consuming?
    outcome["after_raise"] = {
        "pump_threads_alive": len(pump_threads()),
        **broker_state(queue_name),
    }
    stop_leftover_pumps()
    outcome["states_after"] = [message._state for message in messages]
    wait_until(lambda: broker_state(queue_name).get("ready", 0) >= 1)
    outcome["head_of_queue"] = take_one(queue_name)
    outcome["left_in_queue"] = broker_state(queue_name)
    outcome["handled"] = handled
    outcome["events"] = tidy_events(rec.events)
    return outcome


# --- BaseKombuConsumer / KombuConsumer -----------------------------------------------------


def declare_queue(exchange_name: str, queue_name: str, routing_key: str) -> kombu.Queue:
    exchange = kombu.Exchange(exchange_name, "direct")
    message_queue = kombu.Queue(queue_name, exchange=exchange, routing_key=routing_key)
    with kombu.Connection(AMQP_URL) as connection:
        message_queue(connection.channel()).declare()
    return message_queue


def drive_api(side: SimpleNamespace, case: dict[str, Any]) -> dict[str, Any]:
    """The documented consumer API step by step: ``new``, ``get_message``, ``get_batch`` with
    and without timeouts, ``queue_size``, and what goes back to the broker on stop."""
    qc = side.queue_consumer
    exchange_name = case["exchange"]
    queues = case["queues"]  # four queue names
    result: dict[str, Any] = {}
    consumers: list[Any] = []

    def publish(routing_key: str, bodies: list[Any]) -> None:
        publish_plain(exchange_name, [[body, routing_key, {}] for body in bodies])

    def payloads(messages: list[Any]) -> list[Any]:
        return [message.decode() for message in messages]

    def queued(consumer: Any, count: int) -> None:
        wait_until(lambda: consumer.worker.work_queue.qsize() == count)

    def batch(consumer: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return payloads(consumer.get_batch(*args, **kwargs))
        except Exception as exc:
            return {"error": error_name(exc)}

    main = declare_queue(exchange_name, queues[0], "main")
    consumer = qc.BaseKombuConsumer.new(kombu.Connection(AMQP_URL), [main])
    consumers.append(consumer)
    thread = consumer.worker_thread
    result["thread"] = {
        "name": thread.name,
        "daemon": thread.daemon,
        "alive": thread.is_alive(),
        "maxsize": consumer.worker.work_queue.maxsize,
        "classes": [type(consumer).__name__, type(consumer.worker).__mro__[1].__name__],
    }
    to_ack: list[Any] = []
    publish("main", ["a0", "a1", "a2"])
    queued(consumer, 3)
    first = consumer.get_message()
    result["get_message"] = first.decode()
    result["get_message_class"] = type(first).__name__
    to_ack.append(first)
    taken = consumer.get_batch(max_items=2, timeout=None)
    result["batch_no_timeout"] = payloads(taken)
    to_ack.append(taken[0])  # the other one is never acknowledged
    result["batch_empty_timeout"] = batch(consumer, max_items=3, timeout=0.2)
    result["batch_empty_zero"] = batch(consumer, max_items=3, timeout=0)
    try:
        result["get_message_timeout"] = consumer.get_message(timeout=0.1).decode()
    except Exception as exc:
        result["get_message_timeout"] = {"error": error_name(exc)}

    publish("main", ["b0", "b1", "b2", "b3"])
    queued(consumer, 4)
    taken = consumer.get_batch(max_items=2, timeout=5)
    rest = consumer.get_batch(max_items=10, timeout=0.3)
    result["batch_max_items"] = [payloads(taken), payloads(rest)]
    to_ack += taken + rest

    publish("main", ["c0", "c1", "c2"])
    queued(consumer, 3)
    taken = consumer.get_batch(max_items=10, timeout=0)
    rest = consumer.get_batch(max_items=10, timeout=0.2)
    result["batch_zero_timeout"] = [payloads(taken), payloads(rest)]
    to_ack += taken + rest

    publish("main", ["d0"])
    queued(consumer, 1)
    taken = consumer.get_batch(max_items=0, timeout=0.2)
    rest = consumer.get_batch(max_items=10, timeout=0.2)
    result["batch_no_items"] = [payloads(taken), payloads(rest)]
    to_ack += taken + rest
    for message in to_ack:
        message.ack()

    # KombuConsumer: the same, each call recorded as a child span of the given server span.
    rec = Recorder(side.core)
    baseplate = side.core.Baseplate()
    baseplate.register(rec.baseplate_observer())
    traced = declare_queue(exchange_name, queues[1], "traced")
    publish("traced", ["k0", "k1", "k2"])
    kombu_consumer = qc.KombuConsumer.new(kombu.Connection(AMQP_URL), [traced])
    consumers.append(kombu_consumer)
    queued(kombu_consumer, 3)
    context = core_helpers.Context()
    with baseplate.make_server_span(context, "batch_job") as server_span:
        message = kombu_consumer.get_message(server_span)
        taken = kombu_consumer.get_batch(server_span, 5, 0.3)
        nothing = kombu_consumer.get_batch(server_span, 5, 0)
    result["kombu_consumer"] = [message.decode(), payloads(taken), payloads(nothing)]
    for each in [message, *taken]:
        each.ack()
    result["kombu_consumer_events"] = tidy_events(rec.events)

    # queue_size bounds the local work queue.
    small = declare_queue(exchange_name, queues[2], "small")
    publish("small", [0, 1, 2, 3, 4])
    bounded = qc.BaseKombuConsumer.new(kombu.Connection(AMQP_URL), [small], queue_size=2)
    consumers.append(bounded)
    queued(bounded, 2)
    time.sleep(0.3)  # let the broker send whatever it is going to send ahead
    result["queue_size_2"] = {
        "maxsize": bounded.worker.work_queue.maxsize,
        "local": bounded.worker.work_queue.qsize(),
        "broker": broker_state(queues[2]),
    }

    unbounded_queue = declare_queue(exchange_name, queues[3], "unbounded")
    try:
        unbounded = qc.BaseKombuConsumer.new(
            kombu.Connection(AMQP_URL), [unbounded_queue], queue_size=0
        )
    except Exception as exc:
        result["queue_size_0"] = {"error": error_name(exc)}
    else:
        consumers.append(unbounded)
        publish("unbounded", list(range(5)))
        queued(unbounded, 5)
        result["queue_size_0"] = {
            "maxsize": unbounded.worker.work_queue.maxsize,
            "local": unbounded.worker.work_queue.qsize(),
            "broker": broker_state(queues[3]),
        }

    stop_workers([each.worker for each in consumers], [each.worker_thread for each in consumers])
    result["stopped"] = [each.worker_thread.is_alive() for each in consumers]
    # Whatever was not acknowledged goes back to the broker's queues.
    result["back_in_queues"] = [broker_state(name).get("ready") for name in queues]
    return result


# --- KombuProducer -------------------------------------------------------------------------


def drive_publish(side: SimpleNamespace, case: dict[str, Any]) -> dict[str, Any]:
    """Publish ``case["publish"]`` (``[body, routing_key, headers]``) through the context's
    ``KombuProducer`` inside a server span; return the events and the publish spans' ids."""
    rec = Recorder(side.core)
    baseplate = side.core.Baseplate()
    baseplate.register(rec.baseplate_observer())
    exchange = kombu.Exchange(case["exchange"], "direct")
    factory = side.context_kombu.KombuProducerContextFactory(kombu.Connection(AMQP_URL), exchange)
    baseplate.add_to_context("amqp", factory)
    context: Any = core_helpers.Context()
    with baseplate.make_server_span(context, "submit"):
        for body, routing_key, headers in case["publish"]:
            context.amqp.publish(body, routing_key=routing_key, headers=headers)
    published = [span for span in rec.spans if span.name == "amqp.publish"]
    return {
        "events": rec.events,
        "spans": [[span.trace_id, span.parent_id, span.id] for span in published],
    }


# --- the peer: reddit's pieces ---------------------------------------------------------------


def reddit_side() -> SimpleNamespace:
    import baseplate.context.kombu as context_kombu
    import baseplate.core as core
    import baseplate.queue_consumer as queue_consumer

    return SimpleNamespace(core=core, queue_consumer=queue_consumer, context_kombu=context_kombu)


def main() -> None:
    command = sys.argv[1]
    request = json.loads(sys.stdin.read() or "null")
    logging.basicConfig(level=logging.CRITICAL)
    side = reddit_side()
    if command == "consume":
        answer: Any = [drive_consume(side, case) for case in request["cases"]]
    elif command == "api":
        answer = drive_api(side, request)
    elif command == "cross":
        answer = {
            "publish": drive_publish(side, request["publish"]),
            "consume": drive_consume(side, request["consume"]),
        }
    else:
        raise SystemExit(f"unknown command {command!r}")
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
