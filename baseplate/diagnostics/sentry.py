"""Error reporting to Sentry, through raven (as documented) or a configured sentry-sdk.

``error_reporter_from_config`` builds a ``raven.Client`` from the ``sentry.*`` keys;
``Baseplate.configure_error_reporting(client)`` (see :func:`install`) accepts that client, or
the ``sentry_sdk`` module / a sentry-sdk client after ``sentry_sdk.init(...)``. Unexpected
exceptions that end a server span are reported with the trace id and the span's tags, by
:class:`exporters.sentry.SentrySpanProcessor`; the client is also the ``sentry`` attribute of
the context object for the application's own events.

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
from baseplate.core import BaseplateObserver, ServerSpan
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
        install_sys_hook=False,
        install_logging_hook=False,
        enable_breadcrumbs=False,
    )


def _is_raven_client(client: Any) -> bool:
    return hasattr(client, "captureException")


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


class SentryBaseplateObserver(BaseplateObserver):
    """Error reporting observer: exposes the client as ``context.sentry``.

    Reports of unexpected exceptions are sent by the span processor that :func:`install`
    adds next to this observer.
    """

    def __init__(self, raven: Any):
        self.client = raven

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        context.sentry = self.client


def install(baseplate: Baseplate, client: Any) -> None:
    """Report exceptions ending server spans to ``client`` (raven or sentry-sdk), once."""
    if any(
        isinstance(o, SentryBaseplateObserver) and o.client is client for o in baseplate.observers
    ):
        return
    baseplate.add_span_processor(SentrySpanProcessor(_reporter_for(client)))
    baseplate.register(SentryBaseplateObserver(client))


__all__ = ["SentryBaseplateObserver", "error_reporter_from_config", "install"]
