"""A Thrift client connection pool.

The pool lazily creates connections and keeps them for reuse. Each connection has a maximum
lifetime after which it is recycled, a connection the server has closed is replaced before it
is handed out, and a connection that failed in the middle of a call is closed rather than
returned, because the state of its stream is unknown.

A basic example of usage::

    pool = thrift_pool_from_config(app_config, "example_service.")
    with pool.connection() as protocol:
        client = ExampleService.Client(protocol)
        client.do_example_thing()

All exceptions raised by the pool derive from
:class:`~thrift.transport.TTransport.TTransportException`.
"""

from __future__ import annotations

import datetime
import logging
import queue
import socket
import time
from types import TracebackType
from typing import Any, NamedTuple

from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
from thrift.protocol.TProtocol import TProtocolBase, TProtocolException
from thrift.Thrift import TApplicationException, TException
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TTransportException

from baseplate import config

logger = logging.getLogger(__name__)

#: Pause before the second connection attempt; it doubles for each further attempt.
_FIRST_RETRY_DELAY = 0.01
#: Longest pause between two connection attempts.
_MAX_RETRY_DELAY = 0.5


class _Connection(NamedTuple):
    protocol: TProtocolBase
    created_at: float


def _seconds(value: float | datetime.timedelta, name: str) -> float:
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return float(value)


def _describe(endpoint: Any) -> str:
    address = endpoint.address
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _make_socket(endpoint: Any) -> TSocket:
    family = endpoint.family
    address = endpoint.address
    if family == socket.AF_UNIX:
        return TSocket(unix_socket=address, socket_family=family)
    if family in (socket.AF_INET, socket.AF_INET6):
        host, port = address[0], address[1]
        return TSocket(host=host, port=int(port), socket_family=family)
    raise ValueError(f"unsupported endpoint address family {family!r} for {address!r}")


def is_declared_exception(exc: BaseException) -> bool:
    """Whether a client call's exception is one the service's IDL declares.

    Declared exceptions are decoded from a whole reply: the call worked, and the connection
    is still in a known state. Anything else (transport, protocol and application errors, or
    an exception that interrupted the call) leaves the stream in an unknown state.
    """
    return isinstance(exc, TException) and not isinstance(
        exc, (TTransportException, TProtocolException, TApplicationException)
    )


class ThriftConnectionPool:
    """A pool that maintains a queue of open Thrift connections.

    :param endpoint: The remote address of the Thrift service
        (a :class:`baseplate.config.EndpointConfiguration`).
    :param size: The maximum number of connections that can be open before new attempts
        to open block.
    :param max_age: The maximum number of seconds a connection should be kept alive.
        Connections older than this are closed and replaced when next checked out.
    :param timeout: The maximum number of seconds a connection attempt or RPC call can take
        before a ``TTransportException`` (``TIMED_OUT``) is raised; also how long
        :meth:`connection` waits for a free slot when the pool is exhausted.
    :param max_retries: The maximum number of times the pool will attempt to open a
        connection.
    :param protocol_factory: The factory used to make protocols from transports
        (default: :class:`~thrift.protocol.THeaderProtocol.THeaderProtocolFactory`, binary).
        This is useful for talking to services that don't support THeaderProtocol.
    """

    def __init__(
        self,
        endpoint: Any,
        size: int = 10,
        max_age: float | datetime.timedelta = 120,
        timeout: float | datetime.timedelta = 1,
        max_retries: int = 3,
        protocol_factory: Any = None,
    ) -> None:
        if not hasattr(endpoint, "family") or not hasattr(endpoint, "address"):
            raise TypeError(
                f"endpoint must be an EndpointConfiguration (family, address), not {endpoint!r}"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"max_retries must be a positive integer, got {max_retries!r}")
        if protocol_factory is None:
            protocol_factory = THeaderProtocolFactory()
        elif isinstance(protocol_factory, type):
            protocol_factory = protocol_factory()

        self.endpoint = endpoint
        self.size = size
        self.max_age = _seconds(max_age, "max_age")
        self.timeout = _seconds(timeout, "timeout")
        self.max_retries = max_retries
        self.protocol_factory = protocol_factory

        # One entry per slot: None for a slot without an open connection. LIFO keeps the
        # most recently used connections busy so that idle ones age out.
        self.pool: queue.LifoQueue[_Connection | None] = queue.LifoQueue()
        for _ in range(size):
            self.pool.put(None)

    def __repr__(self) -> str:
        return f"<ThriftConnectionPool {_describe(self.endpoint)} size={self.size}>"

    @property
    def checked_out(self) -> int:
        """How many connection slots are in use right now."""
        return self.size - self.pool.qsize()

    def _open(self) -> _Connection:
        delay = _FIRST_RETRY_DELAY
        last_error: Exception | None = None
        for attempt in range(1, self.max_retries + 1):
            transport = _make_socket(self.endpoint)
            transport.setTimeout(self.timeout * 1000.0)
            try:
                protocol = self.protocol_factory.getProtocol(transport)
                protocol.trans.open()
            except TTransportException as exc:
                transport.close()
                last_error = exc
                logger.info(
                    "Attempt %d/%d to connect to %s failed: %s",
                    attempt,
                    self.max_retries,
                    _describe(self.endpoint),
                    exc,
                )
                if attempt < self.max_retries:
                    time.sleep(delay)
                    delay = min(delay * 2, _MAX_RETRY_DELAY)
                continue
            except BaseException:
                transport.close()
                raise
            return _Connection(protocol, time.monotonic())
        raise TTransportException(
            type=TTransportException.NOT_OPEN,
            message=(
                f"could not connect to {_describe(self.endpoint)} after "
                f"{self.max_retries} attempt(s): {last_error}"
            ),
            inner=last_error,
        )

    def _usable(self, connection: _Connection) -> bool:
        if time.monotonic() - connection.created_at >= self.max_age:
            return False
        # isOpen() peeks at the socket: a server that closed the connection (restarted,
        # idle timeout) shows as EOF here, before a request is wasted on it.
        return bool(connection.protocol.trans.isOpen())

    def _acquire(self) -> _Connection:
        try:
            connection = self.pool.get(block=True, timeout=self.timeout)
        except queue.Empty:
            raise TTransportException(
                type=TTransportException.TIMED_OUT,
                message=(
                    f"timed out after {self.timeout}s waiting for a free connection to "
                    f"{_describe(self.endpoint)} (all {self.size} in use)"
                ),
            )
        try:
            if connection is not None and not self._usable(connection):
                connection.protocol.trans.close()
                connection = None
            if connection is None:
                connection = self._open()
            return connection
        except BaseException:
            # the slot goes back empty, whatever happened while filling it
            self.pool.put(None)
            raise

    def _release(self, connection: _Connection | None) -> None:
        self.pool.put(connection)

    def connection(self) -> _PooledConnection:
        """Acquire a connection from the pool.

        This method is to be used as a context manager. It yields a protocol connected to
        the service, or blocks up to ``timeout`` seconds waiting for one if all connections
        are in use, then raises ``TTransportException``.

        When the context is exited, the connection is returned to the pool. If it was exited
        via an unexpected exception (anything but an exception declared in the service's IDL),
        the connection is closed instead because the state of the connection is unknown.
        """
        return _PooledConnection(self)


