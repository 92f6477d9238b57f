"""baseplate.context.redis against the running Redis (127.0.0.1:6379) and, for faults, a
redis-server of our own on a free port."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.backoff import NoBackoff
from redis.retry import Retry

from baseplate.config import ConfigurationError
from baseplate.context.redis import (
    MonitoredPipeline,
    MonitoredRedisConnection,
    RedisContextFactory,
    pool_from_config,
)
from baseplate.core import Baseplate, RequestContext, ServerSpan
from otel_bridge.semconv import TRACER_NAME

from .conftest import LocalServer, attributes, finished, free_port, only

REDIS_URL = "redis://127.0.0.1:6379/0"
NO_RETRY = Retry(NoBackoff(), 0)


@pytest.fixture
def key() -> Iterator[str]:
    name = f"baseplate-test:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name, name + ":other")


@pytest.fixture
def pool() -> Iterator[redis.ConnectionPool]:
    connection_pool = pool_from_config({"redis.url": REDIS_URL})
    yield connection_pool
    connection_pool.disconnect()


@pytest.fixture
def client(pool: redis.ConnectionPool, server_span: ServerSpan) -> MonitoredRedisConnection:
    return RedisContextFactory(pool).make_object_for_context("redis", server_span)


# -- configuration ---------------------------------------------------------------------


def test_pool_from_config_reads_every_key() -> None:
    pool = pool_from_config(
        {
            "cache.url": "redis://127.0.0.1:6379/3",
            "cache.max_connections": "7",
            "cache.socket_connect_timeout": "200 milliseconds",
            "cache.socket_timeout": "1500 milliseconds",
            "redis.url": "redis://elsewhere:1/0",
        },
        prefix="cache.",
    )
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == 7
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 3)
    assert kwargs["socket_connect_timeout"] == pytest.approx(0.2)
    assert kwargs["socket_timeout"] == pytest.approx(1.5)


def test_pool_from_config_keyword_arguments_win() -> None:
    pool = pool_from_config(
        {"redis.url": REDIS_URL, "redis.max_connections": "7", "redis.socket_timeout": "1 second"},
        max_connections=3,
        socket_timeout=0.25,
    )
    assert pool.max_connections == 3
    assert pool.connection_kwargs["socket_timeout"] == 0.25


def test_pool_from_config_requires_url() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.url"):
        pool_from_config({"redis.max_connections": "3"})


def test_pool_from_config_names_bad_values() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.socket_timeout"):
        pool_from_config({"redis.url": REDIS_URL, "redis.socket_timeout": "soon"})
    with pytest.raises(ConfigurationError, match=r"redis\.url"):
        pool_from_config({"redis.url": "gopher://nowhere"})


def test_pool_from_config_with_numbers_built_in_code_serves() -> None:
    # the same settings the thrift pool helper takes; the timeout in plain seconds
    pool = pool_from_config(
        {"redis.url": REDIS_URL, "redis.max_connections": 2, "redis.socket_timeout": "0.5"}
    )
    try:
        assert pool.max_connections == 2
        assert pool.connection_kwargs["socket_timeout"] == 0.5
        assert redis.Redis(connection_pool=pool).ping()
    finally:
        pool.disconnect()


def test_prefix_must_end_with_dot() -> None:
    with pytest.raises(ValueError, match="prefix"):
        pool_from_config({"redis.url": REDIS_URL}, prefix="redis")


# -- spans -------------------------------------------------------------------------------


def test_context_attribute_is_a_strict_redis(
    baseplate: Baseplate, pool: redis.ConnectionPool
) -> None:
    baseplate.add_to_context("cache", RedisContextFactory(pool))
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    assert isinstance(context.cache, MonitoredRedisConnection)
    assert isinstance(context.cache, redis.StrictRedis)
    assert context.cache.connection_pool is pool
    span.finish()


def test_commands_are_client_spans(
    client: MonitoredRedisConnection,
    server_span: ServerSpan,
    exporter: InMemorySpanExporter,
    key: str,
) -> None:
    assert client.set(key, "hello") is True
    assert client.get(key) == b"hello"

    set_span, get_span = only(exporter, "redis.SET"), only(exporter, "redis.GET")
    for span in (set_span, get_span):
        assert span.kind is SpanKind.CLIENT
        assert span.instrumentation_scope.name == TRACER_NAME
        assert span.parent is not None and span.parent.span_id == server_span.id
        assert span.context.trace_id == server_span.trace_id
        assert span.status.status_code is StatusCode.UNSET
        assert attributes(span)["key"] == key
    assert set_span.end_time <= get_span.start_time


def test_pipeline_is_one_span(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    pipe = client.pipeline("warm")
    assert isinstance(pipe, MonitoredPipeline)
    pipe.set(key, "1").incr(key).get(key)
    assert pipe.execute() == [True, 2, b"2"]

    span = only(exporter, "redis.pipeline_warm")
    assert span.kind is SpanKind.CLIENT
    assert attributes(span)["commands"] == 3
    assert not finished(exporter, "redis.SET")
    assert not finished(exporter, "redis.INCR")


def test_pipeline_without_transaction(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    with client.pipeline("plain", transaction=False) as pipe:
        pipe.rpush(key, "a", "b")
        pipe.lrange(key, 0, -1)
        assert pipe.execute() == [2, [b"a", b"b"]]
    assert only(exporter, "redis.pipeline_plain")


def test_pipeline_name_is_a_string(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    with pytest.raises(TypeError, match="pipeline name"):
        client.pipeline(True)  # type: ignore[arg-type]
    # redis-py's own helpers ask for pipelines by keyword only
    pipe = client.pipeline(transaction=False)
    pipe.get(key)
    assert pipe.execute() == [None]
    assert only(exporter, "redis.pipeline_unnamed")


def test_transaction_watches_and_executes(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    client.set(key, "5")

    def double(pipe: Any) -> None:
        value = int(pipe.get(key))
        pipe.multi()
        pipe.set(key, value * 2)

    assert client.transaction(double, key) == [True]
    assert client.get(key) == b"10"
    assert only(exporter, "redis.pipeline_transaction")
    assert only(exporter, "redis.WATCH")  # the immediate commands are spans too


def test_lock_commands_are_spans(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    with client.lock(key, timeout=5):
        assert client.exists(key) == 1
    assert client.exists(key) == 0
    assert finished(exporter, "redis.SET")


def test_command_error_reaches_caller_and_fails_span(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    client.set(key, "not a number")
    with pytest.raises(redis.ResponseError) as raised:
        client.incr(key)

    span = only(exporter, "redis.INCRBY")
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [event for event in span.events if event.name == "exception"]
    assert event.attributes is not None
    assert str(event.attributes["exception.type"]).endswith("ResponseError")
    assert str(raised.value) in str(event.attributes["exception.message"])


def test_pipeline_error_reaches_caller_and_fails_span(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    client.set(key, "text")
    pipe = client.pipeline("broken", transaction=False)
    pipe.incr(key)
    with pytest.raises(redis.ResponseError):
        pipe.execute()
    assert only(exporter, "redis.pipeline_broken").status.status_code is StatusCode.ERROR


# -- vendor instrumentation overlap ------------------------------------------------------


@pytest.fixture
def vendor_redis(provider: TracerProvider) -> Iterator[None]:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    assert not instrumentor.is_instrumented_by_opentelemetry
    instrumentor.instrument(tracer_provider=provider)
    yield
    instrumentor.uninstrument()


def vendor_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name != TRACER_NAME]


def test_vendor_redis_span_is_suppressed_for_monitored_calls(
    vendor_redis: None,
    client: MonitoredRedisConnection,
    pool: redis.ConnectionPool,
    exporter: InMemorySpanExporter,
    key: str,
) -> None:
    client.set(key, "x")
    client.get(key)
    pipe = client.pipeline("both")
    pipe.get(key)
    pipe.execute()
    assert vendor_spans(exporter) == []
    assert only(exporter, "redis.GET") and only(exporter, "redis.pipeline_both")

    # the vendor instrumentation is really active: a plain client is traced by it
    redis.Redis(connection_pool=pool).get(key)
    assert len(vendor_spans(exporter)) == 1


def test_no_suppression_without_vendor_instrumentation(
    client: MonitoredRedisConnection, key: str
) -> None:
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

    seen: list[Any] = []
    original = redis.Redis.execute_command

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        return original(self, *args, **kwargs)

    redis.Redis.execute_command = spy  # type: ignore[method-assign]
    try:
        client.get(key)
    finally:
        redis.Redis.execute_command = original  # type: ignore[method-assign]
    assert seen == [None]


# -- faults ------------------------------------------------------------------------------


def fault_client(baseplate: Baseplate, port: int, **kwargs: Any) -> tuple[Any, ServerSpan]:
    pool = pool_from_config(
        {
            "redis.url": f"redis://127.0.0.1:{port}/0",
            "redis.socket_connect_timeout": "1 second",
            "redis.socket_timeout": "1 second",
        },
        retry=NO_RETRY,
        **kwargs,
    )
    span = baseplate.make_server_span(RequestContext(), "handler")
    span.start()
    return RedisContextFactory(pool).make_object_for_context("redis", span), span


def test_server_down_at_start_then_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    port = free_port()
    client, _ = fault_client(baseplate, port)
    with pytest.raises(redis.ConnectionError):
        client.get("anything")
    span = only(exporter, "redis.GET")
    assert span.status.status_code is StatusCode.ERROR

    server = LocalServer(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""], port
    )
    server.start()
    try:
        assert client.set("k", "v") is True
        assert client.get("k") == b"v"
    finally:
        server.kill()


def test_server_killed_mid_request_then_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter, own_redis: LocalServer
) -> None:
    client, _ = fault_client(baseplate, own_redis.port)
    assert client.set("k", "before") is True
    own_redis.kill()

    with pytest.raises(redis.ConnectionError):
        client.get("k")
    statuses = [span.status.status_code for span in finished(exporter, "redis.GET")]
    assert statuses == [StatusCode.ERROR]

    own_redis.start()
    assert client.get("k") is None  # a fresh server: the pool reconnected
    assert client.set("k", "after") is True


def test_timeout_fails_span_and_pool_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter, own_redis: LocalServer
) -> None:
    client, _ = fault_client(baseplate, own_redis.port, socket_timeout=0.2)
    with pytest.raises(redis.TimeoutError):
        client.blpop(["empty-list"], timeout=5)
    span = only(exporter, "redis.BLPOP")
    assert span.status.status_code is StatusCode.ERROR
    assert client.ping() is True


def test_pool_from_config_timespans_apply(own_redis: LocalServer) -> None:
    pool = pool_from_config(
        {
            "redis.url": f"redis://127.0.0.1:{own_redis.port}/0",
            "redis.socket_timeout": "150 milliseconds",
        },
        retry=NO_RETRY,
    )
    with pytest.raises(redis.TimeoutError):
        redis.Redis(connection_pool=pool).blpop(["empty-list"], timeout=5)
    assert datetime.timedelta(seconds=pool.connection_kwargs["socket_timeout"]) == (
        datetime.timedelta(milliseconds=150)
    )


# -- redis-backed message queue ----------------------------------------------------------


def test_message_queue_round_trip(pool: redis.ConnectionPool, key: str) -> None:
    from baseplate.context.redis import MessageQueue
    from baseplate.message_queue import TimedOutError

    queue = MessageQueue(key, pool)
    queue.put("first")
    queue.put(b"second")
    assert queue.get() == b"first"
    assert queue.get(timeout=0.2) == b"second"
    with pytest.raises(TimedOutError):
        queue.get(timeout=0)
    with pytest.raises(TimedOutError):
        queue.get(timeout=0.1)  # rounded up to redis's one-second minimum
    queue.put("left over")
    queue.close()
    assert redis.Redis(connection_pool=pool).exists(key) == 0


def test_message_queue_over_a_monitored_connection(
    client: MonitoredRedisConnection, exporter: InMemorySpanExporter, key: str
) -> None:
    from baseplate.context.redis import MessageQueue

    queue = MessageQueue(key, client)
    queue.put("traced")
    assert queue.get(timeout=1) == b"traced"
    assert only(exporter, "redis.RPUSH") and only(exporter, "redis.BLPOP")


# -- concurrency and sampling --------------------------------------------------------------


def test_concurrent_requests_keep_their_own_spans(
    baseplate: Baseplate, pool: redis.ConnectionPool, exporter: InMemorySpanExporter, key: str
) -> None:
    import threading

    baseplate.add_to_context("redis", RedisContextFactory(pool))
    server_ids: dict[int, int] = {}
    errors: list[BaseException] = []

    def handle(index: int) -> None:
        try:
            context = RequestContext()
            with baseplate.make_server_span(context, f"request{index}") as span:
                server_ids[index] = span.id
                for _ in range(5):
                    context.redis.incr(key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=handle, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert redis.Redis(connection_pool=pool).get(key) == b"40"
    spans = finished(exporter, "redis.INCRBY")
    assert len(spans) == 40
    parents = [span.parent.span_id for span in spans if span.parent is not None]
    assert sorted(parents) == sorted(list(server_ids.values()) * 5)


def test_unsampled_request_spans_are_recorded_not_exported(
    baseplate: Baseplate,
    pool: redis.ConnectionPool,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    key: str,
) -> None:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    from baseplate.core import TraceInfo

    ended: list[ReadableSpan] = []

    class Recorder(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider.add_span_processor(Recorder())
    baseplate.add_to_context("redis", RedisContextFactory(pool))
    context = RequestContext()
    info = TraceInfo.from_upstream(4321, 1, 2, False, None)
    with baseplate.make_server_span(context, "handler", info):
        context.redis.get(key)
    assert [span.name for span in ended] == ["redis.GET", "handler"]
    assert exporter.get_finished_spans() == ()
