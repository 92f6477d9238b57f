"""Every use of a private OpenTelemetry name, in one place.

The OpenTelemetry API and SDK do not offer everything the bridge needs in public form: a
detach that does not log, the "suppress instrumentation" context key, the processors a
provider already has, renaming the resource of a provider that already made tracers. Each of
those reaches into a private name here and nowhere else; ``PRIVATE_NAMES`` lists them and a
test checks every one against the installed SDK, so an upgrade that moves one fails loudly
in one place instead of quietly changing behaviour.

One more is a shortcut on the request path: :func:`start_decided_span` makes the SDK span of
a baseplate child span, whose ids and sampling decision are known before it starts, without
the SDK tracer's generic steps (reading the parent out of a context, asking the sampler,
generating ids), which cost about as much again as the span itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import context as _context
from opentelemetry import trace as _trace
from opentelemetry.context import Context
from opentelemetry.sdk import trace as _sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

#: ``(module or class, attribute)`` pairs of the private names used below.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("opentelemetry.context", "_RUNTIME_CONTEXT"),
    ("opentelemetry.context", "_SUPPRESS_INSTRUMENTATION_KEY"),
    ("opentelemetry.sdk.trace.TracerProvider", "_active_span_processor"),
    ("opentelemetry.sdk.trace.SynchronousMultiSpanProcessor", "_span_processors"),
    ("opentelemetry.sdk.trace.TracerProvider", "_update_resource"),
    ("opentelemetry.sdk.trace", "_Span"),
    ("opentelemetry.sdk.trace.Tracer", "_is_enabled"),
    ("opentelemetry.sdk.trace.Tracer", "_span_limits"),
    ("opentelemetry.sdk.trace.Tracer", "_instrumentation_scope"),
    ("opentelemetry.sdk.trace.Tracer", "_tracer_metrics"),
    ("opentelemetry.sdk.trace.ReadableSpan", "_events"),
)

#: The API's context key that makes instrumentations create no spans.
SUPPRESS_INSTRUMENTATION_KEY: str = _context._SUPPRESS_INSTRUMENTATION_KEY

_runtime_context: Any = _context._RUNTIME_CONTEXT


def detach(token: object) -> None:
    """Reset the runtime context to ``token`` (raising, not logging, when that fails).

    ``opentelemetry.context.detach`` logs an error for a token made in another context;
    for the bridge that is a normal event (a response finished on another greenlet).
    """
    _runtime_context.detach(token)


def has_events(span: ReadableSpan) -> bool:
    """Whether the finished ``span`` has events, without copying them (``span.events``
    makes a tuple of them on every call)."""
    events = getattr(span, "_events", None)
    if events is None:
        return bool(span.events)
    return bool(events)


def span_processors(provider: TracerProvider) -> Sequence[SpanProcessor]:
    """The span processors ``provider`` runs, in order (empty if that cannot be told)."""
    active = getattr(provider, "_active_span_processor", None)
    return tuple(getattr(active, "_span_processors", ()))


def update_resource(provider: TracerProvider, resource: Resource) -> None:
    """Merge ``resource`` into the provider's resource, for tracers already made too."""
    provider._update_resource(resource)


_SpanClass: Any = getattr(_sdk_trace, "_Span", None)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_RANDOM_TRACE_ID = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))


def start_decided_span(
    tracer: _trace.Tracer,
    name: str,
    kind: SpanKind,
    parent: SpanContext | None,
    parent_context: Context,
    span_id: int,
    sampled: bool,
    attributes: Attributes = None,
    *,
    trace_id: int | None = None,
    trace_state: TraceState | None = None,
) -> _trace.Span | None:
    """Start, on an SDK ``tracer``, the span ``span_id`` under ``parent`` (the valid span
    context current in ``parent_context``, or None for a new trace ``trace_id``), recorded,
    sampled or not as ``sampled`` says, with ``trace_state`` (the parent's by default).

    What ``tracer.start_span`` makes when its id generator gives these ids and its sampler
    returns that decision and trace state with no attributes of its own (as baseplate's do
    for a baseplate span), without asking either; exceptions are neither recorded nor set as
    status. None when ``tracer`` is not an enabled SDK tracer of this SDK's make: the
    caller then starts the span the usual way.
    """
    if _SpanClass is None or type(tracer) is not Tracer:
        return None
    try:
        if not tracer._is_enabled():
            return None
        if parent is not None:
            trace_id = parent.trace_id
            random_trace_id = bool(parent.trace_flags & _RANDOM_TRACE_ID)
            if trace_state is None:
                trace_state = parent.trace_state
        else:
            random_trace_id = bool(_RANDOM_TRACE_ID) and tracer.id_generator.is_trace_id_random()
        if trace_id is None:
            return None
        flags = _SAMPLED if sampled else _NOT_SAMPLED
        if random_trace_id:
            flags = TraceFlags(flags | _RANDOM_TRACE_ID)
        context = SpanContext(
            trace_id,
            span_id,
            is_remote=False,
            trace_flags=flags,
            trace_state=trace_state if trace_state is not None else DEFAULT_TRACE_STATE,
        )
        decision = Decision.RECORD_AND_SAMPLE if sampled else Decision.RECORD_ONLY
        record_end_metrics = tracer._tracer_metrics.start_span(parent, decision)
        span = _SpanClass(
            name=name,
            context=context,
            parent=parent,
            sampler=tracer.sampler,
            resource=tracer.resource,
            attributes=attributes,
            span_processor=tracer.span_processor,
            kind=kind,
            links=(),
            instrumentation_info=tracer.instrumentation_info,
            record_exception=False,
            set_status_on_exception=False,
            limits=tracer._span_limits,
            instrumentation_scope=tracer._instrumentation_scope,
            record_end_metrics=record_end_metrics,
        )
    except (AttributeError, TypeError):  # another SDK release's internals: the usual way
        return None
    span.start(parent_context=parent_context)
    return span
