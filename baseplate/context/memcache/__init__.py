"""Memcached integration: a pymemcache ``PooledClient`` from config and a monitored client.

Every call through :class:`MonitoredMemcacheConnection` is a client span named
``<context attribute>.<method>`` (e.g. ``memcache.get``, metric ``clients.memcache.get``)
tagged as baseplate's monitored client tagged it: ``method``, the key (``key``) or the keys
and their count (``keys``, cut at 100 characters, and ``key_count``), and the call's
``expire``, ``noreply``, ``cas`` or ``delay`` (their defaults when not given). Errors
are recorded on the span and reach the caller unchanged; the pool drops a connection that
failed and opens a new one on the next call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymemcache.client.base import PooledClient

from baseplate import config
from baseplate._span import Span
from baseplate.context import ContextFactory
from baseplate.context._clients import parse_prefixed

#: The largest ``max_pool_size``: pymemcache's own default (2**31), as the 0.28 helper
#: documents it. The pool opens connections only as they are needed, so it costs nothing.
MAX_POOL_SIZE = 2**31

#: Longest ``keys`` tag written for multi-key calls (the count is always exact).
_MAX_KEYS_TAG = 100


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
      ``2147483648`` (also the largest accepted: connections are opened as needed).
    * ``connect_timeout``: a float representing seconds to wait for a connection to
      memcached server (or a timespan, e.g. ``500 milliseconds``); more than zero, at most
      a day. Defaults to the underlying socket default timeout.
    * ``timeout``: a float representing seconds to wait for calls on the socket connected
      to memcache (or a timespan); more than zero, at most a day. Defaults to the
      underlying socket default timeout.
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
    :raises baseplate.config.ConfigurationError: naming the key whose value is wrong or out
        of range.
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "endpoint": config.Endpoint,
            "max_pool_size": config.Optional(config.IntegerRange(1, MAX_POOL_SIZE), default=None),
            "connect_timeout": config.Optional(config.Seconds(allow_zero=False), default=None),
            "timeout": config.Optional(config.Seconds(allow_zero=False), default=None),
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

    def make_object_for_context(self, name: str, server_span: Span) -> MonitoredMemcacheConnection:
        """Return a :class:`MonitoredMemcacheConnection` for this request."""
        return MonitoredMemcacheConnection(name, server_span, self.pooled_client)


def _key_text(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return str(key)


def _keys_tag(keys: Any) -> str:
    text = ",".join(_key_text(key) for key in keys)  # a mapping (set_many) gives its keys
    return text if len(text) <= _MAX_KEYS_TAG else text[:_MAX_KEYS_TAG] + "..."


_STORE = (("key", "value", "expire", "noreply"), {"expire": 0, "noreply": None})
_STORE_MANY = (("values", "expire", "noreply"), {"expire": 0, "noreply": None})

#: Per method: the names of its leading positional parameters, and the options tagged on its
#: span with the value tagged when the caller leaves them out (the defaults of baseplate's
#: monitored client).
_SIGNATURES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "set": _STORE,
    "add": _STORE,
    "replace": _STORE,
    "append": _STORE,
    "prepend": _STORE,
    "set_many": _STORE_MANY,
    "set_multi": _STORE_MANY,
    "cas": (
        ("key", "value", "cas", "expire", "noreply"),
        {"cas": None, "expire": 0, "noreply": None},
    ),
    "get": (("key",), {}),
    "gets": (("key",), {}),
    "get_many": (("keys",), {}),
    "get_multi": (("keys",), {}),
    "gets_many": (("keys",), {}),
    "delete": (("key", "noreply"), {"noreply": None}),
    "delete_many": (("keys", "noreply"), {"noreply": None}),
    "delete_multi": (("keys", "noreply"), {"noreply": None}),
    "incr": (("key", "value", "noreply"), {"noreply": False}),
    "decr": (("key", "value", "noreply"), {"noreply": False}),
    "touch": (("key", "expire", "noreply"), {"expire": 0, "noreply": None}),
    "flush_all": (("delay", "noreply"), {"delay": 0, "noreply": None}),
}


def _tag_call(span: Span, method_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Tag a call's span: ``method``, then its key (``key``) or keys (``key_count`` and
    ``keys``, cut at 100 characters) and options such as ``expire`` and ``noreply``."""
    span.set_tag("method", method_name)
    names, options = _SIGNATURES.get(method_name, ((), {}))
    bound = dict(zip(names, args, strict=False))  # extra positionals are untagged
    bound.update(kwargs)
    if "key" in bound:
        span.set_tag("key", bound["key"])
    keys = bound.get("keys", bound.get("values"))
    if keys is not None and hasattr(keys, "__len__"):  # (a generator is left unread)
        span.set_tag("key_count", len(keys))
        span.set_tag("keys", _keys_tag(keys))
    for option, default in options.items():
        span.set_tag(option, bound.get(option, default))


def _monitored(method_name: str) -> Callable[..., Any]:
    def call(self: MonitoredMemcacheConnection, *args: Any, **kwargs: Any) -> Any:
        with self.server_span.make_child(f"{self.context_name}.{method_name}") as span:
            _tag_call(span, method_name, args, kwargs)
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

    close = _monitored("close")
    disconnect_all = _monitored("disconnect_all")
    set = _monitored("set")
    set_many = _monitored("set_many")
    set_multi = _monitored("set_multi")
    replace = _monitored("replace")
    append = _monitored("append")
    prepend = _monitored("prepend")
    cas = _monitored("cas")
    get = _monitored("get")
    get_many = _monitored("get_many")
    get_multi = _monitored("get_multi")
    gets = _monitored("gets")
    gets_many = _monitored("gets_many")
    delete = _monitored("delete")
    delete_many = _monitored("delete_many")
    delete_multi = _monitored("delete_multi")
    add = _monitored("add")
    incr = _monitored("incr")
    decr = _monitored("decr")
    touch = _monitored("touch")
    stats = _monitored("stats")
    version = _monitored("version")
    flush_all = _monitored("flush_all")
    quit = _monitored("quit")
    shutdown = _monitored("shutdown")
    raw_command = _monitored("raw_command")

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