class _PooledConnection:
    """The context manager returned by :meth:`ThriftConnectionPool.connection`."""

    # A class rather than a generator-based context manager: contextlib assigns
    # __traceback__ on the exception it re-raises, which the immutable exception classes
    # that the Thrift compiler generates refuse with a TypeError.

    def __init__(self, pool: ThriftConnectionPool) -> None:
        self._pool = pool
        self._connection: _Connection | None = None

    def __enter__(self) -> TProtocolBase:
        if self._connection is not None:
            raise RuntimeError("this pooled connection is already in use")
        self._connection = self._pool._acquire()
        return self._connection.protocol

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if exc_value is not None and not is_declared_exception(exc_value):
            connection.protocol.trans.close()
            self._pool._release(None)
        else:
            self._pool._release(connection)


#: The ``max_age`` of pools made by :func:`thrift_pool_from_config` when not configured.
DEFAULT_CONFIG_MAX_AGE = datetime.timedelta(minutes=1)
#: The most ``max_retries`` :func:`thrift_pool_from_config` accepts: with the pause between
#: attempts capped at half a second, more would keep a request waiting for minutes.
MAX_CONFIG_RETRIES = 100


def thrift_pool_from_config(
    app_config: dict[str, str], prefix: str = "thrift.", **kwargs: Any
) -> ThriftConnectionPool:
    """Make a ThriftConnectionPool from a configuration dictionary.

    The keys useful to :func:`thrift_pool_from_config` should be prefixed, e.g.
    ``example_service.endpoint`` etc. The ``prefix`` argument specifies the prefix used to
    filter keys. Each key is mapped to a corresponding keyword argument on the
    :class:`ThriftConnectionPool` constructor. Any keyword arguments given to this function
    will be also be passed through to the constructor. Keyword arguments take precedence
    over the configuration file.

    Supported keys:

    * ``endpoint`` (required): A ``host:port`` pair, e.g. ``localhost:2014``, (or a unix
      socket path) where the Thrift server can be found.
    * ``size``: The size of the connection pool, 1 to :data:`~baseplate.config.MAX_POOL_SIZE`
      (10 000; the pool sets aside every slot when it is made).
    * ``max_age``: The oldest a connection can be before it's recycled and replaced with a
      new one. Written as a time span e.g. ``1 minute`` (the default here, as in
      baseplate's own helper; the class's default is 120 seconds) or a number of seconds;
      at most one day.
    * ``timeout``: The maximum amount of time a connection attempt or RPC call can take
      before a TimeoutError is raised. Written as a time span or a number of seconds; more
      than zero, at most one day.
    * ``max_retries``: The maximum number of times the pool will attempt to open a
      connection, 1 to :data:`MAX_CONFIG_RETRIES`.

    Values may be given as text or, in code, as numbers (``{"thrift.size": 10}``). A value
    out of its range raises :class:`~baseplate.config.ConfigurationError` naming the key.
    """
    if not prefix.endswith("."):
        raise ValueError(f"prefix must end with a dot, got {prefix!r}")
    parser = config.SpecParser(
        {
            "endpoint": config.Endpoint,
            "size": config.Optional(config.IntegerRange(1, config.MAX_POOL_SIZE), default=None),
            "max_age": config.Optional(config.Duration(), default=DEFAULT_CONFIG_MAX_AGE),
            "timeout": config.Optional(config.Duration(allow_zero=False), default=None),
            "max_retries": config.Optional(
                config.IntegerRange(1, MAX_CONFIG_RETRIES), default=None
            ),
        }
    )
    options = parser.parse(prefix[:-1], app_config)

    for name in ("size", "max_age", "timeout", "max_retries"):
        value = getattr(options, name)
        if value is not None:
            kwargs.setdefault(name, value)
    kwargs.setdefault("endpoint", options.endpoint)
    return ThriftConnectionPool(**kwargs)
