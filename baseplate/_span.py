"""Spans, trace info, observers and context factories: the span model under the core.

Every :class:`ServerSpan`, :class:`Span` and :class:`LocalSpan` wraps exactly one
OpenTelemetry SDK span. A span's ids exist as soon as the span object does; the OTel span is
started by :meth:`Span.start` with exactly those ids, and while it runs it is the current OTel
span, so spans from the plain OTel API (vendor auto-instrumentation) nest under it.

Observers keep their documented callbacks. An observer that raises is logged and skipped; it
never breaks the request.

This module is what the diagnostics, the context clients, the framework integrations and
the secrets store build on; it imports none of them. The documented names are importable
from :mod:`baseplate.core`.
"""

from __future__ import annotations

import copy
import logging
from types import TracebackType
from typing import Any, NamedTuple, Optional

from opentelemetry import trace
from opentelemetry.context import Context, attach
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from otel_bridge import provider as _provider
from otel_bridge._sdk import start_decided_span
from otel_bridge.context import (
    SAMPLING_UNDECIDED_KEY,
    UPSTREAM_PARENT_KEY,
    ExcInfo,
    deactivate,
    end_with_exception,
)
from otel_bridge.ids import (
    SPAN_ID_LIMIT,
    TRACE_ID_LIMIT,
    SpanPreset,
    new_id,
    reset_preset,
    set_preset,
)
from otel_bridge.sampling import BaseplateSampler
from otel_bridge.semconv import (
    ATTR_COMPONENT,
    ATTR_LOG_PAYLOAD,
    ATTR_LOG_PAYLOAD_TYPE,
    ATTR_SHARED_SPAN,
    EVENT_ERROR_OBJECT,
    TRACE_STATE_FLAGS,
    flags_of,
)

logger = logging.getLogger(__name__)

_SIMPLE_TYPES = (str, bool, int, float)


# -- observers ---------------------------------------------------------------------------


class BaseplateObserver:
    """Interface for an observer that watches Baseplate."""

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        """Called when a server span is created (a new request begins)."""
        raise NotImplementedError


class SpanObserver:
    """Interface for an observer that watches a span."""

    def on_start(self) -> None:
        """Called when the observed span is started."""

    def on_set_tag(self, key: str, value: Any) -> None:
        """Called when a tag is set on the observed span."""

    def on_log(self, name: str, payload: Any) -> None:
        """Called when a log entry is added to the span."""

    def on_finish(self, exc_info: ExcInfo | None) -> None:
        """Called when the observed span is finished (``exc_info`` if it ended in error)."""

    def on_child_span_created(self, span: Span) -> None:
        """Called when a child span is created."""


class ServerSpanObserver(SpanObserver):
    """Interface for an observer that watches the server span."""


def notify_observer(observer: Any, method: str, *args: Any) -> None:
    """Call ``observer.method(*args)``; an observer that raises is logged and skipped."""
    try:
        getattr(observer, method)(*args)
    except Exception:
        logger.exception("observer %r failed in %s; continuing", observer, method)


# -- trace info --------------------------------------------------------------------------


class TraceInfo(NamedTuple):
    """Trace context for a span: the ids and sampling of a request from upstream."""

    trace_id: int
    parent_id: Optional[int]
    span_id: int
    sampled: Optional[bool]
    flags: Optional[int]

    @classmethod
    def new(cls) -> TraceInfo:
        """Make a TraceInfo for a brand new trace (sampling left to ``tracing.sample_rate``)."""
        trace_id = new_id()
        return cls(trace_id=trace_id, parent_id=None, span_id=trace_id, sampled=None, flags=None)

    @classmethod
    def from_upstream(
        cls,
        trace_id: int,
        parent_id: int,
        span_id: int,
        sampled: bool | None,
        flags: int | None,
    ) -> TraceInfo:
        """Build a TraceInfo from individual headers.

        :param trace_id: The id of the trace.
        :param parent_id: The id of the parent span (0 for a root span; it is required, as
            upstream headers always carry one).
        :param span_id: The id of this span within the tree.
        :param sampled: Whether the request is sampled (None: the caller did not decide).
        :param flags: Bit flags passed downstream (bit 1: debug, which forces sampling).
        :raises ValueError: if any of the values are inappropriate (missing, wrong type or
            out of range: trace ids up to 128 bits, span and parent ids up to 64 bits, trace
            and span ids non-zero).
        """
        _check_id("trace_id", trace_id, TRACE_ID_LIMIT)
        _check_id("span_id", span_id, SPAN_ID_LIMIT)
        _check_id("parent_id", parent_id, SPAN_ID_LIMIT, allow_zero=True)
        if sampled is not None and not isinstance(sampled, bool):
            raise ValueError(f"invalid sampled value {sampled!r}: expected a bool or None")
        if flags is not None:
            _check_id("flags", flags, SPAN_ID_LIMIT, allow_zero=True)
        return cls(trace_id, parent_id, span_id, sampled, flags)


