"""Redis integration: a connection pool from config and a client whose commands are spans.

Every command sent through :class:`MonitoredRedisConnection` is a client span named
``<context attribute>.<COMMAND>`` (e.g. ``redis.GET``, so its metric is
``clients.redis.GET``); a pipeline is one span ``<attribute>.pipeline_<pipeline name>``
for the whole ``execute``. Errors are recorded on the span and reach the caller unchanged.

When ``opentelemetry-instrumentation-redis`` is active too, the vendor span for a call made
through these classes is suppressed (see :mod:`baseplate.context._clients`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
import redis.client

from baseplate import config
from baseplate._span import Span
from baseplate.context import ContextFactory
from baseplate.context._clients import (
    parse_prefixed,
    vendor_instrumentation_active,
    vendor_suppressed,
)

_VENDOR = ("opentelemetry.instrumentation.redis", "RedisInstrumentor")


def _vendor_active() -> bool:
    return vendor_instrumentation_active(*_VENDOR)


def pool_from_config(
    app_config: Mapping[str, str], prefix: str = "redis.", **kwargs: Any
) -> redis.BlockingConnectionPool:
    """Make a ConnectionPool from a configuration dictionary.

    The keys useful to :func:`pool_from_config` should be prefixed, e.g. ``redis.url``,
    ``redis.max_connections``, etc. The ``prefix`` argument specifies the prefix used to
    filter keys. Each key is mapped to a corresponding keyword argument on the
    :class:`redis.BlockingConnectionPool` constructor; keyword arguments given to this
    function are passed through and take precedence over the configuration file.

    Supported keys:

    * ``url`` (required): a URL like ``redis://localhost/0``.
    * ``max_connections``: an integer maximum number of connections in the pool, 1 to
      :data:`~baseplate.config.MAX_POOL_SIZE` (10 000; the pool sets aside every slot
      when it is made).
    * ``socket_connect_timeout``: a timespan of how long to wait for sockets to connect,
      e.g. ``200 milliseconds`` (or a number of seconds); more than zero, at most a day.
    * ``socket_timeout``: a timespan of how long to wait for socket operations, e.g.
      ``200 milliseconds`` (or a number of seconds); more than zero, at most a day.

    A value out of its range raises :class:`~baseplate.config.ConfigurationError` naming
    the key.
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "url": config.String,
            "max_connections": config.Optional(
                config.IntegerRange(1, config.MAX_POOL_SIZE), default=None
            ),
            "socket_connect_timeout": config.Optional(
                config.Seconds(allow_zero=False), default=None
            ),
            "socket_timeout": config.Optional(config.Seconds(allow_zero=False), default=None),
        },
    )
    if options.max_connections is not None:
        kwargs.setdefault("max_connections", options.max_connections)
    if options.socket_connect_timeout is not None:
        kwargs.setdefault("socket_connect_timeout", options.socket_connect_timeout)
    if options.socket_timeout is not None:
        kwargs.setdefault("socket_timeout", options.socket_timeout)
    try:
        return redis.BlockingConnectionPool.from_url(options.url, **kwargs)
    except ValueError as exc:
        raise config.ConfigurationError(f"{prefix}url", exc) from None


class RedisContextFactory(ContextFactory):
    """Redis client context factory.

    This factory will attach a :class:`MonitoredRedisConnection` to an attribute on the
    context object. When redis commands are executed via this connection object, they use
    connections from the provided :class:`redis.ConnectionPool` and automatically record
    diagnostic information.

    :param connection_pool: A connection pool (e.g. from :func:`pool_from_config`).
    """

    def __init__(self, connection_pool: redis.ConnectionPool):
        self.connection_pool = connection_pool

    def make_object_for_context(self, name: str, server_span: Span) -> MonitoredRedisConnection:
        """Return a :class:`MonitoredRedisConnection` for this request."""
        return MonitoredRedisConnection(name, server_span, self.connection_pool)


def _command_name(args: tuple[Any, ...]) -> str:
    command = args[0] if args else "UNKNOWN"
    if isinstance(command, bytes):
        command = command.decode("utf-8", "replace")
    return str(command)


