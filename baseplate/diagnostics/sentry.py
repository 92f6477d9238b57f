"""Error reporting to Sentry, through raven (as documented) or a configured sentry-sdk.

``error_reporter_from_config`` builds a ``raven.Client`` from the ``sentry.*`` keys;
``Baseplate.configure_error_reporting(client)`` (see :func:`install`) accepts that client, or
the ``sentry_sdk`` module / a sentry-sdk client after ``sentry_sdk.init(...)``. Unexpected
exceptions that end a server span are reported with the trace id and the span's tags, by
:class:`exporters.sentry.SentrySpanProcessor`, whether the :class:`SentryBaseplateObserver`
was registered by ``configure_error_reporting`` or by hand as in 0.28; the client is also
the ``sentry`` attribute of the context object for the application's own events. With
raven, as in 0.28, the client's context during a request holds the ``trace_id`` tag, the
server span's tags (``http.*`` ones in the request interface) and its logs as breadcrumbs,
for the reports and the application's events alike; it is cleared when the request ends.

Sentry being down never slows or fails a request: raven sends from a background thread whose
queue is bounded (:data:`MAX_QUEUED_EVENTS`; further events are dropped and counted).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from baseplate import config
from baseplate._span import DiagnosticObserver, ServerSpan, ServerSpanObserver
from exporters.sentry import SentrySpanProcessor
from otel_bridge.context import ExcInfo

if TYPE_CHECKING:
    from baseplate.core import Baseplate

logger = logging.getLogger(__name__)

#: Events waiting for the background sender at most; more are dropped.
MAX_QUEUED_EVENTS = 100


def _bounded_transport() -> type:
    from raven.transport.threaded import AsyncWorker, ThreadedHTTPTransport

    class BoundedAsyncWorker(AsyncWorker):
        dropped = 0

        def queue(self, callback: Any, *args: Any, **kwargs: Any) -> None:
            if self._queue.qsize() >= MAX_QUEUED_EVENTS:
                BoundedAsyncWorker.dropped += 1
                return
            super().queue(callback, *args, **kwargs)

    class BoundedThreadedHTTPTransport(ThreadedHTTPTransport):
        """raven's threaded transport with a bounded queue."""

        scheme = ["sync+http", "sync+https", "http", "https"]

        def get_worker(self) -> Any:
            worker: Any = getattr(self, "_worker", None)
            if worker is None or not worker.is_alive():
                worker = self._worker = BoundedAsyncWorker()
            return worker

    return BoundedThreadedHTTPTransport


def _find_release(module_name: str) -> str | None:
    import raven

    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            return str(raven.fetch_git_sha(directory))
        except Exception:
            parent = os.path.dirname(directory)
            if parent == directory:
                return None
            directory = parent


def error_reporter_from_config(raw_config: dict[str, str], module_name: str) -> Any:
    """Configure and return a ``raven.Client`` from the ``sentry.*`` keys.

    Keys: ``sentry.dsn`` (blank: events are discarded), ``sentry.site``,
    ``sentry.environment``, ``sentry.exclude_paths``, ``sentry.include_paths`` (comma lists;
    the application's module is always included), ``sentry.ignore_exceptions`` (comma list of
    class names, ``*`` globs allowed), ``sentry.sample_rate`` (e.g. ``37%``, default 100%),
    ``sentry.processors`` (comma list of processor classes; default sanitizes passwords).

    :param module_name: ``__name__`` of the root module of the application (used for the
        release, read from its git checkout when there is one, and ``include_paths``).
    :raises raven.exceptions.InvalidDsn: ``sentry.dsn`` is malformed or its scheme is not
        one raven supports.
    """
    import raven
    from raven.conf.remote import RemoteConfig

    cfg = config.parse_config(
        raw_config,
        {
            "sentry": {
                "dsn": config.Optional(config.String, default=None),
                "site": config.Optional(config.String, default=None),
                "environment": config.Optional(config.String, default=None),
                "include_paths": config.Optional(config.TupleOf(config.String), default=[]),
                "exclude_paths": config.Optional(config.TupleOf(config.String), default=[]),
                "ignore_exceptions": config.Optional(config.TupleOf(config.String), default=[]),
                "sample_rate": config.Optional(config.Percent, default=1.0),
                "processors": config.Optional(
                    config.TupleOf(config.String),
                    default=["raven.processors.SanitizePasswordsProcessor"],
                ),
            }
        },
    )
    sentry = cfg.sentry
    if sentry.dsn:
        # the client is given its (bounded) transport, so raven would not check the DSN's
        # scheme against its transports as it does for a client without one
        RemoteConfig.from_string(sentry.dsn, transport_registry=raven.Client._registry)
    root_module = module_name.split(".")[0]
    return raven.Client(
        dsn=sentry.dsn or None,
        site=sentry.site,
        environment=sentry.environment,
        include_paths=[root_module, *sentry.include_paths],
        exclude_paths=list(sentry.exclude_paths),
        ignore_exceptions=list(sentry.ignore_exceptions),
        sample_rate=sentry.sample_rate,
        processors=list(sentry.processors),
        release=_find_release(module_name),
        transport=_bounded_transport(),
        # no process-wide hooks (sys.excepthook, every log record or HTTP request made by
        # any library as a breadcrumb); the server span's logs are still sent as breadcrumbs
        install_sys_hook=False,
        install_logging_hook=False,
        hook_libraries=[],
    )


