"""Reddit's own baseplate writing to the sidecar queues, run in its own virtualenv.

Like ``reddit_peer.py``, this file is NOT imported by the test process:
``test_reddit_publishers.py`` runs it with the interpreter of ``.services/reddit-baseplate``
and ``-I``, so ``import baseplate`` is reddit's package. Each sub-command puts onto POSIX
queues what a reddit baseplate service puts there and prints, as one JSON line, exactly
what it put.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from typing import Any


def emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def v1_events() -> list[Any]:
    from baseplate.events import Event, FieldKind

    first = Event("interop", "published", id=uuid.UUID("00000000-0000-4000-8000-000000000001"))
    first.set_field("count", 3)
    first.set_field("ratio", 0.5)
    first.set_field("flag", False)
    first.set_field("nested", {"list": [1, "two"], "none": None})
    first.set_field("text", "h\u00e9llo \u2603")
    first.set_field("dropped", "")
    first.set_field("ip", "10.0.0.1", kind=FieldKind.OBFUSCATED)
    first.set_field("token", "abc", kind=FieldKind.HIGH_CARDINALITY)
    second = Event("interop", "second", id=uuid.UUID("00000000-0000-4000-8000-000000000002"))
    second.set_field("count", 0)
    return [first, second]


def v2_events() -> list[Any]:
    from baseplate.thrift.ttypes import Loid, Request, Session

    return [
        Request(
            loid=Loid(id="t2_peer", created_ms=1_700_000_000_123),
            session=Session(id="session-\u00e9"),
            authentication_token="token",
        ),
        Request(loid=Loid(id="t2_other", created_ms=0)),
    ]


def put_events(args: argparse.Namespace) -> None:
    """Put the same events on every named queue with reddit's ``EventQueue``."""
    from baseplate.events import EventQueue, serialize_v1_event, serialize_v2_event

    if args.version == 1:
        events, serializer = v1_events(), serialize_v1_event
    else:
        events, serializer = v2_events(), serialize_v2_event
    queues = [EventQueue(name, event_serializer=serializer) for name in args.queue]
    for event in events:
        for event_queue in queues:
            event_queue.put(event)
    messages = [serializer(event) for event in events]
    emit(
        {
            "messages": [
                base64.b64encode(m if isinstance(m, bytes) else m.encode()).decode()
                for m in messages
            ]
        }
    )


def trace_request(args: argparse.Namespace) -> None:
    """Handle one traced request with reddit's tracing observer recording to the sidecar
    queue ``--queue``; every message it writes is also put on ``--mirror``."""
    from baseplate import Baseplate, tracing_client_from_config
    from baseplate.core import TraceInfo
    from baseplate.message_queue import MessageQueue

    client = tracing_client_from_config(
        {
            "tracing.service_name": "reddit-service",
            "tracing.queue_name": args.queue,
            "tracing.sample_rate": "0%",
        }
    )
    recorder = client.recorder
    assert type(recorder).__name__ == "SidecarRecorder", recorder
    mirror = MessageQueue("/traces-" + args.mirror, max_messages=10, max_message_size=8192)
    written: list[str] = []
    put = recorder.queue.put

    def put_and_mirror(message: str, timeout: Any = None) -> None:
        put(message, timeout=timeout)
        mirror.put(message, timeout=timeout)
        written.append(message)

    recorder.queue.put = put_and_mirror

    app = Baseplate()
    app.configure_tracing(client)

    class Context:
        pass

    trace_info = TraceInfo.from_upstream(
        args.trace_id, args.parent_id, args.span_id, sampled=True, flags=1
    )
    server = app.make_server_span(Context(), "peer_method", trace_info)
    ids: dict[str, Any] = {}
    with server:
        server.set_tag("http.status_code", 200)
        client_span = server.make_child("redis.GET")
        ids["client"] = client_span.id
        try:
            with client_span:
                client_span.set_tag("key_count", 2)
                raise ConnectionError("refused")
        except ConnectionError:
            pass
        local = server.make_child("render", local=True, component_name="templates")
        ids["local"] = local.id
        with local:
            local.set_tag("cached", True)
    emit({"messages": written, "ids": ids})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    events = commands.add_parser("put-events")
    events.set_defaults(run=put_events)
    events.add_argument("--version", type=int, choices=(1, 2), required=True)
    events.add_argument("--queue", action="append", required=True)

    traced = commands.add_parser("trace-request")
    traced.set_defaults(run=trace_request)
    traced.add_argument("--queue", required=True)
    traced.add_argument("--mirror", required=True)
    traced.add_argument("--trace-id", type=int, required=True)
    traced.add_argument("--parent-id", type=int, required=True)
    traced.add_argument("--span-id", type=int, required=True)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
