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
import os
import socket
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
    assert_params(documented("baseplate", "metrics_client_from_config"), ("raw_config", EMPTY))
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
        with pytest.raises(ValueError):  # a local span needs a component name
            server_span.make_child("compute", local=True)
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
    for attribute in ("id", "roles"):
        with pytest.raises(NoAuthenticationError):
            getattr(anonymous.user, attribute)
    with pytest.raises(NoAuthenticationError):
        anonymous.user.has_role("admin")
    with pytest.raises(NoAuthenticationError):
        anonymous.oauth_client.id  # noqa: B018
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
        assert_params(documented(lib, name), ("min_compress_length", 0), ("compress_level", 1))
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
    assert_params(engine_from_config, "configuration", ("prefix", "sqlalchemy."))
    assert any(
        param.kind is VAR_KEYWORD
        for param in inspect.signature(engine_from_config).parameters.values()
    )

    import sqlalchemy

    from baseplate.core import RequestContext

    configuration = {"sqlalchemy.url": PG_URL, "sqlalchemy.pool_size": "3"}
    by_default = engine_from_config(configuration)
    by_position = engine_from_config(configuration, "sqlalchemy.", pool_recycle=60)
    by_name = engine_from_config({"db.url": PG_URL}, prefix="db.")
    # the keys of later releases (database.*) are read when the documented ones are absent
    later_keys = engine_from_config({"database.url": PG_URL})
    later_keys.dispose()
    for engine in (by_default, by_position, by_name, later_keys):
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
    processor.process(TBinaryProtocol(TMemoryBuffer(request.getvalue())), TBinaryProtocol(response))
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


# ---------------------------------------------------------------------------------------
# 2.2 baseplate.config
# ---------------------------------------------------------------------------------------


def test_config(tmp_path: Path) -> None:
    module = "baseplate.config"
    assert_params(documented(module, "parse_config"), "config", "spec")
    for name in ("Float", "Boolean", "Endpoint", "Timespan", "Base64", "Percent"):
        assert_params(documented(module, name), "text")
    for name in ("String", "UnixUser", "UnixGroup"):
        documented(module, name)
    assert_params(documented(module, "Integer"), ("text", None), ("base", 10))
    assert_params(documented(module, "File"), ("mode", "r"))
    assert_params(documented(module, "OneOf"), "**kwargs")
    assert_params(documented(module, "TupleOf"), "T")
    assert_params(documented(module, "Optional"), "T", ("default", None))
    assert_params(documented(module, "Fallback"), "T1", "T2")
    assert_params(documented(module, "DictOf"), "spec")
    EndpointConfiguration = documented(module, "EndpointConfiguration")
    assert EndpointConfiguration._fields == ("family", "address")
    ConfigurationError = documented(module, "ConfigurationError")
    assert_params(ConfigurationError, "key", "error")

    from baseplate import config

    # 2.2's example, as written (raw_config is what config_parser.items() gives)
    some_file = tmp_path / "whatever.txt"
    some_file.write_text("cool")
    raw_config = {
        "simple": "true",
        "cards": "clubs, spades, diamonds",
        "nested.once": "1",
        "nested.really.deep": "3 seconds",
        "some_file": str(some_file),
        "sample_rate": "37.1%",
        "interval": "30 seconds",
    }
    CARDS = config.OneOf(clubs=1, spades=2, diamonds=3, hearts=4)
    cfg = config.parse_config(
        raw_config,
        {
            "simple": config.Boolean,
            "cards": config.TupleOf(CARDS),
            "nested": {
                "once": config.Integer,
                "really": {
                    "deep": config.Timespan,
                },
            },
            "some_file": config.File(mode="r"),
            "optional": config.Optional(config.Integer, default=9001),
            "sample_rate": config.Percent,
            "interval": config.Fallback(config.Timespan, config.Integer),
        },
    )
    assert cfg.simple is True
    assert cfg.cards == [1, 2, 3]
    assert cfg.nested.once == 1
    assert cfg.nested.really.deep == datetime.timedelta(seconds=3)
    assert cfg.some_file.read() == "cool"
    cfg.some_file.close()
    assert cfg.optional == 9001
    assert cfg.sample_rate == pytest.approx(0.371)
    assert cfg.interval == datetime.timedelta(seconds=30)
    assert config.Fallback(config.Timespan, config.Integer)("30") == 30

    # value types
    assert config.Float("1.5") == 1.5
    assert config.Integer("42") == 42 and config.Integer(base=16)("ff") == 255
    with pytest.raises(ValueError):
        config.Integer("1.5")
    assert config.Boolean("TRUE") is True and config.Boolean("false") is False
    inet = config.Endpoint("localhost:2014")
    assert inet.family == socket.AF_INET and tuple(inet.address) == ("localhost", 2014)
    unix = config.Endpoint("/run/myservice.sock")
    assert (unix.family, unix.address) == (socket.AF_UNIX, "/run/myservice.sock")
    for text, expected in (
        ("1 millisecond", datetime.timedelta(milliseconds=1)),
        ("2 minutes", datetime.timedelta(minutes=2)),
        ("1 hour", datetime.timedelta(hours=1)),
        ("3 days", datetime.timedelta(days=3)),
    ):
        assert config.Timespan(text) == expected
    assert config.Base64("aGVsbG8=") == b"hello"
    assert config.Percent("44%") == pytest.approx(0.44)
    assert config.String("abc") == "abc"
    assert config.UnixUser("root") == 0 and config.UnixGroup("root") == 0
    assert config.OneOf(hearts="H", spades="S")("hearts") == "H"
    with pytest.raises(ValueError):
        config.TupleOf(config.Integer)("")
    assert config.Optional(config.TupleOf(config.Integer))("") is None

    # DictOf, flat and with a nested spec
    populations = config.parse_config(
        {"population.cn": "1383890000", "population.us": "325165000"},
        {"population": config.DictOf(config.Integer)},
    )
    assert populations.population == {"cn": 1383890000, "us": 325165000}
    countries = config.parse_config(
        {
            "countries.cn.population": "1383890000",
            "countries.cn.capital": "Beijing",
            "countries.br.capital": "Brasília",
            "countries.br.population": "207645000",
        },
        {"countries": config.DictOf({"population": config.Integer, "capital": config.String})},
    )
    assert countries.countries["br"].capital == "Brasília"
    assert countries.countries["cn"].population == 1383890000

    with pytest.raises(ConfigurationError) as raised:
        config.parse_config({"nested.once": "x"}, {"nested": {"once": config.Integer}})
    assert raised.value.key == "nested.once"


