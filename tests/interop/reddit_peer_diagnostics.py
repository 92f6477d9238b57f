"""Reddit's own diagnostics observers as a peer: logging, Sentry (raven), metrics, tracing.

Run as a script by ``test_reddit_diagnostics_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout): it reads one JSON request on stdin and prints one JSON answer.

The scenario drivers below take the baseplate modules to use (a :class:`Kit`) and import
nothing from baseplate themselves: the test imports this file and runs the very same drivers
with OUR modules, so both implementations handle exactly the same requests. What leaves the
process (Sentry events over HTTP, statsd datagrams, sidecar trace messages) is collected by
the test on loopback; what can only be seen inside (thread names, formatted log records,
``context.sentry``) is returned in the answer.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: The format ``baseplate-serve`` gives its log handler, minus the process id.
LOG_FORMAT = "%(threadName)s:%(name)s:%(levelname)s:%(message)s"

#: Upstream trace of the requests whose ids are compared.
UPSTREAM = (4242, 1, 77)


@dataclass
class Kit:
    """The modules (and the two things that differ in shape) of one implementation."""

    root: ModuleType  # baseplate
    core: ModuleType  # baseplate.core
    config: ModuleType  # baseplate.config
    metrics: ModuleType  # baseplate.metrics
    logging_diag: ModuleType  # baseplate.diagnostics.logging
    metrics_diag: ModuleType  # baseplate.diagnostics.metrics
    sentry_diag: ModuleType  # baseplate.diagnostics.sentry
    tracing_diag: ModuleType  # baseplate.diagnostics.tracing
    #: A new framework context object (reddit's local spans need a wrapped one).
    make_context: Callable[[], Any]
    #: A new Baseplate.
    new_baseplate: Callable[[], Any]
    #: A new Baseplate for the by-hand tracing observer (default: ``new_baseplate``).
    new_tracing_baseplate: Callable[[], Any] | None = None
    #: Called with a by-hand TraceBaseplateObserver once its requests are done.
    flush_tracing: Callable[[Any], None] = lambda observer: None


def error_name(exc: BaseException) -> str:
    return type(exc).__name__


def explode() -> None:
    """The application's failure (a frame of its own in the reported traceback)."""
    raise ZeroDivisionError("division by zero in the handler")


def in_thread(name: str, action: Callable[[], Any]) -> Any:
    """Run ``action`` on a new thread called ``name`` (the main thread keeps its name)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = action()
        except Exception as exc:  # a scenario error is an answer, not a crash
            box["scenario_error"] = f"{error_name(exc)}: {exc}"

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    return box.get("ok", box)


# --- logging -------------------------------------------------------------------------------


class ListHandler(logging.Handler):
    """Keeps each record formatted with :data:`LOG_FORMAT`."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def logging_scenario(kit: Kit, how: str) -> Any:
    """Thread names and formatted records before, during (in child and local spans, on
    another thread) and after requests, with the observer registered ``how``."""
    core = kit.core
    baseplate = kit.new_baseplate()
    if how == "register":
        baseplate.register(kit.logging_diag.LoggingBaseplateObserver())
    else:
        baseplate.configure_logging()
    log = logging.getLogger("diag.app")
    handler = ListHandler()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    def request() -> dict[str, Any]:
        names: dict[str, Any] = {}
        current = threading.current_thread
        names["before"] = current().name
        span = baseplate.make_server_span(
            kit.make_context(), "handler", core.TraceInfo.from_upstream(*UPSTREAM, True, None)
        )
        names["created"] = current().name
        with span:
            names["started"] = current().name
            log.info("in the request")
            local = span.make_child("render", local=True, component_name="templates")
            with local:
                names["local"] = current().name
                log.info("in a local span")
            child = span.make_child("redis.get")
            with child:
                names["client"] = current().name
            helper = threading.Thread(target=lambda: log.info("on a helper"), name="helper")
            helper.start()
            helper.join()
        names["finished"] = current().name
        log.info("after the request")

        second = baseplate.make_server_span(kit.make_context(), "handler")
        with second:
            names["second_is_its_trace_id"] = current().name == str(second.trace_id)
        names["after_second"] = (
            "its trace id" if current().name == str(second.trace_id) else current().name
        )
        third = baseplate.make_server_span(
            kit.make_context(), "handler", core.TraceInfo.from_upstream(5151, 1, 9, True, None)
        )
        try:
            with third:
                raise KeyError("failing request")
        except KeyError:
            pass
        names["after_failed"] = current().name
        return names

    try:
        names = in_thread("worker", request)
    finally:
        log.removeHandler(handler)
    return {"names": names, "lines": handler.lines}


