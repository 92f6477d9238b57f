"""Reddit's own framework integrations as a peer: Pyramid, the Thrift server and the Thrift
client (``ThriftContextFactory`` on ``ThriftConnectionPool``).

Run as a script by ``test_reddit_integrations_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout). Each sub-command reads its request as JSON on stdin and prints its
answer as one JSON line on stdout.

The drivers below take a :class:`~types.SimpleNamespace` of the baseplate pieces to use and
import nothing from baseplate themselves: the test imports this file and runs the very same
drivers with OUR pieces, so both implementations run exactly the same scenarios. Every
observer callback is recorded (with ``reddit_peer_core.Recorder``), interleaved with what the
application saw (view calls, WSGI steps, Thrift replies), in order.

Usage: ``python -I reddit_peer_integrations.py pyramid|thrift-server|thrift-client``
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

try:  # imported by the test
    from . import reddit_peer_core as core_helpers
except ImportError:  # run as the peer script (``-I``: its directory is not on sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reddit_peer_core as core_helpers  # type: ignore[no-redef]

Recorder = core_helpers.Recorder
jsonable = core_helpers.jsonable

#: Trace ids sent upstream (decimal on the wire); the Recorder names them ``up.*``.
UP_TRACE, UP_PARENT, UP_SPAN = 1001, 2002, 3003
TRACE_HEADERS = {"X-Trace": "1001", "X-Parent": "2002", "X-Span": "3003", "X-Sampled": "1"}


def error_name(exc: BaseException) -> str:
    return type(exc).__name__


def name_upstream(rec: Any) -> None:
    rec.symbol(UP_TRACE, "up.trace")
    rec.symbol(UP_PARENT, "up.parent")
    rec.symbol(UP_SPAN, "up.span")


def value_of(value: Any) -> Any:
    """A JSON form of an attribute read from a context: its type and value."""
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return {"type": type(value).__name__}


# --- Pyramid -------------------------------------------------------------------------------


class RecordingEdgeFactory:
    """Stands in for an ``EdgeRequestContextFactory``: records what the integration hands it."""

    def __init__(self, rec: Any) -> None:
        self.rec = rec

    def from_upstream(self, payload: Any) -> Any:
        self.rec.events.append(["edge.from_upstream", value_of(payload)])
        rec = self.rec

        class Edge:
            def attach_context(self, context: Any) -> None:
                rec.events.append(["edge.attach_context"])
                context.request_context = self
                context.raw_request_context = payload

        return Edge()


def make_pyramid_app(side: Any, rec: Any, options: dict[str, Any]) -> Any:
    """A Pyramid app with ``side``'s BaseplateConfigurator and views that record what they
    see; ``options``: ``trust`` (omitted: not passed), ``edge_factory``, ``exception_views``."""
    from pyramid.config import Configurator
    from pyramid.httpexceptions import HTTPFound, HTTPInternalServerError, HTTPNotFound
    from pyramid.response import Response

    baseplate = side.core.Baseplate()
    baseplate.register(rec.baseplate_observer())

    class Factory(side.context.ContextFactory):  # type: ignore[name-defined, misc]
        def make_object_for_context(self, name: str, span: Any) -> Any:
            rec.events.append(["factory", name, rec.label(span)])
            return {"made_for": rec.label(span)}

    baseplate.add_to_context("thing", Factory())

    kwargs: dict[str, Any] = {}
    if "trust" in options:
        kwargs["trust_trace_headers"] = options["trust"]
    if options.get("edge_factory"):
        kwargs["edge_context_factory"] = RecordingEdgeFactory(rec)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reddit 0.30 deprecates trust_trace_headers
        configurator = side.pyramid.BaseplateConfigurator(baseplate, **kwargs)
    config = Configurator()
    config.include(configurator.includeme)

    def on_initialized(event: Any) -> None:
        request = event.request
        trace = getattr(request, "trace", None)
        rec.events.append(
            [
                "ServerSpanInitialized",
                type(event).__name__,
                None if trace is None else rec.label(trace),
                getattr(request, "thing", None),
            ]
        )

    config.add_subscriber(on_initialized, side.pyramid.ServerSpanInitialized)

    def view(name: str, function: Callable[[Any], Any], **view_options: Any) -> None:
        def wrapper(request: Any) -> Any:
            trace = getattr(request, "trace", None)
            rec.events.append(["view", name, None if trace is None else rec.label(trace)])
            return function(request)

        config.add_view(wrapper, route_name=name, **view_options)

    def route(name: str, pattern: str, function: Callable[[Any], Any], **opts: Any) -> None:
        config.add_route(name, pattern)
        view(name, function, **opts)

    def text(body: str, status: int = 200) -> Response:
        return Response(body=body.encode(), status=status, content_type="text/plain")

    def inspect(request: Any) -> Response:
        seen = {
            "trace_is_span": getattr(request, "trace", None) is not None,
            "thing": getattr(request, "thing", None),
            "has_raw_request_context": hasattr(request, "raw_request_context"),
            "raw_request_context": value_of(getattr(request, "raw_request_context", None)),
            "has_request_context": hasattr(request, "request_context"),
            "flags": request.trace.flags,
        }
        rec.events.append(["inspect", seen])
        return text("seen")

    def crash(request: Any) -> Response:
        raise ValueError("view bug")

    def handled(request: Any) -> Response:
        raise KeyError("handled by an exception view")

    def raise_(exc: Exception) -> Callable[[Any], Response]:
        def function(request: Any) -> Response:
            raise exc

        return function

    def stream(request: Any) -> Response:
        def body() -> Iterator[bytes]:
            rec.events.append(["body", "first"])
            yield b"a"
            rec.events.append(["body", "second"])
            yield b"b"

        return Response(app_iter=body(), content_type="text/plain")

    def callbacks(request: Any) -> Response:
        request.add_response_callback(
            lambda req, resp: rec.events.append(["response_callback", resp.status_code])
        )
        request.add_finished_callback(lambda req: rec.events.append(["finished_callback"]))
        return text("callbacks")

    route("home", "/", lambda request: text("home"))
    route("item", "/items/{id}", lambda request: text(request.matchdict["id"]))
    route("inspect", "/inspect", inspect)
    route("crash", "/crash", crash)
    route("handled", "/handled", handled)
    route("redirect", "/redirect", raise_(HTTPFound(location="/")))
    route("returned_redirect", "/returned-redirect", lambda request: HTTPFound(location="/"))
    route("missing", "/missing", raise_(HTTPNotFound()))
    route("server_error", "/server-error", raise_(HTTPInternalServerError()))
    route("stream", "/stream", stream)
    route("callbacks", "/callbacks", callbacks)
    route("post_only", "/post-only", lambda request: text("posted"), request_method="POST")
    if options.get("exception_views", True):

        def key_error_view(exc: Exception, request: Any) -> Response:
            rec.events.append(["exception_view", error_name(exc)])
            return text("handled", status=418)

        config.add_view(key_error_view, context=KeyError)
    app = config.make_wsgi_app()
    return app, baseplate


def wsgi_call(app: Any, rec: Any, request: dict[str, Any]) -> None:
    """Send one request to ``app`` as a WSGI server would, recording each step."""
    from webob import Request

    headers = request.get("headers", {})
    environ = Request.blank(
        request.get("path", "/"), method=request.get("method", "GET"), headers=headers
    ).environ
    if "remote_addr" in request:
        environ["REMOTE_ADDR"] = request["remote_addr"]

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
        rec.events.append(["start_response", status])
        return lambda data: None

    try:
        app_iter = app(environ, start_response)
    except Exception as exc:
        rec.events.append(["app_raised", error_name(exc)])
        return
    rec.events.append(["app_returned"])
    try:
        for chunk in app_iter:
            rec.events.append(["chunk", chunk.decode()])
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
            rec.events.append(["closed"])


#: case name -> (app options, request)
PYRAMID_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "home": ({}, {"path": "/", "remote_addr": "10.1.2.3"}),
    "item_with_query": ({}, {"path": "/items/42?x=1", "remote_addr": "10.1.2.3"}),
    "post": ({}, {"path": "/items/7", "method": "POST", "remote_addr": "10.1.2.3"}),
    "no_remote_addr": ({}, {"path": "/"}),
    "unmatched_route": ({}, {"path": "/nowhere"}),
    "predicate_mismatch": ({}, {"path": "/post-only"}),
    "crash": ({}, {"path": "/crash"}),
    "exception_view": ({}, {"path": "/handled"}),
    "no_exception_view": ({"exception_views": False}, {"path": "/handled"}),
    "raised_redirect": ({}, {"path": "/redirect"}),
    "returned_redirect": ({}, {"path": "/returned-redirect"}),
    "raised_not_found": ({}, {"path": "/missing"}),
    "raised_server_error": ({}, {"path": "/server-error"}),
    "stream": ({}, {"path": "/stream"}),
    "callbacks": ({}, {"path": "/callbacks"}),
    "inspect_default": ({}, {"path": "/inspect", "headers": TRACE_HEADERS}),
    "untrusted_headers": ({"trust": False}, {"path": "/inspect", "headers": TRACE_HEADERS}),
    "trusted_headers": ({"trust": True}, {"path": "/inspect", "headers": TRACE_HEADERS}),
    "trusted_debug_flag": (
        {"trust": True},
        {"path": "/inspect", "headers": {**TRACE_HEADERS, "X-Flags": "1"}},
    ),
    "trusted_no_headers": ({"trust": True}, {"path": "/inspect"}),
    "trusted_bad_headers": (
        {"trust": True},
        {"path": "/inspect", "headers": {"X-Trace": "abc", "X-Parent": "1", "X-Span": "2"}},
    ),
    "trusted_edge_without_factory": (
        {"trust": True},
        {"path": "/inspect", "headers": {"X-Edge-Request": "AAEC"}},
    ),
    "trusted_no_edge_without_factory": ({"trust": True}, {"path": "/inspect"}),
    "trusted_edge_with_factory": (
        {"trust": True, "edge_factory": True},
        {"path": "/inspect", "headers": {"X-Edge-Request": "AAEC"}},
    ),
    "trusted_no_edge_with_factory": ({"trust": True, "edge_factory": True}, {"path": "/inspect"}),
    "untrusted_edge_with_factory": (
        {"trust": False, "edge_factory": True},
        {"path": "/inspect", "headers": {"X-Edge-Request": "AAEC"}},
    ),
}


def run_pyramid(side: Any, names: list[str]) -> dict[str, Any]:
    """Each named case on a fresh app: the recorded events, and the app's ``baseplate``."""
    answers: dict[str, Any] = {}
    for name in names:
        options, request = PYRAMID_CASES[name]
        rec = Recorder(side.core)
        name_upstream(rec)
        app, baseplate = make_pyramid_app(side, rec, options)
        wsgi_call(app, rec, request)
        answers[name] = {
            "events": rec.events,
            "app_baseplate": getattr(app, "baseplate", None) is baseplate,
        }
    return answers