# ---------------------------------------------------------------------------------------
# 2.3 baseplate.crypto
# ---------------------------------------------------------------------------------------


def test_crypto(tmp_path: Path) -> None:
    module = "baseplate.crypto"
    make_signature = documented(module, "make_signature")
    validate_signature = documented(module, "validate_signature")
    assert_params(make_signature, "secret", "message", "max_age")
    assert_params(validate_signature, "secret", "message", "signature")
    assert documented(module, "SignatureInfo")._fields == ("version", "expiration")
    SignatureError = documented(module, "SignatureError")
    for name in ("UnreadableSignatureError", "IncorrectSignatureError", "ExpiredSignatureError"):
        assert issubclass(documented(module, name), SignatureError)
    assert_params(documented(module, "ExpiredSignatureError"), "expiration")
    constant_time_compare = documented(module, "constant_time_compare")
    assert constant_time_compare(b"abc", b"abc") and not constant_time_compare(b"abc", b"abd")

    from baseplate.crypto import (
        ExpiredSignatureError,
        IncorrectSignatureError,
        SignatureInfo,
        UnreadableSignatureError,
    )
    from baseplate.secrets import SecretsStore

    path = tmp_path / "secrets.json"
    path.write_text(
        json.dumps(
            {
                "secrets": {
                    "some_signing_key": {
                        "type": "versioned",
                        "current": "Y3VycmVudA==",
                        "previous": "cHJldmlvdXM=",
                        "encoding": "base64",
                    }
                },
                "vault": {"url": "http://127.0.0.1:8200/", "token": "t"},
            }
        )
    )
    secrets = SecretsStore(str(path))

    # 2.3's example
    message = "Hello, world!"
    secret = secrets.get_versioned("some_signing_key")
    signature = make_signature(secret, message, max_age=datetime.timedelta(days=1))
    info = validate_signature(secret, message, signature)
    assert isinstance(info, SignatureInfo) and info.version == 1
    assert abs(info.expiration - (datetime.datetime.now().timestamp() + 86400)) < 60

    with pytest.raises(IncorrectSignatureError):
        validate_signature(secret, "Goodbye, world!", signature)
    with pytest.raises(UnreadableSignatureError):
        validate_signature(secret, message, "not a signature")
    expired = make_signature(secret, message, max_age=datetime.timedelta(seconds=-5))
    with pytest.raises(ExpiredSignatureError) as raised:
        validate_signature(secret, message, expired)
    assert isinstance(raised.value.expiration, int)

    # signatures made with the previous version still validate after rotation
    from baseplate.secrets import VersionedSecret

    old = VersionedSecret.from_simple_secret(b"previous")
    signed_before = make_signature(old, message, max_age=datetime.timedelta(minutes=1))
    assert validate_signature(secret, message, signed_before).version == 1


# ---------------------------------------------------------------------------------------
# 2.4 baseplate.events
# ---------------------------------------------------------------------------------------


@pytest.fixture
def queue_name() -> Iterator[str]:
    """A name no other test uses; the POSIX queues named after it are removed afterwards."""
    name = f"api-surface-{os.getpid()}-{os.urandom(3).hex()}"
    yield name
    import posix_ipc

    for path in (f"/{name}", f"/events-{name}"):
        try:
            posix_ipc.unlink_message_queue(path)
        except posix_ipc.ExistentialError:
            pass


