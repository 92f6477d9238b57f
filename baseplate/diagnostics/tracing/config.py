"""Tracing configuration: the ``tracing.*`` keys and ``OTEL_*`` variables, read into a client.

:func:`tracing_client_from_config` reads them into a :class:`TracingClient`, which says which
exporter to build and how (:meth:`TracingClient.make_span_processor`); :func:`make_client` is
0.28's constructor from individual options. Both are importable from
:mod:`baseplate.diagnostics.tracing`.

Configuration (``[app:main]``)::

    tracing.service_name = my_service       ; required
    tracing.sample_rate = 37%               ; or 0.37; new traces only (default 10%)
    tracing.exporter = zipkin               ; zipkin | otlp | sidecar | console | none
    tracing.exporter.endpoint = http://zipkin:9411
    tracing.exporter.timeout = 5 seconds    ; per network operation (default 5 s)
    tracing.propagators = baseplate, tracecontext, b3multi
    tracing.queue_name = main               ; sidecar: spans go to /traces-main
    tracing.endpoint = zipkin:9411          ; legacy: Zipkin host:port
    tracing.max_span_queue_size = 50000     ; spans waiting for export (then dropped)
    tracing.span_batch_interval = 500 milliseconds  ; or seconds as a number
    tracing.num_span_workers = 5            ; accepted for compatibility (one worker)
    tracing.num_conns = 100                 ; accepted for compatibility (one connection)

Which exporter, in order of precedence:

1. ``tracing.exporter``;
2. ``OTEL_TRACES_EXPORTER`` (its first entry);
3. the legacy keys: ``sidecar`` when ``tracing.queue_name`` is set, else ``zipkin`` when
   ``tracing.endpoint`` is set;
4. ``console`` when ``log_if_unconfigured`` is true, else ``none``.

When only ``OTEL_TRACES_EXPORTER`` chose it and the tracer provider already has exporting
processors of its own (``opentelemetry-instrument`` set them up from that same variable),
baseplate adds no exporter of its own, so spans are not sent twice.

Where it sends, again an explicit INI key first, then the standard variables, then defaults:

* zipkin: ``tracing.exporter.endpoint``, ``tracing.endpoint``,
  ``OTEL_EXPORTER_ZIPKIN_ENDPOINT``, ``http://localhost:9411/api/v2/spans``. ``host:port``
  and URLs without a path post to ``/api/v2/spans``; a URL with a path is used as given.
* otlp (HTTP/protobuf): ``tracing.exporter.endpoint`` (``/v1/traces`` appended when it has
  no path), ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (as given),
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended), ``http://localhost:4318/v1/traces``.
  Headers come from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``.
  ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` other than
  ``http/protobuf`` are refused, except the ``grpc`` that ``opentelemetry-distro`` sets by
  default when ``tracing.exporter`` chose otlp.
* sidecar: ``tracing.queue_name`` (required).

The timeout of one export is ``tracing.exporter.timeout``, else (in seconds, as the SDK reads
them) ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT`` for otlp or
``OTEL_EXPORTER_ZIPKIN_TIMEOUT`` for zipkin, else 5 seconds.

The sample rate is ``tracing.sample_rate``, else ``OTEL_TRACES_SAMPLER_ARG`` when
``OTEL_TRACES_SAMPLER`` is ``traceidratio`` or ``parentbased_traceidratio``, else 10%.
Propagators are ``tracing.propagators``, else left to ``OTEL_PROPAGATORS`` / the defaults of
``otel_bridge.propagation``. A bad value raises :class:`baseplate.config.ConfigurationError`
naming the key or variable.
"""

from __future__ import annotations

import datetime
import importlib.util
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter

from baseplate import config
from exporters.batch import BoundedBatchSpanProcessor
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT
from exporters.defaults import DEFAULT_MAX_QUEUE_SIZE as DEFAULT_MAX_SPAN_QUEUE_SIZE
from exporters.defaults import DEFAULT_SCHEDULE_DELAY as DEFAULT_SPAN_BATCH_INTERVAL
from exporters.zipkin import DEFAULT_ZIPKIN_ENDPOINT
from otel_bridge import environment
from otel_bridge.sampling import DEFAULT_SAMPLE_RATE

logger = logging.getLogger(__name__)

#: The exporters ``tracing.exporter`` / ``OTEL_TRACES_EXPORTER`` may name.
EXPORTERS = ("zipkin", "otlp", "sidecar", "console", "none")

