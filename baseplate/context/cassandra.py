"""Cassandra integration: a Cluster from config and a session proxy whose queries are spans.

``execute``, ``execute_async`` and ``prepare`` through the proxy are client spans named
``<context attribute>.execute`` / ``<context attribute>.prepare`` tagged with the query
text (``statement``). An asynchronous query's span ends when the driver's future completes
(its callbacks), or when the caller collects the result, whichever comes first; it never
becomes the caller's current span, so work done while the query runs is not nested under
it. Errors are recorded on the span and reach the caller unchanged.

This module is tested against the DataStax driver's interfaces (``Session.execute_async``
returning a ``ResponseFuture`` with ``add_callbacks``/``result``) using a stand-in session,
because no Cassandra server runs in the test environment.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Mapping
from typing import Any

from cassandra.cluster import _NOT_SET, Cluster, ResponseFuture, Session
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement, Statement

from baseplate import config
from baseplate._span import Span
from baseplate.context import ContextFactory
from baseplate.context._clients import parse_prefixed


def cluster_from_config(
    app_config: Mapping[str, str], prefix: str = "cassandra.", **kwargs: Any
) -> Cluster:
    """Make a Cluster from a configuration dictionary.

    The keys useful to :func:`cluster_from_config` should be prefixed, e.g.
    ``cassandra.contact_points`` etc. The ``prefix`` argument specifies the prefix used to
    filter keys. Each key is mapped to a corresponding keyword argument on the
    :class:`~cassandra.cluster.Cluster` constructor. Any keyword arguments given to this
    function will be passed through to the constructor. Keyword arguments take precedence
    over the configuration file.

    Supported keys:

    * ``contact_points`` (required): comma delimited list of contact points to try
      connecting for cluster discovery
    * ``port``: The server-side port to open connections to, 1 to 65535.
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "contact_points": config.TupleOf(config.String),
            "port": config.Optional(config.IntegerRange(1, 65535), default=None),
        },
    )
    if options.port is not None:
        kwargs.setdefault("port", options.port)
    kwargs.setdefault("contact_points", options.contact_points)
    return Cluster(**kwargs)


class CassandraContextFactory(ContextFactory):
    """Cassandra session context factory.

    This factory will attach a proxy object which acts like a
    :class:`cassandra.cluster.Session` to an attribute on the context object. The
    ``execute``, ``execute_async`` or ``prepare`` methods will automatically record
    diagnostic information.

    :param session: A configured session object.
    """

    def __init__(self, session: Session):
        self.session = session
        self.prepared_statements: dict[str, PreparedStatement] = {}

    def make_object_for_context(self, name: str, server_span: Span) -> CassandraSessionAdapter:
        """Return a :class:`CassandraSessionAdapter` for this request."""
        return CassandraSessionAdapter(name, server_span, self.session, self.prepared_statements)


class CQLMapperContextFactory(CassandraContextFactory):
    """CQLMapper ORM connection context factory.

    This factory will attach a new CQLMapper ``cqlmapper.connection.Connection`` to an
    attribute on the context object. This Connection object will use the same proxy object
    that :class:`CassandraContextFactory` attaches to a context to run queries so the
    ``execute`` command will automatically record diagnostic information.

    The ``cqlmapper`` package is optional; without it this class raises
    :exc:`ImportError` when created.

    :param session: A configured session object.
    """

    def __init__(self, session: Session):
        try:
            import cqlmapper.connection
        except ImportError as exc:
            raise ImportError(
                "CQLMapperContextFactory needs the optional 'cqlmapper' package "
                f"(import failed: {exc}); use CassandraContextFactory without it"
            ) from exc
        super().__init__(session)
        self._connection_class = cqlmapper.connection.Connection

    def make_object_for_context(self, name: str, server_span: Span) -> Any:
        """Return a ``cqlmapper.connection.Connection`` over the instrumented session."""
        session_adapter = super().make_object_for_context(name, server_span)
        return self._connection_class(session_adapter)


def _statement_text(query: Any) -> str | None:
    if isinstance(query, str):
        return query
    if isinstance(query, BoundStatement):
        return str(query.prepared_statement.query_string)
    if isinstance(query, PreparedStatement):
        return str(query.query_string)
    if isinstance(query, BatchStatement):
        return "BATCH"
    if isinstance(query, Statement):
        text = getattr(query, "query_string", None)
        return None if text is None else str(text)
    return None