def _check_id(name: str, value: Any, limit: int, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"invalid {name} {value!r}: expected an int")
    if not (0 if allow_zero else 1) <= value < limit:
        raise ValueError(f"invalid {name} {value!r}: out of range")


class _ChildOfUpstream(TraceInfo):
    """Trace info whose span id is this service's own (W3C/B3 callers, vendor parents)."""

    __slots__ = ()


def trace_info_from_context(ctx: Context) -> TraceInfo | None:
    """The upstream trace info in an OTel context returned by a propagator's ``extract``.

    Baseplate headers give the span id this service must use (shared-span model); other
    formats (W3C, B3) name the caller's span, which becomes the parent of a new span id.
    """
    span_context = trace.get_current_span(ctx).get_span_context()
    if not span_context.is_valid or not span_context.is_remote:
        return None
    sampled: bool | None = bool(span_context.trace_flags.sampled)
    if ctx.get(SAMPLING_UNDECIDED_KEY):
        sampled = None
    flags = flags_of(span_context) or None
    upstream_parent = ctx.get(UPSTREAM_PARENT_KEY)
    trace_id = span_context.trace_id
    if isinstance(upstream_parent, int):
        return TraceInfo(trace_id, upstream_parent, span_context.span_id, sampled, flags)
    return _ChildOfUpstream(trace_id, span_context.span_id, new_id(), sampled, flags)


# -- spans -------------------------------------------------------------------------------


def _attribute_value(value: Any) -> Any:
    if type(value) in _SIMPLE_TYPES:
        return value
    if isinstance(value, _SIMPLE_TYPES):  # subclasses (enums, str subclasses)
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _trace_state(flags: int | None) -> TraceState | None:
    if not flags:
        return None
    return TraceState([(TRACE_STATE_FLAGS, str(flags))])


