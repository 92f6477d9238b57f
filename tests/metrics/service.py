"""One small Pyramid service, metered by whatever ``metrics.exporter`` its INI names.

``GET /hello`` makes a client span ``backend.fetch``, a local span ``compose`` (component
``greeting``), and records the application's own ``greetings`` counter and ``render`` timer
through ``request.metrics``; ``GET /fail`` makes a client span that logs an ``error.object``
(``TimeoutError``) and fails, then the view raises (a 500). The same application runs in
process (``make_app(config, tracer_provider)``) and under ``baseplate-serve``
(``factory = tests.metrics.service:make_app``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from pyramid.config import Configurator
from pyramid.request import Request

from baseplate import metrics_client_from_config
from baseplate.core import Baseplate
from baseplate.integration.pyramid import BaseplateConfigurator
from baseplate.metrics import Client


def hello(request: Request) -> dict[str, Any]:
    with request.trace.make_child("backend.fetch"):
        pass
    with request.trace.make_child("compose", local=True, component_name="greeting"):
        pass
    request.metrics.counter("greetings").increment()
    request.metrics.timer("render").send(0.25)
    return {"hello": "world"}


def fail(request: Request) -> dict[str, Any]:
    try:
        with request.trace.make_child("backend.fetch") as child:
            child.log("error.object", TimeoutError("backend timed out"))
            raise TimeoutError("backend timed out")
    except TimeoutError:
        raise RuntimeError("no backend")


def make_app(
    app_config: dict[str, str],
    tracer_provider: TracerProvider | None = None,
    metrics_client: Client | None = None,
) -> Any:
    """The WSGI application; every request is sampled out (metrics must not care).
    ``metrics_client`` replaces the one ``metrics_client_from_config`` would make."""
    baseplate = Baseplate(tracer_provider=tracer_provider)
    baseplate.sampler.sample_rate = 0.0
    baseplate.configure_metrics(metrics_client or metrics_client_from_config(app_config))
    configurator = Configurator()
    configurator.include(BaseplateConfigurator(baseplate).includeme)
    configurator.add_route("hello", "/hello", request_method="GET")
    configurator.add_view(hello, route_name="hello", renderer="json")
    configurator.add_route("fail", "/fail", request_method="GET")
    configurator.add_view(fail, route_name="fail", renderer="json")
    app = configurator.make_wsgi_app()
    app.baseplate = baseplate  # type: ignore[attr-defined]
    return app


#: What a service made N ``/hello`` requests and one ``/fail`` measures, backend-neutral:
#: (kind, span name, success) -> how many spans ended so; ``errors``, ``greetings``.
def expected_facts(hellos: int) -> dict[str, Any]:
    return {
        "calls": {
            ("server", "hello", True): hellos,
            ("server", "fail", False): 1,
            ("client", "backend.fetch", True): hellos,
            ("client", "backend.fetch", False): 1,
        },
        "local": {("greeting", "compose"): hellos},
        "errors": {"TimeoutError": 1},
        "greetings": hellos,
        "render": hellos,
    }
