"""baseplate.context.memcache against the running memcached (127.0.0.1:11211) and, for
faults, a memcached of our own on a free port."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheUnknownCommandError

from baseplate.config import ConfigurationError
from baseplate.context.memcache import (
    MemcacheContextFactory,
    MonitoredMemcacheConnection,
    pool_from_config,
)
from baseplate.context.memcache.lib import decompress_and_load, make_dump_and_compress_fn
from baseplate.core import Baseplate, RequestContext, ServerSpan

from .conftest import LocalServer, attributes, finished, free_port, only

ENDPOINT = "127.0.0.1:11211"


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"bp-{uuid.uuid4().hex[:12]}-"
    yield name
    cleanup = PooledClient(("127.0.0.1", 11211))
    cleanup.delete_many([name + suffix for suffix in ("doc", "one", "n", "a", "b", "item")])
    cleanup.close()


@pytest.fixture
def pool() -> Iterator[PooledClient]:
    pooled = pool_from_config(
        {"memcache.endpoint": ENDPOINT, "memcache.timeout": "2", "memcache.connect_timeout": "2"},
        serializer=make_dump_and_compress_fn(min_compress_length=100),
        deserializer=decompress_and_load,
    )
    yield pooled
    pooled.close()


@pytest.fixture
def conn(pool: PooledClient, server_span: ServerSpan) -> MonitoredMemcacheConnection:
    return MemcacheContextFactory(pool).make_object_for_context("memcache", server_span)


# -- configuration ---------------------------------------------------------------------


def test_pool_from_config_reads_every_key() -> None:
    pooled = pool_from_config(
        {
            "cache.endpoint": "127.0.0.1:11211",
            "cache.max_pool_size": "12",
            "cache.connect_timeout": "0.5",
            "cache.timeout": "1.25",
            "cache.no_delay": "false",
        },
        prefix="cache.",
    )
    assert pooled.server == ("127.0.0.1", 11211)
    assert pooled.client_pool.max_size == 12
    assert pooled.connect_timeout == 0.5
    assert pooled.timeout == 1.25
    assert pooled.no_delay is False


def test_pool_from_config_accepts_values_built_in_code() -> None:
    pooled = pool_from_config(
        {
            "memcache.endpoint": "localhost:1234",
            "memcache.timeout": 1.23,
            "memcache.connect_timeout": 4.56,
            "memcache.max_pool_size": 300,
            "memcache.no_delay": False,
        }
    )
    assert (pooled.timeout, pooled.connect_timeout) == (1.23, 4.56)
    assert pooled.client_pool.max_size == 300
    assert pooled.no_delay is False


def test_pool_from_config_defaults() -> None:
    pooled = pool_from_config({"memcache.endpoint": "localhost:11211"})
    assert pooled.server == ("localhost", 11211)
    assert pooled.client_pool.max_size == 2**31
    assert pooled.connect_timeout is None and pooled.timeout is None
    assert pooled.no_delay is True


def test_pool_from_config_requires_endpoint() -> None:
    with pytest.raises(ConfigurationError, match=r"memcache\.endpoint"):
        pool_from_config({"memcache.timeout": "1"})
    with pytest.raises(ConfigurationError, match=r"memcache\.timeout"):
        pool_from_config({"memcache.endpoint": ENDPOINT, "memcache.timeout": "slow"})
    with pytest.raises(ValueError, match="prefix"):
        pool_from_config({"memcache.endpoint": ENDPOINT}, prefix="memcache")


def test_serializers_are_used(pool: PooledClient, prefix: str) -> None:
    # noreply=False: the write must have landed before another connection reads it
    assert pool.set(prefix + "doc", {"a": [1, 2]}, noreply=False) is True
    raw = PooledClient(("127.0.0.1", 11211))
    value, _ = raw.gets(prefix + "doc")
    assert value == b'{"a": [1, 2]}'
    assert pool.get(prefix + "doc") == {"a": [1, 2]}


# -- spans -------------------------------------------------------------------------------


def test_context_attribute(baseplate: Baseplate, pool: PooledClient) -> None:
    baseplate.add_to_context("cache", MemcacheContextFactory(pool))
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    assert isinstance(context.cache, MonitoredMemcacheConnection)
    assert isinstance(context.cache, PooledClient)
    assert context.cache.pooled_client is pool
    assert context.cache.server == ("127.0.0.1", 11211)  # settings read through
    span.finish()


def test_every_pooled_client_method_is_monitored() -> None:
    public = {
        name
        for name in dir(PooledClient)
        if not name.startswith("_") and callable(getattr(PooledClient, name))
    }
    local_only = {"check_key", "client_class"}
    for name in public - local_only:
        assert getattr(MonitoredMemcacheConnection, name) is not getattr(PooledClient, name), name


def test_single_key_calls_are_spans_tagged_with_key(
    conn: MonitoredMemcacheConnection,
    server_span: ServerSpan,
    exporter: InMemorySpanExporter,
    prefix: str,
) -> None:
    key = prefix + "one"
    assert conn.set(key, "v", expire=60, noreply=False) is True
    assert conn.get(key) == b"v"
    assert conn.add(key, "w", noreply=False) is False
    assert conn.replace(key, "x", noreply=False) is True
    assert conn.append(key, "y", noreply=False) is True
    assert conn.prepend(key, "w", noreply=False) is True
    assert conn.get(key) == b"wxy"
    value, cas_token = conn.gets(key)
    assert value == b"wxy"
    assert conn.cas(key, "z", cas_token, noreply=False) is True
    assert conn.touch(key, 120, noreply=False) is True
    assert conn.set(prefix + "n", 10, noreply=False) is True
    assert conn.incr(prefix + "n", 5) == 15
    assert conn.decr(prefix + "n", 3) == 12
    assert conn.delete(key, noreply=False) is True
    assert conn.get(key, default="gone") == "gone"

    for method in ("add", "replace", "append", "prepend", "gets", "cas", "touch"):
        span = only(exporter, f"memcache.{method}")
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == server_span.id
        assert attributes(span)["key"] == key, method
    first_set = finished(exporter, "memcache.set")[0]
    assert attributes(first_set) == {"method": "set", "key": key, "expire": 60, "noreply": False}
    assert attributes(only(exporter, "memcache.touch"))["expire"] == 120
    assert attributes(only(exporter, "memcache.incr"))["key"] == prefix + "n"
    assert attributes(only(exporter, "memcache.decr"))["key"] == prefix + "n"
    assert attributes(only(exporter, "memcache.delete"))["key"] == key
    assert len(finished(exporter, "memcache.get")) == 3


def test_multi_key_calls_tag_keys_and_count(
    conn: MonitoredMemcacheConnection, exporter: InMemorySpanExporter, prefix: str
) -> None:
    values = {prefix + "a": 1, prefix + "b": [2]}
    assert conn.set_many(values, noreply=False) == []
    assert conn.get_many(list(values)) == values
    got = conn.gets_many([prefix + "a"])
    assert got[prefix + "a"][0] == 1
    assert conn.delete_many(list(values), noreply=False) is True
    assert conn.get_multi(list(values)) == {}

    span = only(exporter, "memcache.set_many")
    assert attributes(span)["keys"] == f"{prefix}a,{prefix}b"
    assert attributes(span)["key_count"] == 2
    assert attributes(only(exporter, "memcache.get_many"))["key_count"] == 2
    assert attributes(only(exporter, "memcache.gets_many"))["key_count"] == 1
    assert attributes(only(exporter, "memcache.delete_many"))["key_count"] == 2
    assert attributes(only(exporter, "memcache.get_multi"))["key_count"] == 2


def test_item_access_and_server_calls(
    conn: MonitoredMemcacheConnection, exporter: InMemorySpanExporter, prefix: str
) -> None:
    conn[prefix + "item"] = "value"
    assert conn[prefix + "item"] == b"value"
    del conn[prefix + "item"]
    with pytest.raises(KeyError):
        conn[prefix + "item"]
    assert b"pid" in conn.stats()
    assert conn.version()
    assert conn.raw_command(b"version").startswith(b"VERSION")
    conn.quit()
    conn.close()
    for name in ("stats", "version", "raw_command", "quit", "close"):
        assert only(exporter, f"memcache.{name}")
    assert len(finished(exporter, "memcache.set")) == 1
    assert len(finished(exporter, "memcache.delete")) == 1


def test_flush_all_on_own_server(
    baseplate: Baseplate, exporter: InMemorySpanExporter, own_memcached: LocalServer
) -> None:
    # flush_all empties the whole server, so it runs against a memcached of our own
    conn = fault_conn(baseplate, own_memcached.port)
    conn.set("k", "v", noreply=False)
    assert conn.flush_all(noreply=False) is True
    assert conn.get("k") is None
    assert only(exporter, "memcache.flush_all")


def test_server_error_reaches_caller_and_fails_span(
    conn: MonitoredMemcacheConnection, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(MemcacheUnknownCommandError):
        conn.raw_command(b"no_such_command")
    span = only(exporter, "memcache.raw_command")
    assert span.status.status_code is StatusCode.ERROR


def test_bad_key_error_is_unchanged(
    conn: MonitoredMemcacheConnection, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(Exception) as raised:
        conn.get("has spaces")
    assert type(raised.value).__name__ == "MemcacheIllegalInputError"
    assert only(exporter, "memcache.get").status.status_code is StatusCode.ERROR


# -- faults ------------------------------------------------------------------------------


def fault_conn(baseplate: Baseplate, port: int, timeout: str = "1") -> Any:
    pooled = pool_from_config(
        {
            "memcache.endpoint": f"127.0.0.1:{port}",
            "memcache.connect_timeout": "1",
            "memcache.timeout": timeout,
        }
    )
    span = baseplate.make_server_span(RequestContext(), "handler")
    span.start()
    return MemcacheContextFactory(pooled).make_object_for_context("memcache", span)


def test_server_down_at_start_then_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    port = free_port()
    conn = fault_conn(baseplate, port)
    with pytest.raises(ConnectionRefusedError):
        conn.get("k")
    assert only(exporter, "memcache.get").status.status_code is StatusCode.ERROR

    server = LocalServer(["memcached", "-p", str(port), "-l", "127.0.0.1", "-u", "nobody"], port)
    server.start()
    try:
        assert conn.set("k", "v", noreply=False) is True
        assert conn.get("k") == b"v"
    finally:
        server.kill()


def test_server_killed_mid_request_then_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter, own_memcached: LocalServer
) -> None:
    conn = fault_conn(baseplate, own_memcached.port)
    assert conn.set("k", "v", noreply=False) is True
    own_memcached.kill()

    with pytest.raises((OSError, Exception)) as raised:
        conn.get("k")
    error = raised.value
    statuses = [span.status.status_code for span in finished(exporter, "memcache.get")]
    assert statuses == [StatusCode.ERROR]
    (event,) = [e for e in finished(exporter, "memcache.get")[0].events if e.name == "exception"]
    assert event.attributes is not None
    assert str(event.attributes["exception.type"]).endswith(type(error).__name__)

    own_memcached.start()
    assert conn.get("k") is None  # the broken connection was dropped; a new one is used
    assert conn.set("k", "again", noreply=False) is True


def test_timeout_fails_span_and_pool_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    # a listener that accepts and never answers stands in for a hung memcached
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        conn = fault_conn(baseplate, port, timeout="0.2")
        with pytest.raises(socket.timeout):
            conn.get("k")
        assert only(exporter, "memcache.get").status.status_code is StatusCode.ERROR
        # the hung connection was destroyed, not returned to the pool
        assert conn.pooled_client.client_pool.used == ()
        assert conn.pooled_client.client_pool.free == ()
