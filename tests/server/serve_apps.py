"""Applications the server tests run under the real ``baseplate-serve`` (in subprocesses).

Options they read from their ``[app:main]`` section, besides the baseplate ones
(``metrics.*``, ``tracing.*``):

* ``test.spans_path``: finished spans are written there as JSON lines, through the same
  bounded batch processor the tracing exporters use (so export runs in a background worker,
  and what is still queued at exit must be flushed by the server);
* ``test.report_path``: a JSON line per process describing how it started;
* ``test.fork``: ``true`` to fork once the application is built (a pre-fork application);
* ``test.healthy``: ``false`` makes the health checks fail;
* ``test.tracing``: ``true`` to configure tracing from the ``tracing.*`` keys
  (``Baseplate.configure_tracing``), as a service does;
* ``test.error_reporting``: ``true`` to configure Sentry from the ``sentry.*`` keys;
* ``test.counts_path``: when the process exits, one JSON line there with the sampled spans
  that ended (counted by a span processor of its own) and
  :func:`baseplate.diagnostics.health.telemetry_counts`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from gevent import pywsgi
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pyramid.config import Configurator
from pyramid.request import Request

import baseplate
from baseplate.config import Boolean, Float, Optional, String, parse_config
from baseplate.core import Baseplate
from exporters.batch import BoundedBatchSpanProcessor
from otel_bridge.provider import state_of

logger = logging.getLogger("serve_apps")


class JsonLinesSpanExporter(SpanExporter):
    """Appends each exported span to a file as one JSON object per line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            context = span.context
            assert context is not None
            lines.append(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "name": span.name,
                        "kind": span.kind.name,
                        "trace_id": context.trace_id,
                        "span_id": context.span_id,
                        "parent_id": span.parent.span_id if span.parent else None,
                        "sampled": context.trace_flags.sampled,
                        "attributes": dict(span.attributes or {}),
                        "status": span.status.status_code.name,
                    }
                )
            )
        with self.lock, open(self.path, "a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS


class SampledSpanCounter(SpanProcessor):
    """Counts the sampled spans that ended: what the export processors were given."""

    def __init__(self) -> None:
        self.ended_sampled = 0

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self.ended_sampled += 1


def _write_counts_at_exit(bp: Baseplate, counter: SampledSpanCounter, path: str) -> None:
    # Registered after the tracer provider's own exit hook, so it runs before it, and after
    # baseplate-serve's telemetry shutdown (which has run when the serve loop returned).
    from baseplate.diagnostics.health import telemetry_counts

    def write() -> None:
        record = {
            "pid": os.getpid(),
            "ended_sampled": counter.ended_sampled,
            "telemetry": telemetry_counts(bp),
        }
        with open(path, "a") as out:
            out.write(json.dumps(record) + "\n")

    atexit.register(write)


class HangingSpanExporter(SpanExporter):
    """A collector that never answers: every export blocks (cooperatively) for an hour."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(3600)
        return SpanExportResult.SUCCESS


def _otel_lock_is_cooperative() -> bool:
    # OpenTelemetry makes this lock when it is imported: a gevent lock shows that it was
    # imported after monkey-patching.
    from opentelemetry import trace

    lock = trace._TRACER_PROVIDER_SET_ONCE._lock
    return type(lock).__module__.startswith("gevent")


def _report(path: str | None, **extra: Any) -> None:
    if not path:
        return
    import gevent.monkey

    record = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "gevent_patched": gevent.monkey.is_module_patched("socket"),
        "otel_lock_cooperative": _otel_lock_is_cooperative(),
        **extra,
    }
    with open(path, "a") as out:
        out.write(json.dumps(record) + "\n")


def _make_baseplate(app_config: dict[str, str]) -> tuple[Baseplate, Any]:
    cfg = parse_config(
        app_config,
        {
            "test": {
                "spans_path": Optional(String),
                "report_path": Optional(String),
                "fork": Optional(Boolean, default=False),
                "healthy": Optional(Boolean, default=True),
                "schedule_delay": Optional(Float, default=0.05),
                "hanging_exporter": Optional(Boolean, default=False),
                "tracing": Optional(Boolean, default=False),
                "error_reporting": Optional(Boolean, default=False),
                "counts_path": Optional(String),
            }
        },
    )
    bp = Baseplate()
    bp.configure_logging()
    if cfg.test.counts_path:
        counter = SampledSpanCounter()
        bp.add_span_processor(counter)
        _write_counts_at_exit(bp, counter, cfg.test.counts_path)
    if app_config.get("metrics.endpoint"):
        bp.configure_metrics(baseplate.metrics_client_from_config(app_config))
    if cfg.test.tracing:
        bp.configure_tracing(baseplate.tracing_client_from_config(app_config))
    if cfg.test.error_reporting:
        bp.configure_error_reporting(baseplate.error_reporter_from_config(app_config, __name__))
    if cfg.test.spans_path:
        bp.add_span_processor(
            BoundedBatchSpanProcessor(
                JsonLinesSpanExporter(cfg.test.spans_path),
                schedule_delay=cfg.test.schedule_delay,
            )
        )
    if cfg.test.hanging_exporter:
        bp.add_span_processor(BoundedBatchSpanProcessor(HangingSpanExporter(), schedule_delay=0.05))
    if app_config.get("tracing.sample_rate"):
        # what configure_tracing does: this Baseplate's requests, and spans that start a
        # trace outside any request (the provider's own sampler)
        rate = float(app_config["tracing.sample_rate"])
        bp.sampler.sample_rate = rate
        state_of(bp.tracer_provider).sampler.sample_rate = rate
    return bp, cfg.test


def _after_build(bp: Baseplate, test_cfg: Any, kind: str) -> None:
    _report(test_cfg.report_path, kind=kind)
    if test_cfg.fork:
        # A span before the fork starts the export worker in the parent: the child must
        # start its own and must not export the parent's queue again.
        from baseplate.core import RequestContext

        bp.make_server_span(RequestContext(), "prefork").finish()
        pid = os.fork()
        if pid == 0:
            _report(test_cfg.report_path, kind=kind, forked_child=True)


# -- WSGI ---------------------------------------------------------------------------------


def make_wsgi_app(app_config: dict[str, str]) -> Any:
    """A Pyramid application integrated with baseplate."""
    from baseplate.integration.pyramid import BaseplateConfigurator

    bp, test_cfg = _make_baseplate(app_config)
    configurator = Configurator()
    configurator.include(BaseplateConfigurator(bp, trust_trace_headers=True).includeme)

    def hello(request: Request) -> Any:
        return {"hello": "world", "pid": os.getpid()}

    def slow(request: Request) -> Any:
        seconds = float(request.params.get("seconds", "1"))
        marker = request.params.get("marker")
        if marker:
            open(marker, "w").close()  # tells the test the request is in progress
        time.sleep(seconds)
        return {"slept": seconds}

    def spin(request: Request) -> Any:
        # Hogs the CPU without ever yielding to other greenlets.
        marker = request.params.get("marker")
        if marker:
            open(marker, "w").close()
        deadline = time.monotonic() + float(request.params.get("seconds", "1"))
        while time.monotonic() < deadline:
            pass
        return {"spun": True}

    def log_line(request: Request) -> Any:
        logger.info("handling the log route")
        return {"trace_id": request.trace.trace_id}

    def health(request: Request) -> Any:
        if not test_cfg.healthy:
            request.response.status_int = 503
            return {"healthy": False}
        return {"healthy": True}

    def config_view(request: Request) -> Any:
        return dict(app_config)

    def fail(request: Request) -> Any:
        raise RuntimeError("this view always fails")

    def spawn(request: Request) -> Any:
        # Work handed to another greenlet, with and without the request's trace context.
        import gevent
        from opentelemetry import trace

        from otel_bridge.context import wrap_in_current_context

        def work() -> None:
            with trace.get_tracer("vendor").start_as_current_span("spawned.work"):
                pass

        wrapped = request.params.get("wrapped") == "1"
        gevent.spawn(wrap_in_current_context(work) if wrapped else work).join()
        return {"trace_id": request.trace.trace_id, "span_id": request.trace.id}

    for name, path, view in (
        ("hello", "/hello", hello),
        ("slow", "/slow", slow),
        ("spin", "/spin", spin),
        ("log", "/log", log_line),
        ("health", "/health", health),
        ("config", "/config", config_view),
        ("fail", "/fail", fail),
        ("spawn", "/spawn", spawn),
    ):
        configurator.add_route(name, path, request_method="GET")
        configurator.add_view(view, route_name=name, renderer="json")
    app = configurator.make_wsgi_app()
    app.baseplate = bp  # type: ignore[attr-defined]
    _after_build(bp, test_cfg, "wsgi")
    return app


def config_echo_app(app_config: dict[str, str]) -> Any:
    """A bare WSGI app answering every request with its app config as JSON."""
    body = json.dumps(app_config).encode()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app


class MarkingHandler(pywsgi.WSGIHandler):
    """A custom pywsgi handler (the ``handler`` server option) that marks the environ."""

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ["test.handler"] = type(self).__name__
        return environ


def environ_app(app_config: dict[str, str]) -> Any:
    """A bare WSGI app answering with the ``test.handler`` environ key."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"handler": environ.get("test.handler")}).encode()]

    return app


def failing_config_app(app_config: dict[str, str]) -> Any:
    """An app whose own configuration parsing fails on a bad ``workers`` value."""
    from baseplate.config import Integer

    parse_config(app_config, {"workers": Integer})
    return config_echo_app(app_config)


def secrets_app(app_config: dict[str, str]) -> Any:
    """An app that reads a secret at start-up, as services that sign tokens do."""
    from baseplate.secrets import secrets_store_from_config

    store = secrets_store_from_config(app_config, timeout=0)
    store.get_simple("secret/app/key")
    return config_echo_app(app_config)


def client_pools_app(app_config: dict[str, str]) -> Any:
    """An app that builds a thrift pool (``svc.*``) and a redis pool (``redis.*``) from its
    configuration, as services do at start-up."""
    from baseplate.context.redis import pool_from_config
    from baseplate.thrift_pool import thrift_pool_from_config

    thrift_pool_from_config(app_config, "svc.")
    if "redis.url" in app_config:
        pool_from_config(app_config)
    return config_echo_app(app_config)


# -- Thrift -------------------------------------------------------------------------------


class HealthHandler:
    """``BaseplateService`` handler: healthy, unhealthy, raising or slow as configured."""

    def __init__(self, healthy: bool, mode: str, delay: float) -> None:
        self.healthy = healthy
        self.mode = mode
        self.delay = delay

    def is_healthy(self, context: Any) -> bool:
        logger.info("is_healthy called")
        if self.delay:
            time.sleep(self.delay)
        if self.mode == "raise":
            raise RuntimeError("health check exploded")
        return self.healthy


def make_thrift_processor(app_config: dict[str, str]) -> Any:
    """A ``BaseplateService`` processor integrated with baseplate."""
    from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor
    from baseplate.thrift import BaseplateService

    bp, test_cfg = _make_baseplate(app_config)
    handler = HealthHandler(
        test_cfg.healthy,
        app_config.get("test.mode", "normal"),
        float(app_config.get("test.delay", "0")),
    )
    processor = ContextProcessor(BaseplateService.Processor(handler))
    processor.setEventHandler(BaseplateProcessorEventHandler(logger, bp))
    _after_build(bp, test_cfg, "thrift")
    return processor


# -- baseplate-script and baseplate-tshell --------------------------------------------------


def print_config(app_config: dict[str, str]) -> None:
    """A script: print the app config as JSON."""
    print(json.dumps(app_config, sort_keys=True))


def print_message(app_config: dict[str, str]) -> None:
    """The documented example script."""
    print(app_config["message"])


def tshell_setup(env: dict[str, Any], env_banner: dict[str, str]) -> None:
    """A tshell setup hook adding a variable."""
    env["answer"] = 42
    env_banner["answer"] = "The answer"


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through baseplate-serve")
