"""The getting-started service: one Pyramid view, traced and metered by baseplate.

``GET /hello/{name}`` counts visits in Redis (a client span ``redis.INCRBY``), builds the
greeting in a local span ``compose`` and answers JSON; ``GET /health`` is for
``baseplate-healthcheck wsgi``.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request

from baseplate import metrics_client_from_config, tracing_client_from_config
from baseplate.context.redis import RedisContextFactory, pool_from_config
from baseplate.core import Baseplate
from baseplate.integration.pyramid import BaseplateConfigurator


def hello(request: Request) -> dict[str, Any]:
    """Greet someone and say how many greetings there were."""
    name = request.matchdict["name"]
    visits = request.redis.incr("hello:visits")
    with request.trace.make_child("compose", local=True, component_name="greeting"):
        message = f"Hello, {name}!"
    request.metrics.counter("greetings").increment()
    return {"message": message, "visits": visits, "trace_id": request.trace.trace_id}


def health(request: Request) -> dict[str, bool]:
    """Tell ``baseplate-healthcheck wsgi`` the service is up."""
    return {"healthy": True}


def make_app(app_config: dict[str, str]) -> Any:
    """The application factory named in ``[app:main]``; returns a WSGI application."""
    baseplate = Baseplate()
    baseplate.configure_logging()
    baseplate.configure_metrics(metrics_client_from_config(app_config))
    baseplate.configure_tracing(tracing_client_from_config(app_config))
    baseplate.add_to_context("redis", RedisContextFactory(pool_from_config(app_config)))

    configurator = Configurator()
    configurator.include(BaseplateConfigurator(baseplate).includeme)
    configurator.add_route("hello", "/hello/{name}", request_method="GET")
    configurator.add_view(hello, route_name="hello", renderer="json")
    configurator.add_route("health", "/health", request_method="GET")
    configurator.add_view(health, route_name="health", renderer="json")
    return configurator.make_wsgi_app()
