"""Several formats at once: which one wins on extract, which ones write on inject.

When several formats arrive, W3C wins over the others unless they describe the same span as
baseplate headers. Baseplate headers carry only the lower 64 bits of a wider trace id: a
W3C or B3 reading of the same span whose trace id has those lower bits gives the full id.
``X-B3-*`` headers whose trace id is exactly 16 or 32 hex digits and span id exactly 16 are
read as standard (hex) B3; other all-digit values as 0.28 decimal aliases.

Baseplate services read ``X-B3-*`` as decimal aliases of ``X-Trace`` ...: hex values there
contradict the decimal ones and such a service then ignores the trace. So an HTTP composite
that writes baseplate headers reads multi-header B3 but does not write it; ``b3`` and
``traceparent`` still carry the trace to B3 and W3C peers.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_bridge.propagation.baseplate_headers import BaseplateHTTPPropagator
from otel_bridge.propagation.headers import HTTP_ALIASES
from otel_bridge.propagation.wire import (
    RANK_BASEPLATE,
    RANK_OTHER,
    RANK_W3C,
    is_legacy_form_of,
    with_trace_id,
)


def _rank(propagator: TextMapPropagator) -> int:
    if isinstance(propagator, TraceContextTextMapPropagator):
        return RANK_W3C
    return int(getattr(propagator, "rank", RANK_OTHER))


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
        or not HTTP_ALIASES.intersection(name.lower() for name in propagator.fields)
    ]


def _reconciled(found: list[tuple[int, Context, SpanContext]]) -> Context:
    """The extracted context to use, from the readings of several formats (best first).

    The best reading wins, but a baseplate reading of the same span is kept (it carries the
    upstream parent), and takes the full trace id when another format has the 128-bit id
    whose lower 64 bits it carries.
    """
    rank, result, winner = found[0]
    baseplate = next((item for item in found if item[0] == RANK_BASEPLATE), None)
    if baseplate is None:
        return result
    _, baseplate_context, baseplate_span = baseplate
    if rank not in (RANK_W3C, RANK_BASEPLATE):
        return result
    if rank == RANK_W3C and not _same_span(baseplate_span, winner):
        return result
    widest = baseplate_span.trace_id
    for _, _, span_context in found:
        if _same_span(baseplate_span, span_context) and span_context.trace_id > widest:
            widest = span_context.trace_id
    if widest == baseplate_span.trace_id:
        return baseplate_context
    return with_trace_id(baseplate_context, widest)


def _same_span(baseplate: SpanContext, other: SpanContext) -> bool:
    """Whether a baseplate reading and another format's name the same span."""
    return baseplate.span_id == other.span_id and is_legacy_form_of(
        baseplate.trace_id, other.trace_id
    )


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
            result = _reconciled(found)
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


__all__ = ["CompositePropagator"]
