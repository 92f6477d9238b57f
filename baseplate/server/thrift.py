"""The gevent Thrift server: ``factory = baseplate.server.thrift`` in ``[server:NAME]``.

::

    [server:main]
    factory = baseplate.server.thrift
    max_concurrency = 100
    stop_timeout = 30

``max_concurrency`` is the most connections served at once (default: unlimited) and
``stop_timeout`` how many seconds calls in progress get to finish when the server stops
(default 0: none).

The application factory returns a ``TProcessor`` (typically a
:class:`baseplate.integration.thrift.ContextProcessor`). Each connection gets one
THeader protocol, which detects what the client speaks: THeader (binary or compact inside),
framed binary or compact, and unframed binary or compact; replies use the client's format.
Each call runs in a fresh, empty :mod:`contextvars` context (no current OpenTelemetry span).
Services that extend ``BaseplateService`` answer ``baseplate-healthcheck thrift HOST:PORT``
through their ``is_healthy`` method.

Bad input (a frame that is not Thrift, a length out of bounds, bytes that do not decode, a
request cut short) closes that connection and is logged as one WARNING line naming the peer,
without a traceback, at most once a minute (the next line says how many were held back); the
server keeps serving everyone else. Errors after a request was read (writing the reply, a
bug) are logged with their traceback.
"""

from __future__ import annotations

import contextvars
import logging
import socket
from typing import Any

from gevent.pool import Pool
from gevent.server import StreamServer
from thrift.protocol.THeaderProtocol import THeaderProtocol, THeaderProtocolFactory
from thrift.protocol.TProtocol import TProtocolException
from thrift.Thrift import TProcessor
from thrift.transport.THeaderTransport import THeaderClientType
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TTransportException

from baseplate.config import ConfigurationError
from baseplate.server._lifecycle import (
    BAD_INPUT_LOG_INTERVAL,
    Connection,
    RequestTracker,
    describe_exception,
    describe_peer,
    parse_server_options,
    stop_gracefully,
)
from exporters._ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)

#: The options of the server section this server reads (others are warned about as typos).
SERVER_KEYS = ("factory", "max_concurrency", "stop_timeout")

#: Transport errors that mean the client sent something the server cannot read (the others
#: are the network's: a reset, a timeout, the client closing between calls).
BAD_INPUT_TRANSPORT_ERRORS = frozenset(
    {
        TTransportException.NEGATIVE_SIZE,
        TTransportException.SIZE_LIMIT,
        TTransportException.INVALID_CLIENT_TYPE,
    }
)

#: Every client format the server accepts.
ALLOWED_CLIENT_TYPES = (
    THeaderClientType.HEADERS,
    THeaderClientType.FRAMED_BINARY,
    THeaderClientType.UNFRAMED_BINARY,
    THeaderClientType.FRAMED_COMPACT,
    THeaderClientType.UNFRAMED_COMPACT,
)


class _ConnectionSocket(TSocket):
    """The client socket as a Thrift transport; the first bytes of a call mark it busy.

    It reads nothing ahead of what the protocol asks for, so "no bytes read" means idle.
    """

    def __init__(self, client_socket: socket.socket, connection: Connection) -> None:
        super().__init__()
        self.setHandle(client_socket)
        self._connection = connection

    def read(self, sz: int) -> bytes:
        data: bytes = super().read(sz)
        self._connection.begin_request()
        return data


class _ServerProtocol(THeaderProtocol):
    """The server's THeader protocol; knows whether a request is being read.

    ``reading`` is true from the start of ``readMessageBegin`` (the frame, the method name)
    until ``readMessageEnd`` (after the arguments), which generated processors call before
    they run the handler: an error in between comes from the client's bytes.
    """

    reading = False

    def readMessageBegin(self) -> Any:
        self.reading = True
        return super().readMessageBegin()

    def readMessageEnd(self) -> Any:
        result = super().readMessageEnd()
        self.reading = False
        return result


class GeventServer(StreamServer):
    """A gevent stream server running a Thrift processor on each connection."""

    def __init__(self, processor: TProcessor, *args: Any, **kwargs: Any) -> None:
        self.processor = processor
        self.protocol_factory = THeaderProtocolFactory(allowed_client_types=ALLOWED_CLIENT_TYPES)
        self.tracker = RequestTracker()
        #: Where bad input is logged: one line per :data:`BAD_INPUT_LOG_INTERVAL` at most.
        self.bad_input_log = RateLimitedLog(logger, BAD_INPUT_LOG_INTERVAL)
        super().__init__(*args, **kwargs)

    def handle(self, client_socket: socket.socket, address: Any) -> None:
        """Serve calls on one connection until the client closes it or the server stops."""
        connection = Connection(self.tracker)
        transport = _ConnectionSocket(client_socket, connection)
        # THeader needs one protocol for both directions: the reply uses the request's format.
        protocol = _ServerProtocol(
            transport,
            self.protocol_factory.allowed_client_types,
            self.protocol_factory.default_protocol,
        )
        try:
            while not self.tracker.stopping:
                contextvars.Context().run(self.processor.process, protocol, protocol)
                connection.end_request()
        except Exception as exc:
            self._connection_failed(exc, address, reading=protocol.reading and connection.busy)
        finally:
            connection.end_request()
            transport.close()

    def _connection_failed(self, exc: Exception, address: Any, reading: bool) -> None:
        # ``reading``: bytes of a request had arrived and it was not fully read yet.
        if isinstance(exc, TTransportException):
            if exc.type == TTransportException.END_OF_FILE:
                if reading:  # not between calls: the request was cut short
                    self._bad_input(exc, address)
            elif exc.type in BAD_INPUT_TRANSPORT_ERRORS:
                self._bad_input(exc, address)
            else:  # the network's doing: a reset, a timeout
                logger.debug("closing Thrift connection from %s: %s", describe_peer(address), exc)
        elif isinstance(exc, TProtocolException) or reading:
            self._bad_input(exc, address)
        else:
            logger.exception(
                "unexpected error on Thrift connection from %s", describe_peer(address)
            )

    def _bad_input(self, exc: Exception, address: Any) -> None:
        if isinstance(exc, TTransportException) and exc.type == TTransportException.END_OF_FILE:
            reason = "the request was cut short (the client closed the connection)"
        else:
            reason = describe_exception(exc)
        self.bad_input_log.warning(
            "closing Thrift connection from %s: bad request: %s", describe_peer(address), reason
        )

    def stop_gracefully(self, timeout: float | None = None) -> None:
        """Stop accepting, let calls in progress finish (at most ``timeout`` seconds,
        default ``stop_timeout``), then close every connection."""
        stop_gracefully(self, self.tracker, self.stop_timeout if timeout is None else timeout)


def make_server(
    server_config: dict[str, str], listener: socket.socket, app: TProcessor
) -> GeventServer:
    """Make a gevent Thrift server for the processor ``app`` listening on ``listener``.

    :raises baseplate.config.ConfigurationError: naming the option that is wrong.
    """
    if not callable(getattr(app, "process", None)):
        raise ConfigurationError(
            "factory",
            f"baseplate.server.thrift serves a TProcessor; the app factory returned {app!r}",
        )
    options = parse_server_options(server_config)
    server = GeventServer(
        processor=app, listener=listener, spawn=Pool(size=options.max_concurrency)
    )
    server.stop_timeout = options.stop_timeout
    return server


__all__ = ["ALLOWED_CLIENT_TYPES", "BAD_INPUT_TRANSPORT_ERRORS", "GeventServer", "make_server"]