class Span:
    """A span represents a single RPC within a system (an OTel ``CLIENT`` span)."""

    kind = SpanKind.CLIENT

    def __init__(
        self,
        trace_id: int,
        parent_id: int | None,
        span_id: int,
        sampled: bool | None,
        flags: int | None,
        name: str,
        context: Any,
        *,
        tracer: trace.Tracer | None = None,
        parent: Span | None = None,
    ):
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.id = span_id
        self.sampled = sampled
        self.flags = flags
        self.name = name
        self.context = context
        self.observers: list[SpanObserver] = []
        #: The OpenTelemetry SDK span, once started.
        self.otel_span: trace.Span | None = None
        self._tracer = tracer
        self._parent = parent
        self._pending: dict[str, Any] | None = None
        self._token: object = None
        # the context this span is current in: its children's parent context
        self._otel_context: Context | None = None
        self._finished = False

    # observers
    def register(self, observer: SpanObserver) -> None:
        """Register an observer to receive events from this span."""
        self.observers.append(observer)

    # lifecycle
    def start(self) -> None:
        """Record the start of the span: start its OTel span and make it current."""
        if self.otel_span is not None:
            return
        tracer = self._tracer or _provider.baseplate_tracer(_provider.ensure_provider())
        attributes = self._initial_attributes()
        span = self._start_decided(tracer, attributes)
        if span is None:
            token = set_preset(self._preset())
            try:
                span = tracer.start_span(
                    self.name,
                    context=self._parent_context(),
                    kind=self.kind,
                    attributes=attributes,
                    record_exception=False,
                    set_status_on_exception=False,
                )
            finally:
                reset_preset(token)
        self.otel_span = span
        self._otel_context = trace.set_span_in_context(span)
        self._token = attach(self._otel_context)
        for observer in self.observers:
            notify_observer(observer, "on_start")

    def _start_decided(
        self, tracer: trace.Tracer, attributes: dict[str, Any] | None
    ) -> trace.Span | None:
        # A child of a started baseplate span: ids, sampling and trace state are the
        # parent's, known here, so the SDK span is made without the sampler (see
        # otel_bridge._sdk.start_decided_span); None where that shortcut does not apply.
        parent = self._parent
        if parent is None or self.sampled is None:
            return None
        parent_span, parent_context = parent.otel_span, parent._otel_context
        if parent_span is None or parent_context is None:
            return None
        return start_decided_span(
            tracer,
            self.name,
            self.kind,
            parent_span.get_span_context(),
            parent_context,
            self.id,
            self.sampled,
            attributes,
        )

    def _preset(self) -> SpanPreset:
        parent = self._parent
        if parent is not None and parent.otel_span is not None and self.sampled is not None:
            # the parent's decision and trace state, known here: the sampler need not look
            return SpanPreset(
                span_id=self.id,
                sampled=self.sampled,
                trace_state=parent.otel_span.get_span_context().trace_state,
            )
        return SpanPreset(span_id=self.id)

    def _parent_context(self) -> Context | None:
        parent = self._parent
        if parent is not None and parent._otel_context is not None:
            return parent._otel_context
        if self.parent_id:
            remote = SpanContext(
                self.trace_id,
                self.parent_id,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if self.sampled else 0),
                trace_state=_trace_state(self.flags),
            )
            return trace.set_span_in_context(NonRecordingSpan(remote))
        return Context()

    def _initial_attributes(self) -> dict[str, Any] | None:
        pending, self._pending = self._pending, None
        return pending

    def finish(self, exc_info: ExcInfo | None = None) -> None:
        """Record the end of the span (``exc_info`` if it ended because of an exception).

        Observers get ``on_finish`` once; a second ``finish`` does nothing. The span's
        observers are then dropped, so tags and logs added after the end are ignored.
        """
        if self._finished:
            return
        if self.otel_span is None:
            self.start()
        self._finished = True
        for observer in self.observers:
            notify_observer(observer, "on_finish", exc_info)
        # A finished span has nothing more to tell: later tags, logs and children reach no
        # observer (and the ended OTel span is left alone).
        self.observers.clear()
        span = self.otel_span
        assert span is not None
        deactivate(self._token)
        if exc_info is not None and exc_info[1] is not None:
            error = exc_info[1]
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            end_with_exception(span, exc_info)
        else:
            span.end()

    def __enter__(self) -> Span:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and value is not None:
            self.finish(exc_info=(exc_type, value, traceback))
        else:
            self.finish()

    # annotations
    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (an OTel attribute) on the span.

        Tags are key/value pairs that add context to the span, such as a hostname or a query
        string. The value should be a string, boolean or number; bytes are decoded as UTF-8
        and anything else is stored as its ``str()``. A None value reaches observers only.
        Once the span is finished, tags are ignored.
        """
        if value is not None and not self._finished:
            normalized = _attribute_value(value)
            if self.otel_span is not None:
                self.otel_span.set_attribute(key, normalized)
            else:
                if self._pending is None:
                    self._pending = {}
                self._pending[key] = normalized
        for observer in self.observers:
            notify_observer(observer, "on_set_tag", key, value)

    def log(self, name: str, payload: Any = None) -> None:
        """Add a timestamped log entry (an OTel span event) to the span.

        :param name: The name of the entry: a stable identifier that can apply to many spans.
        :param payload: Optional data, stored as the event attribute ``baseplate.payload``
            (its ``str()`` unless it is a string, boolean or number).

        Once the span is finished, log entries are ignored.
        """
        if self.otel_span is not None and not self._finished:
            attributes = None if payload is None else {ATTR_LOG_PAYLOAD: _attribute_value(payload)}
            if attributes is not None and name == EVENT_ERROR_OBJECT:
                attributes[ATTR_LOG_PAYLOAD_TYPE] = type(payload).__name__
            self.otel_span.add_event(name, attributes)
        for observer in self.observers:
            notify_observer(observer, "on_log", name, payload)

    # children
    def make_child(
        self, name: str, local: bool = False, component_name: str | None = None
    ) -> Span:
        """Return a child span whose parent is this span.

        A local span (``local=True``, which needs a ``component_name``) times work done in
        this process. Its context is a view of this span's context object in which ``trace``
        is the new span (and each ``add_to_context`` object is one made for it); any other
        attribute read or set on it is the request's own context object's.
        Otherwise the child represents an outbound call.
        """
        span_id = new_id()
        span: Span
        if local:
            if component_name is None:
                raise ValueError("local spans require a component_name")
            local_context = None if self.context is None else LocalSpanContext(self.context)
            span = LocalSpan(
                self.trace_id,
                self.id,
                span_id,
                self.sampled,
                self.flags,
                name,
                local_context,
                component_name=component_name,
                tracer=self._tracer,
                parent=self,
            )
            if local_context is not None:
                local_context.set_local("trace", span)
        else:
            span = Span(
                self.trace_id,
                self.id,
                span_id,
                self.sampled,
                self.flags,
                name,
                self.context,
                tracer=self._tracer,
                parent=self,
            )
        for observer in self.observers:
            notify_observer(observer, "on_child_span_created", span)
        return span

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} trace_id={self.trace_id} "
            f"parent_id={self.parent_id} span_id={self.id}>"
        )


class LocalSpanContext:
    """The context object of a local span: a view of the enclosing span's context.

    Attributes read from it, and attributes set on it, are those of the wrapped context
    object (so what the application attaches during a local span stays on the request),
    except the ones baseplate shadows for the local span with :meth:`set_local`:
    ``trace`` (the local span) and the objects of ``add_to_context`` factories made for it.
    """

    def __init__(self, context: Any) -> None:
        object.__setattr__(self, "_context", context)

    def __getattr__(self, name: str) -> Any:
        if name == "_context":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self._context, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._context, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__:
            del self.__dict__[name]
        else:
            delattr(self._context, name)

    def set_local(self, name: str, value: Any) -> None:
        """Set ``name`` on this view only, leaving the wrapped context object as it is."""
        self.__dict__[name] = value

    #: 0.28's name for :meth:`set_local`.
    shadow_context_attr = set_local


class LocalSpan(Span):
    """A span timing in-process work of a component (an OTel ``INTERNAL`` span)."""

    kind = SpanKind.INTERNAL

    def __init__(
        self,
        trace_id: int,
        parent_id: int | None,
        span_id: int,
        sampled: bool | None,
        flags: int | None,
        name: str,
        context: Any,
        component_name: str | None = None,
        *,
        tracer: trace.Tracer | None = None,
        parent: Span | None = None,
    ):
        super().__init__(
            trace_id, parent_id, span_id, sampled, flags, name, context, tracer=tracer,
            parent=parent,
        )
        self.component_name = component_name

    def _initial_attributes(self) -> dict[str, Any] | None:
        attributes = super()._initial_attributes() or {}
        if self.component_name is not None:
            attributes[ATTR_COMPONENT] = self.component_name
        return attributes


class ServerSpan(Span):
    """A server span represents a request this server is handling (an OTel ``SERVER`` span).

    It is available on the context object during requests as the ``trace`` attribute. Built
    from upstream trace info it has exactly the upstream ids; its sampling decision is the
    upstream's, forced on by the debug flag, else ``tracing.sample_rate``.
    """

    kind = SpanKind.SERVER

    def __init__(
        self,
        trace_id: int,
        parent_id: int | None,
        span_id: int,
        sampled: bool | None,
        flags: int | None,
        name: str,
        context: Any,
        *,
        tracer: trace.Tracer | None = None,
        parent_context: Context | None = None,
        sampler: BaseplateSampler | None = None,
        shared: bool = False,
    ):
        decided = (sampler or BaseplateSampler()).decide(trace_id, sampled, flags)
        super().__init__(
            trace_id, parent_id, span_id, decided, flags, name, context, tracer=tracer
        )
        self._explicit_parent = parent_context
        #: Whether the span reuses its caller's span id (Zipkin shared-span model).
        self.shared = shared

    def _initial_attributes(self) -> dict[str, Any] | None:
        attributes = super()._initial_attributes()
        if self.shared:
            attributes = attributes or {}
            attributes[ATTR_SHARED_SPAN] = True
        return attributes

    def _preset(self) -> SpanPreset:
        return SpanPreset(
            span_id=self.id,
            trace_id=self.trace_id,
            sampled=bool(self.sampled),
            trace_state=_trace_state(self.flags),
        )

    def _start_decided(
        self, tracer: trace.Tracer, attributes: dict[str, Any] | None
    ) -> trace.Span | None:
        # Ids, sampling and trace state are decided (see __init__): as the sampler and id
        # generator would make them from the preset, without asking them.
        parent_context = self._parent_context()
        assert parent_context is not None
        parent: SpanContext | None = trace.get_current_span(parent_context).get_span_context()
        if parent is not None and not parent.is_valid:
            parent = None
        return start_decided_span(
            tracer,
            self.name,
            self.kind,
            parent,
            parent_context,
            self.id,
            bool(self.sampled),
            attributes,
            trace_id=self.trace_id,
            trace_state=_trace_state(self.flags),
        )

    def _parent_context(self) -> Context | None:
        if self._explicit_parent is not None:
            return self._explicit_parent
        return super()._parent_context()


def new_server_span(
    context: Any,
    name: str,
    trace_info: TraceInfo | None,
    *,
    tracer: trace.Tracer | None = None,
    sampler: BaseplateSampler | None = None,
) -> ServerSpan:
    """A server span for a request (what ``Baseplate.make_server_span`` builds).

    Without ``trace_info`` the span joins the current OpenTelemetry span's trace as its
    child when there is one (a vendor instrumentation's server span), else it starts a new
    trace. ``sampler`` decides new traces (the Baseplate's own sample rate).
    """
    parent_context = None
    if trace_info is None:
        current = trace.get_current_span()
        current_context = current.get_span_context()
        if current_context.is_valid:
            parent_context = trace.set_span_in_context(current)
            trace_info = _ChildOfUpstream(
                current_context.trace_id,
                current_context.span_id,
                new_id(),
                bool(current_context.trace_flags.sampled),
                flags_of(current_context) or None,
            )
        else:
            trace_info = TraceInfo.new()
    return ServerSpan(
        trace_info.trace_id,
        trace_info.parent_id,
        trace_info.span_id,
        trace_info.sampled,
        trace_info.flags,
        name,
        context,
        tracer=tracer,
        parent_context=parent_context,
        sampler=sampler,
        shared=trace_info.parent_id is not None and not isinstance(trace_info, _ChildOfUpstream),
    )


# -- context objects and factories ------------------------------------------------------


class RequestContext:
    """A plain context object, for integrations whose framework has none of its own."""

    def clone(self) -> RequestContext:
        """Return a shallow copy of this context object."""
        return copy.copy(self)


class ContextFactory:
    """An interface for adding stuff to the context object.

    Objects implementing this interface can be passed to ``add_to_context``. The return value
    of :meth:`make_object_for_context` is added to the context object under the given name.
    """

    def make_object_for_context(self, name: str, server_span: ServerSpan) -> Any:
        """Return an object that can be added to the context object."""
        raise NotImplementedError


class DiagnosticObserver(BaseplateObserver):
    """A built-in diagnostic (metrics, tracing, error reporting) in observer form.

    The work is done by OpenTelemetry span processors; registering the observer on a
    :class:`~baseplate.core.Baseplate` (``configure_*`` or ``Baseplate.register`` by hand, as
    0.28 applications do) calls :meth:`attach`, which installs them on that Baseplate's
    tracer provider. Either way there is one implementation of each diagnostic.
    """

    def attach(self, baseplate: Any) -> None:
        """Install this diagnostic's span processors on ``baseplate``'s tracer provider."""
        raise NotImplementedError

    def on_server_span_created(self, context: Any, server_span: ServerSpan) -> None:
        pass


__all__ = [
    "BaseplateObserver",
    "ContextFactory",
    "DiagnosticObserver",
    "ExcInfo",
    "LocalSpan",
    "LocalSpanContext",
    "RequestContext",
    "ServerSpan",
    "ServerSpanObserver",
    "Span",
    "SpanObserver",
    "TraceInfo",
    "new_server_span",
    "notify_observer",
    "trace_info_from_context",
]