# --- Thrift: a loopback server and a plain client -------------------------------------------


class LoopbackServer:
    """A threaded THeader server on 127.0.0.1 for any processor (a thread per connection)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        from thrift.protocol.THeaderProtocol import THeaderProtocol
        from thrift.transport.THeaderTransport import THeaderClientType
        from thrift.transport.TSocket import TSocket

        transport = TSocket()
        transport.setHandle(connection)
        protocol = THeaderProtocol(transport, [THeaderClientType.HEADERS])
        try:
            while True:
                self.processor.process(protocol, protocol)
        except Exception:
            pass  # the client went away, or the processor dropped the connection
        finally:
            transport.close()

    def stop(self) -> None:
        self._stopped = True
        try:  # wakes the accepting thread, which then ends
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def plain_call(
    module: Any, port: int, method: str, args: list[Any], headers: dict[str, str]
) -> dict[str, Any]:
    """Call ``method`` with a plain THeader client sending ``headers``; what came back."""
    from thrift.protocol.THeaderProtocol import THeaderProtocol
    from thrift.Thrift import TApplicationException
    from thrift.transport.THeaderTransport import THeaderClientType
    from thrift.transport.TSocket import TSocket
    from thrift.transport.TTransport import TTransportException

    transport = TSocket("127.0.0.1", port)
    transport.setTimeout(10000)
    protocol = THeaderProtocol(transport, [THeaderClientType.HEADERS])
    transport.open()
    try:
        for key, value in headers.items():
            protocol.trans.set_header(key.encode(), value.encode())
        try:
            return {"ok": jsonable(getattr(module.Client(protocol), method)(*args))}
        except TApplicationException as exc:
            return {"error": error_name(exc), "type": exc.type}
        except TTransportException as exc:
            return {"error": error_name(exc)}
        except Exception as exc:
            return {"error": error_name(exc)}
    finally:
        transport.close()


def make_handler(module: Any, rec: Any, with_context: bool) -> Any:
    """The DiffService handler: ``example(text)`` returns, raises the declared exception or
    fails as ``text`` says; with a context, it records what the context carries."""
    from thrift.Thrift import TApplicationException
    from thrift.transport.TTransport import TTransportException

    def act(text: str) -> str:
        if text == "declared":
            raise module.ttypes.Declared(message="as declared")
        if text == "crash":
            raise ValueError("handler bug")
        if text == "application":
            raise TApplicationException(TApplicationException.UNKNOWN, "application error")
        if text == "transport":
            raise TTransportException(TTransportException.UNKNOWN, "downstream failed")
        if text.startswith("sleep"):
            time.sleep(float(text[5:]))
        return f"echo:{text}"

    class Handler:
        def example(self, context: Any, text: str) -> str:
            headers = context.headers
            rec.events.append(
                [
                    "handler",
                    {
                        "context_type": type(context).__name__,
                        "trace": rec.label(context.trace),
                        "headers_is_mapping": isinstance(headers, Mapping),
                        "header_Trace": value_of(headers.get(b"Trace")),
                        "header_trace": value_of(headers.get(b"trace")),
                        "has_raw_request_context": hasattr(context, "raw_request_context"),
                        "raw_request_context": value_of(
                            getattr(context, "raw_request_context", None)
                        ),
                        "has_request_context": hasattr(context, "request_context"),
                        "thing": getattr(context, "thing", None),
                    },
                ]
            )
            return act(text)

        def fail(self, context: Any) -> None:
            raise RuntimeError("always fails")

    class PlainHandler:
        def example(self, text: str) -> str:
            return act(text)

        def fail(self) -> None:
            raise RuntimeError("always fails")

    return Handler() if with_context else PlainHandler()


#: case name -> (method, args, THeader headers, options)
THRIFT_SERVER_CASES: dict[str, tuple[str, list[Any], dict[str, str], dict[str, Any]]] = {
    "ok_with_trace": (
        "example",
        ["hi"],
        {"Trace": "1001", "Parent": "2002", "Span": "3003", "Sampled": "1"},
        {},
    ),
    "ok_new_trace": ("example", ["hi"], {}, {}),
    "declared": ("example", ["declared"], {}, {}),
    "crash": ("example", ["crash"], {}, {}),
    "application_error": ("example", ["application"], {}, {}),
    "transport_error": ("example", ["transport"], {}, {}),
    "void_method_fails": ("fail", [], {}, {}),
    "lowercase_headers": (
        "example",
        ["hi"],
        {"trace": "1001", "parent": "2002", "span": "3003", "edge-request": "\x00\x01"},
        {},
    ),
    "edge_without_factory": ("example", ["hi"], {"Edge-Request": "\x00\x01"}, {}),
    "no_edge_with_factory": ("example", ["hi"], {}, {"edge_factory": True}),
    "edge_with_factory": (
        "example",
        ["hi"],
        {"Edge-Request": "\x00\x01"},
        {"edge_factory": True},
    ),
}


def run_thrift_server(side: Any, module: Any, names: list[str]) -> dict[str, Any]:
    """Each named call to a fresh ``side``-integrated server; events and the client's view."""
    answers: dict[str, Any] = {}
    for name in names:
        method, args, headers, options = THRIFT_SERVER_CASES[name]
        rec = Recorder(side.core)
        name_upstream(rec)
        baseplate = side.core.Baseplate()
        baseplate.register(rec.baseplate_observer())

        class Factory(side.context.ContextFactory):  # type: ignore[name-defined, misc]
            def make_object_for_context(self, name: str, span: Any, rec: Any = rec) -> Any:
                return {"made_for": rec.label(span)}

        baseplate.add_to_context("thing", Factory())
        edge_factory = RecordingEdgeFactory(rec) if options.get("edge_factory") else None
        processor = side.make_processor(
            module, make_handler(module, rec, with_context=True), baseplate, edge_factory
        )
        server = LoopbackServer(processor)
        try:
            reply = plain_call(module, server.port, method, args, headers)
        finally:
            server.stop()
        rec.events.append(["client_got", reply])
        answers[name] = {"events": rec.events}
    return answers