# --- sentry --------------------------------------------------------------------------------


def sentry_client(raven: ModuleType, port: int, project: int) -> Any:
    """A raven client posting synchronously to the receiver at ``port``, ``project``."""
    from raven.transport.http import HTTPTransport

    return raven.Client(
        dsn=f"http://public:secret@127.0.0.1:{port}/{project}",
        transport=HTTPTransport,
        install_sys_hook=False,
        install_logging_hook=False,
        hook_libraries=[],  # no process-wide hooks on http.client or requests
    )


def failing_request(kit: Kit, baseplate: Any, context: Any) -> str | None:
    """A request that tags and logs on its server span, then fails in the handler."""
    span = baseplate.make_server_span(
        context, "handler", kit.core.TraceInfo.from_upstream(*UPSTREAM, True, None)
    )
    try:
        with span:
            span.set_tag("route", "handler")
            span.set_tag("http.method", "GET")
            span.set_tag("http.url", "/things")
            span.log("cache-miss", {"key": "k"})
            explode()
    except ZeroDivisionError as exc:
        return error_name(exc)
    return None


def sentry_reports(kit: Kit, how: str, port: int, project: int) -> Any:
    """A failing request, a successful one and one with a handled client span error: only
    the first is reported (to ``project``)."""
    import raven

    client = sentry_client(raven, port, project)
    baseplate = kit.new_baseplate()
    if how == "register":
        baseplate.register(kit.sentry_diag.SentryBaseplateObserver(client))
    else:
        baseplate.configure_error_reporting(client)
    context = kit.make_context()
    raised = failing_request(kit, baseplate, context)
    context_sentry_is_client = getattr(context, "sentry", None) is client

    ok = baseplate.make_server_span(kit.make_context(), "fine")
    with ok:
        call = ok.make_child("db.query")
        try:
            with call:
                raise ConnectionError("handled by the application")
        except ConnectionError:
            pass
    return {"raised": raised, "context_sentry_is_client": context_sentry_is_client}


def sentry_from_the_application(kit: Kit, port: int, project: int) -> Any:
    """``context.sentry`` used by the application during a request, and the client after."""
    import raven

    client = sentry_client(raven, port, project)
    baseplate = kit.new_baseplate()
    baseplate.register(kit.sentry_diag.SentryBaseplateObserver(client))
    context = kit.make_context()
    span = baseplate.make_server_span(
        context, "handler", kit.core.TraceInfo.from_upstream(*UPSTREAM, True, None)
    )
    with span:
        span.set_tag("route", "handler")
        span.set_tag("http.method", "POST")
        context.sentry.captureMessage("message from the handler")
        try:
            explode()
        except ZeroDivisionError:
            context.sentry.captureException()
    client.captureMessage("message after the request")
    return {"kind": type(context.sentry).__module__ + "." + type(context.sentry).__name__}


def sentry_from_config(kit: Kit, port: int, project: int, module_name: str) -> Any:
    """``error_reporter_from_config`` (raven's default, threaded transport) reporting a
    failing request through ``configure_error_reporting``."""
    client = kit.root.error_reporter_from_config(
        {
            "sentry.dsn": f"http://public:secret@127.0.0.1:{port}/{project}",
            "sentry.site": "here",
            "sentry.environment": "test-env",
        },
        module_name,
    )
    baseplate = kit.new_baseplate()
    baseplate.configure_error_reporting(client)
    raised = failing_request(kit, baseplate, kit.make_context())
    return {"raised": raised, "release": client.release}


# --- metrics -------------------------------------------------------------------------------


def metrics_request(kit: Kit, how: str, port: int, namespace: str) -> Any:
    """One request with client, local, nested and failing spans and the application's own
    metrics (also from inside a local span), then a failing request: two datagrams."""
    client = kit.metrics.make_client(namespace, kit.config.Endpoint(f"127.0.0.1:{port}"))
    baseplate = kit.new_baseplate()
    if how == "register":
        baseplate.register(kit.metrics_diag.MetricsBaseplateObserver(client))
    else:
        baseplate.configure_metrics(client)
    context = kit.make_context()
    span = baseplate.make_server_span(context, "endpoint")
    with span:
        context.metrics.counter("app.custom").increment()
        with span.make_child("redis.GET"):
            pass
        failing = span.make_child("db.execute")
        try:
            with failing:
                failing.log("error.object", ValueError("bad row"))
                raise ValueError("bad row")
        except ValueError:
            pass
        local = span.make_child("render", local=True, component_name="templates")
        with local:
            local.context.metrics.counter("app.in_local").increment()
            with local.make_child("format", local=True, component_name="text"):
                pass
            with local.make_child("cache.get"):
                pass
    second = baseplate.make_server_span(kit.make_context(), "broken")
    try:
        with second:
            raise RuntimeError("the handler failed")
    except RuntimeError:
        pass
    return {"context_metrics": type(context.metrics).__name__}


