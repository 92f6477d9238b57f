"""queue_consumer.consume against the real RabbitMQ."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import kombu
import pytest
from kombu.message import Message
from opentelemetry.trace import SpanKind, StatusCode

from baseplate.core import Baseplate, RequestContext, ServerSpan
from baseplate.queue_consumer import consume

from .conftest import AMQP_URL, RecordingProcessor, declare_queue, queue_depth


class StopConsuming(Exception):
    """Raised by test handlers to end consume()'s endless loop."""


def run_consume(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    queue_name: str,
    routing_keys: list[str],
    handler: Callable[[RequestContext, Any, Message], None],
) -> BaseException:
    """Run consume() in a thread until the handler raises; return what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            consume(
                baseplate=baseplate,
                exchange=exchange,
                connection=kombu.Connection(AMQP_URL),
                queue_name=queue_name,
                routing_keys=routing_keys,
                handler=handler,
            )
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "consume() did not stop"
    assert len(raised) == 1
    return raised[0]


def test_handles_routed_messages_in_server_spans_and_acks_after_the_handler(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    recorder: RecordingProcessor,
) -> None:
    declare_queue(exchange, names.queue, ["link_created", "link_deleted"])
    publish("first", "link_created")
    publish("not routed to this queue", "link_updated")
    publish("second", "link_deleted")
    publish("stop", "link_created")

    handled: list[tuple[Any, Any, Message, str]] = []

    def handler(context: Any, body: Any, message: Message) -> None:
        assert isinstance(context.trace, ServerSpan)
        assert context.trace.otel_span is not None  # handling happens inside the span
        # Not acknowledged while the handler runs.
        handled.append((context, body, message, message._state))
        if message.decode() == "stop":
            raise StopConsuming

    raised = run_consume(
        baseplate, exchange, names.queue, ["link_created", "link_deleted"], handler
    )

    assert isinstance(raised, StopConsuming)
    assert [message.decode() for _, _, message, _ in handled] == ["first", "second", "stop"]
    assert all(body is message.body for _, body, message, _ in handled)
    assert [state for _, _, _, state in handled] == ["RECEIVED"] * 3
    assert [message._state for _, _, message, _ in handled] == ["ACK", "ACK", "REQUEUED"]
    # Only the message whose handler failed is left in the queue.
    assert queue_depth(names.queue) == 1

    spans = recorder.named(names.queue)
    assert len(spans) == 3
    assert all(span.kind is SpanKind.SERVER for span in spans)
    assert len({span.context.trace_id for span in spans}) == 3  # a new trace per message
    assert all(span.parent is None for span in spans)
    assert [span.status.status_code for span in spans] == [
        StatusCode.UNSET,
        StatusCode.UNSET,
        StatusCode.ERROR,
    ]
    assert [span.attributes["routing_key"] for span in spans] == [  # type: ignore[index]
        "link_created",
        "link_deleted",
        "link_created",
    ]
    assert spans[0].attributes["exchange"] == names.exchange  # type: ignore[index]
    # Each server span has a kombu.get_message child recording the delivery.
    taken = recorder.named("kombu.get_message")
    assert [child.parent.span_id for child in taken if child.parent] == [
        span.context.span_id for span in spans
    ]
    assert [child.attributes["delivery_tag"] for child in taken] == [1, 2, 3]  # type: ignore[index]
    assert {child.attributes["kind"] for child in taken} == {"consumer"}  # type: ignore[index]
    contexts = [context for context, _, _, _ in handled]
    assert [context.trace.id for context in contexts] == [span.context.span_id for span in spans]


def test_crashing_handler_leaves_the_message_queued(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    recorder: RecordingProcessor,
) -> None:
    declare_queue(exchange, names.queue, ["key"])
    publish({"job": 1}, "key")

    def handler(context: Any, body: Any, message: Message) -> None:
        raise ValueError("cannot process this yet")

    raised = run_consume(baseplate, exchange, names.queue, ["key"], handler)

    assert isinstance(raised, ValueError)
    with kombu.Connection(AMQP_URL) as conn:
        message = kombu.Queue(names.queue, exchange=exchange, routing_key="key")(
            conn.channel()
        ).get()
        assert message is not None
        assert message.decode() == {"job": 1}
        assert message.delivery_info["redelivered"] is True
        message.ack()

    (span,) = recorder.named(names.queue)
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"X-Trace": "1234", "X-Parent": "5678", "X-Span": "9012", "X-Sampled": "1"},
            (1234, 5678, 9012),
            id="baseplate",
        ),
        pytest.param(
            # AMQP tables carry numbers natively; a producer may send the ids as integers.
            {"x-trace": 1234, "x-parent": 5678, "x-span": 9012, "x-sampled": 1},
            (1234, 5678, 9012),
            id="baseplate-integers-lowercase",
        ),
        pytest.param(
            {"traceparent": "00-0000000000000000000000000000abcd-00000000000000ef-01"},
            (0xABCD, 0xEF, None),
            id="w3c",
        ),
    ],
)
def test_trace_headers_in_the_message_continue_the_trace(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    recorder: RecordingProcessor,
    headers: dict[str, Any],
    expected: tuple[int, int, int | None],
) -> None:
    trace_id, parent_id, span_id = expected
    declare_queue(exchange, names.queue, ["key"])
    publish("traced", "key", headers=headers)
    seen: list[ServerSpan] = []

    def handler(context: Any, body: Any, message: Message) -> None:
        seen.append(context.trace)
        raise StopConsuming

    run_consume(baseplate, exchange, names.queue, ["key"], handler)

    (server_span,) = seen
    assert server_span.trace_id == trace_id
    assert server_span.parent_id == parent_id
    if span_id is not None:
        assert server_span.id == span_id  # baseplate headers: the shared-span model
    else:
        assert server_span.id not in (0, parent_id)
    assert server_span.sampled is True

    (span,) = recorder.named(names.queue)
    assert span.context.trace_id == trace_id
    assert span.context.span_id == server_span.id
    assert span.parent is not None and span.parent.span_id == parent_id
    assert span.parent.is_remote


def test_invalid_trace_headers_start_a_new_trace(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
    recorder: RecordingProcessor,
) -> None:
    declare_queue(exchange, names.queue, ["key"])
    publish("traced", "key", headers={"X-Trace": "not-a-number", "X-Span": "1", "X-Parent": "2"})

    def handler(context: Any, body: Any, message: Message) -> None:
        raise StopConsuming

    run_consume(baseplate, exchange, names.queue, ["key"], handler)

    (span,) = recorder.named(names.queue)
    assert span.parent is None
    assert span.context.span_id != 1


def test_each_message_is_measured_as_a_request(
    baseplate: Baseplate,
    exchange: kombu.Exchange,
    names: Any,
    publish: Callable[..., None],
) -> None:
    from baseplate import metrics

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    port = receiver.getsockname()[1]
    baseplate.configure_metrics(metrics.make_client("svc", f"127.0.0.1:{port}"))
    declare_queue(exchange, names.queue, ["key"])
    publish("work", "key")
    publish("stop", "key")

    def handler(context: Any, body: Any, message: Message) -> None:
        context.metrics.counter("handled").increment()
        if message.decode() == "stop":
            raise StopConsuming

    run_consume(baseplate, exchange, names.queue, ["key"], handler)

    try:
        lines = [receiver.recv(65536).decode().split("\n") for _ in range(2)]
    finally:
        receiver.close()
    server = f"svc.server.{names.queue}"
    taken = "svc.clients.kombu.get_message"  # the child span recording the delivery
    for request_lines, outcome in zip(lines, ("success", "failure"), strict=True):
        kinds = sorted(
            line.split(":", 1)[0] + "|" + line.rsplit("|", 1)[1] for line in request_lines
        )
        assert kinds == sorted(
            [
                f"{server}|ms",
                f"{server}.{outcome}|c",
                f"{taken}|ms",
                f"{taken}.success|c",
                "svc.handled|c",
            ]
        )