class _SpanEnding:
    """Ends a query's span exactly once, from the driver's callbacks or the caller."""

    def __init__(self, span: Span):
        self._span = span
        self._lock = threading.Lock()
        self._ended = False

    def _end(self, error: BaseException | None) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        if error is None:
            self._span.finish()
        else:
            self._span.finish(exc_info=(type(error), error, error.__traceback__))

    def succeeded(self, _result: Any = None) -> None:
        self._end(None)

    def failed(self, error: BaseException) -> None:
        self._end(error)


class TracedResponseFuture:
    """The driver's ``ResponseFuture`` for a query whose span it ends.

    Everything but :meth:`result` is the driver future's own (``add_callbacks``,
    ``has_more_pages``, ...).
    """

    def __init__(self, future: ResponseFuture, ending: _SpanEnding):
        self.future = future
        self._ending = ending

    def result(self) -> Any:
        """Return the final result or raise the query's exception (ending the span)."""
        try:
            result = self.future.result()
        except Exception as error:
            self._ending.failed(error)
            raise
        self._ending.succeeded()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.future, name)


class CassandraSessionAdapter:
    """A per-request stand-in for a :class:`cassandra.cluster.Session` whose queries are
    spans. Attributes not defined here are the session's own."""

    def __init__(
        self,
        context_name: str,
        server_span: Span,
        session: Session,
        prepared_statements: dict[str, PreparedStatement],
    ):
        self.context_name = context_name
        self.server_span = server_span
        self.session = session
        self.prepared_statements = prepared_statements

    @property
    def cluster(self) -> Cluster:
        """The session's cluster."""
        return self.session.cluster

    @property
    def encoder(self) -> Any:
        """The session's parameter encoder."""
        return self.session.encoder

    @property
    def keyspace(self) -> str | None:
        """The session's keyspace."""
        return self.session.keyspace

    @property
    def row_factory(self) -> Any:
        """The session's row factory."""
        return self.session.row_factory

    @row_factory.setter
    def row_factory(self, new_row_factory: Any) -> None:
        self.session.row_factory = new_row_factory

    def __getattr__(self, name: str) -> Any:
        if name in ("session", "context_name", "server_span", "prepared_statements"):
            raise AttributeError(name)
        return getattr(self.session, name)

    def execute(
        self, query: Any, parameters: Any = None, timeout: Any = _NOT_SET, **kwargs: Any
    ) -> Any:
        """Execute a query and return its result (a span ``<name>.execute``)."""
        return self.execute_async(query, parameters, timeout, **kwargs).result()

    def execute_async(
        self, query: Any, parameters: Any = None, timeout: Any = _NOT_SET, **kwargs: Any
    ) -> TracedResponseFuture:
        """Start a query; its span ``<name>.execute`` ends when the query completes."""
        span = self.server_span.make_child(f"{self.context_name}.execute")
        text = _statement_text(query)
        if text is not None:
            span.set_tag("statement", text)
        # The span is started in a copy of the caller's context: it is current while the
        # driver sends the query, but never becomes the caller's current span.
        return contextvars.copy_context().run(
            self._start_query, span, query, parameters, timeout, kwargs
        )

    def _start_query(
        self, span: Span, query: Any, parameters: Any, timeout: Any, kwargs: dict[str, Any]
    ) -> TracedResponseFuture:
        span.start()
        ending = _SpanEnding(span)
        try:
            future = self.session.execute_async(
                query, parameters=parameters, timeout=timeout, **kwargs
            )
        except Exception as error:
            ending.failed(error)
            raise
        future.add_callbacks(callback=ending.succeeded, errback=ending.failed)
        return TracedResponseFuture(future, ending)

    def prepare(self, query: str, cache: bool = True) -> PreparedStatement:
        """Prepare a CQL statement (a span ``<name>.prepare`` unless it is cached).

        :param cache: If set to True (default), prepared statements will be automatically
            cached and reused. The cache is keyed on the text of the statement. Set to
            False if you don't want your prepared statements cached, which might be
            advisable if you have a very high-cardinality query set. Prepared statements
            are cached indefinitely, so be wary of memory usage.
        """
        if cache:
            cached = self.prepared_statements.get(query)
            if cached is not None:
                return cached
        with self.server_span.make_child(f"{self.context_name}.prepare") as span:
            span.set_tag("statement", query)
            prepared = self.session.prepare(query)
        if cache:
            self.prepared_statements[query] = prepared
        return prepared


__all__ = [
    "CQLMapperContextFactory",
    "CassandraContextFactory",
    "CassandraSessionAdapter",
    "TracedResponseFuture",
    "cluster_from_config",
]
