"""Memcached integration: a pymemcache ``PooledClient`` from config and a monitored client.

Every call through :class:`MonitoredMemcacheConnection` is a client span named
``<context attribute>.<method>`` (e.g. ``memcache.get``, metric ``clients.memcache.get``)
tagged with the key (``key``) or the keys and their count (``keys``, ``key_count``). Errors
are recorded on the span and reach the caller unchanged; the pool drops a connection that
failed and opens a new one on the next call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymemcache.client.base import PooledClient

from baseplate import config
from baseplate.context import ContextFactory
from baseplate.context._clients import parse_prefixed
from baseplate.core import Span

#: Longest ``keys`` tag written for multi-key calls (the count is always exact).
_MAX_KEYS_TAG = 1000


def pool_from_config(
    app_config: Mapping[str, str],
    prefix: str = "memcache.",
    serializer: Callable[[Any, Any], tuple[bytes, int]] | None = None,
    deserializer: Callable[[Any, bytes, int], Any] | None = None,
) -> PooledClient:
    """Make a PooledClient from a configuration dictionary.

    The keys useful to :func:`pool_from_config` should be prefixed, e.g.
    ``memcache.endpoint``, ``memcache.max_pool_size``, etc. The ``prefix`` argument
    specifies the prefix used to filter keys. Each key is mapped to a corresponding keyword
    argument on the :class:`pymemcache.client.base.PooledClient` constructor.

    Supported keys:

    * ``endpoint`` (required): a string representing a host and port to connect to
      memcached service, e.g. ``localhost:11211`` or ``127.0.0.1:11211``.
    * ``max_pool_size``: an integer for the maximum pool size to use, by default this is
      ``2147483648``.
    * ``connect_timeout``: a float representing seconds to wait for a connection to
      memcached server. Defaults to the underlying socket default timeout.
    * ``timeout``: a float representing seconds to wait for calls on the socket connected
      to memcache. Defaults to the underlying socket default timeout.
    * ``no_delay``: whether to set ``TCP_NODELAY`` on the sockets (default ``true``).

    :param app_config: the config dictionary
    :param prefix: prefix for config keys
    :param serializer: function to serialize values to strings suitable for being stored
        in memcached. An example is
        :func:`~baseplate.context.memcache.lib.make_dump_and_compress_fn`.
    :param deserializer: function to convert strings returned from memcached to arbitrary
        objects, must be compatible with ``serializer``. An example is
        :func:`~baseplate.context.memcache.lib.decompress_and_load`.
    :returns: :class:`pymemcache.client.base.PooledClient`
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "endpoint": config.Endpoint,
            "max_pool_size": config.Optional(config.Integer, default=None),
            "connect_timeout": config.Optional(config.Float, default=None),
            "timeout": config.Optional(config.Float, default=None),
            "no_delay": config.Optional(config.Boolean, default=True),
        },
    )
    return PooledClient(
        server=options.endpoint.address,
        connect_timeout=options.connect_timeout,
        timeout=options.timeout,
        serializer=serializer,
        deserializer=deserializer,
        no_delay=options.no_delay,
        max_pool_size=options.max_pool_size,
    )


class MemcacheContextFactory(ContextFactory):
    """Memcache client context factory.

    This factory will attach a :class:`MonitoredMemcacheConnection` to an attribute on the
    context object. When memcache commands are executed via this connection object, they
    use connections from the provided PooledClient and automatically record diagnostic
    information.

    :param pooled_client: A pooled client (e.g. from :func:`pool_from_config`).
    :returns: :class:`MonitoredMemcacheConnection`
    """

    def __init__(self, pooled_client: PooledClient):
        self.pooled_client = pooled_client

    def make_object_for_context(
        self, name: str, server_span: Span
    ) -> MonitoredMemcacheConnection:
        """Return a :class:`MonitoredMemcacheConnection` for this request."""
        return MonitoredMemcacheConnection(name, server_span, self.pooled_client)


