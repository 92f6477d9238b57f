"""Which formats this process reads and writes: propagators by name, and the process-wide pair.

Names (``tracing.propagators``, ``OTEL_PROPAGATORS``): ``baseplate`` (the HTTP or THeader
flavour of baseplate's headers, as the composite is for), ``tracecontext`` (W3C), ``b3``
and ``b3multi`` (this package's B3, which keeps the debug flag and 64-bit ids), ``baggage``,
``none``, or the name of any installed ``opentelemetry_propagator`` entry point. This package
registers its own as ``baseplate``, ``baseplate_thrift``, ``baseplate_b3`` and
``baseplate_b3multi``, so that a plain OpenTelemetry process asking for ``b3`` still gets
OpenTelemetry's.

The composites in force (:func:`http_propagator`, :func:`thrift_propagator`) are
process-wide by nature, as OpenTelemetry's global textmap is: one object of this module
holds both, :func:`configure_propagators` replaces both at once, and the HTTP one is also
installed as OpenTelemetry's global propagator so that vendor-instrumented clients send the
same headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points

from opentelemetry import propagate
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_bridge import environment
from otel_bridge.environment import OTEL_PROPAGATORS
from otel_bridge.propagation.b3 import B3MultiPropagator, B3SinglePropagator
from otel_bridge.propagation.baseplate_headers import (
    BaseplateHTTPPropagator,
    BaseplateThriftPropagator,
)
from otel_bridge.propagation.composite import CompositePropagator

logger = logging.getLogger(__name__)

#: The formats used when neither ``tracing.propagators`` nor ``OTEL_PROPAGATORS`` says.
DEFAULT_PROPAGATORS = ("baseplate", "tracecontext", "b3multi", "b3")
#: Entry point group OpenTelemetry loads ``OTEL_PROPAGATORS`` names from.
ENTRY_POINT_GROUP = "opentelemetry_propagator"
#: The name selecting no propagator at all.
_NONE = "none"


def _baggage() -> TextMapPropagator:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    return W3CBaggagePropagator()


# Names resolved here before any entry point: ``b3`` and ``b3multi`` mean this package's B3
# in baseplate's configuration, whatever OpenTelemetry's entry points of that name load.
_BUILT_IN: dict[str, Callable[[], TextMapPropagator]] = {
    "tracecontext": TraceContextTextMapPropagator,
    "b3": B3SinglePropagator,
    "baseplate_b3": B3SinglePropagator,
    "b3multi": B3MultiPropagator,
    "baseplate_b3multi": B3MultiPropagator,
    "baggage": _baggage,
}


def _named(name: str, thrift: bool) -> TextMapPropagator:
    name = name.strip().lower()
    if name == "baseplate":
        return BaseplateThriftPropagator() if thrift else BaseplateHTTPPropagator()
    built_in = _BUILT_IN.get(name)
    if built_in is not None:
        return built_in()
    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name=name):
        propagator: TextMapPropagator = entry_point.load()()
        return propagator
    raise ValueError(
        f"unknown propagator {name!r}: expected baseplate, tracecontext, b3, b3multi, baggage "
        f"or the name of an installed {ENTRY_POINT_GROUP} entry point"
    )


def _selected(names: Iterable[str]) -> list[str]:
    return [name for name in (n.strip() for n in names) if name and name.lower() != _NONE]


def make_propagator(names: Iterable[str], thrift: bool = False) -> CompositePropagator:
    """Build a composite from names (``baseplate``, ``tracecontext``, ``b3``, ``b3multi``,
    ``baggage``, an entry point's name); ``thrift`` selects the THeader flavour of the
    baseplate headers. Unknown names raise :class:`ValueError`."""
    return CompositePropagator([_named(name, thrift) for name in _selected(names)])


class _ProcessPropagators:
    """The HTTP and THeader composites this process uses (one instance: :data:`_PROCESS`)."""

    __slots__ = ("http", "thrift")

    def __init__(self, http: CompositePropagator, thrift: CompositePropagator) -> None:
        self.http = http
        self.thrift = thrift

    @classmethod
    def from_names(cls, names: Iterable[str]) -> _ProcessPropagators:
        names = list(names)
        return cls(make_propagator(names), make_propagator(names, thrift=True))

    @classmethod
    def from_environment(cls) -> _ProcessPropagators:
        """``OTEL_PROPAGATORS`` when set (and valid), else :data:`DEFAULT_PROPAGATORS`."""
        configured = environment.get(OTEL_PROPAGATORS)
        if configured is None:
            return cls.from_names(DEFAULT_PROPAGATORS)
        try:
            return cls.from_names(configured.split(","))
        except Exception as exc:
            logger.warning("%s=%r ignored: %s", OTEL_PROPAGATORS, configured, exc)
            return cls.from_names(DEFAULT_PROPAGATORS)


#: The process's composites. Replaced as a whole by :func:`configure_propagators`.
_PROCESS = _ProcessPropagators.from_environment()


def configure_propagators(names: Iterable[str] | str | None = None) -> None:
    """Choose the formats baseplate reads and writes (``tracing.propagators``).

    ``None`` means ``OTEL_PROPAGATORS`` when set, else :data:`DEFAULT_PROPAGATORS`. The HTTP
    composite also becomes OpenTelemetry's global propagator, so vendor-instrumented clients
    send baseplate headers too. This is process-wide, like OpenTelemetry's global textmap.
    """
    global _PROCESS
    if names is None:
        _PROCESS = _ProcessPropagators.from_environment()
    else:
        if isinstance(names, str):
            names = names.split(",")
        _PROCESS = _ProcessPropagators.from_names(names)
    propagate.set_global_textmap(_PROCESS.http)


def install_default_propagator() -> None:
    """Make the configured HTTP composite the global propagator (done with the provider)."""
    propagate.set_global_textmap(_PROCESS.http)


def http_propagator() -> CompositePropagator:
    """The composite used for HTTP headers (process-wide)."""
    return _PROCESS.http


def thrift_propagator() -> CompositePropagator:
    """The composite used for THeader headers (process-wide)."""
    return _PROCESS.thrift


__all__ = [
    "DEFAULT_PROPAGATORS",
    "ENTRY_POINT_GROUP",
    "configure_propagators",
    "http_propagator",
    "install_default_propagator",
    "make_propagator",
    "thrift_propagator",
]