def test_events(queue_name: str) -> None:
    module = "baseplate.events"
    FieldKind = documented(module, "FieldKind")
    assert FieldKind.NORMAL.value is None
    assert FieldKind.OBFUSCATED.value == "obfuscated_data"
    assert FieldKind.HIGH_CARDINALITY.value == "interana_excluded"
    Event = documented(module, "Event")
    assert_params(Event, "topic", "event_type", ("timestamp", None), ("id", None))
    assert_params(Event.get_field, "key")
    assert_params(Event.set_field, "key", "value", ("obfuscate", False), ("kind", FieldKind.NORMAL))
    serialize_v1_event = documented(module, "serialize_v1_event")
    serialize_v2_event = documented(module, "serialize_v2_event")
    assert_params(serialize_v1_event, "event")
    assert_params(serialize_v2_event, "event")
    EventQueue = documented(module, "EventQueue")
    assert_params(EventQueue, "name", ("event_serializer", serialize_v1_event))
    assert_params(EventQueue.put, "event")
    EventError = documented(module, "EventError")
    EventTooLargeError = documented(module, "EventTooLargeError")
    EventQueueFullError = documented(module, "EventQueueFullError")
    assert issubclass(EventTooLargeError, EventError)
    assert issubclass(EventQueueFullError, EventError)
    assert_params(EventTooLargeError, "size")
    EventQueueFullError()

    from baseplate.context import ContextFactory
    from baseplate.message_queue import MessageQueue

    event = Event("baseplate", "test", id="5f7e5c05-8b6a-4b1d-9a1e-0a1b2c3d4e5f")
    event.set_field("plain", 1)
    event.set_field("ip", "127.0.0.1", kind=FieldKind.OBFUSCATED)
    event.set_field("url", "/x", kind=FieldKind.HIGH_CARDINALITY)
    assert event.get_field("plain") == 1 and event.get_field("ip") == "127.0.0.1"
    assert event.get_field("missing") is None
    body = json.loads(serialize_v1_event(event))
    assert body["event_topic"] == "baseplate" and body["event_type"] == "test"
    assert body["uuid"] == "5f7e5c05-8b6a-4b1d-9a1e-0a1b2c3d4e5f"
    assert body["payload"] == {
        "plain": 1,
        "obfuscated_data": {"ip": "127.0.0.1"},
        "interana_excluded": {"url": "/x"},
    }

    # the queue is a ContextFactory for add_to_context; put() goes to /events-<name>
    event_queue = EventQueue(queue_name)
    assert isinstance(event_queue, ContextFactory)
    assert event_queue.make_object_for_context("events_production", None) is event_queue
    event_queue.put(event)
    reader = MessageQueue(f"/events-{queue_name}", max_messages=10, max_message_size=102400)
    try:
        assert json.loads(reader.get(timeout=1)) == body
        large = Event("baseplate", "large")
        large.set_field("blob", "x" * 200_000)
        with pytest.raises(EventTooLargeError):
            event_queue.put(large)
        with pytest.raises(EventQueueFullError):
            for _ in range(64):  # more than the kernel lets the queue hold here
                event_queue.put(event)
    finally:
        reader.close()

    # 2.4.3: the publisher's [event-publisher:<queue name>] section
    from baseplate.events.publisher import parse_publisher_config

    publisher_config = parse_publisher_config(
        {
            "collector.hostname": "some-domain.example.com",
            "key.name": "NameOfASecretKey",
            "key.secret": "cmFuZG9tbmVzcw==",
            "metrics.namespace": "a.name.to.put.metrics.under",
            "metrics.endpoint": "the-statsd-host:1234",
        }
    )
    assert publisher_config.collector.hostname == "some-domain.example.com"
    assert publisher_config.key.name == "NameOfASecretKey"
    assert publisher_config.key.secret == b"randomness"
    assert publisher_config.metrics.namespace == "a.name.to.put.metrics.under"

    # v2: a Thrift struct, written with TJSONProtocol
    from baseplate.thrift.ttypes import Loid

    assert json.loads(serialize_v2_event(Loid(id="t2_x", created_ms=5))) == {
        "1": {"str": "t2_x"},
        "2": {"i64": 5},
    }


# ---------------------------------------------------------------------------------------
# 2.5 baseplate.experiments
# ---------------------------------------------------------------------------------------


LEGACY_PARAMS = (
    "id",
    "name",
    "owner",
    "variants",
    ("seed", None),
    ("bucket_val", "user_id"),
    ("targeting", None),
    ("overrides", None),
    ("newer_than", None),
    ("version", None),
)


