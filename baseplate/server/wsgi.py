"""The gevent WSGI server: ``factory = baseplate.server.wsgi`` in ``[server:NAME]``.

::

    [server:main]
    factory = baseplate.server.wsgi
    max_concurrency = 100
    stop_timeout = 30
    handler = my_app.http:MyHandler

``max_concurrency`` is the most connections served at once (default: unlimited),
``stop_timeout`` how many seconds requests in progress get to finish when the server stops
(default 0: none), and the optional ``handler`` a ``gevent.pywsgi.WSGIHandler`` subclass.

The application factory returns a WSGI callable. Each request runs in a fresh, empty
:mod:`contextvars` context (so with no current OpenTelemetry span): nothing of one request's
trace leaks into the next request on the same keep-alive connection. While the server stops,
responses carry ``Connection: close``.

Health checks: ``baseplate-healthcheck wsgi HOST:PORT`` sends ``GET /health`` and expects a
2xx response with a JSON body. The server does not answer it by itself; the application
defines the route, e.g. with Pyramid::

    def health(request):
        return {"healthy": True}

    configurator.add_route("health", "/health", request_method="GET")
    configurator.add_view(health, route_name="health", renderer="json")

Return a 5xx status (``request.response.status_int = 503``) when the service is not healthy.

Errors: an exception the application lets out is answered with a 500 and logged once, at
ERROR with its traceback, naming the request and its trace and span ids (decimal, as
baseplate writes them; also the record's ``trace_id``/``span_id``, so the default
``[trace_id=...]`` shows it) when the application is a baseplate one (``app.baseplate``, as
the Pyramid integration sets). A request the server cannot parse (a header line over 64 KB,
a malformed request line or header, a bad chunked body) is the client's error: answered with
a 4xx and logged as one WARNING line naming the peer, without a traceback, at most once a
minute (the next line says how many were held back).
"""

from __future__ import annotations

import contextvars
import logging
import socket
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from gevent import GreenletExit, pywsgi
from gevent.pool import Pool

from baseplate.config import ConfigurationError
from baseplate.server._lifecycle import (
    BAD_INPUT_LOG_INTERVAL,
    Connection,
    RequestTracker,
    describe_exception,
    describe_peer,
    parse_server_options,
    shorten,
    stop_gracefully,
)
from baseplate.server.loading import load_factory
from exporters._ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)

#: The options of the server section this server reads (others are warned about as typos).
SERVER_KEYS = ("factory", "max_concurrency", "stop_timeout", "handler")

_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_HEADER_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Connection: close\r\nContent-Length: 0\r\n\r\n"
)


class _RequestSpan:
    """The ids of the request's server span, once the application made one."""

    __slots__ = ("span_id", "trace_id")

    def __init__(self) -> None:
        self.trace_id: int | None = None
        self.span_id: int | None = None


_REQUEST_SPAN: ContextVar[_RequestSpan | None] = ContextVar(
    "baseplate_wsgi_request_span", default=None
)


class _RequestSpanObserver:
    """A baseplate observer noting each request's server span ids for the error line."""

    def on_server_span_created(self, context: Any, server_span: Any) -> None:
        request = _REQUEST_SPAN.get()
        if request is not None and request.trace_id is None:
            request.trace_id = server_span.trace_id
            request.span_id = server_span.id


class _TrackedHandler(pywsgi.WSGIHandler):
    """Marks its connection busy per request and runs each request in a fresh context."""

    server: WSGIServer
    _connection: Connection

    def handle(self) -> None:
        self._connection = Connection(self.server.tracker)
        try:
            super().handle()
        finally:
            self._connection.end_request()

    def read_requestline(self) -> str:
        connection = self._connection
        connection.end_request()
        if self.server.tracker.stopping:
            return ""  # an idle connection of a stopping server is closed, not served
        line: str = super().read_requestline()
        if line:
            connection.begin_request()
        return line

    def run_application(self) -> None:
        request = self._request_span = _RequestSpan()
        contextvars.Context().run(self._run_application_in_context, request)

    def _run_application_in_context(self, request: _RequestSpan) -> None:
        _REQUEST_SPAN.set(request)
        super().run_application()

    def _log_error(
        self, t: type[BaseException], v: BaseException, tb: TracebackType | None
    ) -> None:
        # pywsgi prints the traceback to stderr through the hub; this logs it once, through
        # logging, with the request's trace.
        if issubclass(t, GreenletExit) or not logger.isEnabledFor(logging.ERROR):
            return
        environ = getattr(self, "environ", None) or {}
        message = "Unexpected error handling %s %s from %s"
        args: tuple[Any, ...] = (
            environ.get("REQUEST_METHOD", "-"),
            shorten(environ.get("PATH_INFO", "-")),
            describe_peer(self.client_address),
        )
        request = getattr(self, "_request_span", None)
        if request is not None and request.trace_id is not None:
            message += " (trace_id=%s span_id=%s)"
            args += (request.trace_id, request.span_id)
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 0, message, args, (t, v, tb), "handle_error"
        )
        if request is not None and request.trace_id is not None:
            # the span has ended by now: the record gets the ids it would have had in it
            record.trace_id = str(request.trace_id)
            record.span_id = str(request.span_id)
        logger.handle(record)

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        # What the client sent cannot be parsed: its error, not the server's.
        reason = getattr(ex, "formatted_message", None) or describe_exception(ex)
        self.server.bad_request_log.warning(
            "bad HTTP request from %s: %s", describe_peer(self.client_address), shorten(reason)
        )
        if "line too long" in str(reason).lower():
            return ("431", _HEADER_TOO_LARGE)
        return ("400", _BAD_REQUEST)

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        if self.server.tracker.stopping and not any(
            name.lower() == "connection" for name, _ in headers
        ):
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)