# --- Thrift client: ThriftContextFactory on ThriftConnectionPool -----------------------------


def run_thrift_client(side: Any, module: Any, names: list[str]) -> dict[str, Any]:
    """Each named case: a server span whose ``svc`` client calls a plain server."""
    server = LoopbackServer(module.Processor(make_handler(module, None, with_context=False)))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        refused_port = probe.getsockname()[1]
    answers: dict[str, Any] = {}
    try:
        for name in names:
            rec = Recorder(side.core)
            try:
                result = CLIENT_CASES[name](side, module, rec, server.port, refused_port)
            except Exception as exc:
                result = {"case_error": error_name(exc), "message": str(exc)}
            answers[name] = {"result": result, "events": rec.events}
    finally:
        server.stop()
    return answers


def _client_request(
    side: Any, rec: Any, port: int, module: Any, **pool_options: Any
) -> tuple[Any, Any, Any]:
    """A baseplate with ``svc`` (a pool to ``port``), and a server span's context."""
    endpoint = side.config.Endpoint(f"127.0.0.1:{port}")
    pool = side.thrift_pool.ThriftConnectionPool(endpoint, **pool_options)
    baseplate = side.core.Baseplate()
    baseplate.add_to_context("svc", side.context_thrift.ThriftContextFactory(pool, module.Client))
    baseplate.register(rec.baseplate_observer())
    context = core_helpers.Context()
    span = baseplate.make_server_span(context, "request")
    context.trace = span
    return context, span, pool


