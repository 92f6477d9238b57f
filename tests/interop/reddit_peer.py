"""A peer built on reddit's own baseplate, run in its own virtualenv by the interop tests.

This file is NOT imported by the test process: ``tests/interop/conftest.py`` runs it with the
interpreter of ``.services/reddit-baseplate`` (set up by ``scripts/setup.sh``), where
``import baseplate`` is reddit's package from PyPI. Each sub-command does one thing the way an
existing baseplate service does it and prints what it saw as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import socket
import sys
from typing import Any


def emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def trace_of(span: Any) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id,
        "parent_id": span.parent_id,
        "span_id": span.id,
        "sampled": span.sampled,
        "flags": span.flags,
    }


def thrift_server(args: argparse.Namespace) -> None:
    """Serve BaseplateService the way a reddit baseplate Thrift service does; print each call."""
    from gevent import monkey

    monkey.patch_all()  # as reddit's baseplate-serve does before anything else

    from gevent.pool import Pool

    from baseplate.core import Baseplate
    from baseplate.integration.thrift import baseplateify_processor
    from baseplate.server.thrift import GeventServer
    from baseplate.thrift import BaseplateService

    class Handler:
        def is_healthy(self, context: Any) -> bool:
            headers = {
                key.decode(): value.decode("latin-1") for key, value in context.headers.items()
            }
            raw_edge = getattr(context, "raw_request_context", None)
            emit(
                {
                    "span": trace_of(context.trace),
                    "name": context.trace.name,
                    "headers": headers,
                    "edge_request": base64.b64encode(raw_edge).decode() if raw_edge else None,
                }
            )
            return True

    processor = baseplateify_processor(
        BaseplateService.Processor(Handler()), logging.getLogger("peer"), Baseplate()
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = GeventServer(processor=processor, listener=listener, spawn=Pool(size=8))
    emit({"port": listener.getsockname()[1]})
    server.serve_forever()


class HealthyHandler:
    def is_healthy(self, context: Any) -> bool:
        return True


def make_processor(app_config: dict[str, str]) -> Any:
    """``[app:main] factory = reddit_peer:make_processor`` for reddit's ``baseplate-serve``."""
    from baseplate.core import Baseplate
    from baseplate.integration.thrift import baseplateify_processor
    from baseplate.thrift import BaseplateService

    return baseplateify_processor(
        BaseplateService.Processor(HealthyHandler()), logging.getLogger("peer"), Baseplate()
    )


def thrift_client(args: argparse.Namespace) -> None:
    """Inside a server span with the given ids, call ``is_healthy`` on ``args.port``."""
    from baseplate.config import EndpointConfiguration
    from baseplate.context.thrift import ThriftContextFactory
    from baseplate.core import Baseplate, TraceInfo
    from baseplate.thrift import BaseplateService
    from baseplate.thrift_pool import ThriftConnectionPool

    class Context:
        pass

    baseplate = Baseplate()
    pool = ThriftConnectionPool(
        EndpointConfiguration(socket.AF_INET, ("127.0.0.1", args.port)), size=1, timeout=5
    )
    baseplate.add_to_context("downstream", ThriftContextFactory(pool, BaseplateService.Client))
    context = Context()
    if args.edge_request:
        context.raw_request_context = base64.b64decode(args.edge_request)
    trace_info = TraceInfo.from_upstream(
        args.trace_id, args.parent_id, args.span_id, args.sampled == "1", args.flags or None
    )
    server_span = baseplate.make_server_span(context, "peer_handler", trace_info)
    with server_span:
        children = []
        server_span.register(_ChildRecorder(children))
        healthy = context.downstream.is_healthy()
    emit({"healthy": healthy, "server_span": trace_of(server_span), "client_spans": children})


class _ChildRecorder:
    """A reddit ServerSpanObserver that records the ids of child spans."""

    def __init__(self, children: list[dict[str, Any]]) -> None:
        self.children = children

    def on_start(self) -> None:
        pass

    def on_set_tag(self, key: str, value: Any) -> None:
        pass

    def on_log(self, name: str, payload: Any) -> None:
        pass

    def on_finish(self, exc_info: Any) -> None:
        pass

    def on_child_span_created(self, span: Any) -> None:
        self.children.append(dict(trace_of(span), name=span.name))


def edge_new(args: argparse.Namespace) -> None:
    """Make an Edge-Request header with reddit's factory; print its base64."""
    from baseplate.core import EdgeRequestContextFactory
    from baseplate.secrets import SecretsStore

    factory = EdgeRequestContextFactory(SecretsStore(args.secrets))
    context = factory.new(
        authentication_token=args.token or None,
        loid_id=args.loid_id,
        loid_created_ms=args.loid_created_ms,
        session_id=args.session_id,
    )
    emit({"header": base64.b64encode(context._header).decode()})


