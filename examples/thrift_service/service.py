"""An example Thrift service: traced, metered, counting greetings in Redis.

Run it from the repository root::

    baseplate-serve examples/thrift_service/greeter.ini --bind 127.0.0.1:9091
    .venv/bin/python -m examples.thrift_service.client --endpoint 127.0.0.1:9091 Ada

Each call of ``greet`` is a server span named ``greet`` that continues the caller's trace
(THeader ``Trace``/``Parent``/``Span``/``Sampled``/``Flags``), with a client span
``redis.INCR`` and a local span ``compose`` under it; statsd gets
``greeter.server.greet``, ``greeter.clients.redis.INCR`` and ``greeter.greeting.compose``.
"""

from __future__ import annotations

import logging
from typing import Any

from baseplate import metrics_client_from_config, tracing_client_from_config
from baseplate.config import Integer, Optional, parse_config
from baseplate.context.redis import RedisContextFactory, pool_from_config
from baseplate.core import Baseplate
from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor
from examples.thrift_service.idl import greeter_module, greeter_types

logger = logging.getLogger(__name__)


class GreeterHandler:
    """The Greeter service's methods; each takes the request's context object first."""

    def __init__(self, max_name_length: int) -> None:
        self.max_name_length = max_name_length

    def is_healthy(self, context: Any) -> bool:
        """Answer ``baseplate-healthcheck thrift``."""
        return True

    def greet(self, context: Any, name: str) -> str:
        """Greet ``name``, counting how often it was greeted."""
        if len(name) > self.max_name_length:
            raise greeter_types().NameTooLong(
                message=f"names are at most {self.max_name_length} characters",
                max_length=self.max_name_length,
            )
        count = context.redis.incr(f"greeter:{name}")
        with context.trace.make_child("compose", local=True, component_name="greeting") as span:
            span.set_tag("name.length", len(name))
            text = f"Hello, {name}! (greeting number {count})"
        context.metrics.counter("greetings").increment()
        logger.info("greeted %s", name)
        return text


def make_processor(app_config: dict[str, str]) -> ContextProcessor:
    """The application factory named in ``[app:main]`` (``factory = ...:make_processor``)."""
    cfg = parse_config(app_config, {"greeter": {"max_name_length": Optional(Integer, 40)}})

    baseplate = Baseplate()
    baseplate.configure_logging()
    baseplate.configure_metrics(metrics_client_from_config(app_config))
    baseplate.configure_tracing(tracing_client_from_config(app_config))
    baseplate.add_to_context("redis", RedisContextFactory(pool_from_config(app_config)))

    handler = GreeterHandler(cfg.greeter.max_name_length)
    processor = ContextProcessor(greeter_module().Processor(handler))
    processor.setEventHandler(BaseplateProcessorEventHandler(logger, baseplate))
    return processor


def tshell_setup(env: dict[str, Any], env_banner: dict[str, str]) -> None:
    """Add the Greeter's generated types to ``baseplate-tshell`` (the ``[tshell]`` section)."""
    env["greeter_types"] = greeter_types()
    env_banner["greeter_types"] = "The Greeter IDL's types (NameTooLong)"
