"""Client spans end to end: with ``configure_metrics`` each call through a context client is
a ``clients.<attribute>.<method>`` timer and success/failure counter (real Redis, memcached
and SQLite; the statsd datagrams go to a UDP socket of our own)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider

from baseplate import metrics
from baseplate.context.memcache import MemcacheContextFactory
from baseplate.context.memcache import pool_from_config as memcache_pool
from baseplate.context.redis import RedisContextFactory
from baseplate.context.redis import pool_from_config as redis_pool
from baseplate.context.sqlalchemy import SQLAlchemyEngineContextFactory, engine_from_config
from baseplate.core import Baseplate, RequestContext


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def lines(sock: socket.socket) -> list[str]:
    received: list[str] = []
    sock.settimeout(2.0)
    while True:
        try:
            received += sock.recv(65536).decode().split("\n")
        except TimeoutError:
            return received
        sock.settimeout(0.2)


def test_client_calls_are_client_metrics(receiver: socket.socket) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    baseplate = Baseplate(provider)
    port = receiver.getsockname()[1]
    baseplate.configure_metrics(metrics.make_client("svc", f"127.0.0.1:{port}"))

    redis_connections = redis_pool({"redis.url": "redis://127.0.0.1:6379/0"})
    memcache = memcache_pool({"memcache.endpoint": "127.0.0.1:11211"})
    engine = engine_from_config({"database.url": "sqlite://"})
    baseplate.add_to_context("cache", RedisContextFactory(redis_connections))
    baseplate.add_to_context("memcache", MemcacheContextFactory(memcache))
    baseplate.add_to_context("db", SQLAlchemyEngineContextFactory(engine))

    key = f"bp-metrics-{uuid.uuid4().hex}"
    context: Any = RequestContext()
    try:
        with baseplate.make_server_span(context, "get_thing"):
            context.cache.get(key)
            context.memcache.get(key)
            with context.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                with pytest.raises(sa.exc.OperationalError):
                    conn.execute(sa.text("SELECT * FROM missing"))
            with pytest.raises(redis.ResponseError):
                context.cache.execute_command("NO_SUCH_COMMAND")
    finally:
        redis_connections.disconnect()
        memcache.close()
        engine.dispose()
        provider.shutdown()

    received = lines(receiver)
    names = {line.split(":", 1)[0] for line in received}
    for timer in ("svc.clients.cache.GET", "svc.clients.memcache.get", "svc.clients.db.execute"):
        assert timer in names
    assert "svc.clients.cache.GET.success:1|c" in received
    assert "svc.clients.memcache.get.success:1|c" in received
    assert "svc.clients.db.execute.success:1|c" in received
    assert "svc.clients.db.execute.failure:1|c" in received
    assert "svc.clients.cache.NO_SUCH_COMMAND.failure:1|c" in received
    assert "svc.server.get_thing.success:1|c" in received
