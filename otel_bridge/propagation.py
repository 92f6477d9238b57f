"""Trace propagation: baseplate's headers, B3 and W3C as OpenTelemetry ``TextMapPropagator`` s.

Formats (see WIRE.md):

* baseplate HTTP: ``X-Trace``, ``X-Parent``, ``X-Span``, ``X-Sampled``, ``X-Flags``, with the
  0.28 aliases ``X-B3-TraceId``, ``X-B3-ParentSpanId``, ``X-B3-SpanId``, ``X-B3-Sampled``,
  ``X-B3-Flags`` in the same decimal encoding. Two differing values for one field make the
  headers ignored.
* baseplate Thrift (THeader): ``Trace``, ``Parent``, ``Span``, ``Sampled``, ``Flags``.
* B3 multi (``X-B3-*`` in hex) and single (``b3``), and W3C ``traceparent``.

Ids are unsigned decimal integers; trace, parent and span must all be present and valid or
the request starts a new trace. ``Sampled`` other than ``1`` (or ``true``), or none at all,
means unsampled, as every baseplate reads it (1.x callers send ``X-Sampled`` only when
sampled); the debug flag still forces sampling. Only B3 without a sampling state leaves the
decision to ``tracing.sample_rate`` (see :data:`SAMPLING_UNDECIDED_KEY`). Baseplate headers
carry both the span id the callee must use (shared-span model) and its parent; the parent
travels in the extracted context under :data:`UPSTREAM_PARENT_KEY`.

When several formats arrive, W3C wins over the others unless they describe the same span.
``X-B3-*`` headers whose trace id is exactly 16 or 32 hex digits and span id exactly 16 are
read as standard (hex) B3; other all-digit values as 0.28 decimal aliases.

Baseplate services read ``X-B3-*`` as decimal aliases of ``X-Trace`` ...: hex values there
contradict the decimal ones and such a service then ignores the trace. So an HTTP composite
that writes baseplate headers reads multi-header B3 but does not write it; ``b3`` and
``traceparent`` still carry the trace to B3 and W3C peers.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context, get_value, set_value
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_bridge.context import SAMPLING_UNDECIDED_KEY, UPSTREAM_PARENT_KEY, edge_request
from otel_bridge.ids import SPAN_ID_LIMIT, TRACE_ID_LIMIT
from otel_bridge.semconv import FLAG_DEBUG, TRACE_STATE_FLAGS, flags_from_trace_state

try:
    from importlib.metadata import entry_points
except ImportError:  # pragma: no cover
    from importlib_metadata import entry_points  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

#: HTTP header carrying the Edge-Request bytes in base64.
EDGE_REQUEST_HTTP_HEADER = "X-Edge-Request"
#: THeader header carrying the raw Edge-Request bytes.
EDGE_REQUEST_THRIFT_HEADER = "Edge-Request"

_MAX_64 = SPAN_ID_LIMIT
_MAX_128 = TRACE_ID_LIMIT
_HEX = frozenset("0123456789abcdefABCDEF")

# Precedence when formats disagree: lower wins.
_RANK_W3C, _RANK_BASEPLATE, _RANK_B3, _RANK_OTHER = 0, 1, 2, 3


# -- carriers ----------------------------------------------------------------------------


class CaseInsensitiveGetter(Getter[Mapping[str, Any]]):
    """Reads headers from a mapping whatever the case of its keys."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for name, candidate in carrier.items():
                if isinstance(name, str) and name.lower() == lowered:
                    value = candidate
                    break
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        if isinstance(value, bytes):
            return [value.decode("latin-1")]
        return [str(item) for item in value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


class WSGIEnvironGetter(Getter[Mapping[str, Any]]):
    """Reads HTTP headers from a WSGI environ (``X-Trace`` is ``HTTP_X_TRACE``)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k[5:].replace("_", "-") for k in carrier if k.startswith("HTTP_")]


class ThriftHeaderGetter(Getter[Mapping[Any, Any]]):
    """Reads THeader headers: a mapping whose keys and values are bytes (or str)."""

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        value = carrier.get(key.encode("ascii"))
        if value is None:
            value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for name, candidate in carrier.items():
                text = name.decode("latin-1") if isinstance(name, bytes) else str(name)
                if text.lower() == lowered:
                    value = candidate
                    break
        if value is None:
            return None
        if isinstance(value, bytes):
            return [value.decode("latin-1")]
        return [str(value)]

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        return [k.decode("latin-1") if isinstance(k, bytes) else str(k) for k in carrier]


class ThriftHeaderSetter(Setter[dict[Any, Any]]):
    """Writes THeader headers as bytes keys and values."""

    def set(self, carrier: dict[Any, Any], key: str, value: str) -> None:
        carrier[key.encode("ascii")] = value.encode("ascii")


thrift_getter = ThriftHeaderGetter()
thrift_setter = ThriftHeaderSetter()
wsgi_getter = WSGIEnvironGetter()
case_insensitive_getter = CaseInsensitiveGetter()


# -- parsing -----------------------------------------------------------------------------


def _first(getter: Getter[Any], carrier: Any, key: str) -> str | None:
    values = getter.get(carrier, key)
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    return value or None


def parse_decimal_id(text: str | None, limit: int = _MAX_64) -> int | None:
    """Parse an unsigned decimal id below ``limit``; None when missing or invalid."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 40:
        return None
    value = int(text)
    return value if value < limit else None


def _parse_hex_id(text: str | None, widths: tuple[int, ...]) -> int | None:
    if text is None or len(text) not in widths or not _HEX.issuperset(text):
        return None
    return int(text, 16)


def _is_hex_b3_id(text: str | None) -> bool:
    return text is not None and len(text) in (16, 32) and _HEX.issuperset(text)


def _is_hex_b3_span_id(text: str | None) -> bool:
    return text is not None and len(text) == 16 and _HEX.issuperset(text)


def _trace_state_for(flags: int) -> TraceState:
    if not flags:
        return TraceState()
    return TraceState([(TRACE_STATE_FLAGS, str(flags))])


def _remote_context(
    context: Context | None,
    trace_id: int,
    span_id: int,
    sampled: bool,
    flags: int,
    upstream_parent: int | None = None,
    undecided: bool = False,
) -> Context:
    debug = bool(flags & FLAG_DEBUG)
    span_context = SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled or debug else TraceFlags.DEFAULT),
        trace_state=_trace_state_for(flags),
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context), context)
    if upstream_parent is not None:
        ctx = set_value(UPSTREAM_PARENT_KEY, upstream_parent, ctx)
    if undecided and not debug:
        ctx = set_value(SAMPLING_UNDECIDED_KEY, True, ctx)
    return ctx