# --- tracing -------------------------------------------------------------------------------


def tracing_register(kit: Kit, queue_name: str) -> Any:
    """A by-hand TraceBaseplateObserver (sidecar client, sample rate 100%): a new trace
    with client and local children, an upstream-unsampled request, a debug request."""
    core = kit.core
    tracing_client = kit.tracing_diag.make_client(
        "diag-service", tracing_queue_name=queue_name, sample_rate=1.0
    )
    observer = kit.tracing_diag.TraceBaseplateObserver(tracing_client)
    baseplate = (kit.new_tracing_baseplate or kit.new_baseplate)()
    baseplate.register(observer)
    ids: dict[str, Any] = {}

    span = baseplate.make_server_span(kit.make_context(), "new_trace")
    with span:
        with span.make_child("redis.GET") as call:
            call.set_tag("key_count", 2)
        with span.make_child("render", local=True, component_name="templates"):
            pass
    ids["new_trace"] = [span.trace_id, span.id, span.sampled]

    unsampled = baseplate.make_server_span(
        kit.make_context(), "unsampled", core.TraceInfo.from_upstream(11, 12, 13, False, None)
    )
    with unsampled:
        with unsampled.make_child("redis.GET"):
            pass
    ids["unsampled"] = unsampled.sampled

    debug = baseplate.make_server_span(
        kit.make_context(), "debug", core.TraceInfo.from_upstream(21, 22, 23, False, 1)
    )
    with debug:
        pass
    ids["debug"] = debug.sampled
    kit.flush_tracing(observer)
    return ids


# --- the whole request ---------------------------------------------------------------------


def run_all(kit: Kit, request: dict[str, Any], module_name: str) -> dict[str, Any]:
    """Run every scenario ``request`` names; a scenario that raises answers its error."""
    scenarios: dict[str, Callable[[], Any]] = {
        "logging_register": lambda: logging_scenario(kit, "register"),
        "logging_configure": lambda: logging_scenario(kit, "configure"),
        "sentry_register": lambda: sentry_reports(kit, "register", request["sentry_port"], 1),
        "sentry_configure": lambda: sentry_reports(kit, "configure", request["sentry_port"], 2),
        "sentry_application": lambda: sentry_from_the_application(kit, request["sentry_port"], 3),
        "sentry_from_config": lambda: sentry_from_config(
            kit, request["sentry_port"], 4, module_name
        ),
        "metrics_register": lambda: metrics_request(
            kit, "register", request["statsd_port"], "byhand"
        ),
        "metrics_configure": lambda: metrics_request(
            kit, "configure", request["statsd_port"], "configured"
        ),
        "tracing_register": lambda: tracing_register(kit, request["queue_name"]),
    }
    answers: dict[str, Any] = {}
    for name in request["scenarios"]:
        try:
            answers[name] = scenarios[name]()
        except Exception as exc:
            answers[name] = {"scenario_error": f"{error_name(exc)}: {exc}"}
    return answers


def reddit_kit() -> Kit:
    """Reddit's modules (only importable in the peer's environment)."""
    from baseplate.integration.wrapped_context import WrappedRequestContext

    import baseplate
    import baseplate.config
    import baseplate.core
    import baseplate.diagnostics.logging
    import baseplate.diagnostics.metrics
    import baseplate.diagnostics.sentry
    import baseplate.diagnostics.tracing
    import baseplate.metrics

    class Context:
        """A plain framework context object."""

    return Kit(
        root=baseplate,
        core=baseplate.core,
        config=baseplate.config,
        metrics=baseplate.metrics,
        logging_diag=baseplate.diagnostics.logging,
        metrics_diag=baseplate.diagnostics.metrics,
        sentry_diag=baseplate.diagnostics.sentry,
        tracing_diag=baseplate.diagnostics.tracing,
        make_context=lambda: WrappedRequestContext(Context()),
        new_baseplate=baseplate.core.Baseplate,
    )


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer = run_all(reddit_kit(), request, __name__)
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
