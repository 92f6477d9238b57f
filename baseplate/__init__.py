"""baseplate: reddit's service framework API, with every span a real OpenTelemetry span.

The ``*_from_config`` helpers below are the documented entry points of the library
chapter. As in 0.28, :class:`~baseplate.core.Baseplate` is importable from here too
(``from baseplate import Baseplate``), and so are 0.28's deprecated spellings
``make_metrics_client`` and ``make_tracing_client``. Everything is imported lazily, on
first use, so that ``import baseplate`` (and ``import baseplate.config``) needs only the
core dependencies and loads none of the framework.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baseplate.core import Baseplate as Baseplate
    from baseplate.diagnostics.tracing import TracingClient
    from baseplate.metrics import Client as MetricsClient
    from baseplate.thrift_pool import ThriftConnectionPool


def metrics_client_from_config(raw_config: dict[str, str]) -> MetricsClient:
    """Configure and return a metrics client from ``metrics.namespace`` and ``metrics.endpoint``.

    An empty endpoint gives a client that discards all metrics.
    """
    from baseplate.metrics import metrics_client_from_config as make

    return make(raw_config)


def make_metrics_client(raw_config: dict[str, str]) -> MetricsClient:
    """Deprecated spelling of :func:`metrics_client_from_config` (warns
    :exc:`DeprecationWarning`)."""
    _warn_renamed("make_metrics_client", "metrics_client_from_config")
    return metrics_client_from_config(raw_config)


def tracing_client_from_config(
    raw_config: dict[str, str], log_if_unconfigured: bool = True
) -> TracingClient:
    """Configure and return a tracing client from the ``tracing.*`` keys."""
    from baseplate.diagnostics.tracing import tracing_client_from_config as make

    return make(raw_config, log_if_unconfigured=log_if_unconfigured)


def make_tracing_client(
    raw_config: dict[str, str], log_if_unconfigured: bool = True
) -> TracingClient:
    """Deprecated spelling of :func:`tracing_client_from_config` (warns
    :exc:`DeprecationWarning`)."""
    _warn_renamed("make_tracing_client", "tracing_client_from_config")
    return tracing_client_from_config(raw_config, log_if_unconfigured)


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


def _warn_renamed(old: str, new: str) -> None:
    # stacklevel 3: the warning names the application's call, not this module
    warnings.warn(
        f"{old} is deprecated in favor of the more consistently named {new}",
        DeprecationWarning,
        stacklevel=3,
    )


# Submodules 0.28's package imported eagerly, so `import baseplate; baseplate.metrics...`
# worked without importing them by name.
_SUBMODULES = ("config", "metrics")


def __getattr__(name: str) -> Any:
    # Lazy, so that `import baseplate.config` does not load the framework (OpenTelemetry,
    # the diagnostics): baseplate.core imports modules that import this package.
    if name == "Baseplate":
        from baseplate.core import Baseplate

        return Baseplate
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})


__all__ = [
    "Baseplate",
    "error_reporter_from_config",
    "make_metrics_client",
    "make_tracing_client",
    "metrics_client_from_config",
    "thrift_pool_from_config",
    "tracing_client_from_config",
]
