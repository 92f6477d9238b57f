"""The documented API surface of baseplate 0.28, checked name by name.

One test per documented module: every public name the API reference gives is importable
from its documented path, with the documented parameter names (and, where the reference
gives them, their order and defaults); the reference's examples that can run here are run
against real parts (a UDP socket for statsd, POSIX message queues, files on disk).
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.statsd_helpers import UDPReceiver

REPO_ROOT = Path(__file__).resolve().parents[1]
EMPTY = inspect.Parameter.empty
VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL


def documented(module: str, name: str) -> Any:
    """``module.name``, failing with the documented path when it is missing."""
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.{name} is documented but missing"
    return getattr(mod, name)


def assert_params(func: Any, *expected: str | tuple[str, Any], skip_self: bool = True) -> None:
    """The leading parameters of ``func`` are ``expected``, in order.

    Each entry is a name, or ``(name, default)`` when the reference gives a default
    (``EMPTY`` for a parameter documented as required). ``"*args"`` / ``"**kwargs"`` stand for
    variadic parameters of any name. Extra trailing parameters with defaults are allowed:
    documented calls keep working.
    """
    params = list(inspect.signature(func).parameters.values())
    if skip_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    for position, spec in enumerate(expected):
        name, default = spec if isinstance(spec, tuple) else (spec, None)
        assert position < len(params), f"{func.__qualname__}: missing parameter {name!r}"
        param = params[position]
        if name == "**kwargs":
            assert param.kind is VAR_KEYWORD, f"{func.__qualname__}: expected **kwargs"
            continue
        if name == "*args":
            assert param.kind is VAR_POSITIONAL, f"{func.__qualname__}: expected *args"
            continue
        assert param.name == name, (
            f"{func.__qualname__}: parameter {position} is {param.name!r}, documented {name!r}"
        )
        assert param.kind in (param.POSITIONAL_OR_KEYWORD, param.POSITIONAL_ONLY), (
            f"{func.__qualname__}: {name!r} must be passable by position"
        )
        if isinstance(spec, tuple):
            if default is EMPTY:
                assert param.default is EMPTY, f"{func.__qualname__}: {name!r} is required"
            else:
                assert param.default == default, (
                    f"{func.__qualname__}: {name!r} defaults to {param.default!r}, "
                    f"documented {default!r}"
                )
    for param in params[len(expected) :]:
        assert param.kind in (VAR_KEYWORD, VAR_POSITIONAL) or param.default is not EMPTY, (
            f"{func.__qualname__}: undocumented required parameter {param.name!r}"
        )


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ---------------------------------------------------------------------------------------
# 2.1 baseplate
# ---------------------------------------------------------------------------------------


def test_baseplate_package() -> None:
    assert_params(
        documented("baseplate", "metrics_client_from_config"), ("raw_config", EMPTY)
    )
    assert_params(
        documented("baseplate", "tracing_client_from_config"),
        ("raw_config", EMPTY),
        ("log_if_unconfigured", True),
    )
    assert_params(
        documented("baseplate", "error_reporter_from_config"),
        ("raw_config", EMPTY),
        ("module_name", EMPTY),
    )
    # The reference spells it baseplate.thrift_pool_from_config (2.14.1).
    thrift_pool_from_config = documented("baseplate", "thrift_pool_from_config")
    assert_params(thrift_pool_from_config, "app_config", "prefix", "**kwargs")
    pool = thrift_pool_from_config(
        {"example_service.endpoint": "127.0.0.1:2014", "example_service.size": "3"},
        "example_service.",
    )
    from baseplate.thrift_pool import ThriftConnectionPool

    assert isinstance(pool, ThriftConnectionPool)
    assert pool.size == 3


def test_import_baseplate_needs_no_optional_library() -> None:
    optional = [
        "pyramid",
        "thrift",
        "gevent",
        "redis",
        "pymemcache",
        "sqlalchemy",
        "kombu",
        "hvac",
        "cassandra",
        "kazoo",
        "raven",
        "sentry_sdk",
        "posix_ipc",
        "jwt",
        "requests",
    ]
    code = (
        "import sys, json\n"
        "import baseplate, baseplate.core\n"
        f"optional = {optional!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(optional))))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_every_baseplate_module_imports() -> None:
    # A subprocess: importing every module (servers, gevent integrations) must not leave
    # state behind in the test process.
    code = (
        "import importlib, json, pkgutil, baseplate\n"
        "failed = {}\n"
        "for info in pkgutil.walk_packages(baseplate.__path__, 'baseplate.'):\n"
        "    if info.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(info.name)\n"
        "    except BaseException as exc:\n"
        "        failed[info.name] = repr(exc)\n"
        "print(json.dumps(failed))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


@pytest.fixture
def statsd() -> Iterator[UDPReceiver]:
    receiver = UDPReceiver()
    yield receiver
    receiver.close()


# ---------------------------------------------------------------------------------------
# 1.1 baseplate.core
# ---------------------------------------------------------------------------------------


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def baseplate(exporter: InMemorySpanExporter) -> Iterator[Any]:
    """A Baseplate on a private tracer provider, sampling every request."""
    from baseplate.core import Baseplate

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bp = Baseplate(tracer_provider=provider)
    bp.sampler.sample_rate = 1.0
    yield bp
    provider.shutdown()


SPAN_PARAMS = ("trace_id", "parent_id", "span_id", "sampled", "flags", "name", "context")
SPAN_METHODS = {
    "register": ("observer",),
    "start": (),
    "set_tag": ("key", "value"),
    "log": ("name", ("payload", None)),
    "finish": (("exc_info", None),),
    "make_child": ("name", ("local", False), ("component_name", None)),
}
OBSERVER_METHODS = {
    "on_start": (),
    "on_set_tag": ("key", "value"),
    "on_log": ("name", "payload"),
    "on_finish": ("exc_info",),
    "on_child_span_created": ("span",),
}


def test_core_names_and_signatures() -> None:
    module = "baseplate.core"
    Baseplate = documented(module, "Baseplate")
    assert_params(Baseplate)  # constructed without arguments
    assert_params(Baseplate.register, "observer")
    assert_params(Baseplate.configure_logging)
    assert_params(Baseplate.configure_metrics, "metrics_client")
    assert_params(Baseplate.configure_tracing, "tracing_client", "*args", "**kwargs")
    assert_params(Baseplate.configure_error_reporting, "client")
    assert_params(Baseplate.add_to_context, "name", "context_factory")
    assert_params(Baseplate.make_server_span, "context", "name", ("trace_info", None))

    TraceInfo = documented(module, "TraceInfo")
    assert_params(TraceInfo.from_upstream, *SPAN_PARAMS[:5])
    assert TraceInfo._fields == SPAN_PARAMS[:5]

    for name in ("ServerSpan", "Span"):
        cls = documented(module, name)
        assert_params(cls, *SPAN_PARAMS)
        for method, params in SPAN_METHODS.items():
            assert_params(getattr(cls, method), *params)
        assert hasattr(cls, "__enter__") and hasattr(cls, "__exit__")

    documented(module, "BaseplateObserver")
    assert_params(
        documented(module, "BaseplateObserver").on_server_span_created, "context", "server_span"
    )
    for name in ("ServerSpanObserver", "SpanObserver"):
        cls = documented(module, name)
        for method, params in OBSERVER_METHODS.items():
            assert_params(getattr(cls, method), *params)

    factory = documented(module, "EdgeRequestContextFactory")
    assert_params(factory, "secrets")
    assert_params(
        factory.new,
        ("authentication_token", None),
        ("loid_id", None),
        ("loid_created_ms", None),
        ("session_id", None),
    )
    assert_params(factory.from_upstream, "edge_header")
    edge_context = documented(module, "EdgeRequestContext")
    assert_params(edge_context, "authn_token_validator", "header")
    assert_params(edge_context.attach_context, "context")
    assert_params(edge_context.event_fields)
    for attribute in ("user", "oauth_client", "session", "service"):
        assert hasattr(edge_context, attribute)
    User = documented(module, "User")
    for attribute in ("id", "is_logged_in", "roles"):
        assert hasattr(User, attribute)
    assert_params(User.has_role, "role")
    assert_params(User.event_fields)
    OAuthClient = documented(module, "OAuthClient")
    assert hasattr(OAuthClient, "id")
    assert_params(OAuthClient.is_type, "*args")
    assert_params(OAuthClient.event_fields)
    assert documented(module, "Session")("abc").id == "abc"
    assert hasattr(documented(module, "AuthenticationToken"), "subject")
    assert issubclass(documented(module, "NoAuthenticationError"), Exception)


def test_core_spans_and_observers(baseplate: Any, exporter: InMemorySpanExporter) -> None:
    """1.1: server span from upstream trace info, child and local spans, every observer
    event, the context manager protocol and errors passed to finish()."""
    from baseplate.core import (
        BaseplateObserver,
        ServerSpan,
        ServerSpanObserver,
        Span,
        SpanObserver,
        TraceInfo,
    )

    events: list[tuple[Any, ...]] = []

    class Recorder(SpanObserver):
        def __init__(self, label: str) -> None:
            self.label = label

        def on_start(self) -> None:
            events.append((self.label, "start"))

        def on_set_tag(self, key: str, value: Any) -> None:
            events.append((self.label, "tag", key, value))

        def on_log(self, name: str, payload: Any) -> None:
            events.append((self.label, "log", name, payload))

        def on_finish(self, exc_info: Any) -> None:
            events.append((self.label, "finish", exc_info[0] if exc_info else None))

        def on_child_span_created(self, span: Span) -> None:
            events.append((self.label, "child", span.name))
            span.register(Recorder(span.name))

    class ServerRecorder(ServerSpanObserver, Recorder):
        pass

    class Watcher(BaseplateObserver):
        def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
            events.append(("baseplate", "server span", server_span.name))
            server_span.register(ServerRecorder("server"))

    baseplate.register(Watcher())

    class Context:
        pass

    context = Context()
    trace_info = TraceInfo.from_upstream(1234, 5678, 9012, True, 0)
    server_span = baseplate.make_server_span(context, "do_something", trace_info)
    assert isinstance(server_span, ServerSpan)
    assert context.trace is server_span  # type: ignore[attr-defined]
    # a server span from upstream headers has the upstream's ids
    assert (server_span.trace_id, server_span.parent_id, server_span.id) == (1234, 5678, 9012)
    assert (server_span.sampled, server_span.flags, server_span.name) == (True, 0, "do_something")
    assert server_span.context is context

    with server_span:
        server_span.set_tag("route", "/x")
        server_span.log("cache-miss", {"key": "a"})
        with server_span.make_child("redis.ping") as child:
            assert isinstance(child, Span)
            assert child.trace_id == 1234 and child.parent_id == 9012
            assert isinstance(child.id, int) and child.id != 9012
            child.set_tag("hits", 3)
        local = server_span.make_child("compute", local=True, component_name="scorer")
        assert local.component_name == "scorer"
        with local:
            pass

    assert events == [
        ("baseplate", "server span", "do_something"),
        ("server", "start"),
        ("server", "tag", "route", "/x"),
        ("server", "log", "cache-miss", {"key": "a"}),
        ("server", "child", "redis.ping"),
        ("redis.ping", "start"),
        ("redis.ping", "tag", "hits", 3),
        ("redis.ping", "finish", None),
        ("server", "child", "compute"),
        ("compute", "start"),
        ("compute", "finish", None),
        ("server", "finish", None),
    ]
    names = {span.name for span in exporter.get_finished_spans()}
    assert names == {"do_something", "redis.ping", "compute"}

    events.clear()
    with pytest.raises(ZeroDivisionError):
        with baseplate.make_server_span(Context(), "fails"):
            1 / 0  # noqa: B018
    assert events[-1] == ("server", "finish", ZeroDivisionError)

    # a new trace when there is no upstream trace info
    fresh = baseplate.make_server_span(Context(), "fresh")
    assert isinstance(fresh.trace_id, int) and fresh.parent_id is None

    for bad in (("a", 1, 2, True, 0), (1, 2, 3, "maybe", 0), (1, 2, 3, True, "x")):
        with pytest.raises(ValueError):
            TraceInfo.from_upstream(*bad)


def test_core_configure_methods(baseplate: Any, statsd: UDPReceiver) -> None:
    """1.1 Convenience Methods: metrics batch and raven client on the context, request
    context in logging, tracing from a client; add_to_context attaches factory objects."""
    import threading

    from baseplate import (
        error_reporter_from_config,
        metrics_client_from_config,
        tracing_client_from_config,
    )
    from baseplate.context import ContextFactory
    from baseplate.core import RequestContext
    from baseplate.metrics import Batch

    class Factory(ContextFactory):
        def make_object_for_context(self, name: str, server_span: Any) -> Any:
            return (name, server_span.name)

    metrics_client = metrics_client_from_config(
        {"metrics.namespace": "app", "metrics.endpoint": statsd.endpoint}
    )
    baseplate.configure_metrics(metrics_client)
    baseplate.configure_error_reporting(error_reporter_from_config({}, __name__))
    baseplate.configure_logging()
    baseplate.configure_tracing(
        tracing_client_from_config({"tracing.service_name": "svc"}, log_if_unconfigured=False)
    )
    baseplate.add_to_context("some_client", Factory())

    context = RequestContext()
    with baseplate.make_server_span(context, "do_something") as span:
        assert isinstance(context.metrics, Batch)
        assert type(context.sentry).__name__ == "Client"
        assert context.some_client == ("some_client", "do_something")
        assert threading.current_thread().name == str(span.trace_id)
        context.metrics.counter("mine").increment()
    lines = b"\n".join(statsd.receive_all()).split(b"\n")
    assert b"app.mine:1|c" in lines
    assert any(line.startswith(b"app.server.do_something:") for line in lines)


def test_core_configure_tracing_legacy_arguments(baseplate: Any) -> None:
    """configure_tracing(tracing_client, *args, **kwargs): as in 0.28, a service name in
    place of a client (with make_client's arguments) still configures tracing."""
    from baseplate.core import RequestContext
    from baseplate.diagnostics.tracing import TracingClient, make_client

    assert_params(
        make_client,
        "service_name",
        ("tracing_endpoint", None),
        ("tracing_queue_name", None),
        ("max_span_queue_size", 50000),
        ("num_span_workers", 5),
        ("span_batch_interval", 0.5),
        ("num_conns", 100),
        ("sample_rate", 0.1),
        ("log_if_unconfigured", True),
    )
    client = make_client("svc", log_if_unconfigured=False, sample_rate=0.25)
    assert isinstance(client, TracingClient)
    assert (client.service_name, client.sample_rate, client.exporter) == ("svc", 0.25, "none")
    from baseplate.config import Endpoint

    zipkin = make_client("svc", tracing_endpoint=Endpoint("127.0.0.1:9411"))
    assert (zipkin.exporter, zipkin.endpoint) == ("zipkin", "127.0.0.1:9411")
    sidecar = make_client("svc", tracing_endpoint="127.0.0.1:9411", tracing_queue_name="main")
    assert (sidecar.exporter, sidecar.queue_name) == ("sidecar", "main")
    assert make_client("svc").exporter == "console"

    with pytest.warns(DeprecationWarning):
        baseplate.configure_tracing("svc", sample_rate=0.5, log_if_unconfigured=False)
    assert baseplate.sampler.sample_rate == 0.5
    with baseplate.make_server_span(RequestContext(), "still_works"):
        pass


def test_core_edge_request_context(tmp_path: Path) -> None:
    """1.1.4: a context made at the edge, attached, serialized and read back downstream."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from baseplate.core import (
        AuthenticationToken,
        EdgeRequestContext,
        EdgeRequestContextFactory,
        NoAuthenticationError,
        OAuthClient,
        RequestContext,
        Session,
        User,
    )
    from baseplate.secrets import SecretsStore

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    secrets_path = tmp_path / "secrets.json"
    secrets_path.write_text(
        json.dumps(
            {
                "secrets": {
                    "secret/authentication/public-key": {
                        "type": "versioned",
                        "current": public_pem,
                    }
                },
                "vault": {"url": "http://127.0.0.1:8200/", "token": "t"},
            }
        )
    )
    factory = EdgeRequestContextFactory(SecretsStore(str(secrets_path)))
    token = jwt.encode(
        {
            "sub": "t2_example",
            "roles": ["admin"],
            "client_id": "client-1",
            "client_type": "third_party",
            "exp": int(datetime.datetime.now().timestamp()) + 3600,
        },
        key,
        algorithm="RS256",
    )
    edge_context = factory.new(
        authentication_token=token,
        loid_id="t2_loid",
        loid_created_ms=1234,
        session_id="session-1",
    )
    assert isinstance(edge_context, EdgeRequestContext)
    request = RequestContext()
    edge_context.attach_context(request)
    assert request.request_context is edge_context

    downstream = factory.from_upstream(edge_context.header)
    for context in (edge_context, downstream):
        user = context.user
        assert isinstance(user, User)
        assert user.id == "t2_example" and user.is_logged_in
        assert user.roles == {"admin"} and user.has_role("ADMIN")
        assert isinstance(context.oauth_client, OAuthClient)
        assert context.oauth_client.id == "client-1"
        assert context.oauth_client.is_type("third_party")
        assert not context.oauth_client.is_type("first_party")
        assert isinstance(context.session, Session) and context.session.id == "session-1"
        assert context.event_fields()["user_id"] == "t2_example"
        assert isinstance(context.authentication_token, AuthenticationToken)
        assert context.authentication_token.subject == "t2_example"

    anonymous = factory.new(loid_id="t2_loid", loid_created_ms=1234)
    assert not anonymous.user.is_logged_in
    with pytest.raises(NoAuthenticationError):
        anonymous.user.roles  # noqa: B018
    with pytest.raises(NoAuthenticationError):
        anonymous.oauth_client.is_type("third_party")
    assert anonymous.user.event_fields()["user_id"] == "t2_loid"


# ---------------------------------------------------------------------------------------
# 1.2 baseplate.context
# ---------------------------------------------------------------------------------------


def test_context_factory() -> None:
    ContextFactory = documented("baseplate.context", "ContextFactory")
    assert_params(ContextFactory.make_object_for_context, "name", "server_span")


def test_context_cassandra() -> None:
    module = "baseplate.context.cassandra"
    cluster_from_config = documented(module, "cluster_from_config")
    assert_params(cluster_from_config, "app_config", ("prefix", "cassandra."), "**kwargs")
    assert_params(documented(module, "CassandraContextFactory"), "session")
    assert_params(documented(module, "CQLMapperContextFactory"), "session")
    # building a Cluster does not connect
    cluster = cluster_from_config(
        {"cassandra.contact_points": "127.0.0.1, 127.0.0.2", "cassandra.port": "9043"}
    )
    assert list(cluster.contact_points) == ["127.0.0.1", "127.0.0.2"]
    assert cluster.port == 9043
    assert cluster_from_config({"cassandra.contact_points": "127.0.0.1"}, port=9999).port == 9999


def test_context_hvac() -> None:
    module = "baseplate.context.hvac"
    hvac_factory_from_config = documented(module, "hvac_factory_from_config")
    assert_params(hvac_factory_from_config, "app_config", "secrets_store", ("prefix", "vault."))
    HvacContextFactory = documented(module, "HvacContextFactory")
    assert_params(HvacContextFactory, "secrets_store", "timeout")
    factory = hvac_factory_from_config({"vault.timeout": "300 milliseconds"}, secrets_store=None)
    assert isinstance(factory, HvacContextFactory)


def test_context_kombu() -> None:
    module = "baseplate.context.kombu"
    connection_from_config = documented(module, "connection_from_config")
    exchange_from_config = documented(module, "exchange_from_config")
    assert_params(connection_from_config, "app_config", "prefix", "**kwargs")
    assert_params(exchange_from_config, "app_config", "prefix", "**kwargs")
    assert_params(
        documented(module, "KombuProducerContextFactory"),
        "connection",
        "exchange",
        ("max_connections", None),
    )
    producer = documented(module, "KombuProducer")
    assert_params(producer, "name", "span", "connection", "exchange", "producers")
    assert_params(producer.publish, "body", ("routing_key", None), "**kwargs")

    connection = connection_from_config(
        {"amqp.hostname": "127.0.0.1", "amqp.virtual_host": "/"}, "amqp.", userid="guest"
    )
    assert (connection.hostname, connection.virtual_host, connection.userid) == (
        "127.0.0.1",
        "/",
        "guest",
    )
    exchange = exchange_from_config(
        {"amqp.exchange_name": "reddit_exchange", "amqp.exchange_type": "direct"}, "amqp."
    )
    assert (exchange.name, exchange.type) == ("reddit_exchange", "direct")


def test_context_memcache() -> None:
    module = "baseplate.context.memcache"
    pool_from_config = documented(module, "pool_from_config")
    assert_params(
        pool_from_config,
        "app_config",
        ("prefix", "memcache."),
        ("serializer", None),
        ("deserializer", None),
    )
    assert_params(documented(module, "MemcacheContextFactory"), "pooled_client")
    assert_params(
        documented(module, "MonitoredMemcacheConnection"),
        "context_name",
        "server_span",
        "pooled_client",
    )
    pool = pool_from_config({"memcache.endpoint": "127.0.0.1:11211"})
    assert type(pool).__name__ == "PooledClient"
    assert pool.client_pool.max_size == 2147483648  # the documented default
    pool = pool_from_config(
        {
            "memcache.endpoint": "127.0.0.1:11211",
            "memcache.max_pool_size": "4",
            "memcache.connect_timeout": "0.5",
            "memcache.timeout": "1.5",
        }
    )
    assert (pool.client_pool.max_size, pool.connect_timeout, pool.timeout) == (4, 0.5, 1.5)

    lib = "baseplate.context.memcache.lib"
    for name in ("decompress_and_load", "decompress_and_unpickle"):
        assert_params(documented(lib, name), "key", "serialized", "flags")
    for name in ("make_dump_and_compress_fn", "make_pickle_and_compress_fn"):
        assert_params(
            documented(lib, name), ("min_compress_length", 0), ("compress_level", 1)
        )
    from baseplate.context.memcache import lib as memcache_lib

    value = {"a": [1, 2, 3], "b": "x" * 100}
    for make, load in (
        (memcache_lib.make_dump_and_compress_fn, memcache_lib.decompress_and_load),
        (memcache_lib.make_pickle_and_compress_fn, memcache_lib.decompress_and_unpickle),
    ):
        for min_length in (0, 10):
            serialized, flags = make(min_compress_length=min_length, compress_level=9)("k", value)
            assert load("k", serialized, flags) == value
    with pytest.raises(TypeError):
        memcache_lib.make_dump_and_compress_fn()("k", object())


def test_context_redis(baseplate: Any, exporter: InMemorySpanExporter) -> None:
    module = "baseplate.context.redis"
    pool_from_config = documented(module, "pool_from_config")
    assert_params(pool_from_config, "app_config", ("prefix", "redis."), "**kwargs")
    RedisContextFactory = documented(module, "RedisContextFactory")
    assert_params(RedisContextFactory, "connection_pool")
    connection = documented(module, "MonitoredRedisConnection")
    assert_params(connection, "context_name", "server_span", "connection_pool")
    assert_params(connection.pipeline, "name", ("transaction", True), ("shard_hint", None))
    assert_params(documented(module, "MessageQueue"), "name", "client")

    from baseplate.core import RequestContext

    pool = pool_from_config({"redis.url": "redis://127.0.0.1:6379/0"})
    baseplate.add_to_context("some_redis_client", RedisContextFactory(pool))
    context = RequestContext()
    with baseplate.make_server_span(context, "do_something"):
        assert context.some_redis_client.ping()
    assert "some_redis_client.PING" in {span.name for span in exporter.get_finished_spans()}


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def test_context_sqlalchemy(baseplate: Any, exporter: InMemorySpanExporter) -> None:
    """The reference documents engine_from_config(configuration, prefix='sqlalchemy.',
    **kwargs): the ``sqlalchemy.`` keys, the prefix by position and keyword arguments."""
    module = "baseplate.context.sqlalchemy"
    engine_from_config = documented(module, "engine_from_config")
    engine_factory = documented(module, "SQLAlchemyEngineContextFactory")
    session_factory = documented(module, "SQLAlchemySessionContextFactory")
    assert_params(engine_factory, "engine")
    assert_params(session_factory, "engine")

    import sqlalchemy

    from baseplate.core import RequestContext

    configuration = {"sqlalchemy.url": PG_URL, "sqlalchemy.pool_size": "3"}
    by_default = engine_from_config(configuration)
    by_position = engine_from_config(configuration, "sqlalchemy.", pool_recycle=60)
    by_name = engine_from_config({"db.url": PG_URL}, prefix="db.")
    for engine in (by_default, by_position, by_name):
        assert engine.url.database == "test"
    assert by_default.pool.size() == 3
    assert by_position.pool._recycle == 60

    baseplate.add_to_context("db", engine_factory(by_position))
    baseplate.add_to_context("orm", session_factory(by_name))
    context = RequestContext()
    with baseplate.make_server_span(context, "query"):
        with context.db.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        assert context.orm.execute(sqlalchemy.text("SELECT 2")).scalar() == 2
    names = [span.name for span in exporter.get_finished_spans()]
    assert "db.execute" in names and "orm.execute" in names
    for engine in (by_default, by_position, by_name):
        engine.dispose()


def test_context_thrift() -> None:
    ThriftContextFactory = documented("baseplate.context.thrift", "ThriftContextFactory")
    assert_params(ThriftContextFactory, "pool", "client_cls")

    from baseplate.core import RequestContext, ServerSpan
    from baseplate.thrift import BaseplateService
    from baseplate.thrift_pool import thrift_pool_from_config

    pool = thrift_pool_from_config({"svc.endpoint": "127.0.0.1:9"}, "svc.")
    factory = ThriftContextFactory(pool, BaseplateService.Client)
    span = ServerSpan(1, None, 2, False, 0, "handler", RequestContext())
    proxy = factory.make_object_for_context("my_service", span)
    assert callable(proxy.is_healthy)
    from baseplate.retry import RetryPolicy

    assert_params(proxy.retrying, *inspect.signature(RetryPolicy.new).parameters)
    with proxy.retrying(attempts=3) as svc:
        assert callable(svc.is_healthy)


# ---------------------------------------------------------------------------------------
# 1.3 baseplate.integration
# ---------------------------------------------------------------------------------------


def test_integration_thrift(baseplate: Any, exporter: InMemorySpanExporter) -> None:
    """1.3.1's example: a ContextProcessor with Baseplate's event handler; each call is a
    server span named after the method, and the handler gets the context object."""
    import logging

    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.Thrift import TMessageType
    from thrift.transport.TTransport import TMemoryBuffer

    handler_cls = documented("baseplate.integration.thrift", "BaseplateProcessorEventHandler")
    assert_params(handler_cls, "logger", "baseplate", ("edge_context_factory", None))

    from baseplate.thrift import BaseplateService

    seen: list[Any] = []

    class MyHandler:
        def is_healthy(self, context: Any) -> bool:
            seen.append(context)
            return True

    processor = BaseplateService.ContextProcessor(MyHandler())
    event_handler = handler_cls(logging.getLogger(__name__), baseplate)
    processor.setEventHandler(event_handler)

    request = TMemoryBuffer()
    BaseplateService.Client(TBinaryProtocol(request)).send_is_healthy()
    response = TMemoryBuffer()
    processor.process(
        TBinaryProtocol(TMemoryBuffer(request.getvalue())), TBinaryProtocol(response)
    )
    reply = TBinaryProtocol(TMemoryBuffer(response.getvalue()))
    name, message_type, _seqid = reply.readMessageBegin()
    assert (name, message_type) == ("is_healthy", TMessageType.REPLY)
    result = BaseplateService.is_healthy_result()
    result.read(reply)
    assert result.success is True
    assert len(seen) == 1 and seen[0].trace.name == "is_healthy"
    assert [span.name for span in exporter.get_finished_spans()] == ["is_healthy"]


def test_integration_pyramid(baseplate: Any, exporter: InMemorySpanExporter) -> None:
    """1.3.2's example with trusted trace headers and a ServerSpanInitialized subscriber."""
    import webtest
    from pyramid.config import Configurator

    module = "baseplate.integration.pyramid"
    BaseplateConfigurator = documented(module, "BaseplateConfigurator")
    assert_params(
        BaseplateConfigurator,
        "baseplate",
        ("trust_trace_headers", False),
        ("edge_context_factory", None),
    )
    ServerSpanInitialized = documented(module, "ServerSpanInitialized")
    assert_params(ServerSpanInitialized, "request")

    initialized: list[Any] = []

    def view(request: Any) -> dict[str, Any]:
        return {"trace_id": request.trace.trace_id, "span_id": request.trace.id}

    configurator = Configurator()
    baseplate_config = BaseplateConfigurator(baseplate, trust_trace_headers=True)
    configurator.include(baseplate_config.includeme)
    configurator.add_subscriber(
        lambda event: initialized.append(event.request), ServerSpanInitialized
    )
    configurator.add_route("do_something", "/")
    configurator.add_view(view, route_name="do_something", renderer="json")
    app = webtest.TestApp(configurator.make_wsgi_app())

    headers = {"X-Trace": "1234", "X-Parent": "5678", "X-Span": "9012", "X-Sampled": "1"}
    assert app.get("/", headers=headers).json == {"trace_id": 1234, "span_id": 9012}
    assert len(initialized) == 1
    (span,) = exporter.get_finished_spans()
    assert span.name == "do_something"
    assert (span.context.trace_id, span.context.span_id) == (1234, 9012)

    untrusted = Configurator()
    untrusted.include(BaseplateConfigurator(baseplate).includeme)
    untrusted.add_route("do_something", "/")
    untrusted.add_view(view, route_name="do_something", renderer="json")
    answer = webtest.TestApp(untrusted.make_wsgi_app()).get("/", headers=headers).json
    assert answer["trace_id"] != 1234


# ---------------------------------------------------------------------------------------
# 1.4 baseplate.diagnostics
# ---------------------------------------------------------------------------------------


def test_diagnostics_observers() -> None:
    from baseplate.core import BaseplateObserver

    observers = {
        ("baseplate.diagnostics.logging", "LoggingBaseplateObserver"): (),
        ("baseplate.diagnostics.metrics", "MetricsBaseplateObserver"): ("client",),
        ("baseplate.diagnostics.sentry", "SentryBaseplateObserver"): ("raven",),
        ("baseplate.diagnostics.tracing", "TraceBaseplateObserver"): ("tracing_client",),
    }
    for (module, name), params in observers.items():
        cls = documented(module, name)
        assert issubclass(cls, BaseplateObserver)
        assert_params(cls, *params)
    documented("baseplate.diagnostics.tracing", "TracingClient")

    from baseplate import error_reporter_from_config, metrics_client_from_config
    from baseplate.diagnostics.logging import LoggingBaseplateObserver
    from baseplate.diagnostics.metrics import MetricsBaseplateObserver
    from baseplate.diagnostics.sentry import SentryBaseplateObserver
    from baseplate.diagnostics.tracing import TraceBaseplateObserver, make_client

    LoggingBaseplateObserver()
    MetricsBaseplateObserver(
        metrics_client_from_config({"metrics.namespace": "a", "metrics.endpoint": ""})
    )
    SentryBaseplateObserver(error_reporter_from_config({}, __name__))
    TraceBaseplateObserver(make_client("svc", log_if_unconfigured=False))
