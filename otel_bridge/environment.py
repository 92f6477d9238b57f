"""The ``OTEL_*`` environment variables baseplate honours, read in one place.

The names are the OpenTelemetry SDK's own (``opentelemetry.sdk.environment_variables``);
every read of one goes through :func:`get` so that the rule "blank means unset" holds
everywhere, and tests can pass a mapping instead of ``os.environ``. Which value wins when the
INI file also sets one is decided by the code reading it and written down in
``docs/operations.rst``.

The exporter timeouts (``OTEL_EXPORTER_OTLP_TIMEOUT`` and its per-signal forms,
``OTEL_EXPORTER_ZIPKIN_TIMEOUT``) are in seconds, as the Python SDK's exporters read them
(the specification says milliseconds; a process under ``opentelemetry-instrument`` gives its
SDK exporters and baseplate's the same value).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from opentelemetry.environment_variables import OTEL_PROPAGATORS, OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_HEADERS,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_EXPORTER_ZIPKIN_ENDPOINT,
    OTEL_EXPORTER_ZIPKIN_TIMEOUT,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
    OTEL_RESOURCE_ATTRIBUTES,
    OTEL_SDK_DISABLED,
    OTEL_SERVICE_NAME,
    OTEL_TRACES_SAMPLER,
    OTEL_TRACES_SAMPLER_ARG,
)

Environ = Mapping[str, str]


def get(name: str, environ: Environ | None = None) -> str | None:
    """The value of the variable ``name`` with surrounding blanks removed; None when it is
    unset or blank. ``environ`` replaces ``os.environ``."""
    value = (os.environ if environ is None else environ).get(name, "")
    value = value.strip()
    return value or None


def is_set(name: str, environ: Environ | None = None) -> bool:
    """Whether the variable ``name`` has a non-blank value."""
    return get(name, environ) is not None


#: What ``opentelemetry-distro`` (the distro of ``opentelemetry-instrument``) puts in
#: ``os.environ`` for its own exporters when it configures a process, unless already set.
DISTRO_DEFAULTS = {OTEL_EXPORTER_OTLP_PROTOCOL: "grpc"}


def is_distro_default(name: str, environ: Environ | None = None) -> bool:
    """Whether ``name`` holds the value ``opentelemetry-distro`` gives it by default, in a
    process that distro configured: then it need not be the operator's choice (the distro
    sets ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` whenever it is unset)."""
    default = DISTRO_DEFAULTS.get(name)
    if default is None or "opentelemetry.distro" not in sys.modules:
        return False
    value = get(name, environ)
    return value is not None and value.lower() == default


__all__ = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_PROMETHEUS_HOST",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
    "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_PROPAGATORS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "DISTRO_DEFAULTS",
    "Environ",
    "get",
    "is_distro_default",
    "is_set",
]