def _is_raven_client(client: Any) -> bool:
    return hasattr(client, "captureException")


def _has_raven_context(client: Any) -> bool:
    return _is_raven_client(client) and hasattr(client, "tags_context")


def _reporter_for(client: Any) -> Any:
    if _is_raven_client(client):

        def report_with_raven(
            exc_info: ExcInfo, tags: Mapping[str, str], extra: Mapping[str, Any]
        ) -> None:
            client.captureException(exc_info=exc_info, tags=dict(tags), extra=dict(extra))

        return report_with_raven

    import sentry_sdk

    def report_with_sentry_sdk(
        exc_info: ExcInfo, tags: Mapping[str, str], extra: Mapping[str, Any]
    ) -> None:
        with sentry_sdk.new_scope() as scope:
            for key, value in tags.items():
                scope.set_tag(key, value)
            for key, value in extra.items():
                scope.set_extra(key, value)
            sentry_sdk.capture_exception(exc_info)

    return report_with_sentry_sdk


class _RavenRequestScope:
    """raven's (thread-local) context as the request's: opened by the span processor when
    the server span starts, tagged with ``trace_id``, and cleared once the span has ended
    and its error was reported, so the report carries it too."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def begin(self, trace_id: int, span_id: int) -> None:
        self.client.context.clear()  # whatever a previous request may have left
        self.client.context.activate()
        self.client.tags_context({"trace_id": trace_id})

    def end(self) -> None:
        self.client.context.clear(deactivate=True)


class _RequestObserver(ServerSpanObserver):
    """Copies a server span's tags and logs into raven's context while the request runs:
    ``http.*`` tags go to the request interface, the others to the tags, logs become
    breadcrumbs. The application's own events sent through ``context.sentry`` carry them."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.http: dict[str, Any] = {}

    def on_set_tag(self, key: str, value: Any) -> None:
        if key.startswith("http."):
            self.http[key[len("http.") :]] = value
            self.client.http_context(dict(self.http))
        else:
            self.client.tags_context({key: value})

    def on_log(self, name: str, payload: Any) -> None:
        self.client.captureBreadcrumb(category=name, data=payload)


class SentryBaseplateObserver(DiagnosticObserver):
    """Error reporting observer.

    This observer reports unexpected exceptions (those that end a server span) to Sentry.

    The client is accessible to your application during requests as the ``sentry``
    attribute on the :term:`context object`; with raven, its events during a request carry
    the request's ``trace_id``, span tags and breadcrumbs, as the reports do.

    :param raven: A configured ``raven.Client`` (or ``sentry_sdk`` after
        ``sentry_sdk.init(...)``).

    The reports are sent by a span processor (:attr:`processor`), installed on the
    Baseplate's tracer provider when the observer is registered, by hand or by
    ``configure_error_reporting``.
    """

    def __init__(self, raven: Any):
        self.client = raven
        self._raven_context = _has_raven_context(raven)
        scope = _RavenRequestScope(raven) if self._raven_context else None
        #: The span processor reporting this client's requests.
        self.processor = SentrySpanProcessor(
            _reporter_for(raven), scope=scope, announced_requests_only=True
        )

    def attach(self, baseplate: Baseplate) -> None:
        """Install the error-reporting span processor on ``baseplate``'s tracer provider."""
        baseplate.add_span_processor(self.processor)

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        self.processor.announce(server_span.trace_id, server_span.id)
        if self._raven_context:
            server_span.register(_RequestObserver(self.client))
        context.sentry = self.client


def install(baseplate: Baseplate, client: Any) -> None:
    """Report exceptions ending server spans to ``client`` (raven or sentry-sdk), once."""
    if any(
        isinstance(o, SentryBaseplateObserver) and o.client is client for o in baseplate.observers
    ):
        return
    baseplate.register(SentryBaseplateObserver(client))


__all__ = ["SentryBaseplateObserver", "error_reporter_from_config", "install"]
