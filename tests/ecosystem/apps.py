"""The example service of ``examples/vendor_mix`` as the tests run it.

``make_app`` is the ``[app:main]`` factory of the test INI files: the example app, plus
what the tests observe it through:

* every sampled span goes to the JSON-lines file named by ``test.span_log``, exported in
  the background by baseplate's bounded batch processor (the one the INI exporters use)
  every ``test.schedule_delay`` seconds (default 0.05);
* ``GET /_debug/provider`` describes the tracer provider set-up of the process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate, trace
from pyramid.request import Request

from examples.vendor_mix.app import make_configurator
from exporters.batch import BoundedBatchSpanProcessor
from tests.ecosystem.spanlog import JsonLinesExporter


def _describe_provider(baseplate: Any) -> Any:
    def view(request: Request) -> dict[str, Any]:
        provider = trace.get_tracer_provider()
        active = getattr(provider, "_active_span_processor", None)
        processors = getattr(active, "_span_processors", ())
        return {
            "pid": os.getpid(),
            "provider": type(provider).__module__ + "." + type(provider).__qualname__,
            "baseplate_uses_global": baseplate.tracer_provider is provider,
            "processors": [
                {
                    "processor": type(processor).__name__,
                    "exporter": type(
                        getattr(processor, "exporter", None)
                        or getattr(processor, "span_exporter", None)
                        or getattr(getattr(processor, "_batch_processor", None), "_exporter", None)
                    ).__name__,
                }
                for processor in processors
            ],
            "propagator_fields": sorted(propagate.get_global_textmap().fields),
            "resource": dict(provider.resource.attributes) if hasattr(provider, "resource") else {},
        }

    return view


def make_app(app_config: Mapping[str, str]) -> Any:
    """The example app exporting its spans to ``test.span_log``."""
    app_config = dict(app_config)
    span_log = app_config.pop("test.span_log")
    schedule_delay = float(app_config.pop("test.schedule_delay", "0.05"))
    configurator, baseplate = make_configurator(app_config)
    baseplate.add_span_processor(
        BoundedBatchSpanProcessor(JsonLinesExporter(span_log), schedule_delay=schedule_delay)
    )
    configurator.add_route("debug_provider", "/_debug/provider")
    configurator.add_view(
        _describe_provider(baseplate), route_name="debug_provider", renderer="json"
    )
    return configurator.make_wsgi_app()
