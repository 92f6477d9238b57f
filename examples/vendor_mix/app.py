"""A Pyramid service whose baseplate spans and vendor OpenTelemetry spans form one trace tree.

Run it under the OpenTelemetry auto-instrumentation (see README.md)::

    opentelemetry-instrument baseplate-serve examples/vendor_mix/app.ini

The views use plain ``requests``, ``redis`` and SQLAlchemy clients, instrumented by the
vendor packages, inside baseplate server and local spans; greenlets and thread pool tasks
are started with :mod:`baseplate.concurrency` so their spans stay in the request's trace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import gevent
import redis
import requests
import sqlalchemy
from opentelemetry import trace
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from baseplate import config, tracing_client_from_config
from baseplate.concurrency import ContextThreadPoolExecutor, spawn
from baseplate.core import Baseplate
from baseplate.integration.pyramid import BaseplateConfigurator

logger = logging.getLogger(__name__)


def _current_trace_id() -> int:
    """The trace id of the OpenTelemetry span current here (0 when there is none)."""
    return trace.get_current_span().get_span_context().trace_id


def _instrument_sqlalchemy(engine: sqlalchemy.engine.Engine) -> None:
    # The auto-instrumentation skips SQLAlchemy versions newer than the instrumentation
    # declares; instrumenting the engine by hand works for them too.
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    except ImportError:
        return
    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(engine=engine, skip_dep_check=True)


class Views:
    """The example's views, sharing the vendor clients made at start-up."""

    def __init__(
        self,
        redis_client: redis.Redis,
        engine: sqlalchemy.engine.Engine,
        downstream_url: str | None,
    ) -> None:
        self.redis = redis_client
        self.engine = engine
        self.downstream_url = downstream_url
        self.pool = ContextThreadPoolExecutor(max_workers=2, thread_name_prefix="example")

    def order(self, request: Request) -> dict[str, Any]:
        """Redis and SQL inside a baseplate local span, then a downstream HTTP call."""
        order_id = request.matchdict["order_id"]
        with request.trace.make_child("load_order", local=True, component_name="orders"):
            cached = self.redis.get(f"order:{order_id}")
            with self.engine.connect() as connection:
                row = connection.execute(sqlalchemy.text("SELECT 1")).scalar()
        result: dict[str, Any] = {
            "trace_id": request.trace.trace_id,
            "span_id": request.trace.id,
            "cached": cached is not None,
            "row": row,
        }
        if self.downstream_url:
            response = requests.get(self.downstream_url, timeout=10)
            result["downstream"] = response.json()
        return result

    def fanout(self, request: Request) -> dict[str, Any]:
        """Work on greenlets and a thread pool; every piece reports the trace it ran in."""
        count = int(request.params.get("greenlets", "3"))
        use_redis = request.params.get("redis", "1") == "1"

        def in_greenlet(index: int) -> int:
            gevent.sleep(0.001 * (index % 5))
            if use_redis:
                self.redis.ping()  # a vendor span, child of the request's server span
            return _current_trace_id()

        def in_thread() -> int:
            return _current_trace_id()

        greenlets = [spawn(in_greenlet, index) for index in range(count)]
        thread_ids = list(self.pool.map(lambda _: in_thread(), range(2)))
        gevent.joinall(greenlets, raise_error=True)
        gevent.sleep(0.001)
        return {
            "trace_id": request.trace.trace_id,
            "current": _current_trace_id(),
            "greenlets": [greenlet.value for greenlet in greenlets],
            "threads": thread_ids,
            "thread": threading.current_thread().name,
        }

    def stream(self, request: Request) -> Response:
        """A streamed response: each chunk is produced inside its own local span."""
        chunks = int(request.params.get("chunks", "3"))
        delay = float(request.params.get("delay", "0"))
        server_span = request.trace

        def body() -> Iterator[bytes]:
            for index in range(chunks):
                with server_span.make_child(
                    f"chunk_{index}", local=True, component_name="stream"
                ):
                    gevent.sleep(delay)
                    yield f"chunk {index}\n".encode()

        return Response(app_iter=body(), content_type="text/plain")

    def slow(self, request: Request) -> Response:
        """A span cut short by a :class:`gevent.Timeout`; with ``?handle=0`` the timeout is
        not handled and ends the request (and its server span) too."""
        seconds = float(request.params.get("timeout", "0.05"))
        handle = request.params.get("handle", "1") == "1"
        try:
            with gevent.Timeout(seconds):
                with request.trace.make_child("slow_work", local=True, component_name="slow"):
                    gevent.sleep(seconds * 20)
        except gevent.Timeout:
            if not handle:
                raise
            return Response("timed out\n", status=504)
        return Response("finished\n")

    def health(self, request: Request) -> dict[str, bool]:
        """The health check ``baseplate-healthcheck wsgi`` asks for."""
        return {"healthy": True}


def make_configurator(app_config: Mapping[str, str]) -> tuple[Configurator, Baseplate]:
    """Build the Pyramid configurator (routes, views, baseplate) and the Baseplate object."""
    cfg = config.parse_config(
        app_config,
        {
            "redis": {"url": config.String},
            "database": {"url": config.String},
            "downstream": {"url": config.Optional(config.String)},
        },
    )
    baseplate = Baseplate()
    baseplate.configure_logging()
    baseplate.configure_tracing(tracing_client_from_config(dict(app_config)))

    engine = sqlalchemy.create_engine(cfg.database.url, pool_pre_ping=False)
    _instrument_sqlalchemy(engine)
    # A blocking pool: under load, greenlets wait for a free connection instead of failing.
    redis_pool = redis.BlockingConnectionPool.from_url(
        cfg.redis.url, max_connections=50, timeout=30
    )
    views = Views(redis.Redis(connection_pool=redis_pool), engine, cfg.downstream.url)

    configurator = Configurator(settings=dict(app_config))
    configurator.include(BaseplateConfigurator(baseplate, trust_trace_headers=True).includeme)
    configurator.add_route("health", "/health", request_method="GET")
    configurator.add_view(views.health, route_name="health", renderer="json")
    configurator.add_route("order", "/orders/{order_id}")
    configurator.add_view(views.order, route_name="order", renderer="json")
    configurator.add_route("fanout", "/fanout")
    configurator.add_view(views.fanout, route_name="fanout", renderer="json")
    configurator.add_route("stream", "/stream")
    configurator.add_view(views.stream, route_name="stream")
    configurator.add_route("slow", "/slow")
    configurator.add_view(views.slow, route_name="slow")
    return configurator, baseplate


def make_wsgi_app(app_config: Mapping[str, str]) -> Any:
    """The application factory named in ``[app:main]``."""
    configurator, _ = make_configurator(app_config)
    return configurator.make_wsgi_app()