def _span_and_parent(context: Context | None) -> tuple[SpanContext, int]:
    span = trace.get_current_span(context)
    span_context = span.get_span_context()
    parent = getattr(span, "parent", None)
    if isinstance(parent, SpanContext) and parent.is_valid:
        return span_context, parent.span_id
    upstream = get_value(UPSTREAM_PARENT_KEY, context)
    return span_context, upstream if isinstance(upstream, int) else 0


# -- baseplate headers -------------------------------------------------------------------


class _BaseplateHeadersPropagator(TextMapPropagator):
    """Baseplate's decimal trace headers (shared by the HTTP and Thrift flavours)."""

    rank = _RANK_BASEPLATE
    #: field -> header names read, the first being the one written.
    header_names: dict[str, tuple[str, ...]]

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        values: dict[str, str | None] = {}
        for field_name, names in self.header_names.items():
            found: str | None = None
            for name in names:
                value = _first(getter, carrier, name)
                if value is None:
                    continue
                if found is None:
                    found = value
                elif not _same_id(found, value):
                    return context  # conflicting aliases: the headers are not trusted
            values[field_name] = found

        trace_text, span_text = values["trace"], values["span"]
        if (
            _is_hex_b3_id(trace_text)
            and _is_hex_b3_span_id(span_text)
            and not self._primary_present(getter, carrier)
        ):
            return context  # standard hex B3, read by the B3 propagator
        trace_id = parse_decimal_id(trace_text, _MAX_128)
        span_id = parse_decimal_id(span_text)
        parent_id = parse_decimal_id(values["parent"])
        if not trace_id or not span_id or parent_id is None:
            return context
        flags = parse_decimal_id(values["flags"]) or 0
        sampled_text = values["sampled"]
        sampled = sampled_text in ("1", "true", "True")
        return _remote_context(context, trace_id, span_id, sampled, flags, parent_id)

    def _primary_present(self, getter: Getter[Any], carrier: Any) -> bool:
        return _first(getter, carrier, self.header_names["trace"][0]) is not None

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context, parent_id = _span_and_parent(context)
        if not span_context.is_valid:
            return
        names = self.header_names
        setter.set(carrier, names["trace"][0], str(span_context.trace_id))
        setter.set(carrier, names["parent"][0], str(parent_id))
        setter.set(carrier, names["span"][0], str(span_context.span_id))
        setter.set(carrier, names["sampled"][0], "1" if span_context.trace_flags.sampled else "0")
        flags = flags_from_trace_state(span_context.trace_state)
        if flags:
            setter.set(carrier, names["flags"][0], str(flags))
        self._inject_edge_request(carrier, context, setter)

    def _inject_edge_request(
        self, carrier: CarrierT, context: Context | None, setter: Setter[CarrierT]
    ) -> None:
        """Forward the request's Edge-Request header (HTTP only; Thrift clients send bytes)."""

    @property
    def fields(self) -> set[str]:
        return {names[0] for names in self.header_names.values()} | self.extra_fields

    extra_fields: frozenset[str] = frozenset()