class MonitoredRedisConnection(redis.StrictRedis):
    """Redis connection that collects diagnostic information.

    This connection acts like :class:`redis.StrictRedis` except that every command is a
    client span ``<context_name>.<COMMAND>``. The interface is the same as that class except
    for :meth:`pipeline`, which takes a name for its span. ``lock()`` works (its commands
    are spans); ``pubsub()`` returns an unmonitored :class:`redis.client.PubSub`.
    """

    def __init__(self, context_name: str, server_span: Span, connection_pool: redis.ConnectionPool):
        self.context_name = context_name
        self.server_span = server_span
        super().__init__(connection_pool=connection_pool)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Send a command to the server inside a client span."""
        trace_name = f"{self.context_name}.{_command_name(args)}"
        with self.server_span.make_child(trace_name) as span:
            _tag_call(span, args)
            with vendor_suppressed(_vendor_active()):
                return super().execute_command(*args, **kwargs)

    def pipeline(  # type: ignore[override]
        self, name: str = "unnamed", transaction: bool = True, shard_hint: Any = None
    ) -> MonitoredPipeline:
        """Create a pipeline.

        This returns an object on which you can call the standard redis commands. Execution
        is deferred until ``execute`` is called, which is one span named
        ``<context_name>.pipeline_<name>``. This is useful for saving round trips.

        :param name: The name to attach to diagnostics for this pipeline (``unnamed`` when
            redis-py itself asks for a pipeline by keyword, e.g. for RediSearch).
        :param transaction: Whether or not the commands in the pipeline are wrapped with a
            transaction and executed atomically.
        :param shard_hint: Passed through to :class:`redis.client.Pipeline`.
        """
        if not isinstance(name, str):
            raise TypeError(
                f"pipeline name must be a string (got {name!r}): the first argument of "
                "MonitoredRedisConnection.pipeline is the name used in its span"
            )
        return MonitoredPipeline(
            f"{self.context_name}.pipeline_{name}",
            self.server_span,
            self.connection_pool,
            self.response_callbacks,
            transaction=transaction,
            shard_hint=shard_hint,
            context_name=self.context_name,
        )

    def transaction(
        self, func: Callable[[redis.client.Pipeline], Any], *watches: Any, **kwargs: Any
    ) -> Any:
        """Run ``func`` in a WATCH/MULTI/EXEC transaction (pipeline span ``pipeline_transaction``).

        Same arguments as :meth:`redis.Redis.transaction`.
        """
        shard_hint = kwargs.pop("shard_hint", None)
        value_from_callable = kwargs.pop("value_from_callable", False)
        watch_delay = kwargs.pop("watch_delay", None)
        with self.pipeline("transaction", True, shard_hint) as pipe:
            while True:
                try:
                    if watches:
                        pipe.watch(*watches)
                    func_value = func(pipe)
                    exec_value = pipe.execute()
                    return func_value if value_from_callable else exec_value
                except redis.WatchError:
                    if watch_delay is not None and watch_delay > 0:
                        time.sleep(watch_delay)
                    continue


def _tag_call(span: Span, args: tuple[Any, ...]) -> None:
    # The first argument of a keyed command is its key; enough to find a hot key without
    # recording values.
    if len(args) > 1 and isinstance(args[1], (str, bytes, int)):
        span.set_tag("key", args[1])


class MonitoredPipeline(redis.client.Pipeline):
    """A redis pipeline whose ``execute`` is one client span named ``trace_name``.

    Made by :meth:`MonitoredRedisConnection.pipeline`. Commands that run immediately
    (``WATCH`` and whatever follows it before ``MULTI``) are spans named
    ``<context_name>.<COMMAND>`` like those of the connection.
    """

    def __init__(
        self,
        trace_name: str,
        server_span: Span,
        connection_pool: redis.ConnectionPool,
        response_callbacks: Any,
        transaction: bool = True,
        shard_hint: Any = None,
        context_name: str | None = None,
    ):
        self.trace_name = trace_name
        self.server_span = server_span
        self.context_name = context_name or trace_name.rsplit(".", 1)[0]
        super().__init__(connection_pool, response_callbacks, transaction, shard_hint)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a command right away (while watching) inside a client span."""
        with self.server_span.make_child(f"{self.context_name}.{_command_name(args)}") as span:
            _tag_call(span, args)
            with vendor_suppressed(_vendor_active()):
                return super().immediate_execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Execute all the queued commands inside one client span."""
        with self.server_span.make_child(self.trace_name) as span:
            span.set_tag("commands", len(self.command_stack))
            with vendor_suppressed(_vendor_active()):
                return super().execute(raise_on_error)


#: The name this class had in baseplate 0.28.
MonitoredRedisPipeline = MonitoredPipeline


class MessageQueue:
    """A redis-backed variant of :class:`baseplate.message_queue.MessageQueue`.

    Messages are kept in a redis list named ``name``.

    :param name: can be any string.
    :param client: a :class:`redis.ConnectionPool` (e.g. from :func:`pool_from_config`) or
        a redis client (such as the ``MonitoredRedisConnection`` of a request).
    """

    def __init__(self, name: str, client: redis.ConnectionPool | redis.Redis):
        self.queue = name
        if isinstance(client, redis.ConnectionPool):
            self.client: redis.Redis = redis.Redis(connection_pool=client)
        else:
            self.client = client

    def get(self, timeout: float | None = None) -> bytes:
        """Read a message from the queue.

        :param timeout: If the queue is empty, the call will block up to ``timeout``
            seconds, or forever if ``None``; a float is rounded up to whole seconds.
        :raises baseplate.message_queue.TimedOutError: The queue was empty for the
            allowed duration of the call.
        """
        if timeout == 0:
            message = self.client.lpop(self.queue)
        else:
            wait = 0 if timeout is None else max(1, math.ceil(timeout))
            popped = self.client.blpop([self.queue], timeout=wait)
            message = popped[1] if popped else None
        if message is None:
            from baseplate.message_queue import TimedOutError

            raise TimedOutError
        return message  # type: ignore[return-value]

    def put(self, message: bytes | str, timeout: float | None = None) -> None:
        """Add a message to the queue (``timeout`` is accepted for compatibility: redis
        lists never fill up)."""
        self.client.rpush(self.queue, message)

    def unlink(self) -> None:
        """Nothing to do for the redis variant (kept for interface compatibility)."""

    def close(self) -> None:
        """Delete the queue from the redis server (using it again recreates it)."""
        self.client.delete(self.queue)


__all__ = [
    "MessageQueue",
    "MonitoredPipeline",
    "MonitoredRedisConnection",
    "MonitoredRedisPipeline",
    "RedisContextFactory",
    "pool_from_config",
]
