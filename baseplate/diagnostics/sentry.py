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

import collections
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from baseplate import config
from baseplate._span import DiagnosticObserver, ServerSpan, ServerSpanObserver
from exporters._ratelimit import RateLimitedLog
from exporters.sentry import SentrySpanProcessor
from otel_bridge.context import ExcInfo

if TYPE_CHECKING:
    from baseplate.core import Baseplate

logger = logging.getLogger(__name__)

#: Events waiting for the background sender at most; more are dropped.
MAX_QUEUED_EVENTS = 100
#: Seconds between two log lines about Sentry being unreachable.
ERROR_LOG_INTERVAL = 60.0


class ReportSender:
    """Sends error reports from one background thread (a greenlet under gevent), in order.

    At most :data:`MAX_QUEUED_EVENTS` reports wait; more are dropped and counted. It replaces
    raven's own worker, which registers an ``atexit`` handler that fails under gevent and
    loses the pending reports without a word: here :meth:`flush` waits a bounded time and
    says how many reports were not sent.
    """

    def __init__(self, max_queued: int = MAX_QUEUED_EVENTS) -> None:
        self.max_queued = max_queued
        #: Reports sent, failed (Sentry unreachable or refusing) and dropped (queue full).
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: collections.deque[tuple[Any, tuple[Any, ...]]] = collections.deque()
        self._busy = False
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._pid = 0

    def is_alive(self) -> bool:
        """Whether the sending thread runs in this process."""
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def queue(self, callback: Any, *args: Any) -> None:
        """Run ``callback(*args)`` on the sending thread, unless too many reports wait."""
        with self._changed:
            if len(self._queue) >= self.max_queued:
                self.dropped += 1
                return
            self._queue.append((callback, args))
            self._changed.notify_all()
        if not self.is_alive():
            self._start()

    def telemetry_counts(self) -> dict[str, int]:
        """What became of the reports given to :meth:`queue`, for the health metrics."""
        return {
            "error_reports.sent": self.sent,
            "error_reports.failed": self.failed,
            "error_reports.dropped": self.dropped,
            "error_reports.queued": self.pending(),
        }

    def pending(self) -> int:
        """Reports queued or being sent."""
        with self._changed:
            return len(self._queue) + int(self._busy)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the queue to empty; the reports still unsent."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    break
                self._changed.wait(left)
            return len(self._queue) + int(self._busy)

    def _start(self) -> None:
        with self._changed:
            if self.is_alive():
                return
            self._pid = os.getpid()
            self._busy = False
            self._thread = threading.Thread(
                target=self._run, name="baseplate.sentry-sender", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                callback, args = self._queue.popleft()
                self._busy = True
            try:
                callback(*args)
            except Exception as exc:  # raven's callbacks report their own failures
                logger.debug("error report callback failed: %s", exc)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


class _QuietLogger:
    """Stands in for raven's ``sentry.errors`` loggers: one line, without a traceback, at
    most every :data:`ERROR_LOG_INTERVAL` seconds, however many reports fail."""

    def __init__(self, name: str) -> None:
        self._log = RateLimitedLog(logging.getLogger(name), ERROR_LOG_INTERVAL)

    def error(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log.error("%s", _one_line(message, args))

    warning = exception = critical = error

    def info(self, message: Any, *args: Any, **kwargs: Any) -> None:
        pass

    debug = info


def _one_line(message: Any, args: tuple[Any, ...]) -> str:
    if isinstance(message, list) and message:  # raven's dump of an unsent event
        return f"error report not sent: {message[0]}"
    try:
        text = str(message) % args if args else str(message)
    except Exception:
        text = str(message)
    return text.splitlines()[0] if text else text


def _bounded_transport() -> type:
    from raven.transport.threaded import ThreadedHTTPTransport

    class BoundedThreadedHTTPTransport(ThreadedHTTPTransport):
        """raven's threaded transport, sending through a :class:`ReportSender`."""

        scheme = ["sync+http", "sync+https", "http", "https"]

        def get_worker(self) -> ReportSender:
            worker: ReportSender | None = getattr(self, "_worker", None)
            if worker is None:
                worker = self._worker = ReportSender()
            return worker

        def send_sync(
            self, url: Any, data: Any, headers: Any, success_cb: Any, failure_cb: Any
        ) -> None:
            worker = self.get_worker()

            def sent() -> None:
                worker.sent += 1
                success_cb()

            def failed(exc: Exception) -> None:
                worker.failed += 1
                failure_cb(exc)

            super().send_sync(url, data, headers, sent, failed)

    return BoundedThreadedHTTPTransport


def _counting_state(client: Any) -> Any:
    """raven's back-off state (after a failed report it skips reports for a while, so a
    Sentry that is down is not hammered), counting each skipped report as dropped."""
    from raven.base import ClientState

    class CountingClientState(ClientState):
        def should_try(self) -> bool:
            if super().should_try():
                return True
            sender = report_sender(client)
            if sender is not None:
                sender.dropped += 1
            return False

    return CountingClientState()


def report_sender(client: Any) -> ReportSender | None:
    """The :class:`ReportSender` of a raven client made by :func:`error_reporter_from_config`
    (None for other clients, or before the first report)."""
    try:
        transport = client.remote.get_transport()
    except Exception:
        return None
    worker = getattr(transport, "_worker", None) if transport is not None else None
    return worker if isinstance(worker, ReportSender) else None


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

    spec = {
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
    }
    config.warn_unknown_keys(raw_config, "sentry.", spec["sentry"], logger)
    cfg = config.parse_config(raw_config, spec)
    sentry = cfg.sentry
    if sentry.dsn:
        # the client is given its (bounded) transport, so raven would not check the DSN's
        # scheme against its transports as it does for a client without one
        RemoteConfig.from_string(sentry.dsn, transport_registry=raven.Client._registry)
    root_module = module_name.split(".")[0]
    client = raven.Client(
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
    # With Sentry down, raven logs every failed report with its traceback and a dump of the
    # event; one line now and then says the same.
    client.state = _counting_state(client)
    client.error_logger = _QuietLogger("sentry.errors")
    client.uncaught_logger = _QuietLogger("sentry.errors.uncaught")
    return client


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


def _flusher_for(client: Any) -> Any:
    if _is_raven_client(client):

        def flush_raven(timeout: float) -> int:
            sender = report_sender(client)
            return 0 if sender is None else sender.flush(timeout)

        return flush_raven

    def flush_sentry_sdk(timeout: float) -> int:
        import sentry_sdk

        sentry_sdk.flush(timeout=timeout)
        return 0

    return flush_sentry_sdk


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
            _reporter_for(raven),
            scope=scope,
            announced_requests_only=True,
            flush=_flusher_for(raven),
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
