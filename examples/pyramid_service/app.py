"""An example Pyramid service that calls the example Thrift service: one trace, two services.

Run it (and the Greeter, see ``examples/thrift_service``) from the repository root::

    baseplate-serve examples/pyramid_service/app.ini --bind 127.0.0.1:9090
    curl http://127.0.0.1:9090/hello/Ada

``GET /hello/{name}`` is a server span ``hello`` with a client span ``redis.INCRBY``, a
local span ``compose`` and a client span ``greeter.greet``: the Thrift call carries the
trace, so the Greeter's server span has the id of ``greeter.greet`` (baseplate's
shared-span model) and both services print the same trace id. Without
``greeter.endpoint`` the view greets by itself.
"""

from __future__ import annotations

import logging
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.request import Request

from baseplate import metrics_client_from_config, tracing_client_from_config
from baseplate.context.redis import RedisContextFactory, pool_from_config
from baseplate.core import Baseplate
from baseplate.integration.pyramid import BaseplateConfigurator

logger = logging.getLogger(__name__)


def hello(request: Request) -> dict[str, Any]:
    """Greet someone, through the Greeter service when one is configured."""
    name = request.matchdict["name"]
    visits = request.redis.incr("hello:visits")
    greeter = getattr(request, "greeter", None)
    if greeter is None:
        with request.trace.make_child("compose", local=True, component_name="greeting"):
            message = f"Hello, {name}!"
    else:
        from examples.thrift_service.idl import greeter_types

        try:
            message = greeter.greet(name)
        except greeter_types().NameTooLong as exc:
            raise HTTPBadRequest(exc.message)
    request.metrics.counter("greetings").increment()
    logger.info("greeted %s", name)
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
    if app_config.get("greeter.endpoint"):
        from baseplate.context.thrift import ThriftContextFactory
        from baseplate.thrift_pool import thrift_pool_from_config
        from examples.thrift_service.idl import greeter_module

        pool = thrift_pool_from_config(app_config, prefix="greeter.")
        baseplate.add_to_context("greeter", ThriftContextFactory(pool, greeter_module().Client))

    configurator = Configurator()
    # Callers are trusted to send trace headers (curl -H 'X-Trace: ...' to join a trace).
    configurator.include(BaseplateConfigurator(baseplate, trust_trace_headers=True).includeme)
    configurator.add_route("hello", "/hello/{name}", request_method="GET")
    configurator.add_view(hello, route_name="hello", renderer="json")
    configurator.add_route("health", "/health", request_method="GET")
    configurator.add_view(health, route_name="health", renderer="json")
    return configurator.make_wsgi_app()