#: The OpenTelemetry SDK's exporter names ``OTEL_TRACES_EXPORTER`` may use for ours.
_SDK_EXPORTER_NAMES = {"otlp_proto_http": "otlp", "zipkin_json": "zipkin"}

#: Accepted for compatibility with 0.28; spans are exported by one worker on one connection.
DEFAULT_NUM_SPAN_WORKERS = 5
DEFAULT_NUM_CONNS = 100

#: ``OTEL_TRACES_SAMPLER`` values and the sample rate each means (None: the sampler's
#: argument, ``OTEL_TRACES_SAMPLER_ARG``, which defaults to 1.0 as the specification says).
_SAMPLERS: dict[str, float | None] = {
    "always_on": 1.0,
    "always_off": 0.0,
    "traceidratio": None,
    "parentbased_always_on": 1.0,
    "parentbased_always_off": 0.0,
    "parentbased_traceidratio": None,
}

#: Python modules each exporter needs, and the extra that installs them.
_EXTRAS = {
    "otlp": ("opentelemetry.exporter.otlp.proto.http", "otlp"),
    "sidecar": ("posix_ipc", "posix-ipc"),
}

#: The variables giving an exporter's timeout (seconds) when ``tracing.exporter.timeout`` is
#: unset, the first one set winning.
_TIMEOUT_VARIABLES = {
    "otlp": (environment.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, environment.OTEL_EXPORTER_OTLP_TIMEOUT),
    "zipkin": (environment.OTEL_EXPORTER_ZIPKIN_TIMEOUT,),
}

#: Every ``tracing.*`` key baseplate reads (others are reported as probable typos).
KNOWN_KEYS = (
    "service_name",
    "endpoint",
    "queue_name",
    "max_span_queue_size",
    "num_span_workers",
    "span_batch_interval",
    "num_conns",
    "sample_rate",
    "propagators",
    "exporter",
    "exporter.endpoint",
    "exporter.timeout",
)


@dataclass(frozen=True)
class TracingClient:
    """Where and how spans are exported; made by :func:`tracing_client_from_config`.

    ``exporter`` is one of :data:`EXPORTERS`; ``endpoint`` the resolved collector address
    (zipkin, otlp) or None; ``queue_name`` the sidecar queue name.
    """

    service_name: str
    sample_rate: float = DEFAULT_SAMPLE_RATE
    exporter: str = "console"
    endpoint: str | None = None
    queue_name: str | None = None
    max_span_queue_size: int = DEFAULT_MAX_SPAN_QUEUE_SIZE
    num_span_workers: int = DEFAULT_NUM_SPAN_WORKERS
    span_batch_interval: float = DEFAULT_SPAN_BATCH_INTERVAL
    num_conns: int = DEFAULT_NUM_CONNS
    timeout: float = DEFAULT_EXPORT_TIMEOUT
    propagators: tuple[str, ...] | None = None
    log_if_unconfigured: bool = True
    #: What chose the exporter: ``tracing.exporter``, ``OTEL_TRACES_EXPORTER``,
    #: ``tracing.queue_name``, ``tracing.endpoint`` or ``log_if_unconfigured``.
    exporter_source: str = "tracing.exporter"

    def make_exporter(self) -> SpanExporter | None:
        """Build the span exporter this client describes (None for ``none``)."""
        if self.exporter == "zipkin":
            from exporters.zipkin import ZipkinExporter

            return ZipkinExporter(
                self.service_name, self.endpoint or DEFAULT_ZIPKIN_ENDPOINT, timeout=self.timeout
            )
        if self.exporter == "otlp":
            from exporters.otlp import make_otlp_exporter

            return make_otlp_exporter(
                self.endpoint, timeout=self.timeout, service_name=self.service_name
            )
        if self.exporter == "sidecar":
            from exporters.sidecar import SidecarExporter

            if not self.queue_name:
                raise config.ConfigurationError(
                    "tracing.queue_name", "required when the exporter is sidecar"
                )
            return SidecarExporter(self.service_name, self.queue_name)
        if self.exporter == "console":
            from exporters.console import RequestTreeConsoleExporter

            return RequestTreeConsoleExporter()
        return None

    def make_span_processor(self) -> BoundedBatchSpanProcessor | None:
        """Build the exporter wrapped in a bounded batch span processor (None for ``none``)."""
        exporter = self.make_exporter()
        if exporter is None:
            return None
        return BoundedBatchSpanProcessor(
            exporter,
            max_queue_size=self.max_span_queue_size,
            schedule_delay=self.span_batch_interval,
        )