def test_experiments(tmp_path: Path, baseplate: Any) -> None:
    providers = "baseplate.experiments.providers"
    assert_params(documented(f"{providers}.r2", "R2Experiment"), *LEGACY_PARAMS)
    assert_params(documented(f"{providers}.feature_flag", "FeatureFlag"), *LEGACY_PARAMS)
    assert_params(documented(f"{providers}.forced_variant", "ForcedVariantExperiment"), "variant")
    assert_params(
        documented(f"{providers}.simple_experiment", "SimpleExperiment"),
        "id",
        "name",
        "owner",
        "start_ts",
        "stop_ts",
        "config",
        "experiment_version",
        "shuffle_version",
        "variant_set",
        "bucket_seed",
        "bucket_val",
        "targeting",
        "overrides",
        ("enabled", True),
        ("log_bucketing", True),
        ("num_buckets", 1000),
    )
    parse_experiment = documented(providers, "parse_experiment")
    assert_params(parse_experiment, "config")
    Experiment = documented(f"{providers}.base", "Experiment")

    module = "baseplate.experiments"
    experiments_client_from_config = documented(module, "experiments_client_from_config")
    assert_params(experiments_client_from_config, "app_config", "event_logger")
    ExperimentsContextFactory = documented(module, "ExperimentsContextFactory")
    assert_params(ExperimentsContextFactory, "path", ("event_logger", None))
    Experiments = documented(module, "Experiments")
    assert_params(
        Experiments, "config_watcher", "server_span", "context_name", ("event_logger", None)
    )
    assert_params(Experiments.get_all_experiment_names)
    assert_params(Experiments.is_valid_experiment, "name")
    assert_params(
        Experiments.variant, "name", ("user", None), ("bucketing_event_override", None), "**kwargs"
    )
    assert_params(Experiments.expose, "experiment_name", "variant_name", ("user", None), "**kwargs")

    import time

    from baseplate.core import RequestContext
    from baseplate.events import EventLogger

    now = time.time()
    experiment = {
        "id": 1,
        "name": "flag",
        "owner": "team",
        "type": "feature_flag",
        "version": "1",
        "start_ts": now - 3600,
        "stop_ts": now + 3600,
        "experiment": {"variants": {"active": 100}, "targeting": {"logged_in": [True]}},
    }
    assert isinstance(parse_experiment(experiment), Experiment)
    assert parse_experiment(experiment).variant(user_id="t2_1", logged_in=True) == "active"
    assert parse_experiment(experiment).variant(user_id="t2_1", logged_in=False) is None
    disabled = parse_experiment({**experiment, "enabled": False})
    assert disabled.variant(user_id="t2_1", logged_in=True) is None
    forced = parse_experiment({**experiment, "global_override": "other"})
    assert forced.variant(user_id="t2_1", logged_in=True) == "other"

    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"flag": experiment}))

    class Recorder(EventLogger):
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def log(self, **kwargs: Any) -> None:
            self.events.append(kwargs)

    logger = Recorder()
    factory = experiments_client_from_config({"experiments.path": str(path)}, logger)
    assert isinstance(factory, ExperimentsContextFactory)
    baseplate.add_to_context("experiments", factory)
    context = RequestContext()
    with baseplate.make_server_span(context, "handler"):
        assert isinstance(context.experiments, Experiments)
        assert context.experiments.get_all_experiment_names() == ["flag"]
        assert context.experiments.is_valid_experiment("flag")
        assert not context.experiments.is_valid_experiment("nope")
        assert context.experiments.variant("flag", user_id="t2_1", logged_in=True) == "active"
        assert context.experiments.variant("nope", user_id="t2_1") is None
        context.experiments.expose("flag", "active", user_id="t2_1", logged_in=True)
    # feature flags log no bucketing event; exposure is always logged
    assert len(logger.events) == 1


# ---------------------------------------------------------------------------------------
# 2.6 baseplate.file_watcher, 2.7 baseplate.live_data
# ---------------------------------------------------------------------------------------


def test_file_watcher(tmp_path: Path) -> None:
    module = "baseplate.file_watcher"
    FileWatcher = documented(module, "FileWatcher")
    assert_params(FileWatcher, "path", "parser", ("timeout", None))
    assert_params(FileWatcher.get_data)
    WatchedFileNotAvailableError = documented(module, "WatchedFileNotAvailableError")
    assert_params(WatchedFileNotAvailableError, "path", "inner")

    path = tmp_path / "data.json"
    path.write_text('{"one": 1, "two": 2}')
    watcher = FileWatcher(str(path), parser=json.load)
    assert watcher.get_data() == {"one": 1, "two": 2}
    path.write_text('{"one": 1, "two": 3}')
    os.utime(path, (1, 1))  # a new mtime, however fast the rewrite was
    assert watcher.get_data() == {"one": 1, "two": 3}
    with pytest.raises(WatchedFileNotAvailableError):
        FileWatcher(str(tmp_path / "missing.json"), parser=json.load).get_data()
    # with a timeout, instantiation waits that long for the file, then gives up
    with pytest.raises(WatchedFileNotAvailableError):
        FileWatcher(str(tmp_path / "missing.json"), parser=json.load, timeout=0.05)