def _outcome(action: Callable[[], Any]) -> dict[str, Any]:
    from thrift.Thrift import TApplicationException
    from thrift.transport.TTransport import TTransportException

    try:
        return {"ok": jsonable(action())}
    except TTransportException as exc:
        return {"error": error_name(exc), "type": exc.type}
    except TApplicationException as exc:
        return {"error": error_name(exc), "type": exc.type}
    except Exception as exc:
        return {"error": error_name(exc)}


def cc_ok(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, port, module)
    with span:
        first = _outcome(lambda: context.svc.example("a"))
        second = _outcome(lambda: context.svc.example("b"))
    return {"first": first, "second": second}


def cc_declared(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, pool = _client_request(side, rec, port, module, size=1)
    with span:
        raised = _outcome(lambda: context.svc.example("declared"))
        after = _outcome(lambda: context.svc.example("after"))
    return {"raised": raised, "after": after}


def cc_application_error(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, port, module)
    with span:
        raised = _outcome(lambda: context.svc.example("crash"))
        void = _outcome(lambda: context.svc.fail())
    return {"raised": raised, "void": void}


def cc_connection_refused(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, refused, module, max_retries=2)
    with span:
        raised = _outcome(lambda: context.svc.example("a"))
    return {"raised": raised}


def cc_retrying_refused(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, refused, module, max_retries=1)
    with span:

        def call() -> Any:
            with context.svc.retrying(attempts=3) as svc:
                return svc.example("a")

        raised = _outcome(call)
    return {"raised": raised}


def cc_retrying_ok_and_declared(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, port, module)
    with span:

        def call(text: str) -> Any:
            with context.svc.retrying(attempts=3, budget=5) as svc:
                return svc.example(text)

        ok = _outcome(lambda: call("ok"))
        declared = _outcome(lambda: call("declared"))
        crashed = _outcome(lambda: call("crash"))
    return {"ok": ok, "declared": declared, "crash": crashed}


def cc_retrying_bad_policy(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, port, module)

    def call() -> Any:
        with context.svc.retrying(tries=3) as svc:
            return svc.example("a")

    with span:
        raised = _outcome(call)
    return {"raised": raised}


def cc_pool_exhausted(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, pool = _client_request(side, rec, port, module, size=1, timeout=0.1)
    with span:
        with pool.connection():
            raised = _outcome(lambda: context.svc.example("a"))
        after = _outcome(lambda: context.svc.example("after"))
    return {"raised": raised, "after": after}


def cc_call_timeout(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, port, module, size=1, timeout=0.1)
    with span:
        raised = _outcome(lambda: context.svc.example("sleep0.4"))
        time.sleep(0.4)  # the server finishes the slow call
        after = _outcome(lambda: context.svc.example("after"))
    return {"raised": raised, "after": after}


def cc_unknown_method(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    context, span, _ = _client_request(side, rec, port, module)
    with span:
        missing = _outcome(lambda: context.svc.no_such_method)
    return {"missing": missing}


def cc_pool_connection_errors(side: Any, module: Any, rec: Any, port: int, refused: int) -> Any:
    """``pool.connection()`` itself: refused, exhausted."""
    endpoint = side.config.Endpoint(f"127.0.0.1:{refused}")
    refused_pool = side.thrift_pool.ThriftConnectionPool(endpoint, max_retries=2, timeout=0.5)

    def refused_connection() -> Any:
        with refused_pool.connection():
            return "connected"

    live = side.thrift_pool.ThriftConnectionPool(
        side.config.Endpoint(f"127.0.0.1:{port}"), size=1, timeout=0.1
    )

    def exhausted() -> Any:
        with live.connection():
            with live.connection():
                return "both"

    def reused_after(text: str) -> Any:
        """The pool's exception from a call, and whether the next checkout reuses the
        connection."""
        used: list[Any] = []

        def call() -> Any:
            with live.connection() as protocol:
                used.append(protocol)
                return module.Client(protocol).example(text)

        raised = _outcome(call)
        with live.connection() as protocol:
            return {"raised": raised, "reused": protocol is used[0]}

    def declared_keeps_connection() -> Any:
        return reused_after("declared")

    def application_error_drops_connection() -> Any:
        return reused_after("crash")

    return {
        "refused": _outcome(refused_connection),
        "exhausted": _outcome(exhausted),
        "declared_keeps_connection": _outcome(declared_keeps_connection),
        "application_error_drops_connection": _outcome(application_error_drops_connection),
    }


CLIENT_CASES: dict[str, Callable[..., Any]] = {
    name[3:]: function for name, function in list(globals().items()) if name.startswith("cc_")
}


# --- the peer's entry point ----------------------------------------------------------------


def reddit_side() -> SimpleNamespace:
    """Reddit's pieces, as the drivers take them."""
    import baseplate.config as config
    import baseplate.context as context
    import baseplate.context.thrift as context_thrift
    import baseplate.core as core
    import baseplate.integration.pyramid as pyramid
    import baseplate.thrift_pool as thrift_pool
    from baseplate.integration.thrift import baseplateify_processor

    def make_processor(module: Any, handler: Any, baseplate: Any, edge_factory: Any) -> Any:
        return baseplateify_processor(
            module.Processor(handler), logging.getLogger("peer"), baseplate, edge_factory
        )

    return SimpleNamespace(
        core=core,
        context=context,
        pyramid=pyramid,
        config=config,
        thrift_pool=thrift_pool,
        context_thrift=context_thrift,
        make_processor=make_processor,
    )


def generated_module(request: dict[str, Any]) -> Any:
    """The generated ``DiffService`` module (compiled by the test into ``request["gen"]``)."""
    import importlib

    if request["gen"] not in sys.path:
        sys.path.insert(0, request["gen"])
    module = importlib.import_module(request["module"])
    module.ttypes = importlib.import_module(request["module"].rpartition(".")[0] + ".ttypes")
    return module


def main() -> None:
    command = sys.argv[1]
    request = json.loads(sys.stdin.read() or "null")
    logging.basicConfig(level=logging.CRITICAL)
    side = reddit_side()
    if command == "pyramid":
        answer: Any = run_pyramid(side, request["cases"])
    elif command == "thrift-server":
        answer = run_thrift_server(side, generated_module(request), request["cases"])
    elif command == "thrift-client":
        answer = run_thrift_client(side, generated_module(request), request["cases"])
    else:
        raise SystemExit(f"unknown command {command!r}")
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
