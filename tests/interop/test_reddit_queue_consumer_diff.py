"""baseplate.queue_consumer and baseplate.context.kombu against reddit's own baseplate, on the
real RabbitMQ.

The peer is reddit's baseplate run by ``reddit_peer_queue_consumer.py`` in its own process
(one per test, every scenario of the test in one request). Its drivers are also imported here
and run with OUR pieces, at the same time, on their own queues and exchanges, so both sides
run exactly the same scenarios: ``consume()`` with a handler (what it is given, the server
span and its children as an observer sees them, acks, a failing handler, the queue and
bindings declared), ``BaseKombuConsumer``/``KombuConsumer`` step by step, and messages
published by one side's ``KombuProducer`` consumed by the other's ``consume()``.

Where the two differ on purpose, each side's behaviour is asserted explicitly, with the
reason in a comment.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kombu
import pytest

import baseplate.context.kombu as context_kombu
import baseplate.core as core
import baseplate.queue_consumer as queue_consumer

from . import reddit_peer_queue_consumer as drivers
from .conftest import peer_command

PEER_SCRIPT = Path(__file__).with_name("reddit_peer_queue_consumer.py")

OURS = SimpleNamespace(core=core, queue_consumer=queue_consumer, context_kombu=context_kombu)

#: The delivery information both implementations tag ``kombu.get_message`` spans with.
DELIVERY_TAGS = ("routing_key", "consumer_tag", "delivery_tag", "exchange")


class Names:
    """Unique queue and exchange names, each with the placeholder results show it as."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.placeholders: dict[str, str] = {}

    def queue(self, placeholder: str) -> str:
        name = f"qc-diff-q-{uuid.uuid4().hex[:16]}"
        self.queues.append(name)
        self.placeholders[name] = placeholder
        return name

    def exchange(self, placeholder: str = "<exchange>") -> str:
        name = f"qc-diff-x-{uuid.uuid4().hex[:16]}"
        self.exchanges.append(name)
        self.placeholders[name] = placeholder
        return name

    def normalize(self, value: Any) -> Any:
        """``value`` (a JSON document) with every name replaced by its placeholder."""
        text = json.dumps(value)
        for name, placeholder in self.placeholders.items():
            text = text.replace(name, placeholder)
        return json.loads(text)


@pytest.fixture
def names() -> Iterator[Names]:
    made = Names()
    yield made
    with kombu.Connection(drivers.AMQP_URL) as connection:
        for name in made.queues:
            connection.channel().queue_delete(name)
        for name in made.exchanges:
            connection.channel().exchange_delete(name)