def _key_text(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return str(key)


def _tag_one_key(span: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    key = args[0] if args else kwargs.get("key")
    if key is not None:
        span.set_tag("key", _key_text(key))


def _tag_many_keys(span: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    keys = args[0] if args else kwargs.get("keys", kwargs.get("values"))
    if keys is None:
        return
    names = [_key_text(key) for key in keys]  # a mapping (set_many) gives its keys
    span.set_tag("key_count", len(names))
    text = ",".join(names)
    span.set_tag("keys", text if len(text) <= _MAX_KEYS_TAG else text[:_MAX_KEYS_TAG] + "...")


def _tag_nothing(span: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    pass


_Tagger = Callable[[Span, "tuple[Any, ...]", "dict[str, Any]"], None]


def _monitored(method_name: str, tagger: _Tagger) -> Callable[..., Any]:
    def call(self: MonitoredMemcacheConnection, *args: Any, **kwargs: Any) -> Any:
        with self.server_span.make_child(f"{self.context_name}.{method_name}") as span:
            tagger(span, args, kwargs)
            for option in ("expire", "noreply"):
                if option in kwargs and kwargs[option] is not None:
                    span.set_tag(option, kwargs[option])
            return getattr(self.pooled_client, method_name)(*args, **kwargs)

    call.__name__ = method_name
    call.__qualname__ = f"MonitoredMemcacheConnection.{method_name}"
    call.__doc__ = f"``PooledClient.{method_name}`` inside a client span."
    return call


class MonitoredMemcacheConnection(PooledClient):
    """Memcache connection that collects diagnostic information.

    This connection acts like a :class:`pymemcache.client.base.PooledClient` (it is one,
    for ``isinstance`` checks) except that operations are client spans using the pooled
    client given to it. Every method of ``PooledClient`` that talks to the server is
    monitored, including the ``*_multi`` aliases and item access (``conn[key]``).
    """

    def __init__(self, context_name: str, server_span: Span, pooled_client: PooledClient):
        # The pooled client owns the connections; this object only adds spans around it,
        # so PooledClient.__init__ (which would make a second pool) is not called.
        self.context_name = context_name
        self.server_span = server_span
        self.pooled_client = pooled_client

    def __getattr__(self, name: str) -> Any:
        # settings such as server, serde, key_prefix and timeout come from the pooled client
        if name in ("pooled_client", "context_name", "server_span"):
            raise AttributeError(name)
        return getattr(self.pooled_client, name)

    def check_key(self, key: Any) -> bytes:
        """Check a key and add the key prefix (local: no span)."""
        return self.pooled_client.check_key(key)

    close = _monitored("close", _tag_nothing)
    disconnect_all = _monitored("disconnect_all", _tag_nothing)
    set = _monitored("set", _tag_one_key)
    set_many = _monitored("set_many", _tag_many_keys)
    set_multi = _monitored("set_multi", _tag_many_keys)
    replace = _monitored("replace", _tag_one_key)
    append = _monitored("append", _tag_one_key)
    prepend = _monitored("prepend", _tag_one_key)
    cas = _monitored("cas", _tag_one_key)
    get = _monitored("get", _tag_one_key)
    get_many = _monitored("get_many", _tag_many_keys)
    get_multi = _monitored("get_multi", _tag_many_keys)
    gets = _monitored("gets", _tag_one_key)
    gets_many = _monitored("gets_many", _tag_many_keys)
    delete = _monitored("delete", _tag_one_key)
    delete_many = _monitored("delete_many", _tag_many_keys)
    delete_multi = _monitored("delete_multi", _tag_many_keys)
    add = _monitored("add", _tag_one_key)
    incr = _monitored("incr", _tag_one_key)
    decr = _monitored("decr", _tag_one_key)
    touch = _monitored("touch", _tag_one_key)
    stats = _monitored("stats", _tag_nothing)
    version = _monitored("version", _tag_nothing)
    flush_all = _monitored("flush_all", _tag_nothing)
    quit = _monitored("quit", _tag_nothing)
    shutdown = _monitored("shutdown", _tag_nothing)
    raw_command = _monitored("raw_command", _tag_nothing)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value, noreply=True)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __delitem__(self, key: Any) -> None:
        self.delete(key, noreply=True)


__all__ = [
    "MemcacheContextFactory",
    "MonitoredMemcacheConnection",
    "pool_from_config",
]
