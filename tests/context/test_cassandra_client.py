"""baseplate.context.cassandra.

No Cassandra server runs in this environment, so these tests use a stand-in ``Session``
(below) that implements the DataStax driver's interface the integration relies on:
``execute_async`` returning a future with ``add_callbacks``/``add_callback``/``add_errback``
and ``result``, callbacks run on another thread (the driver's event loop thread), and
``prepare``. Statements are the driver's real ``SimpleStatement``/``PreparedStatement``/
``BoundStatement`` objects and the Cluster is the driver's real (unconnected) ``Cluster``.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import _NOT_SET, Cluster
from cassandra.query import BatchStatement, PreparedStatement, SimpleStatement
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from baseplate.config import ConfigurationError
from baseplate.context.cassandra import (
    CassandraContextFactory,
    CassandraSessionAdapter,
    CQLMapperContextFactory,
    TracedResponseFuture,
    cluster_from_config,
)
from baseplate.core import Baseplate, RequestContext, ServerSpan

from .conftest import attributes, finished, only


class FakeResponseFuture:
    """The driver's ResponseFuture contract: completed later on another thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[tuple[Any, tuple[Any, ...]]] = []
        self._errbacks: list[tuple[Any, tuple[Any, ...]]] = []
        self._result: Any = None
        self._error: BaseException | None = None

    def add_callback(self, fn: Any, *args: Any) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append((fn, args))
                return
        if self._error is None:
            fn(self._result, *args)

    def add_errback(self, fn: Any, *args: Any) -> None:
        with self._lock:
            if not self._event.is_set():
                self._errbacks.append((fn, args))
                return
        if self._error is not None:
            fn(self._error, *args)

    def add_callbacks(
        self, callback: Any, errback: Any, callback_args: tuple[Any, ...] = (),
        errback_args: tuple[Any, ...] = (),
    ) -> None:
        self.add_callback(callback, *callback_args)
        self.add_errback(errback, *errback_args)

    def complete(self, result: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            self._result, self._error = result, error
            self._event.set()
        if error is None:
            for fn, args in self._callbacks:
                fn(result, *args)
        else:
            for fn, args in self._errbacks:
                fn(error, *args)

    def result(self) -> Any:
        self._event.wait(10)
        if self._error is not None:
            raise self._error
        return self._result

    has_more_pages = False


class FakeSession:
    """A stand-in Session: queries finish on a worker thread with rows or an error."""

    def __init__(self) -> None:
        self.cluster = Cluster(["127.0.0.1"])
        self.keyspace = "ks"
        self.row_factory: Any = "named_tuple_factory"
        self.encoder = object()
        self.default_timeout = 10.0
        self.executed: list[tuple[Any, Any, Any, dict[str, Any]]] = []
        self.prepared: list[str] = []
        self.error: BaseException | None = None
        self.release = threading.Event()
        self.release.set()
        self.futures: list[FakeResponseFuture] = []

    def execute_async(
        self, query: Any, parameters: Any = None, timeout: Any = _NOT_SET, **kwargs: Any
    ) -> FakeResponseFuture:
        if isinstance(query, str) and query.startswith("SYNTAX"):
            raise ValueError("rejected before sending")
        self.executed.append((query, parameters, timeout, kwargs))
        future = FakeResponseFuture()
        self.futures.append(future)

        def finish() -> None:
            self.release.wait(10)
            future.complete(result=[("row",)], error=self.error)

        threading.Thread(target=finish, daemon=True).start()
        return future

    def prepare(self, query: str) -> PreparedStatement:
        self.prepared.append(query)
        return PreparedStatement([], b"id", None, query, "ks", 4, [], None)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def adapter(
    baseplate: Baseplate, session: FakeSession
) -> Iterator[tuple[CassandraSessionAdapter, ServerSpan]]:
    baseplate.add_to_context("cassandra", CassandraContextFactory(session))  # type: ignore[arg-type]
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    span.start()
    yield context.cassandra, span
    span.finish()


# -- configuration ---------------------------------------------------------------------


def test_cluster_from_config() -> None:
    cluster = cluster_from_config(
        {"cassandra.contact_points": "10.0.0.1, 10.0.0.2", "cassandra.port": "9043"},
        connect_timeout=3,
    )
    assert isinstance(cluster, Cluster)
    assert list(cluster.contact_points) == ["10.0.0.1", "10.0.0.2"]
    assert cluster.port == 9043
    assert cluster.connect_timeout == 3


def test_cluster_from_config_keyword_arguments_win_and_errors_name_keys() -> None:
    cluster = cluster_from_config(
        {"cql.contact_points": "10.0.0.1", "cql.port": "9043"}, prefix="cql.", port=9999
    )
    assert cluster.port == 9999
    assert cluster_from_config({"cassandra.contact_points": "127.0.0.1"}).port == 9042
    with pytest.raises(ConfigurationError, match=r"cassandra\.contact_points"):
        cluster_from_config({"cassandra.port": "9042"})
    with pytest.raises(ConfigurationError, match=r"cassandra\.port"):
        cluster_from_config({"cassandra.contact_points": "h", "cassandra.port": "x"})


# -- spans -------------------------------------------------------------------------------


def test_execute_is_a_span_with_the_statement(
    adapter: tuple[CassandraSessionAdapter, ServerSpan],
    session: FakeSession,
    exporter: InMemorySpanExporter,
) -> None:
    proxy, server_span = adapter
    assert proxy.execute("SELECT * FROM links WHERE id=%s", ["t3_1"], timeout=2.5) == [("row",)]
    assert session.executed == [("SELECT * FROM links WHERE id=%s", ["t3_1"], 2.5, {})]

    span = only(exporter, "cassandra.execute")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == server_span.id
    assert attributes(span) == {"statement": "SELECT * FROM links WHERE id=%s"}
    assert span.status.status_code is StatusCode.UNSET


def test_statement_objects_are_tagged(
    adapter: tuple[CassandraSessionAdapter, ServerSpan], exporter: InMemorySpanExporter
) -> None:
    proxy, _ = adapter
    prepared = proxy.prepare("SELECT * FROM t WHERE k=?")
    proxy.execute(SimpleStatement("SELECT 1"))
    proxy.execute(prepared.bind(()))
    proxy.execute(BatchStatement())
    statements = [attributes(s)["statement"] for s in finished(exporter, "cassandra.execute")]
    assert statements == ["SELECT 1", "SELECT * FROM t WHERE k=?", "BATCH"]


def test_execute_async_span_ends_on_the_driver_callback(
    adapter: tuple[CassandraSessionAdapter, ServerSpan],
    session: FakeSession,
    exporter: InMemorySpanExporter,
) -> None:
    proxy, server_span = adapter
    session.release.clear()
    current_before = trace.get_current_span()
    future = proxy.execute_async("SELECT 2")
    assert isinstance(future, TracedResponseFuture)
    # the query's span is not the caller's current span while the query runs
    assert trace.get_current_span() is current_before
    assert finished(exporter, "cassandra.execute") == []

    done = threading.Event()
    future.add_callback(lambda rows: done.set())  # the driver future's own API
    session.release.set()
    assert done.wait(10)
    for _ in range(400):
        if finished(exporter, "cassandra.execute"):
            break
        threading.Event().wait(0.005)
    span = only(exporter, "cassandra.execute")
    assert span.parent is not None and span.parent.span_id == server_span.id
    assert future.result() == [("row",)]
    assert len(finished(exporter, "cassandra.execute")) == 1  # ended once


def test_execute_error_reaches_caller_and_fails_span(
    adapter: tuple[CassandraSessionAdapter, ServerSpan],
    session: FakeSession,
    exporter: InMemorySpanExporter,
) -> None:
    proxy, _ = adapter
    error = OperationTimedOut("timed out waiting for the coordinator")
    session.error = error
    with pytest.raises(OperationTimedOut) as raised:
        proxy.execute("SELECT 3")
    assert raised.value is error
    span = only(exporter, "cassandra.execute")
    assert span.status.status_code is StatusCode.ERROR
    assert any(event.name == "exception" for event in span.events)


def test_synchronous_driver_error_fails_span(
    adapter: tuple[CassandraSessionAdapter, ServerSpan], exporter: InMemorySpanExporter
) -> None:
    proxy, _ = adapter
    with pytest.raises(ValueError, match="rejected"):
        proxy.execute_async("SYNTAX ERROR")
    assert only(exporter, "cassandra.execute").status.status_code is StatusCode.ERROR


def test_prepare_is_a_span_and_cached(
    adapter: tuple[CassandraSessionAdapter, ServerSpan],
    session: FakeSession,
    exporter: InMemorySpanExporter,
) -> None:
    proxy, _ = adapter
    first = proxy.prepare("SELECT * FROM t WHERE k=?")
    assert proxy.prepare("SELECT * FROM t WHERE k=?") is first
    assert session.prepared == ["SELECT * FROM t WHERE k=?"]
    span = only(exporter, "cassandra.prepare")
    assert attributes(span) == {"statement": "SELECT * FROM t WHERE k=?"}

    proxy.prepare("SELECT now()", cache=False)
    proxy.prepare("SELECT now()", cache=False)
    assert session.prepared.count("SELECT now()") == 2


def test_session_attributes_pass_through(
    adapter: tuple[CassandraSessionAdapter, ServerSpan], session: FakeSession
) -> None:
    proxy, _ = adapter
    assert proxy.cluster is session.cluster
    assert proxy.keyspace == "ks"
    assert proxy.encoder is session.encoder
    assert proxy.default_timeout == 10.0
    proxy.row_factory = "dict_factory"
    assert session.row_factory == "dict_factory"


# -- cqlmapper ---------------------------------------------------------------------------


def test_cqlmapper_missing_gives_a_clear_error(
    session: FakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cqlmapper", None)
    with pytest.raises(ImportError, match="cqlmapper"):
        CQLMapperContextFactory(session)  # type: ignore[arg-type]


def test_cqlmapper_connection_wraps_the_instrumented_session(
    baseplate: Baseplate,
    session: FakeSession,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # cqlmapper cannot be installed here: a stand-in module with its Connection(session)
    class Connection:
        def __init__(self, session: Any) -> None:
            self.session = session

        def execute(self, query: str) -> Any:
            return self.session.execute(query)

    package = types.ModuleType("cqlmapper")
    module = types.ModuleType("cqlmapper.connection")
    module.Connection = Connection  # type: ignore[attr-defined]
    package.connection = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cqlmapper", package)
    monkeypatch.setitem(sys.modules, "cqlmapper.connection", module)

    baseplate.add_to_context("cql", CQLMapperContextFactory(session))  # type: ignore[arg-type]
    context = RequestContext()
    with baseplate.make_server_span(context, "handler"):
        assert isinstance(context.cql, Connection)
        assert isinstance(context.cql.session, CassandraSessionAdapter)
        assert context.cql.execute("SELECT 4") == [("row",)]
    assert attributes(only(exporter, "cql.execute")) == {"statement": "SELECT 4"}