@pytest.fixture
def peer() -> Iterator[Callable[[str, Any], Callable[[], Any]]]:
    """``answer = peer(command, request)``: start the peer on ``request``; ``answer()``
    waits for its JSON answer (so our side can run meanwhile)."""
    started: list[subprocess.Popen[str]] = []

    def start(command: str, request: Any) -> Callable[[], Any]:
        process = subprocess.Popen(
            peer_command(command, script=PEER_SCRIPT),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdin is not None
        process.stdin.write(json.dumps(request))
        process.stdin.close()

        def answer() -> Any:
            assert process.stdout is not None and process.stderr is not None
            stdout = process.stdout.read()
            stderr = process.stderr.read()
            assert process.wait(120) == 0, stderr
            return json.loads(stdout.splitlines()[-1])

        return answer

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def pop_events(events: list[list[Any]], predicate: Callable[[list[Any]], bool]) -> list[Any]:
    """Remove (and return) the events matching ``predicate``."""
    taken = [event for event in events if predicate(event)]
    events[:] = [event for event in events if not predicate(event)]
    return taken


def created(events: list[list[Any]], label: str) -> dict[str, Any]:
    """Remove and return how the span labelled ``label`` was described when created."""
    (event,) = pop_events(
        events,
        lambda event: (
            (event[0] == "server_span_created" and event[1]["label"] == label)
            or (event[0] == "child_created" and event[2]["label"] == label)
        ),
    )
    description: dict[str, Any] = event[1] if event[0] == "server_span_created" else event[2]
    return description


def consume_cases(names: Names) -> list[dict[str, Any]]:
    exchange = names.exchange()
    return [
        {  # which routing keys reach the queue
            "exchange": exchange,
            "queue": names.queue("<bindings queue>"),
            "routing_keys": ["created", "deleted"],
            "publish": [
                ["one", "created", {}],
                ["two", "deleted", {}],
                ["not bound", "updated", {}],
                ["empty key", "", {}],
                ["stop", "deleted", {}],
            ],
        },
        {  # handler arguments, spans, acks, a failing handler, trace headers
            "exchange": exchange,
            "queue": names.queue("<queue>"),
            "routing_keys": ["created"],
            "publish": [
                ["one", "created", {"custom": "h1"}],
                [{"n": 2}, "created", {}],
                ["traced", "created", drivers.TRACE_HEADERS],
                ["stop", "created", {}],
            ],
        },
    ]


def test_consume(names: Names, peer: Callable[[str, Any], Callable[[], Any]]) -> None:
    reddit_cases, our_cases = consume_cases(names), consume_cases(names)
    answer = peer("consume", {"cases": reddit_cases})
    ours = names.normalize([drivers.drive_consume(OURS, case) for case in our_cases])
    theirs = names.normalize(answer())

    for side in (theirs, ours):
        for result in side:
            # The handler's exception ends consume() and the message it failed on is back
            # at the head of the queue (redelivered) once the message pump is gone (with the
            # process); nothing else is left.
            assert result["raised"] == "HandlerFailed"
            assert result["consume_returned"] is True
            assert result["head_of_queue"] == {"body": "stop", "redelivered": True}
            assert result["left_in_queue"] == {"ready": 0, "consumers": 0}
            # A durable, shared queue on the given exchange (declared as given).
            assert result["queue_flags"] == {
                "durable": True,
                "auto_delete": False,
                "exclusive": False,
            }
            assert result["exchange_flags"] == {
                "type": "direct",
                "durable": True,
                "auto_delete": False,
            }
            # Acked once the handler returned; the failed message never acknowledged.
            assert result["states_after"][:-1] == ["ACK"] * (len(result["states_after"]) - 1)

    # Reddit's consume() leaves its message pump running (holding the failed message,
    # unacknowledged) until the process exits, as the documentation's "crash the process"
    # expects; ours stops it and puts the message back at once.
    for result in theirs:
        assert result["after_raise"] == {"pump_threads_alive": 1, "ready": 0, "consumers": 1}
        assert result["states_after"][-1] == "RECEIVED"
    for result in ours:
        assert result["after_raise"] == {"pump_threads_alive": 0, "ready": 1, "consumers": 0}
        assert result["states_after"][-1] == "REQUEUED"

    # Bindings. The reference: the queue "is bound to the routing_keys". Reddit's consume()
    # makes one Queue per routing key, all with the same name, and kombu 5's Consumer keeps
    # one Queue per name: only the last key gets bound. Ours binds every key (and no others:
    # no binding with the empty routing key).
    assert [h["payload"] for h in theirs[0]["handled"]] == ["two", "stop"]
    assert [h["payload"] for h in ours[0]["handled"]] == ["one", "two", "stop"]

    reddit_run, our_run = theirs[1], ours[1]
    # What the handler is given: (context, message.body, kombu Message), unacknowledged.
    assert [h["payload"] for h in reddit_run["handled"]] == ["one", {"n": 2}, "traced", "stop"]
    for h in reddit_run["handled"] + our_run["handled"]:
        assert h["body_is_message_body"] is True
        assert h["message_class"] == "kombu.transport.pyamqp.Message"
        assert h["state_in_handler"] == "RECEIVED"
    without_trace = [
        {k: v for k, v in h.items() if k not in ("context_has_trace", "trace")}
        for h in reddit_run["handled"]
    ]
    assert without_trace == [
        {k: v for k, v in h.items() if k not in ("context_has_trace", "trace")}
        for h in our_run["handled"]
    ]
    assert without_trace[0]["custom_header"] == "h1"
    assert without_trace[1]["body"] == {"str": '{"n": 2}'}
    # Our make_server_span sets context.trace (as every integration does); reddit's
    # consume() gives the handler a bare context object.
    assert {h["context_has_trace"] for h in reddit_run["handled"]} == {False}
    assert {h["context_has_trace"] for h in our_run["handled"]} == {True}

    reddit_events, our_events = reddit_run["events"], our_run["events"]
    # Ours also tags the server span with the delivery information (reddit tags only the
    # kombu.get_message child).
    server_labels = {"<queue>", "<queue>#2", "<queue>#3", "<queue>#4"}
    our_server_tags = pop_events(
        our_events, lambda event: event[0] == "set_tag" and event[1] in server_labels
    )
    assert [event[2] for event in our_server_tags] == list(DELIVERY_TAGS) * 4
    assert our_server_tags[0][2:] == ["routing_key", "created"]
    # A message with trace headers: ours continues that trace (the shared-span model: the
    # server span has the upstream span's id); reddit's consume() ignores message headers.
    span = {"type": "ServerSpan", "flags": None, "component_name": None}
    child = {"type": "Span", "flags": None, "component_name": None}
    assert created(reddit_events, "<queue>#3") == span | {
        "label": "<queue>#3",
        "trace_id": "<queue>#3.trace",
        "parent_id": None,
        "id": "<queue>#3.trace",
    }
    assert created(reddit_events, "kombu.get_message#3") == child | {
        "label": "kombu.get_message#3",
        "trace_id": "<queue>#3.trace",
        "parent_id": "<queue>#3.trace",
        "id": "kombu.get_message#3.id",
    }
    assert created(our_events, "<queue>#3") == span | {
        "label": "<queue>#3",
        "trace_id": "up.trace",
        "parent_id": "up.parent",
        "id": "up.span",
    }
    assert created(our_events, "kombu.get_message#3") == child | {
        "label": "kombu.get_message#3",
        "trace_id": "up.trace",
        "parent_id": "up.span",
        "id": "kombu.get_message#3.id",
    }
    assert our_run["handled"][2]["trace"] == [drivers.UP_TRACE, drivers.UP_PARENT, drivers.UP_SPAN]

    # Everything else, in order: per message a server span named after the queue (a new
    # trace), a kombu.get_message child tagged kind=consumer and the delivery information,
    # the handler, the server span finishing (with the handler's exception if it raised).
    # (The context objects' classes differ: ConsumerContext, RequestContext.)
    def tidy(events: list[list[Any]]) -> list[list[Any]]:
        return [
            [*event[:2], "<context>"] if event[0] == "server_span_created" else event
            for event in events
        ]

    assert tidy(our_events) == tidy(reddit_events)
    assert tidy(reddit_events)[:12] == [
        [
            "server_span_created",
            span
            | {
                "label": "<queue>",
                "trace_id": "<queue>.trace",
                "parent_id": None,
                "id": "<queue>.trace",
            },
            "<context>",
        ],
        ["start", "<queue>"],
        [
            "child_created",
            "<queue>",
            child
            | {
                "label": "kombu.get_message",
                "id": "kombu.get_message.id",
                "trace_id": "<queue>.trace",
                "parent_id": "<queue>.trace",
            },
        ],
        ["set_tag", "kombu.get_message", "kind", "consumer"],
        ["start", "kombu.get_message"],
        ["set_tag", "kombu.get_message", "routing_key", "created"],
        ["set_tag", "kombu.get_message", "consumer_tag", "<consumer tag>"],
        ["set_tag", "kombu.get_message", "delivery_tag", 1],
        ["set_tag", "kombu.get_message", "exchange", "<exchange>"],
        ["finish", "kombu.get_message", None],
        ["handler", "one"],
        ["finish", "<queue>", None],
    ]
    assert tidy(reddit_events)[-2:] == [
        ["handler", "stop"],
        ["finish", "<queue>#4", "HandlerFailed"],
    ]


def api_case(names: Names) -> dict[str, Any]:
    return {
        "exchange": names.exchange(),
        "queues": [names.queue(f"<queue {n}>") for n in range(4)],
    }


def test_kombu_consumers(names: Names, peer: Callable[[str, Any], Callable[[], Any]]) -> None:
    answer = peer("api", api_case(names))
    ours = names.normalize(drivers.drive_api(OURS, api_case(names)))
    theirs = names.normalize(answer())

    # The documented behaviour both share: new() starts a daemon message pump, get_message()
    # returns one kombu Message, get_batch() without a timeout waits for max_items, with one
    # returns what came in time (nothing: an empty list), KombuConsumer records each call
    # as a child span of the given server span, and unacknowledged messages go back to the
    # broker when the pump stops. queue_size bounds the local work queue, 0 meaning no limit.
    shared = {
        "thread": {
            "name": "consumer message pump",
            "daemon": True,
            "alive": True,
            "maxsize": 100,
            "classes": ["BaseKombuConsumer", "ConsumerMixin"],
        },
        "get_message": "a0",
        "get_message_class": "Message",
        "batch_no_timeout": ["a1", "a2"],
        "batch_empty_timeout": [],
        "batch_empty_zero": [],
        "kombu_consumer": ["k0", ["k1", "k2"], []],
        "queue_size_0": {"maxsize": 0, "local": 5, "broker": {"ready": 0, "consumers": 1}},
        "stopped": [False] * 4,
        "back_in_queues": [1, 0, 5, 5],
    }
    for side in (theirs, ours):
        assert {key: side[key] for key in shared} == shared
    assert ours["kombu_consumer_events"] == theirs["kombu_consumer_events"]
    events = theirs["kombu_consumer_events"]
    assert [event for event in events if event[0] == "set_tag"] == [
        ["set_tag", "kombu.get_message", "kind", "consumer"],
        ["set_tag", "kombu.get_message", "routing_key", "traced"],
        ["set_tag", "kombu.get_message", "consumer_tag", "<consumer tag>"],
        ["set_tag", "kombu.get_message", "delivery_tag", 1],
        ["set_tag", "kombu.get_message", "exchange", "<exchange>"],
        ["set_tag", "kombu.get_batch", "kind", "consumer"],
        ["set_tag", "kombu.get_batch", "message_count", 2],
        ["set_tag", "kombu.get_batch#2", "kind", "consumer"],
        ["set_tag", "kombu.get_batch#2", "message_count", 0],
    ]

    # get_batch(max_items, timeout) with a timeout. The reference: max_items is "the maximum
    # batch size" and timeout "the maximum time to wait". Reddit's RetryPolicy-based loop
    # makes one attempt more than max_items (3 messages for max_items=2, one for 0) and,
    # with timeout=0, takes a single message however many are waiting; ours returns at
    # most max_items, and with timeout=0 everything already waiting.
    assert theirs["batch_max_items"] == [["b0", "b1", "b2"], ["b3"]]
    assert ours["batch_max_items"] == [["b0", "b1"], ["b2", "b3"]]
    assert theirs["batch_zero_timeout"] == [["c0"], ["c1", "c2"]]
    assert ours["batch_zero_timeout"] == [["c0", "c1", "c2"], []]
    assert theirs["batch_no_items"] == [["d0"], []]
    assert ours["batch_no_items"] == [[], ["d0"]]

    # get_message() takes no timeout in the reference (it waits as long as it takes); ours
    # also takes an optional one, and raises queue.Empty (as get() of a queue.Queue does)
    # when nothing came in time.
    assert theirs["get_message_timeout"] == {"error": "TypeError"}
    assert ours["get_message_timeout"] == {"error": "Empty"}

    # queue_size (not in the 0.28 reference): both hold at most queue_size messages locally;
    # reddit's broker sends the whole queue ahead (unacknowledged, held by a blocked pump),
    # ours makes it the prefetch count so the rest stays ready at the broker.
    assert theirs["queue_size_2"] == {
        "maxsize": 2,
        "local": 2,
        "broker": {"ready": 0, "consumers": 1},
    }
    assert ours["queue_size_2"] == {
        "maxsize": 2,
        "local": 2,
        "broker": {"ready": 3, "consumers": 1},
    }


def cross_publish(exchange: str, side: str, other: str) -> dict[str, Any]:
    return {
        "exchange": exchange,
        "publish": [
            [{"link": f"t3_{side}"}, f"to-{other}", {"custom": f"from-{side}"}],
            ["stop", f"to-{other}", {}],
        ],
    }


def test_messages_cross_between_producers_and_consumers(
    names: Names, peer: Callable[[str, Any], Callable[[], Any]]
) -> None:
    exchange = names.exchange()
    to_reddit, to_ours = names.queue("<to reddit>"), names.queue("<to ours>")
    drivers.declare_queue(exchange, to_reddit, "to-reddit")
    drivers.declare_queue(exchange, to_ours, "to-ours")
    # Ours publishes first: a message our consumer will see before reddit's.
    own = drivers.drive_publish(
        OURS,
        {"exchange": exchange, "publish": [[{"link": "t3_own"}, "to-ours", {"custom": "own"}]]},
    )
    our_publish = drivers.drive_publish(OURS, cross_publish(exchange, "ours", "reddit"))
    theirs = names.normalize(
        peer(
            "cross",
            {
                "publish": cross_publish(exchange, "reddit", "ours"),
                "consume": {
                    "exchange": exchange,
                    "queue": to_reddit,
                    "routing_keys": ["to-reddit"],
                    "publish": [],
                },
            },
        )()
    )
    our_consume = names.normalize(
        drivers.drive_consume(
            OURS,
            {"exchange": exchange, "queue": to_ours, "routing_keys": ["to-ours"], "publish": []},
        )
    )

    # KombuProducer.publish: a child span "<attribute>.publish" tagged kind=producer and the
    # destination routing key, the same on both sides.
    def destination_free(events: list[list[Any]]) -> list[list[Any]]:
        return [
            [*event[:3], "<to>"] if event[2:3] == ["message_bus.destination"] else event
            for event in events
        ]

    assert destination_free(our_publish["events"]) == destination_free(theirs["publish"]["events"])
    assert theirs["publish"]["events"][2:7] == [
        [
            "child_created",
            "submit",
            {
                "label": "amqp.publish",
                "type": "Span",
                "trace_id": "submit.trace",
                "parent_id": "submit.trace",
                "id": "amqp.publish.id",
                "flags": None,
                "component_name": None,
            },
        ],
        ["set_tag", "amqp.publish", "kind", "producer"],
        ["set_tag", "amqp.publish", "message_bus.destination", "to-ours"],
        ["start", "amqp.publish"],
        ["finish", "amqp.publish", None],
    ]

    # Ours -> reddit's consume(): body and headers intact; reddit's consumer takes our trace
    # headers in its stride (the handler runs, the message is acked) and starts a new trace.
    reddit_consume = theirs["consume"]
    first, stop = reddit_consume["handled"]
    assert first["payload"] == {"link": "t3_ours"}
    assert first["body"] == {"str": '{"link": "t3_ours"}'}
    assert first["custom_header"] == "from-ours"
    trace_headers = {"X-Trace", "X-Parent", "X-Span", "X-Sampled", "traceparent"}
    assert trace_headers | {"custom"} <= set(first["header_names"])
    assert stop["payload"] == "stop"
    assert reddit_consume["raised"] == "HandlerFailed"
    assert reddit_consume["states_after"] == ["ACK", "RECEIVED"]
    reddit_server = reddit_consume["events"][0]
    assert reddit_server[0] == "server_span_created"
    assert reddit_server[1]["parent_id"] is None

    # Reddit's KombuProducer -> our consume(): body and headers intact (reddit's producer
    # adds none), a new trace; our own message before it continues the publishing trace
    # (the server span has the publish span's ids: the shared-span model).
    handled = our_consume["handled"]
    assert [h["payload"] for h in handled] == [{"link": "t3_own"}, {"link": "t3_reddit"}, "stop"]
    assert handled[0]["trace"] == own["spans"][0]
    assert trace_headers <= set(handled[0]["header_names"])
    from_reddit = handled[1]
    assert from_reddit["body"] == {"str": '{"link": "t3_reddit"}'}
    assert from_reddit["custom_header"] == "from-reddit"
    assert from_reddit["header_names"] == ["custom"]
    trace_id, parent_id, span_id = from_reddit["trace"]
    assert parent_id is None and span_id == trace_id
    assert trace_id not in {ids[0] for ids in own["spans"] + our_publish["spans"]}
    assert our_consume["states_after"] == ["ACK", "ACK", "REQUEUED"]
