"""baseplate: reddit's service framework API, with every span a real OpenTelemetry span.

The ``*_from_config`` helpers below are the documented entry points of the library
chapter; they are imported lazily so that ``import baseplate`` needs only the core
dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baseplate.diagnostics.tracing import TracingClient
    from baseplate.metrics import Client as MetricsClient
    from baseplate.thrift_pool import ThriftConnectionPool


def metrics_client_from_config(raw_config: dict[str, str]) -> MetricsClient:
    """Configure and return a metrics client from ``metrics.namespace`` and ``metrics.endpoint``.

    An empty endpoint gives a client that discards all metrics.
    """
    from baseplate.metrics import metrics_client_from_config as make

    return make(raw_config)


def tracing_client_from_config(
    raw_config: dict[str, str], log_if_unconfigured: bool = True
) -> TracingClient:
    """Configure and return a tracing client from the ``tracing.*`` keys."""
    from baseplate.diagnostics.tracing import tracing_client_from_config as make

    return make(raw_config, log_if_unconfigured=log_if_unconfigured)


def error_reporter_from_config(raw_config: dict[str, str], module_name: str) -> Any:
    """Configure and return a ``raven.Client`` error reporter from the ``sentry.*`` keys."""
    from baseplate.diagnostics.sentry import error_reporter_from_config as make

    return make(raw_config, module_name)


def thrift_pool_from_config(
    app_config: dict[str, str], prefix: str = "thrift.", **kwargs: Any
) -> ThriftConnectionPool:
    """Make a ``ThriftConnectionPool`` from the ``<prefix>*`` keys (the reference names it
    ``baseplate.thrift_pool_from_config``; it lives in :mod:`baseplate.thrift_pool`)."""
    from baseplate.thrift_pool import thrift_pool_from_config as make

    return make(app_config, prefix, **kwargs)


__all__ = [
    "error_reporter_from_config",
    "metrics_client_from_config",
    "thrift_pool_from_config",
    "tracing_client_from_config",
]
