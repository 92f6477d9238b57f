"""Trace propagation: baseplate's headers, B3 and W3C as OpenTelemetry ``TextMapPropagator`` s.

Formats (see WIRE.md):

* baseplate HTTP: ``X-Trace``, ``X-Parent``, ``X-Span``, ``X-Sampled``, ``X-Flags``, with the
  0.28 aliases ``X-B3-TraceId``, ``X-B3-ParentSpanId``, ``X-B3-SpanId``, ``X-B3-Sampled``,
  ``X-B3-Flags`` in the same decimal encoding; ``X-Edge-Request`` (base64).
* baseplate Thrift (THeader): ``Trace``, ``Parent``, ``Span``, ``Sampled``, ``Flags``, with the
  0.28 aliases ``B3-TraceId`` ...; ``Edge-Request`` (raw bytes).
* B3 multi (``X-B3-*`` in hex) and single (``b3``), and W3C ``traceparent``.

The package's modules, one job each:

* :mod:`~otel_bridge.propagation.headers`: every header name;
* :mod:`~otel_bridge.propagation.carriers`: getters and setters for header mappings, WSGI
  environs and THeader headers;
* :mod:`~otel_bridge.propagation.wire`: id parsing, the extracted remote context, precedence;
* :mod:`~otel_bridge.propagation.baseplate_headers`: baseplate's HTTP and THeader headers;
* :mod:`~otel_bridge.propagation.b3`: multi- and single-header B3;
* :mod:`~otel_bridge.propagation.composite`: several formats at once;
* :mod:`~otel_bridge.propagation.configuration`: propagators by name and the process-wide
  HTTP and THeader composites.

Everything is importable from this package as well.
"""

from __future__ import annotations

from otel_bridge.context import SAMPLING_UNDECIDED_KEY, UPSTREAM_PARENT_KEY
from otel_bridge.propagation.b3 import B3MultiPropagator, B3SinglePropagator
from otel_bridge.propagation.baseplate_headers import (
    BaseplateHTTPPropagator,
    BaseplateThriftPropagator,
)
from otel_bridge.propagation.carriers import (
    CaseInsensitiveGetter,
    ThriftHeaderGetter,
    ThriftHeaderSetter,
    WSGIEnvironGetter,
    case_insensitive_getter,
    thrift_getter,
    thrift_setter,
    wsgi_getter,
)
from otel_bridge.propagation.composite import CompositePropagator
from otel_bridge.propagation.configuration import (
    DEFAULT_PROPAGATORS,
    configure_propagators,
    http_propagator,
    install_default_propagator,
    make_propagator,
    thrift_propagator,
)
from otel_bridge.propagation.headers import (
    EDGE_REQUEST_HTTP_HEADER,
    EDGE_REQUEST_THRIFT_HEADER,
    USER_AGENT_HEADER,
)
from otel_bridge.propagation.wire import parse_decimal_id

__all__ = [
    "DEFAULT_PROPAGATORS",
    "EDGE_REQUEST_HTTP_HEADER",
    "EDGE_REQUEST_THRIFT_HEADER",
    "SAMPLING_UNDECIDED_KEY",
    "UPSTREAM_PARENT_KEY",
    "USER_AGENT_HEADER",
    "B3MultiPropagator",
    "B3SinglePropagator",
    "BaseplateHTTPPropagator",
    "BaseplateThriftPropagator",
    "CaseInsensitiveGetter",
    "CompositePropagator",
    "ThriftHeaderGetter",
    "ThriftHeaderSetter",
    "WSGIEnvironGetter",
    "case_insensitive_getter",
    "configure_propagators",
    "http_propagator",
    "install_default_propagator",
    "make_propagator",
    "parse_decimal_id",
    "thrift_getter",
    "thrift_propagator",
    "thrift_setter",
    "wsgi_getter",
]
