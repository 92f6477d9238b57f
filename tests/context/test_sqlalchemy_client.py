"""baseplate.context.sqlalchemy against the running PostgreSQL (127.0.0.1:5432, db test)
and SQLite."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.orm import Session

from baseplate.config import ConfigurationError
from baseplate.context.sqlalchemy import (
    SQLAlchemyEngineContextFactory,
    SQLAlchemySessionContextFactory,
    engine_from_config,
)
from baseplate.core import Baseplate, RequestContext, ServerSpan
from baseplate.secrets import SecretsStore
from otel_bridge.semconv import TRACER_NAME

from .conftest import TcpProxy, attributes, finished, free_port, only

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
COMMENT = re.compile(r" -- trace:(\d+),span:(\d+)$")


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    engine = engine_from_config({"database.url": PG_URL})
    yield engine
    engine.dispose()


@pytest.fixture
def table(pg_engine: sa.Engine) -> Iterator[str]:
    name = f"bp_test_{uuid.uuid4().hex[:12]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id integer primary key, note text)"))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def request_engine(
    baseplate: Baseplate, engine: sa.Engine, name: str = "db"
) -> tuple[Any, ServerSpan]:
    baseplate.add_to_context(name, SQLAlchemyEngineContextFactory(engine))
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    span.start()
    return getattr(context, name), span


# -- configuration ---------------------------------------------------------------------


def test_engine_from_config_url_and_passthrough_keys() -> None:
    engine = engine_from_config(
        {"db.url": PG_URL, "db.pool_size": "3", "db.echo": "false", "database.url": "sqlite://"},
        prefix="db.",
    )
    assert engine.url.drivername == "postgresql+psycopg2"  # 0.28-style URL still works
    assert engine.url.host == "127.0.0.1" and engine.url.database == "test"
    assert engine.pool.size() == 3  # type: ignore[attr-defined]
    assert engine.echo is False
    engine.dispose()


def test_engine_from_config_keyword_arguments_win() -> None:
    engine = engine_from_config({"database.url": PG_URL, "database.pool_size": "3"}, pool_size=2)
    assert engine.pool.size() == 2  # type: ignore[attr-defined]
    engine.dispose()


def test_engine_from_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"database\.url"):
        engine_from_config({"database.pool_size": "3"})
    with pytest.raises(ConfigurationError, match=r"database\.url"):
        engine_from_config({"database.url": "not a url"})
    with pytest.raises(ConfigurationError, match=r"database"):
        engine_from_config({"database.url": "sqlite://", "database.no_such_option": "1"})
    with pytest.raises(ValueError, match="prefix"):
        engine_from_config({"database.url": "sqlite://"}, prefix="database")


def test_engine_from_config_reads_documented_sqlalchemy_keys() -> None:
    engine = engine_from_config({"sqlalchemy.url": "sqlite://"})
    assert engine.url.drivername == "sqlite"


def write_secrets(tmp_path: Path) -> SecretsStore:
    path = tmp_path / "secrets.json"
    path.write_text(
        json.dumps(
            {
                "secrets": {
                    "secret/db/creds": {
                        "type": "credential",
                        "username": "postgres",
                        "password": "ignored-by-trust-auth",
                    },
                    "secret/db/simple": {"type": "simple", "value": "x"},
                },
                "vault": {"url": "http://127.0.0.1:8200", "token": "root"},
            }
        )
    )
    return SecretsStore(str(path))


def test_credentials_secret_replaces_url_credentials(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path)
    engine = engine_from_config(
        {
            "database.url": "postgresql://nobody:wrong@127.0.0.1:5432/test",
            "database.credentials_secret": "secret/db/creds",
        },
        secrets,
    )
    assert engine.url.username == "postgres"
    assert engine.url.password == "ignored-by-trust-auth"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() == "postgres"
    engine.dispose()


def test_credentials_secret_needs_store_and_credential(tmp_path: Path) -> None:
    config = {"database.url": PG_URL, "database.credentials_secret": "secret/db/simple"}
    with pytest.raises(TypeError, match=r"database\.credentials_secret"):
        engine_from_config(config)
    with pytest.raises(ValueError, match="secret/db/simple"):
        engine_from_config(config, write_secrets(tmp_path))


# -- spans -------------------------------------------------------------------------------


def test_postgres_statements_are_spans_with_trace_comment(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter
) -> None:
    engine, server_span = request_engine(baseplate, pg_engine)
    with engine.connect() as conn:
        sent = conn.execute(sa.text("SELECT current_query()")).scalar()

    span = only(exporter, "db.execute")
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == TRACER_NAME
    assert span.parent is not None and span.parent.span_id == server_span.id
    assert attributes(span)["statement"] == "SELECT current_query()"
    ids = f"trace:{span.context.trace_id},span:{span.context.span_id}"
    assert sent == f"SELECT current_query() -- {ids}"
    assert span.context.trace_id == server_span.trace_id


def test_sqlite_statements_are_spans_with_trace_comment(
    baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    base = engine_from_config({"database.url": "sqlite://"})
    seen: list[str] = []

    @sa.event.listens_for(base, "connect")
    def trace_sql(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    engine, _ = request_engine(baseplate, base)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x integer)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:x)"), [{"x": 1}, {"x": 2}])
        assert conn.execute(sa.text("SELECT sum(x) FROM t")).scalar() == 3

    spans = finished(exporter, "db.execute")
    statements = [attributes(span)["statement"] for span in spans]
    assert statements == [
        "CREATE TABLE t (x integer)",
        "INSERT INTO t VALUES (?)",
        "SELECT sum(x) FROM t",
    ]
    assert attributes(spans[1])["executemany"] is True
    commented = [text for text in seen if COMMENT.search(text)]
    assert len(commented) >= 3
    ids = {(int(m[1]), int(m[2])) for m in (COMMENT.search(t) for t in commented) if m}
    assert ids == {(span.context.trace_id, span.context.span_id) for span in spans}


def test_plain_engine_is_not_traced(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter
) -> None:
    request_engine(baseplate, pg_engine)
    with pg_engine.connect() as conn:
        assert COMMENT.search(conn.execute(sa.text("SELECT current_query()")).scalar()) is None
    assert finished(exporter, "db.execute") == []


def test_statement_error_reaches_caller_and_fails_span(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter
) -> None:
    engine, _ = request_engine(baseplate, pg_engine)
    with engine.connect() as conn:
        with pytest.raises(sa.exc.ProgrammingError) as raised:
            conn.execute(sa.text("SELECT * FROM no_such_table_here"))
        assert "no_such_table_here" in str(raised.value)
        conn.rollback()
        assert conn.execute(sa.text("SELECT 2")).scalar() == 2
    failed, ok = finished(exporter, "db.execute")
    assert failed.status.status_code is StatusCode.ERROR
    assert any(event.name == "exception" for event in failed.events)
    assert ok.status.status_code is StatusCode.UNSET
    assert get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None


def test_session_per_request_closed_not_committed(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter, table: str
) -> None:
    baseplate.add_to_context("db", SQLAlchemySessionContextFactory(pg_engine))
    context = RequestContext()
    server_span = baseplate.make_server_span(context, "handler")
    with server_span:
        session = context.db
        assert isinstance(session, Session)
        session.execute(sa.text(f"INSERT INTO {table} VALUES (1, 'uncommitted')"))
        assert session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 1
        assert session.in_transaction()
    assert not session.in_transaction()  # closed by the request's end
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0
    statements = [attributes(span)["statement"] for span in finished(exporter, "db.execute")]
    assert statements[-2:] == [
        f"INSERT INTO {table} VALUES (1, 'uncommitted')",
        f"SELECT count(*) FROM {table}",
    ]

    # a committing request keeps its row
    context = RequestContext()
    with baseplate.make_server_span(context, "handler"):
        context.db.execute(sa.text(f"INSERT INTO {table} VALUES (2, 'kept')"))
        context.db.commit()
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT note FROM {table}")).scalars().all() == ["kept"]


def test_local_span_shares_the_request_session(
    baseplate: Baseplate, pg_engine: sa.Engine
) -> None:
    factory = SQLAlchemySessionContextFactory(pg_engine)
    baseplate.add_to_context("db", factory)
    context = RequestContext()
    with baseplate.make_server_span(context, "handler") as server_span:
        local = server_span.make_child("work", local=True, component_name="worker")
        assert factory.make_object_for_context("db", local) is context.db


# -- vendor instrumentation overlap ------------------------------------------------------


@pytest.fixture
def vendor_sqlalchemy(provider: TracerProvider) -> Iterator[None]:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    assert not instrumentor.is_instrumented_by_opentelemetry
    # this vendor release declares sqlalchemy < 2.1 and refuses the installed 2.1 unless told
    # to skip its version check; it works with 2.1 once asked
    instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    assert instrumentor.is_instrumented_by_opentelemetry
    yield
    instrumentor.uninstrument()


def vendor_statement_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope.name != TRACER_NAME and span.name != "connect"
    ]


def test_vendor_statement_span_is_suppressed(
    vendor_sqlalchemy: None, baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    base = engine_from_config({"database.url": PG_URL})  # create_engine is wrapped by the vendor
    engine, _ = request_engine(baseplate, base)
    with engine.connect() as conn:
        sent = conn.execute(sa.text("SELECT current_query()")).scalar()
    assert COMMENT.search(sent)
    assert "traceparent" not in sent  # nor the vendor's sqlcommenter, if enabled
    assert vendor_statement_spans(exporter) == []
    assert only(exporter, "db.execute")
    assert get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None

    # the vendor instrumentation is really active: the plain engine is traced by it
    with base.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert len(vendor_statement_spans(exporter)) == 1
    base.dispose()


def test_vendor_suppression_is_undone_after_errors(
    vendor_sqlalchemy: None, baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    base = engine_from_config({"database.url": "sqlite://"})
    engine, _ = request_engine(baseplate, base)
    with engine.connect() as conn:
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM missing"))
    assert get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None
    assert vendor_statement_spans(exporter) == []
    assert only(exporter, "db.execute").status.status_code is StatusCode.ERROR


# -- faults ------------------------------------------------------------------------------


def test_database_down_at_start_then_recovers(
    baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    port = free_port()
    base = engine_from_config(
        {"database.url": f"postgresql://postgres@127.0.0.1:{port}/test"},
        connect_args={"connect_timeout": 2},
    )
    engine, _ = request_engine(baseplate, base)
    with pytest.raises(sa.exc.OperationalError):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    span = only(exporter, "db.execute")
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["db.url"] == f"postgresql+psycopg2://postgres@127.0.0.1:{port}/test"
    base.dispose()


def test_connection_killed_mid_request_then_pool_recovers(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter
) -> None:
    engine, _ = request_engine(baseplate, pg_engine)
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with pg_engine.connect() as admin:
            assert admin.execute(sa.text(f"SELECT pg_terminate_backend({pid})")).scalar()
        with pytest.raises(sa.exc.OperationalError) as raised:
            conn.execute(sa.text("SELECT 1"))
        assert raised.value.connection_invalidated
    statuses = [span.status.status_code for span in finished(exporter, "db.execute")]
    assert statuses == [StatusCode.UNSET, StatusCode.ERROR]

    engine, _ = request_engine(baseplate, pg_engine, name="db2")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 3")).scalar() == 3


def test_statement_timeout_fails_span_and_connection_recovers(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter
) -> None:
    engine, _ = request_engine(baseplate, pg_engine)
    with engine.connect() as conn:
        conn.execute(sa.text("SET statement_timeout = 100"))
        with pytest.raises(sa.exc.OperationalError) as raised:
            conn.execute(sa.text("SELECT pg_sleep(5)"))
        assert "statement timeout" in str(raised.value)
        conn.rollback()
        assert conn.execute(sa.text("SELECT 4")).scalar() == 4
    spans = finished(exporter, "db.execute")
    assert [span.status.status_code for span in spans] == [
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]


def test_database_down_killed_and_back_through_a_proxy(
    baseplate: Baseplate, exporter: InMemorySpanExporter
) -> None:
    # a TCP forwarder to the shared PostgreSQL stands in for a database that goes away
    proxy = TcpProxy(("127.0.0.1", 5432))
    base = engine_from_config(
        {"database.url": f"postgresql://postgres@127.0.0.1:{proxy.port}/test"},
        connect_args={"connect_timeout": 2},
    )
    try:
        engine, _ = request_engine(baseplate, base)
        with pytest.raises(sa.exc.OperationalError):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        proxy.start()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 5")).scalar() == 5
            proxy.kill()
            with pytest.raises(sa.exc.OperationalError):
                conn.execute(sa.text("SELECT 6"))

        proxy.start()
        with engine.connect() as conn:  # the pool replaced the dead connection
            assert conn.execute(sa.text("SELECT 7")).scalar() == 7
    finally:
        proxy.kill()
        base.dispose()
    statuses = [span.status.status_code for span in finished(exporter, "db.execute")]
    assert statuses == [StatusCode.ERROR, StatusCode.UNSET, StatusCode.ERROR, StatusCode.UNSET]


def test_tracing_failure_never_fails_the_statement(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenSpan:
        def make_child(self, name: str) -> Any:
            raise RuntimeError("tracing is broken")

    base = engine_from_config({"database.url": "sqlite://"})
    engine = SQLAlchemyEngineContextFactory(base).make_object_for_context(
        "db", BrokenSpan()  # type: ignore[arg-type]
    )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 8")).scalar() == 8
    assert "could not trace a SQL statement" in caplog.text


def test_orm_session_flush_and_query_are_spans(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter, table: str
) -> None:
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = table
        id = sa.Column(sa.Integer, primary_key=True)
        note = sa.Column(sa.Text)

    baseplate.add_to_context("db", SQLAlchemySessionContextFactory(pg_engine))
    context = RequestContext()
    with baseplate.make_server_span(context, "handler"):
        context.db.add(Note(id=3, note="orm"))
        context.db.commit()
        assert context.db.get(Note, 3).note == "orm"
    statements = [attributes(span)["statement"] for span in finished(exporter, "db.execute")]
    assert any(statement.startswith(f"INSERT INTO {table}") for statement in statements)
    assert any(statement.startswith("SELECT") for statement in statements)


def test_unsampled_requests_still_comment_their_statements(
    baseplate: Baseplate, pg_engine: sa.Engine, exporter: InMemorySpanExporter
) -> None:
    from baseplate.core import TraceInfo

    baseplate.add_to_context("db", SQLAlchemyEngineContextFactory(pg_engine))
    context = RequestContext()
    info = TraceInfo.from_upstream(98765, 11, 12, False, None)
    with baseplate.make_server_span(context, "handler", info):
        with context.db.connect() as conn:
            sent = conn.execute(sa.text("SELECT current_query()")).scalar()
    match = COMMENT.search(sent)
    assert match is not None and int(match[1]) == 98765
    assert exporter.get_finished_spans() == ()