def _same_id(first: str, second: str) -> bool:
    if first == second:
        return True
    as_decimal = parse_decimal_id(first, _MAX_128)
    return as_decimal is not None and (
        parse_decimal_id(second, _MAX_128) == as_decimal
        or _parse_hex_id(second, (16, 32)) == as_decimal
    )


class BaseplateHTTPPropagator(_BaseplateHeadersPropagator):
    """Baseplate HTTP headers (``X-Trace`` ...) with the 0.28 ``X-B3-*`` decimal aliases.

    Inject also writes ``X-Edge-Request`` (base64 of the request's Edge-Request bytes, empty
    when there is none: 1.x services that trust headers fail requests without it).
    """

    def _inject_edge_request(
        self, carrier: CarrierT, context: Context | None, setter: Setter[CarrierT]
    ) -> None:
        header = edge_request(context)
        setter.set(carrier, EDGE_REQUEST_HTTP_HEADER, base64.b64encode(header or b"").decode())

    extra_fields = frozenset({EDGE_REQUEST_HTTP_HEADER})

    header_names = {
        "trace": ("X-Trace", "X-B3-TraceId"),
        "parent": ("X-Parent", "X-B3-ParentSpanId"),
        "span": ("X-Span", "X-B3-SpanId"),
        "sampled": ("X-Sampled", "X-B3-Sampled"),
        "flags": ("X-Flags", "X-B3-Flags"),
    }


#: The 0.28 alias header names (lower case) that baseplate services read as baseplate fields.
_HTTP_ALIASES = frozenset(
    name.lower() for names in BaseplateHTTPPropagator.header_names.values() for name in names[1:]
)


class BaseplateThriftPropagator(_BaseplateHeadersPropagator):
    """Baseplate THeader headers (``Trace``, ``Parent``, ``Span``, ``Sampled``, ``Flags``)."""

    header_names = {
        "trace": ("Trace",),
        "parent": ("Parent",),
        "span": ("Span",),
        "sampled": ("Sampled",),
        "flags": ("Flags",),
    }


# -- B3 ----------------------------------------------------------------------------------


def _b3_trace_hex(trace_id: int) -> str:
    return format(trace_id, "016x") if trace_id < _MAX_64 else format(trace_id, "032x")


class B3MultiPropagator(TextMapPropagator):
    """Standard multi-header B3 (hex ids) that keeps the debug flag and 64-bit trace ids."""

    rank = _RANK_B3

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        trace_id = _parse_hex_id(_first(getter, carrier, "X-B3-TraceId"), (16, 32))
        span_id = _parse_hex_id(_first(getter, carrier, "X-B3-SpanId"), (16,))
        if not trace_id or not span_id:
            return context
        sampled_text = _first(getter, carrier, "X-B3-Sampled")
        flags = FLAG_DEBUG if _first(getter, carrier, "X-B3-Flags") == "1" else 0
        if sampled_text == "d":
            flags = FLAG_DEBUG
        sampled = sampled_text in ("1", "true", "d")
        # X-B3-ParentSpanId is informational: the extracted span is the caller's own span.
        # No X-B3-Sampled: B3's "deferred", the receiver decides.
        return _remote_context(
            context, trace_id, span_id, sampled, flags, undecided=sampled_text is None
        )

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context, parent_id = _span_and_parent(context)
        if not span_context.is_valid:
            return
        setter.set(carrier, "X-B3-TraceId", _b3_trace_hex(span_context.trace_id))
        setter.set(carrier, "X-B3-SpanId", format(span_context.span_id, "016x"))
        if parent_id:
            setter.set(carrier, "X-B3-ParentSpanId", format(parent_id, "016x"))
        if flags_from_trace_state(span_context.trace_state) & FLAG_DEBUG:
            setter.set(carrier, "X-B3-Flags", "1")
        else:
            setter.set(carrier, "X-B3-Sampled", "1" if span_context.trace_flags.sampled else "0")

    @property
    def fields(self) -> set[str]:
        return {"X-B3-TraceId", "X-B3-SpanId", "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags"}


