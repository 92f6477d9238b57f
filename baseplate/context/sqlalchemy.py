"""SQLAlchemy integration: an engine from config, and engines/sessions whose statements are spans.

Every statement sent to the database through an object from
:class:`SQLAlchemyEngineContextFactory` or :class:`SQLAlchemySessionContextFactory` is a
client span named ``<context attribute>.execute`` (metric ``clients.<attribute>.execute``)
tagged with the statement, and the statement text sent to the server ends with a comment
naming the trace and span::

    SELECT 1 -- trace:<trace id in decimal>,span:<span id in decimal>

so slow query logs and active query views can be matched to requests. A connection that
cannot be opened (database down) is an error span with the same name. Errors reach the
caller unchanged.

When ``opentelemetry-instrumentation-sqlalchemy`` is active too, its span for a statement
sent through these objects is suppressed (see :mod:`baseplate.context._clients`); its
``connect`` spans and everything sent through other engines are left alone.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.interfaces import ExceptionContext, ExecutionContext
from sqlalchemy.orm import Session

from baseplate import config
from baseplate._span import ServerSpan, Span, SpanObserver
from baseplate.context import ContextFactory
from baseplate.context._clients import (
    parse_prefixed,
    restore_instrumentation,
    suppress_instrumentation,
    vendor_instrumentation_active,
)

logger = logging.getLogger(__name__)

_VENDOR = ("opentelemetry.instrumentation.sqlalchemy", "SQLAlchemyInstrumentor")

# Execution options carrying the request's span onto connections from our engines.
_OPTION_FACTORY = "baseplate_factory"
_OPTION_NAME = "context_name"
_OPTION_SPAN = "server_span"

# Attributes kept on SQLAlchemy's per-statement execution context.
_SPAN_ATTR = "_baseplate_span"
_SUPPRESS_ATTR = "_baseplate_suppress_token"

#: The prefix of the keys used by the 0.28 documentation of this function.
_DOCUMENTED_PREFIX = "sqlalchemy."
#: The prefix later baseplate releases use; read when the documented keys are absent.
_DATABASE_PREFIX = "database."


#: The numeric engine arguments checked before SQLAlchemy converts them (``asint``, which
#: takes any size and, for some, any sign).
_POOL_SPEC = {
    "pool_size": config.Optional(config.IntegerRange(0, config.MAX_POOL_SIZE)),
    "max_overflow": config.Optional(config.IntegerRange(-1, config.MAX_POOL_SIZE)),
    "pool_timeout": config.Optional(config.IntegerRange(0, 86400)),
    "pool_recycle": config.Optional(config.IntegerRange(-1, 86400)),
}


def engine_from_config(
    configuration: Mapping[str, str],
    prefix: str = _DOCUMENTED_PREFIX,
    secrets: Any = None,
    **kwargs: Any,
) -> Engine:
    """Make an :class:`sqlalchemy.engine.Engine` from a configuration dictionary.

    The keys useful to :func:`engine_from_config` should be prefixed, e.g. ``sqlalchemy.url``
    etc. The ``prefix`` argument specifies the prefix used to filter keys. Each key is
    mapped to a corresponding keyword argument on :func:`sqlalchemy.create_engine` (string
    values are converted the way :func:`sqlalchemy.engine_from_config` does, e.g.
    ``sqlalchemy.pool_size = 5``). Any keyword arguments given to this function will be
    passed through. Keyword arguments take precedence over the configuration file.

    Supported keys:

    * ``url`` (required): the connection URL to the database, passed to
      :func:`sqlalchemy.engine.make_url`. A bare ``postgresql://`` URL uses psycopg2 when
      psycopg 3 is not installed (as it did with SQLAlchemy 1.x).
    * ``credentials_secret`` (optional): the path of a credential secret
      (``{"type": "credential", "username": ..., "password": ...}``) in ``secrets``; when
      set, its username and password replace any given in ``url``.
    * the pool's numbers, checked here so that a bad one names its key: ``pool_size`` (0,
      no limit, to :data:`~baseplate.config.MAX_POOL_SIZE`), ``max_overflow`` (-1, no
      limit, to ``MAX_POOL_SIZE``), ``pool_timeout`` (whole seconds, 0 to 86400) and
      ``pool_recycle`` (whole seconds, -1 to never recycle, up to 86400).

    With the default prefix, a configuration that has no ``sqlalchemy.url`` but has
    ``database.`` keys (the prefix of later baseplate releases) is read from those instead,
    and ``engine_from_config(app_config, secrets)``, their order of arguments, works too.

    :param configuration: The raw application configuration.
    :param prefix: The prefix for configuration keys.
    :param secrets: A :class:`baseplate.secrets.SecretsStore`, needed with
        ``credentials_secret``.
    """
    if not isinstance(prefix, str):
        if secrets is not None:
            raise TypeError("engine_from_config got the secrets store both by position and name")
        secrets, prefix = prefix, _DOCUMENTED_PREFIX
    if (
        prefix == _DOCUMENTED_PREFIX
        and f"{prefix}url" not in configuration
        and any(key.startswith(_DATABASE_PREFIX) for key in configuration)
    ):
        prefix = _DATABASE_PREFIX
    options = parse_prefixed(
        configuration,
        prefix,
        {"url": config.String, "credentials_secret": config.Optional(config.String)},
    )
    try:
        url = _default_driver(make_url(options.url))
    except Exception as exc:
        raise config.ConfigurationError(f"{prefix}url", exc) from None

    if options.credentials_secret:
        if secrets is None:
            raise TypeError(
                f"engine_from_config needs a secrets store when {prefix}credentials_secret is set"
            )
        username, password = _credentials(secrets, options.credentials_secret)
        url = url.set(username=username, password=password)

    engine_options: dict[str, Any] = {
        key[len(prefix) :]: value
        for key, value in configuration.items()
        if key.startswith(prefix) and key[len(prefix) :] not in ("url", "credentials_secret")
    }
    # the pool's numbers, checked; an empty one is not configured
    for name, value in parse_prefixed(configuration, prefix, _POOL_SPEC).items():
        if value is None:
            engine_options.pop(name, None)
        else:
            engine_options[name] = value
    if engine_options:
        # string values from the file are converted to each argument's type, as
        # sqlalchemy.engine_from_config does
        engine_options["_coerce_config"] = True
    engine_options.update(kwargs)
    try:
        return create_engine(url, **engine_options)
    except (TypeError, ValueError) as exc:
        # an argument create_engine does not take, or a value its own conversion refuses
        raise config.ConfigurationError(prefix.rstrip("."), exc) from None


def create_engine(url: URL | str, **kwargs: Any) -> Engine:
    """:func:`sqlalchemy.create_engine`, looked up when called so that instrumentation
    wrapping it (e.g. ``opentelemetry-instrumentation-sqlalchemy``) applies."""
    return sqlalchemy.create_engine(url, **kwargs)


def _default_driver(url: URL) -> URL:
    # Configurations written for baseplate 0.28 (SQLAlchemy 1.x) say ``postgresql://`` and
    # mean psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for that, which may not be there.
    if (
        url.drivername == "postgresql"
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return url.set(drivername="postgresql+psycopg2")
    return url


def _credentials(secrets: Any, path: str) -> tuple[str, str]:
    get_credentials = getattr(secrets, "get_credentials", None)
    if callable(get_credentials):
        credentials = get_credentials(path)
        return credentials.username, credentials.password
    raw = secrets.get_raw(path)
    if raw.get("type") != "credential":
        raise ValueError(f"secret {path!r} is not a credential secret (type={raw.get('type')!r})")
    username, password = raw.get("username"), raw.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ValueError(f"secret {path!r} must have string username and password")
    return username, password


def _url_without_password(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class SQLAlchemyEngineContextFactory(ContextFactory):
    """SQLAlchemy core engine context factory.

    This factory will attach a SQLAlchemy :class:`sqlalchemy.engine.Engine` to an attribute
    on the context object. All cursor (query) execution will automatically record
    diagnostic information.

    Additionally, the trace and span ID will be added as a comment to the text of the SQL
    statement (``-- trace:<id>,span:<id>``, decimal ids). This is to aid correlation of
    queries with requests.

    .. seealso:: The engine is the low-level SQLAlchemy API. If you want to use the ORM,
        consider using :class:`SQLAlchemySessionContextFactory` instead.

    :param engine: A configured SQLAlchemy engine.
    """

    def __init__(self, engine: Engine):
        self.engine = engine.execution_options()
        # Listeners go on the engine itself, the first one first in line, so it runs before
        # a vendor instrumentation's listener (which then sees the suppression). They only
        # act on connections carrying this factory's execution options.
        event.listen(engine, "after_cursor_execute", self.on_after_execute)
        event.listen(engine, "handle_error", self.on_error)
        _listen_first(engine, "before_cursor_execute", self.on_before_execute)

    def make_object_for_context(self, name: str, server_span: Span) -> Any:
        """Return an engine whose statements are spans of this request."""
        return self.engine.execution_options(
            **{_OPTION_FACTORY: self, _OPTION_NAME: name, _OPTION_SPAN: server_span}
        )

    def _request_of(self, options: Mapping[str, Any]) -> tuple[str, Span] | None:
        if options.get(_OPTION_FACTORY) is not self:
            return None
        return options[_OPTION_NAME], options[_OPTION_SPAN]

    def on_before_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> tuple[str, Any]:
        """Handle the engine's ``before_cursor_execute`` event: start the statement's span."""
        try:
            request = self._request_of(conn.get_execution_options())
            if request is None or context is None:
                return statement, parameters
            name, server_span = request
            span = server_span.make_child(f"{name}.execute")
            span.set_tag("statement", statement)
            if executemany:
                span.set_tag("executemany", True)
            span.start()
            setattr(context, _SPAN_ATTR, span)
            if vendor_instrumentation_active(*_VENDOR):
                setattr(context, _SUPPRESS_ATTR, suppress_instrumentation())
            return f"{statement} -- trace:{span.trace_id:d},span:{span.id:d}", parameters
        except Exception:
            # telemetry never fails a statement
            logger.exception("could not trace a SQL statement")
            return statement, parameters

    def on_after_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        """Handle the event which happens after successful cursor execution."""
        try:
            span = _take_span(context)
            if span is not None:
                span.finish()
        except Exception:
            logger.exception("could not finish a SQL statement's span")

    def on_error(self, exception_context: ExceptionContext) -> None:
        """Handle the event which happens on exceptions during execution or connecting."""
        try:
            self._record_error(exception_context)
        except Exception:
            logger.exception("could not record a SQL error on its span")

    def _record_error(self, exception_context: ExceptionContext) -> None:
        error = exception_context.original_exception
        exc_info = (type(error), error, error.__traceback__)
        span = _take_span(exception_context.execution_context)
        if span is not None:
            span.finish(exc_info=exc_info)
            return
        if exception_context.connection is None and exception_context.engine is not None:
            # the connection could not be opened: no statement reached the server
            request = self._request_of(exception_context.engine.get_execution_options())
            if request is not None:
                name, server_span = request
                span = server_span.make_child(f"{name}.execute")
                span.set_tag("db.url", _url_without_password(exception_context.engine.url))
                span.start()
                span.finish(exc_info=exc_info)


def _listen_first(engine: Engine, identifier: str, fn: Any) -> None:
    """Register a ``retval=True`` engine listener ahead of those already registered.

    ``event.listen(..., insert=True)`` is ignored for engine events in SQLAlchemy (their
    ``_listen`` drops the flag), so the listener is registered the way ``event.listen``
    would, at the front of the collection. ``event.remove`` works on it as usual.
    """
    try:
        from sqlalchemy.event.registry import _EventKey

        _EventKey(engine, identifier, fn, engine).base_listen(insert=True)
    except Exception:
        logger.warning(
            "could not put baseplate's %s listener first; a vendor SQLAlchemy "
            "instrumentation may trace statements a second time",
            identifier,
            exc_info=True,
        )
        event.listen(engine, identifier, fn, retval=True)


def _take_span(context: ExecutionContext | None) -> Span | None:
    if context is None:
        return None
    token = getattr(context, _SUPPRESS_ATTR, None)
    if token is not None:
        setattr(context, _SUPPRESS_ATTR, None)
        restore_instrumentation(token)
    span: Span | None = getattr(context, _SPAN_ATTR, None)
    if span is not None:
        setattr(context, _SPAN_ATTR, None)
    return span


class SQLAlchemySessionContextFactory(SQLAlchemyEngineContextFactory):
    """SQLAlchemy ORM session context factory.

    This factory will attach a new SQLAlchemy :class:`sqlalchemy.orm.Session` to an
    attribute on the context object. All cursor (query) execution will automatically
    record diagnostic information.

    The session will be automatically closed, but not committed or rolled back, at the end
    of each request (closing releases its connection, which rolls back anything not
    committed).

    .. seealso:: The session is part of the high-level SQLAlchemy ORM API. If you want to
        do raw queries, consider using :class:`SQLAlchemyEngineContextFactory` instead.

    :param engine: A configured SQLAlchemy engine.
    """

    def make_object_for_context(self, name: str, server_span: Span) -> Session:
        """Return a new session for this request, closed when the request ends."""
        if not isinstance(server_span, ServerSpan):
            # a local span's context is a view of the request's: share the request's session
            existing = getattr(server_span.context, name, None)
            if isinstance(existing, Session):
                return existing
        engine = super().make_object_for_context(name, server_span)
        session = Session(bind=engine)
        server_span.register(SQLAlchemySessionSpanObserver(session, server_span))
        return session


class SQLAlchemySessionSpanObserver(SpanObserver):
    """Closes the request's session when its server span finishes."""

    def __init__(self, session: Session, span: Span):
        self.session = session
        self.span = span

    def on_finish(self, exc_info: Any) -> None:
        """Close the session (never committing it)."""
        self.session.close()


__all__ = [
    "SQLAlchemyEngineContextFactory",
    "SQLAlchemySessionContextFactory",
    "SQLAlchemySessionSpanObserver",
    "engine_from_config",
]