# The questions asked of both sides: the tests import these and ask our modules the same.


def describe_edge_context(context: Any) -> dict[str, Any]:
    """What an edge request context holds, as plain data (``authenticated: False`` when its
    token does not validate)."""
    from baseplate.core import NoAuthenticationError

    seen: dict[str, Any] = {
        "loid": context.user.loid,
        "cookie_created_ms": context.user.cookie_created_ms,
        "session_id": context.session.id,
    }
    try:
        seen.update(
            user_id=context.user.id,
            roles=sorted(context.user.roles),
            oauth_client_id=context.oauth_client.id,
            event_fields=context.event_fields(),
        )
    except NoAuthenticationError:
        seen["authenticated"] = False
    return seen


def send_metrics(client: Any) -> None:
    """A fixed set of metrics calls on a metrics client: five single ones, then a batch."""
    client.counter("plain").increment()
    client.counter("sampled").increment(3, sample_rate=0.5)
    client.timer("one.timer").send(1.5)
    client.gauge("level").replace(4)
    client.histogram("sizes").add_sample(320)
    with client.batch() as batch:
        batch.counter("batched").increment()
        batch.counter("batched").increment(2)
        batch.counter("down").decrement()
        batch.timer("batch.timer").send(0.25)
        batch.gauge("batch_level").replace(7)
        batch.histogram("batch_sizes").add_sample(9)


def handle_request(baseplate: Any, context: Any) -> None:
    """One request: a server span with two client spans (one failing), a local span, and
    an application metric in the request's batch."""
    with baseplate.make_server_span(context, "endpoint") as server_span:
        with server_span.make_child("redis.GET"):
            pass
        try:
            with server_span.make_child("db.execute"):
                raise ValueError("query failed")
        except ValueError:
            pass
        with server_span.make_child("render", local=True, component_name="templates"):
            pass
        context.metrics.counter("app.custom").increment()


def edge_read(args: argparse.Namespace) -> None:
    """Read an Edge-Request header (base64) with reddit's factory; print what it holds."""
    from baseplate.core import EdgeRequestContextFactory
    from baseplate.secrets import SecretsStore

    factory = EdgeRequestContextFactory(SecretsStore(args.secrets))
    emit(describe_edge_context(factory.from_upstream(base64.b64decode(args.header))))


def metrics(args: argparse.Namespace) -> None:
    """Send :func:`send_metrics` with reddit's client to ``args.port`` (UDP)."""
    from baseplate.config import Endpoint
    from baseplate.metrics import make_client

    send_metrics(make_client("peer", Endpoint(f"127.0.0.1:{args.port}")))
    emit({"sent": True})


def request_metrics(args: argparse.Namespace) -> None:
    """Handle :func:`handle_request` with reddit's metrics observer, sending to ``args.port``."""
    from baseplate.config import Endpoint
    from baseplate.core import Baseplate
    from baseplate.metrics import make_client

    class Context:
        pass

    baseplate = Baseplate()
    baseplate.configure_metrics(make_client("peer", Endpoint(f"127.0.0.1:{args.port}")))
    handle_request(baseplate, Context())
    emit({"sent": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("thrift-server").set_defaults(run=thrift_server)

    client = commands.add_parser("thrift-client")
    client.set_defaults(run=thrift_client)
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--trace-id", type=int, required=True)
    client.add_argument("--parent-id", type=int, required=True)
    client.add_argument("--span-id", type=int, required=True)
    client.add_argument("--sampled", choices=("0", "1"), default="1")
    client.add_argument("--flags", type=int, default=0)
    client.add_argument("--edge-request", default="")

    new = commands.add_parser("edge-new")
    new.set_defaults(run=edge_new)
    new.add_argument("--secrets", required=True)
    new.add_argument("--token", default="")
    new.add_argument("--loid-id")
    new.add_argument("--loid-created-ms", type=int)
    new.add_argument("--session-id")

    read = commands.add_parser("edge-read")
    read.set_defaults(run=edge_read)
    read.add_argument("--secrets", required=True)
    read.add_argument("--header", required=True)

    send = commands.add_parser("metrics")
    send.set_defaults(run=metrics)
    send.add_argument("--port", type=int, required=True)

    request = commands.add_parser("request-metrics")
    request.set_defaults(run=request_metrics)
    request.add_argument("--port", type=int, required=True)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