class B3SinglePropagator(TextMapPropagator):
    """Single-header B3 (``b3: trace-span-sampled-parent``) keeping debug and 64-bit ids."""

    rank = _RANK_B3

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        text = _first(getter, carrier, "b3")
        if not text:
            return context
        parts = text.split("-")
        if len(parts) < 2 or len(parts) > 4:
            return context
        trace_id = _parse_hex_id(parts[0], (16, 32))
        span_id = _parse_hex_id(parts[1], (16,))
        if not trace_id or not span_id:
            return context
        sampled_text = parts[2] if len(parts) > 2 else None
        if sampled_text not in (None, "0", "1", "d"):
            return context
        flags = FLAG_DEBUG if sampled_text == "d" else 0
        sampled = sampled_text in ("1", "d")
        return _remote_context(
            context, trace_id, span_id, sampled, flags, undecided=sampled_text is None
        )

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context, parent_id = _span_and_parent(context)
        if not span_context.is_valid:
            return
        if flags_from_trace_state(span_context.trace_state) & FLAG_DEBUG:
            decision = "d"
        else:
            decision = "1" if span_context.trace_flags.sampled else "0"
        value = f"{_b3_trace_hex(span_context.trace_id)}-{span_context.span_id:016x}-{decision}"
        if parent_id:
            value += f"-{parent_id:016x}"
        setter.set(carrier, "b3", value)

    @property
    def fields(self) -> set[str]:
        return {"b3"}


# -- composition -------------------------------------------------------------------------


def _rank(propagator: TextMapPropagator) -> int:
    if isinstance(propagator, TraceContextTextMapPropagator):
        return _RANK_W3C
    return int(getattr(propagator, "rank", _RANK_OTHER))


def _injectors(propagators: Sequence[TextMapPropagator]) -> list[TextMapPropagator]:
    """The propagators a composite of ``propagators`` injects with.

    Next to baseplate HTTP headers, those that would write the 0.28 alias names
    (``X-B3-TraceId`` ...: multi-header B3, in hex) are left out: baseplate services read
    those names as the decimal baseplate fields, and a differing value makes them ignore the
    trace headers altogether. Such propagators still take part in extract.
    """
    if not any(isinstance(p, BaseplateHTTPPropagator) for p in propagators):
        return list(propagators)
    return [
        propagator
        for propagator in propagators
        if isinstance(propagator, BaseplateHTTPPropagator)
        or not _HTTP_ALIASES.intersection(name.lower() for name in propagator.fields)
    ]


class CompositePropagator(TextMapPropagator):
    """Several formats at once: inject writes all (but hex multi-header B3 next to baseplate
    HTTP headers, see :func:`_injectors`); extract picks one winner.

    W3C ``traceparent`` wins when formats disagree; when it describes the same span as
    baseplate headers, the baseplate reading is kept (it also carries the upstream parent for
    the shared-span model). Propagators that carry no span (baggage) always apply.
    """

    def __init__(self, propagators: Sequence[TextMapPropagator]):
        self.propagators = list(propagators)
        #: The propagators whose headers :meth:`inject` writes (see :func:`_injectors`).
        self.injectors = _injectors(self.propagators)

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        before = trace.get_current_span(context).get_span_context()
        found: list[tuple[int, Context, SpanContext]] = []
        others: list[TextMapPropagator] = []
        for propagator in self.propagators:
            ctx = propagator.extract(carrier, context, getter)
            span_context = trace.get_current_span(ctx).get_span_context()
            if span_context.is_valid and span_context is not before:
                found.append((_rank(propagator), ctx, span_context))
            else:
                others.append(propagator)
        result = context if context is not None else Context()
        if found:
            found.sort(key=lambda item: item[0])
            rank, result, winner = found[0]
            if rank == _RANK_W3C:
                for other_rank, ctx, span_context in found[1:]:
                    if (
                        other_rank == _RANK_BASEPLATE
                        and span_context.trace_id == winner.trace_id
                        and span_context.span_id == winner.span_id
                    ):
                        result = ctx
                        break
        for propagator in others:
            result = propagator.extract(carrier, result, getter)
        return result

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        for propagator in self.injectors:
            propagator.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        names: set[str] = set()
        for propagator in self.injectors:
            names |= set(propagator.fields)
        return names