def _parse(raw_config: Mapping[str, str], key: str, value_type: Callable[[str], Any]) -> Any:
    return config.CallableParser(value_type).parse(key, raw_config)


def _parse_env(
    environ: Mapping[str, str] | None, name: str, value_type: Callable[[str], Any]
) -> Any:
    value = environment.get(name, environ)
    if value is None:
        return None
    try:
        return value_type(value)
    except Exception as exc:
        raise config.ConfigurationError(name, exc)


#: Most spans ``tracing.max_span_queue_size`` may hold (each queued span costs about 3 KB).
MAX_SPAN_QUEUE_SIZE = 1_000_000

_rate = config.Fraction
_queue_size = config.IntegerRange(1, MAX_SPAN_QUEUE_SIZE)
_count = config.IntegerRange(1, config.MAX_POOL_SIZE)
# a batch interval over a minute would hold spans (and memory) for no gain
_interval = config.Seconds(max=60.0, allow_zero=False)
_timeout = config.Seconds(max=300.0, allow_zero=False)


def _exporter_name(text: str) -> str:
    name = text.strip().lower()
    if name not in EXPORTERS:
        raise ValueError(f"unknown exporter {text!r}: expected one of {', '.join(EXPORTERS)}")
    return name


def _first_exporter_name(text: str) -> str:
    name = text.split(",")[0].strip().lower()
    if name == "otlp_proto_grpc":
        raise ValueError(
            "OTLP over gRPC is not supported: use otlp (otlp_proto_http, HTTP/protobuf)"
        )
    return _exporter_name(_SDK_EXPORTER_NAMES.get(name, name))


def _otlp_protocol(text: str) -> str:
    protocol = text.strip().lower()
    if protocol != "http/protobuf":
        raise ValueError(
            f"protocol {text!r} is not supported: baseplate's OTLP exporter speaks "
            "http/protobuf"
        )
    return protocol


def _sampler_rate(environ: Mapping[str, str] | None) -> float | None:
    """The sample rate ``OTEL_TRACES_SAMPLER`` (and its argument) ask for, if set."""
    name = environment.get(environment.OTEL_TRACES_SAMPLER, environ)
    if name is None:
        return None
    key = name.lower()
    if key not in _SAMPLERS:
        raise config.ConfigurationError(
            environment.OTEL_TRACES_SAMPLER,
            f"{name!r} is not supported: expected one of {', '.join(_SAMPLERS)}",
        )
    rate = _SAMPLERS[key]
    if rate is None:
        rate = _parse_env(environ, environment.OTEL_TRACES_SAMPLER_ARG, _rate)
    return 1.0 if rate is None else rate


def _service_name_from_environment(environ: Mapping[str, str] | None) -> str | None:
    name = environment.get(environment.OTEL_SERVICE_NAME, environ)
    if name:
        return name
    attributes = environment.get(environment.OTEL_RESOURCE_ATTRIBUTES, environ) or ""
    for pair in attributes.split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "service.name" and value.strip():
            return urllib.parse.unquote(value.strip())
    return None


def _require_extra(exporter: str, key: str) -> None:
    """Stop with one line naming the missing extra, rather than an import traceback later."""
    needed = _EXTRAS.get(exporter)
    if needed is None:
        return
    module, extra = needed
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise config.ConfigurationError(
            key,
            f"the {exporter} exporter needs the {extra!r} extra: "
            f"pip install 'baseplate-otel[{extra}]'",
        )


_warned_ignored: set[str] = set()


def _report_unused_keys(raw_config: Mapping[str, str]) -> None:
    """Warn about ``tracing.*`` keys nobody reads (typos), and the accepted-but-ignored ones."""
    config.warn_unknown_keys(raw_config, "tracing.", KNOWN_KEYS, logger)
    for key in sorted(k for k in raw_config if isinstance(k, str) and k.startswith("tracing.")):
        name = key[len("tracing.") :]
        if name in ("num_span_workers", "num_conns") and key not in _warned_ignored:
            _warned_ignored.add(key)
            logger.warning(
                "%s is accepted for compatibility and has no effect: spans are exported by "
                "one background worker",
                key,
            )


def _queue_name(text: str) -> str:
    from exporters.sidecar import trace_queue_path

    trace_queue_path(text)
    return text