def test_live_data_writer(tmp_path: Path) -> None:
    """2.7.2's example: the writer shows a diff of the node's data and writes the file."""
    from kazoo.client import KazooClient

    node = f"/api-surface-{os.getpid()}-{os.urandom(3).hex()}"
    zookeeper = KazooClient(hosts="127.0.0.1:2181")
    zookeeper.start(timeout=20)
    try:
        zookeeper.create(node, b'{\n  "key": "one"\n}\n')
        config_file = tmp_path / "some_config.ini"
        config_file.write_text("[live-data]\nzookeeper.hosts = 127.0.0.1:2181\n")
        source = tmp_path / "input.json"
        source.write_text('{\n  "key": "two"\n}\n')
        result = run_command(
            sys.executable,
            "-m",
            "baseplate.live_data.writer",
            str(config_file),
            str(source),
            node,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"Writing {source} to ZooKeeper {node}..."
        assert '-  "key": "one"' in lines and '+  "key": "two"' in lines
        assert lines[-1] == "Wrote data to Zookeeper."
        assert zookeeper.get(node)[0] == source.read_bytes()
    finally:
        zookeeper.delete(node)
        zookeeper.stop()
        zookeeper.close()


def test_live_data_tools() -> None:
    importlib.import_module("baseplate.live_data")
    for tool, arguments in (
        ("baseplate.live_data.watcher", ["config_file"]),
        ("baseplate.live_data.writer", ["config_file", "source", "dest"]),
    ):
        result = subprocess.run(
            [sys.executable, "-m", tool, "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        for argument in arguments:
            assert argument in result.stdout


# ---------------------------------------------------------------------------------------
# 2.8 baseplate.message_queue
# ---------------------------------------------------------------------------------------


def test_message_queue(queue_name: str) -> None:
    module = "baseplate.message_queue"
    MessageQueue = documented(module, "MessageQueue")
    assert_params(MessageQueue, "name", "max_messages", "max_message_size")
    assert_params(MessageQueue.get, ("timeout", None))
    assert_params(MessageQueue.put, "message", ("timeout", None))
    assert_params(MessageQueue.unlink)
    assert_params(MessageQueue.close)
    MessageQueueError = documented(module, "MessageQueueError")
    TimedOutError = documented(module, "TimedOutError")
    assert issubclass(TimedOutError, MessageQueueError)

    # 2.8.1's minimal example: a producer process, then a consumer process
    name = f"/{queue_name}"
    producer = (
        "from baseplate.message_queue import MessageQueue\n"
        f"mq = MessageQueue({name!r}, max_messages=1, max_message_size=1)\n"
        "message = '1'\n"
        "mq.put(message)\n"
        "print('Put Message: %s' % message)\n"
    )
    consumer = (
        "from baseplate.message_queue import MessageQueue\n"
        f"mq = MessageQueue({name!r}, max_messages=1, max_message_size=1)\n"
        "message = mq.get()\n"
        "print('Get Message: %s' % message.decode())\n"
    )
    produced = run_python(producer)
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout == "Put Message: 1\n"
    consumed = run_python(consumer)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == "Get Message: 1\n"

    mq = MessageQueue(name, max_messages=1, max_message_size=1)
    try:
        with pytest.raises(TimedOutError):
            mq.get(timeout=0.01)
        mq.put("2")
        with pytest.raises(TimedOutError):
            mq.put("3", timeout=0.01)
        assert mq.get() == b"2"
    finally:
        mq.unlink()
        mq.close()

    # 2.8.3: over the kernel's limit is a ValueError
    with open("/proc/sys/fs/mqueue/msg_max") as limit:
        msg_max = int(limit.read())
    with pytest.raises(ValueError):
        MessageQueue(f"{name}-big", max_messages=msg_max + 1, max_message_size=1)

    # 2.8.4: the command line writes and reads messages
    cli = [sys.executable, "-m", "baseplate.message_queue"]
    created = subprocess.run(
        [*cli, "--create", name], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    written = subprocess.run(
        [*cli, "--write", name],
        input="hello!\n",
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    reader = MessageQueue(name, max_messages=10, max_message_size=8192)
    try:
        assert reader.get(timeout=1) == b"hello!"
    finally:
        reader.close()


# ---------------------------------------------------------------------------------------
# 2.9 baseplate.metrics
# ---------------------------------------------------------------------------------------


def test_metrics(statsd: UDPReceiver) -> None:
    module = "baseplate.metrics"
    make_client = documented(module, "make_client")
    assert_params(make_client, "namespace", "endpoint")
    Client = documented(module, "Client")
    Batch = documented(module, "Batch")
    for cls in (Client, Batch):
        for method in ("counter", "gauge", "histogram", "timer"):
            assert_params(getattr(cls, method), "name")
    assert_params(Client.batch)
    assert_params(Batch.flush)
    Counter = documented(module, "Counter")
    assert_params(Counter.increment, ("delta", 1), ("sample_rate", 1.0))
    assert_params(Counter.decrement, ("delta", 1), ("sample_rate", 1.0))
    assert_params(Counter.send, "delta", "sample_rate")
    Timer = documented(module, "Timer")
    assert_params(Timer.start)
    assert_params(Timer.stop)
    assert_params(documented(module, "Gauge").replace, "new_value")
    assert_params(documented(module, "Histogram").add_sample, "value")

    from baseplate import metrics_client_from_config
    from baseplate.config import Endpoint

    # 2.9's basic example
    app_config = {"metrics.namespace": "myapp", "metrics.endpoint": statsd.endpoint}
    client = metrics_client_from_config(app_config)
    assert isinstance(client, Client)
    client.counter("events.connect").increment()
    client.gauge("workers").replace(4)
    with client.timer("something.todo"):
        pass
    assert statsd.receive(2) == [b"myapp.events.connect:1|c", b"myapp.workers:4|g"]
    (timing,) = statsd.receive()
    assert timing.startswith(b"myapp.something.todo:") and timing.endswith(b"|ms")

    # ... and batched
    with client.batch() as batch:
        assert isinstance(batch, Batch)
        batch.counter("froozles").increment()
        batch.counter("blargs").decrement(delta=3)
        with batch.timer("something"):
            pass
    (packet,) = statsd.receive()
    lines = packet.split(b"\n")
    assert b"myapp.froozles:1|c" in lines and b"myapp.blargs:-3|c" in lines
    assert any(line.startswith(b"myapp.something:") for line in lines)

    client.counter("sampled").increment(delta=2, sample_rate=0.5)
    client.counter("sent").send(3, 1.0)
    client.histogram("latency").add_sample(320)
    timer = client.timer("manual")
    timer.start()
    timer.stop()
    received = statsd.receive(4)
    assert received[:3] == [b"myapp.sampled:2|c|@0.5", b"myapp.sent:3|c", b"myapp.latency:320|h"]
    assert received[3].startswith(b"myapp.manual:")

    batch = client.batch()
    batch.gauge("g").replace(1)
    batch.histogram("h").add_sample(2)
    batch.flush()
    assert statsd.receive()[0].split(b"\n") == [b"myapp.g:1|g", b"myapp.h:2|h"]

    with pytest.raises(ValueError):  # 2.9.2: gauges cannot be set to negative values
        client.gauge("workers").replace(-1)

    via_make_client = make_client("other", Endpoint(statsd.endpoint))
    via_make_client.counter("x").increment()
    assert statsd.receive() == [b"other.x:1|c"]

    # an empty endpoint (or None) discards everything
    discarding = metrics_client_from_config({"metrics.namespace": "myapp", "metrics.endpoint": ""})
    discarding.counter("dropped").increment()
    make_client("other", None).counter("dropped").increment()
    assert statsd.receive_all(quiet=0.05) == []


# ---------------------------------------------------------------------------------------
# 2.10 baseplate.queue_consumer
# ---------------------------------------------------------------------------------------


def test_queue_consumer(queue_name: str) -> None:
    module = "baseplate.queue_consumer"
    assert_params(
        documented(module, "consume"),
        "baseplate",
        "exchange",
        "connection",
        "queue_name",
        "routing_keys",
        "handler",
    )
    KombuConsumer = documented(module, "KombuConsumer")
    BaseKombuConsumer = documented(module, "BaseKombuConsumer")
    for cls in (KombuConsumer, BaseKombuConsumer):
        assert_params(cls, "worker", "worker_thread")
    assert_params(KombuConsumer.get_message, "server_span")
    assert_params(KombuConsumer.get_batch, "server_span", "max_items", "timeout")
    assert_params(BaseKombuConsumer.get_message)
    assert_params(BaseKombuConsumer.get_batch, "max_items", "timeout")
    assert_params(BaseKombuConsumer.new, "connection", "queues")

    import kombu

    connection = kombu.Connection("amqp://guest:guest@127.0.0.1:5672//")
    exchange = kombu.Exchange(f"{queue_name}-exchange", "direct", auto_delete=True)
    queue = kombu.Queue(queue_name, exchange, routing_key="link_created", auto_delete=True)
    consumer = BaseKombuConsumer.new(connection, [queue])
    try:
        with connection.Producer() as producer:
            producer.publish(
                {"link": 1}, exchange=exchange, routing_key="link_created", declare=[queue]
            )
        message = consumer.get_message(timeout=10)
        assert message.decode() == {"link": 1}
        message.ack()
    finally:
        consumer.stop()
        connection.release()


# ---------------------------------------------------------------------------------------
# 2.11 baseplate.random, 2.12 baseplate.retry
# ---------------------------------------------------------------------------------------


def test_random() -> None:
    WeightedLottery = documented("baseplate.random", "WeightedLottery")
    assert_params(WeightedLottery, "items", "weight_key")
    assert_params(WeightedLottery.pick)
    assert_params(WeightedLottery.sample, "sample_size")

    words = ["apple", "banana", "cantelope"]
    lottery = WeightedLottery(words, weight_key=len)
    assert lottery.pick() in words
    sample = lottery.sample(2)
    assert len(sample) == 2 and len(set(sample)) == 2 and set(sample) <= set(words)
    assert sorted(lottery.sample(3)) == words
    # weights decide: a zero weight is never picked
    only_banana = WeightedLottery(words, weight_key=lambda word: int(word == "banana"))
    assert {only_banana.pick() for _ in range(50)} == {"banana"}
    with pytest.raises(ValueError):
        WeightedLottery([], weight_key=len)
    with pytest.raises(ValueError):
        WeightedLottery(words, weight_key=lambda word: -1)


def test_retry() -> None:
    RetryPolicy = documented("baseplate.retry", "RetryPolicy")
    assert_params(RetryPolicy.yield_attempts)
    assert_params(RetryPolicy.__iter__)
    assert isinstance(inspect.getattr_static(RetryPolicy, "new"), staticmethod)
    assert_params(RetryPolicy.new, ("attempts", None), ("budget", None), ("backoff", None))

    class SomeError(Exception):
        pass

    calls: list[Any] = []

    def do(timeout: Any) -> None:
        calls.append(timeout)
        raise SomeError

    # 2.12's example
    with pytest.raises(SomeError):
        for time_remaining in RetryPolicy.new(attempts=3):
            try:
                do(timeout=time_remaining)
                break
            except SomeError:
                pass
        else:
            raise SomeError
    assert calls == [None, None, None]

    remaining = list(RetryPolicy.new(attempts=2, budget=10).yield_attempts())
    assert len(remaining) == 2 and all(0 < left <= 10 for left in remaining)
    assert len(list(RetryPolicy.new(attempts=3, backoff=0.001))) == 3


# ---------------------------------------------------------------------------------------
# 2.13 baseplate.secrets
# ---------------------------------------------------------------------------------------


def test_secrets(tmp_path: Path, baseplate: Any) -> None:
    module = "baseplate.secrets"
    secrets_store_from_config = documented(module, "secrets_store_from_config")
    assert_params(secrets_store_from_config, "app_config", ("timeout", None))
    SecretsStore = documented(module, "SecretsStore")
    assert_params(SecretsStore, "path", ("timeout", None))
    for method in ("get_raw", "get_simple", "get_versioned"):
        assert_params(getattr(SecretsStore, method), "path")
    assert_params(SecretsStore.get_vault_url)
    assert_params(SecretsStore.get_vault_token)
    assert_params(SecretsStore.make_object_for_context, "name", "server_span")
    VersionedSecret = documented(module, "VersionedSecret")
    assert_params(VersionedSecret.from_simple_secret, "value")
    assert isinstance(inspect.getattr_static(VersionedSecret, "from_simple_secret"), classmethod)
    CorruptSecretError = documented(module, "CorruptSecretError")
    SecretNotFoundError = documented(module, "SecretNotFoundError")
    SecretsNotAvailableError = documented(module, "SecretsNotAvailableError")
    assert_params(CorruptSecretError, "path", "message")
    assert_params(SecretNotFoundError, "name")
    assert_params(SecretsNotAvailableError, "inner")

    from baseplate.core import RequestContext

    path = tmp_path / "secrets.json"
    path.write_text(
        json.dumps(
            {
                "secrets": {
                    "simple": {"type": "simple", "value": "aGVsbG8=", "encoding": "base64"},
                    "plain": {"type": "simple", "value": "hello"},
                    "versioned": {
                        "type": "versioned",
                        "current": "Y3VycmVudA==",
                        "previous": "cHJldmlvdXM=",
                        "next": "bmV4dA==",
                        "encoding": "base64",
                    },
                    "broken": {"type": "versioned"},
                },
                "vault": {"url": "http://127.0.0.1:8200/", "token": "s.token"},
            }
        )
    )
    store = secrets_store_from_config({"secrets.path": str(path)})
    assert isinstance(store, SecretsStore)
    assert store.get_simple("simple") == b"hello" and store.get_simple("plain") == b"hello"
    assert store.get_raw("plain") == {"type": "simple", "value": "hello"}
    versioned = store.get_versioned("versioned")
    assert isinstance(versioned, VersionedSecret)
    assert versioned.current == b"current"
    assert set(versioned.all_versions) == {b"current", b"previous", b"next"}
    assert list(VersionedSecret.from_simple_secret(b"x").all_versions) == [b"x"]
    assert store.get_vault_url() == "http://127.0.0.1:8200/"
    assert store.get_vault_token() == "s.token"
    with pytest.raises(SecretNotFoundError):
        store.get_raw("missing")
    with pytest.raises(CorruptSecretError):
        store.get_versioned("broken")
    with pytest.raises(CorruptSecretError):
        store.get_simple("versioned")
    with pytest.raises(SecretsNotAvailableError):
        SecretsStore(str(tmp_path / "missing.json")).get_raw("simple")

    baseplate.add_to_context("secrets", store)
    context = RequestContext()
    with baseplate.make_server_span(context, "handler"):
        assert context.secrets.get_simple("plain") == b"hello"


# ---------------------------------------------------------------------------------------
# 2.14 baseplate.thrift_pool, 2.15 baseplate.service_discovery
# ---------------------------------------------------------------------------------------


def test_thrift_pool() -> None:
    module = "baseplate.thrift_pool"
    thrift_pool_from_config = documented(module, "thrift_pool_from_config")
    assert_params(thrift_pool_from_config, "app_config", "prefix", "**kwargs")
    ThriftConnectionPool = documented(module, "ThriftConnectionPool")
    assert_params(
        ThriftConnectionPool,
        "endpoint",
        "size",
        "max_age",
        "timeout",
        "max_retries",
        "protocol_factory",
    )
    assert_params(ThriftConnectionPool.connection)

    from thrift.transport.TTransport import TTransportException

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    pool = thrift_pool_from_config(
        {
            "example_service.endpoint": f"127.0.0.1:{port}",
            "example_service.size": "4",
            "example_service.max_age": "1 minute",
            "example_service.timeout": "1 second",
            "example_service.max_retries": "2",
        },
        "example_service.",
        max_retries=1,
    )
    assert isinstance(pool, ThriftConnectionPool)
    assert pool.size == 4 and pool.max_age == 60 and pool.timeout == 1
    assert pool.max_retries == 1  # keyword arguments win over the file
    # nobody listens there: the pool's errors derive from TTransportException
    with pytest.raises(TTransportException):
        with pool.connection():
            pass


def test_service_discovery(tmp_path: Path) -> None:
    module = "baseplate.service_discovery"
    ServiceInventory = documented(module, "ServiceInventory")
    assert_params(ServiceInventory, "filename")
    assert_params(ServiceInventory.get_backends)
    assert_params(ServiceInventory.get_backend)
    Backend = documented(module, "Backend")
    assert Backend._fields == ("id", "name", "endpoint", "weight")
    NoBackendsAvailableError = documented(module, "NoBackendsAvailableError")

    from baseplate.config import EndpointConfiguration

    path = tmp_path / "example.json"
    path.write_text(
        json.dumps(
            [
                {"id": 1, "name": "i-a", "host": "10.0.0.1", "port": 9090, "weight": 1},
                {"id": 2, "name": "i-b", "host": "10.0.0.2", "port": 9090, "weight": 0},
            ]
        )
    )
    # 2.15's example
    inventory = ServiceInventory(str(path))
    backend = inventory.get_backend()
    assert isinstance(backend, Backend)
    assert isinstance(backend.endpoint, EndpointConfiguration)
    assert tuple(backend.endpoint.address) == ("10.0.0.1", 9090)
    assert [b.name for b in inventory.get_backends()] == ["i-a", "i-b"]

    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(NoBackendsAvailableError):
        ServiceInventory(str(empty)).get_backend()


# ---------------------------------------------------------------------------------------
# 2.4.3 / 2.13.1 daemons, chapter 3 the CLI toolkit
# ---------------------------------------------------------------------------------------


def console_script(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"the {name} command is not installed"
    return str(path)


def run_command(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=60)


def test_daemon_command_lines() -> None:
    publisher = run_command(sys.executable, "-m", "baseplate.events.publisher", "--help")
    assert publisher.returncode == 0, publisher.stderr
    assert "--queue-name" in publisher.stdout and "config_file" in publisher.stdout
    fetcher = run_command(sys.executable, "-m", "baseplate.secrets.fetcher", "--help")
    assert fetcher.returncode == 0, fetcher.stderr


def test_cli_baseplate_serve_and_tshell_options() -> None:
    serve = run_command(console_script("baseplate-serve"), "--help")
    assert serve.returncode == 0, serve.stderr
    for option in ("--server-name", "--app-name", "--debug", "--reload"):
        assert option in serve.stdout
    tshell = run_command(console_script("baseplate-tshell"), "--help")
    assert tshell.returncode == 0, tshell.stderr
    assert "--app-name" in tshell.stdout


def test_cli_baseplate_script(tmp_path: Path) -> None:
    """3.3.2's example, as written."""
    (tmp_path / "printer.ini").write_text(
        "[app:main]\nmessage = Hello!\n\n[app:bizarro]\nmessage = !olleH\n"
    )
    (tmp_path / "printer.py").write_text('def run(app_config):\n    print(app_config["message"])\n')
    script = console_script("baseplate-script")
    main = run_command(script, "printer.ini", "printer:run", cwd=tmp_path)
    assert (main.returncode, main.stdout) == (0, "Hello!\n"), main.stderr
    bizarro = run_command(script, "printer.ini", "--app-name=bizarro", "printer:run", cwd=tmp_path)
    assert (bizarro.returncode, bizarro.stdout) == (0, "!olleH\n"), bizarro.stderr


def test_cli_baseplate_healthcheck(tmp_path: Path) -> None:
    """3.1: OK! and status 0 for a healthy service, status 1 for one that is not there."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
    from thrift.server.TServer import TThreadedServer
    from thrift.transport.TSocket import TServerSocket
    from thrift.transport.TTransport import TTransportFactoryBase

    from baseplate.thrift import BaseplateService

    healthcheck = console_script("baseplate-healthcheck")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "healthy"}']

    wsgi_server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    threading.Thread(target=wsgi_server.serve_forever, daemon=True).start()

    class Healthy:
        def is_healthy(self) -> bool:
            return True

    server_socket = TServerSocket(host="127.0.0.1", port=0, socket_family=socket.AF_INET)
    server_socket.listen()
    thrift_port = server_socket.handle.getsockname()[1]
    server_socket.listen = lambda: None
    thrift_server = TThreadedServer(
        BaseplateService.Processor(Healthy()),
        server_socket,
        TTransportFactoryBase(),
        THeaderProtocolFactory(),
        daemon=True,
    )
    threading.Thread(target=thrift_server.serve, daemon=True).start()
    try:
        for protocol, endpoint in (
            ("wsgi", f"127.0.0.1:{wsgi_server.server_port}"),
            ("thrift", f"127.0.0.1:{thrift_port}"),
        ):
            result = run_command(healthcheck, protocol, endpoint)
            assert (result.returncode, result.stdout.strip()) == (0, "OK!"), result.stderr
        nobody = run_command(healthcheck, "wsgi", str(tmp_path / "missing.sock"))
        assert nobody.returncode == 1
    finally:
        wsgi_server.shutdown()
        wsgi_server.server_close()
        server_socket.close()