def _named(name: str, thrift: bool) -> TextMapPropagator:
    name = name.strip().lower()
    if name == "baseplate":
        return BaseplateThriftPropagator() if thrift else BaseplateHTTPPropagator()
    if name == "b3multi":
        return B3MultiPropagator()
    if name == "b3":
        return B3SinglePropagator()
    if name == "tracecontext":
        return TraceContextTextMapPropagator()
    if name == "baggage":
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        return W3CBaggagePropagator()
    for entry_point in entry_points(group="opentelemetry_propagator", name=name):
        return entry_point.load()()
    raise ValueError(
        f"unknown propagator {name!r}: expected baseplate, tracecontext, b3, b3multi, baggage "
        "or the name of an installed opentelemetry_propagator entry point"
    )


DEFAULT_PROPAGATORS = ("baseplate", "tracecontext", "b3multi", "b3")
_http: CompositePropagator
_thrift: CompositePropagator


def make_propagator(names: Iterable[str], thrift: bool = False) -> CompositePropagator:
    """Build a composite from names (``baseplate``, ``tracecontext``, ``b3``, ``b3multi``,
    ``baggage``); ``thrift`` selects the THeader flavour of the baseplate headers."""
    return CompositePropagator(
        [_named(name, thrift) for name in names if name.strip() and name.strip() != "none"]
    )


def configure_propagators(names: Iterable[str] | str | None = None) -> None:
    """Choose the formats baseplate reads and writes (``tracing.propagators``).

    ``None`` means ``OTEL_PROPAGATORS`` when set, else :data:`DEFAULT_PROPAGATORS`. The HTTP
    composite also becomes OpenTelemetry's global propagator, so vendor-instrumented clients
    send baseplate headers too.
    """
    global _http, _thrift
    if names is None:
        _http, _thrift = _from_environment(thrift=False), _from_environment(thrift=True)
    else:
        if isinstance(names, str):
            names = names.split(",")
        selected = [name for name in (n.strip() for n in names) if name and name != "none"]
        _http = make_propagator(selected)
        _thrift = make_propagator(selected, thrift=True)
    propagate.set_global_textmap(_http)


def install_default_propagator() -> None:
    """Make the configured HTTP composite the global propagator (done with the provider)."""
    propagate.set_global_textmap(_http)


def http_propagator() -> CompositePropagator:
    """The composite used for HTTP headers."""
    return _http


def thrift_propagator() -> CompositePropagator:
    """The composite used for THeader headers."""
    return _thrift


def _from_environment(thrift: bool) -> CompositePropagator:
    names = os.environ.get("OTEL_PROPAGATORS")
    try:
        return make_propagator(names.split(",") if names else DEFAULT_PROPAGATORS, thrift)
    except Exception as exc:
        logger.warning("OTEL_PROPAGATORS=%r ignored: %s", names, exc)
        return make_propagator(DEFAULT_PROPAGATORS, thrift)


_http = _from_environment(thrift=False)
_thrift = _from_environment(thrift=True)

__all__ = [
    "SAMPLING_UNDECIDED_KEY",
    "UPSTREAM_PARENT_KEY",
    "B3MultiPropagator",
    "B3SinglePropagator",
    "BaseplateHTTPPropagator",
    "BaseplateThriftPropagator",
    "CaseInsensitiveGetter",
    "CompositePropagator",
    "ThriftHeaderGetter",
    "ThriftHeaderSetter",
    "WSGIEnvironGetter",
    "configure_propagators",
    "http_propagator",
    "make_propagator",
    "parse_decimal_id",
    "thrift_propagator",
]