def _zipkin_endpoint(text: str) -> str:
    from exporters.zipkin import zipkin_spans_url

    zipkin_spans_url(text)
    return text.strip()


def _legacy_zipkin_endpoint(text: str) -> str:
    """``tracing.endpoint``: a ``host:port`` pair, as in baseplate 0.x (a bare host is
    refused rather than sent to port 80), or a Zipkin URL."""
    if "://" not in text:
        endpoint = config.Endpoint(text.strip())
        if not isinstance(endpoint.address, tuple):
            raise ValueError(f"expected host:port or a URL, not {text!r}")
    return _zipkin_endpoint(text)


def _otlp_endpoint(text: str) -> str:
    from exporters.otlp import otlp_traces_url

    return otlp_traces_url(text)


def _otlp_endpoint_as_given(text: str) -> str:
    from exporters.otlp import otlp_traces_url

    otlp_traces_url(text)
    return text.strip()


def _otlp_base_endpoint(text: str) -> str:
    from exporters.otlp import OTLP_TRACES_PATH

    base = text.strip().rstrip("/")
    return _otlp_endpoint_as_given(base + OTLP_TRACES_PATH)


def _propagator_names(text: str) -> tuple[str, ...]:
    from otel_bridge.propagation import make_propagator

    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError("expected a comma-separated list of propagator names")
    make_propagator(names)  # raises ValueError naming an unknown propagator
    return names


def tracing_client_from_config(
    raw_config: Mapping[str, str],
    log_if_unconfigured: bool = True,
    environ: Mapping[str, str] | None = None,
) -> TracingClient:
    """Configure and return a tracing client from the ``tracing.*`` keys.

    ``tracing.service_name`` is required; the module documentation lists the optional keys,
    the ``OTEL_*`` variables honoured and which wins. When no exporter is configured, spans
    are printed to standard error as request trees if ``log_if_unconfigured`` is true, and
    discarded otherwise. ``environ`` replaces ``os.environ`` (for tests).

    :raises baseplate.config.ConfigurationError: a key or variable has a bad value.
    """
    cfg = config.parse_config(
        raw_config,
        {
            "tracing": {
                "service_name": config.Optional(config.String),
                "endpoint": config.Optional(_legacy_zipkin_endpoint),
                "queue_name": config.Optional(_queue_name),
                "max_span_queue_size": config.Optional(_queue_size, DEFAULT_MAX_SPAN_QUEUE_SIZE),
                "num_span_workers": config.Optional(_count, DEFAULT_NUM_SPAN_WORKERS),
                "span_batch_interval": config.Optional(_interval, DEFAULT_SPAN_BATCH_INTERVAL),
                "num_conns": config.Optional(_count, DEFAULT_NUM_CONNS),
                "sample_rate": config.Optional(_rate),
                "propagators": config.Optional(_propagator_names),
            }
        },
    )
    tracing = cfg.tracing
    _report_unused_keys(raw_config)
    service_name = tracing.service_name or _service_name_from_environment(environ)
    if not service_name:
        raise config.ConfigurationError(
            "tracing.service_name", "required (or set OTEL_SERVICE_NAME)"
        )

    source = "tracing.exporter"
    exporter = _parse(raw_config, "tracing.exporter", config.Optional(_exporter_name))
    if exporter is None:
        source = environment.OTEL_TRACES_EXPORTER
        exporter = _parse_env(environ, environment.OTEL_TRACES_EXPORTER, _first_exporter_name)
    if exporter is None:
        exporter, source = _legacy_exporter(
            tracing.queue_name, tracing.endpoint, log_if_unconfigured
        )

    timeout = _parse(raw_config, "tracing.exporter.timeout", config.Optional(_timeout))
    if timeout is None:
        for variable in _TIMEOUT_VARIABLES.get(exporter, ()):
            timeout = _parse_env(environ, variable, _timeout)
            if timeout is not None:
                break
        else:
            timeout = DEFAULT_EXPORT_TIMEOUT

    endpoint: str | None = None
    if exporter == "zipkin":
        endpoint = (
            _parse(raw_config, "tracing.exporter.endpoint", config.Optional(_zipkin_endpoint))
            or tracing.endpoint
            or _parse_env(environ, environment.OTEL_EXPORTER_ZIPKIN_ENDPOINT, _zipkin_endpoint)
            or DEFAULT_ZIPKIN_ENDPOINT
        )
    elif exporter == "otlp":
        endpoint = (
            _parse(raw_config, "tracing.exporter.endpoint", config.Optional(_otlp_endpoint))
            or _parse_env(
                environ, environment.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _otlp_endpoint_as_given
            )
            or _parse_env(environ, environment.OTEL_EXPORTER_OTLP_ENDPOINT, _otlp_base_endpoint)
        )
        for variable in (
            environment.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            environment.OTEL_EXPORTER_OTLP_PROTOCOL,
        ):
            if source == "tracing.exporter" and environment.is_distro_default(variable, environ):
                # opentelemetry-distro's grpc for its own exporters: the INI file chose
                # baseplate's exporter, which speaks HTTP/protobuf
                continue
            if _parse_env(environ, variable, _otlp_protocol):
                break
    elif exporter == "sidecar" and not tracing.queue_name:
        raise config.ConfigurationError(
            "tracing.queue_name", "required when the exporter is sidecar"
        )
    _require_extra(exporter, source)

    sample_rate = tracing.sample_rate
    if sample_rate is None:
        sample_rate = _sampler_rate(environ)
    if sample_rate is None:
        sample_rate = DEFAULT_SAMPLE_RATE

    span_batch_interval = tracing.span_batch_interval
    if isinstance(span_batch_interval, datetime.timedelta):
        span_batch_interval = span_batch_interval.total_seconds()

    return TracingClient(
        service_name=service_name,
        sample_rate=sample_rate,
        exporter=exporter,
        endpoint=endpoint,
        queue_name=tracing.queue_name,
        max_span_queue_size=tracing.max_span_queue_size,
        num_span_workers=tracing.num_span_workers,
        span_batch_interval=float(span_batch_interval),
        num_conns=tracing.num_conns,
        timeout=timeout,
        propagators=tracing.propagators,
        log_if_unconfigured=log_if_unconfigured,
        exporter_source=source,
    )