class WSGIServer(pywsgi.WSGIServer):
    """A gevent WSGI server that stops gracefully (see :meth:`stop_gracefully`)."""

    def __init__(self, listener: socket.socket, application: Callable[..., Any], **kwargs: Any):
        handler_class = kwargs.pop("handler_class", None) or pywsgi.WSGIHandler
        kwargs["handler_class"] = _with_tracking(handler_class)
        super().__init__(listener, application=application, **kwargs)
        self.tracker = RequestTracker()
        #: Where requests that cannot be parsed are logged: one line per
        #: :data:`~baseplate.server._lifecycle.BAD_INPUT_LOG_INTERVAL` at most.
        self.bad_request_log = RateLimitedLog(logger, BAD_INPUT_LOG_INTERVAL)

    def handle(self, sock: socket.socket, address: Any) -> None:
        # pywsgi writes a response's headers and body in separate sends: with Nagle on, a
        # keep-alive client's delayed ACK holds the body back ~40 ms.
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)

    def stop_gracefully(self, timeout: float | None = None) -> None:
        """Stop accepting, let requests in progress finish (at most ``timeout`` seconds,
        default ``stop_timeout``), then close every connection."""
        stop_gracefully(self, self.tracker, self.stop_timeout if timeout is None else timeout)


def _with_tracking(handler_class: type) -> type:
    if issubclass(handler_class, _TrackedHandler):
        return handler_class
    return type(handler_class.__name__, (_TrackedHandler, handler_class), {})


def _load_handler(name: str) -> type:
    try:
        handler_class = load_factory(name)
    except ValueError as exc:
        raise ConfigurationError("handler", exc)
    if not isinstance(handler_class, type) or not issubclass(handler_class, pywsgi.WSGIHandler):
        raise ConfigurationError(
            "handler", f"{name!r} is not a subclass of gevent.pywsgi.WSGIHandler"
        )
    return handler_class


def make_server(
    server_config: dict[str, str], listener: socket.socket, app: Callable[..., Any]
) -> WSGIServer:
    """Make a gevent WSGI server for the WSGI callable ``app`` listening on ``listener``.

    :raises baseplate.config.ConfigurationError: naming the option that is wrong.
    """
    if not callable(app):
        raise ConfigurationError(
            "factory",
            f"baseplate.server.wsgi serves a WSGI callable; the app factory returned {app!r}",
        )
    options = parse_server_options(server_config)
    handler_name = server_config.get("handler")
    handler_class = _load_handler(handler_name) if handler_name else pywsgi.WSGIHandler

    # Access lines cost a formatted string per request: only build them when they are shown.
    access_log: Any = None
    if logger.isEnabledFor(logging.DEBUG):
        access_log = pywsgi.LoggingLogAdapter(logger, logging.DEBUG)
    server = WSGIServer(
        listener,
        app,
        spawn=Pool(size=options.max_concurrency),
        handler_class=handler_class,
        log=access_log,
        error_log=pywsgi.LoggingLogAdapter(logger, logging.ERROR),
    )
    server.stop_timeout = options.stop_timeout
    baseplate: Any = getattr(app, "baseplate", None)  # set by the Pyramid integration
    if callable(getattr(baseplate, "register", None)):
        baseplate.register(_RequestSpanObserver())
    return server


__all__ = ["WSGIServer", "make_server"]
