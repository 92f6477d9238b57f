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
"""

from __future__ import annotations

import contextvars
import logging
import socket
from collections.abc import Callable
from typing import Any

from gevent import pywsgi
from gevent.pool import Pool

from baseplate.config import ConfigurationError
from baseplate.server._lifecycle import (
    Connection,
    RequestTracker,
    parse_server_options,
    stop_gracefully,
)
from baseplate.server.loading import load_factory

logger = logging.getLogger(__name__)


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
        contextvars.Context().run(super().run_application)

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
    return server


__all__ = ["WSGIServer", "make_server"]