def _legacy_exporter(
    queue_name: str | None, endpoint: str | None, log_if_unconfigured: bool
) -> tuple[str, str]:
    """The exporter the 0.28 options choose, and the option that chose it: a queue name
    selects the sidecar, else an endpoint Zipkin, else spans are printed or discarded."""
    if queue_name:
        return "sidecar", "tracing.queue_name"
    if endpoint:
        return "zipkin", "tracing.endpoint"
    return ("console" if log_if_unconfigured else "none"), "log_if_unconfigured"


def make_client(
    service_name: str,
    tracing_endpoint: config.EndpointConfiguration | str | None = None,
    tracing_queue_name: str | None = None,
    max_span_queue_size: int = DEFAULT_MAX_SPAN_QUEUE_SIZE,
    num_span_workers: int = DEFAULT_NUM_SPAN_WORKERS,
    span_batch_interval: float = DEFAULT_SPAN_BATCH_INTERVAL,
    num_conns: int = DEFAULT_NUM_CONNS,
    sample_rate: float = DEFAULT_SAMPLE_RATE,
    log_if_unconfigured: bool = True,
) -> TracingClient:
    """Create and return a tracing client from individual options (0.28's constructor).

    :func:`tracing_client_from_config` is the usual way. As with the legacy keys, a queue
    name selects the sidecar exporter, else an endpoint (``host:port``) selects Zipkin,
    else spans are printed (``log_if_unconfigured``) or discarded.

    :raises ValueError: an option has a bad value.
    """
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate {sample_rate!r} is not between 0 and 1")
    endpoint: str | None = None
    if isinstance(tracing_endpoint, config.EndpointConfiguration):
        address = tracing_endpoint.address
        endpoint = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
    elif tracing_endpoint:
        endpoint = tracing_endpoint
    if endpoint is not None:
        endpoint = _zipkin_endpoint(endpoint)
    if tracing_queue_name:
        _queue_name(tracing_queue_name)
    exporter, source = _legacy_exporter(tracing_queue_name, endpoint, log_if_unconfigured)
    return TracingClient(
        service_name=service_name,
        sample_rate=sample_rate,
        exporter=exporter,
        endpoint=endpoint if exporter == "zipkin" else None,
        queue_name=tracing_queue_name or None,
        max_span_queue_size=max_span_queue_size,
        num_span_workers=num_span_workers,
        span_batch_interval=float(span_batch_interval),
        num_conns=num_conns,
        log_if_unconfigured=log_if_unconfigured,
        exporter_source=source,
    )


__all__ = [
    "EXPORTERS",
    "TracingClient",
    "make_client",
    "tracing_client_from_config",
]
