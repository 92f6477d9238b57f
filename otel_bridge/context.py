"""Making spans current, quietly, and handing context to other greenlets and threads.

OpenTelemetry's ``context.detach`` logs "Failed to detach context" when a token is reset
from another context (a response finished on another greenlet, a generator closed late).
The framework's own spans use :func:`activate` / :func:`deactivate`, which treat that case
as the harmless event it is.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context, create_key, get_current, get_value, set_value
from opentelemetry.context import attach as _attach

from otel_bridge import _sdk

logger = logging.getLogger(__name__)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
_T = TypeVar("_T")

_ENDING_EXC_INFO: ContextVar[ExcInfo | None] = ContextVar("baseplate_ending_exc_info", default=None)


def activate(span: trace.Span) -> object:
    """Make ``span`` the current span; return a token for :func:`deactivate`."""
    return _attach(trace.set_span_in_context(span))


def deactivate(token: object) -> None:
    """Undo :func:`activate`; a token from another context is ignored instead of logged."""
    try:
        _sdk.detach(token)
    except Exception:
        logger.debug("span ended outside the context it was activated in")


# -- context keys: every key the bridge stores in an OpenTelemetry context ---------------

#: Context key of the raw Edge-Request header bytes of the request being handled.
EDGE_REQUEST_KEY = create_key("baseplate-edge-request")
#: Context key holding the upstream parent span id of a span extracted from baseplate headers.
UPSTREAM_PARENT_KEY = create_key("baseplate-upstream-parent-id")
#: Context key set when B3 headers carried no sampling state (B3's "deferred"): the caller
#: did not decide, so ``tracing.sample_rate`` does.
SAMPLING_UNDECIDED_KEY = create_key("baseplate-sampling-undecided")
# opentelemetry-instrumentation checks this plain-string key as well as the API's key.
_SUPPRESS_INSTRUMENTATION_KEY_PLAIN = "suppress_instrumentation"


def set_edge_request(header: bytes | None) -> None:
    """Make ``header`` the Edge-Request that outbound calls forward, until the current span
    (normally the request's server span) is deactivated."""
    _attach(set_value(EDGE_REQUEST_KEY, header))


def edge_request(context: Context | None = None) -> bytes | None:
    """The Edge-Request header bytes in force in ``context`` (default: the current one)."""
    value = get_value(EDGE_REQUEST_KEY, context)
    return value if isinstance(value, bytes) else None


def suppress_instrumentation() -> object:
    """Make the current context suppress OpenTelemetry instrumentation (no spans are made
    for what runs in it); return the token to pass to :func:`deactivate`."""
    ctx = set_value(_sdk.SUPPRESS_INSTRUMENTATION_KEY, True, get_current())
    ctx = set_value(_SUPPRESS_INSTRUMENTATION_KEY_PLAIN, True, ctx)
    return _attach(ctx)


class instrumentation_suppressed:
    """``with instrumentation_suppressed():`` runs the block with instrumentation suppressed
    (exporters use it, so that sending spans makes no spans)."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = suppress_instrumentation()

    def __exit__(self, *exc_info: object) -> None:
        deactivate(self._token)


def ending_exc_info() -> ExcInfo | None:
    """The exception ending the span whose processors are running (``on_end``), if any."""
    return _ENDING_EXC_INFO.get()


def end_with_exception(span: trace.Span, exc_info: ExcInfo) -> None:
    """End ``span`` while :func:`ending_exc_info` returns ``exc_info`` to its processors."""
    token = _ENDING_EXC_INFO.set(exc_info)
    try:
        span.end()
    finally:
        _ENDING_EXC_INFO.reset(token)


def wrap_in_current_context(func: Callable[..., _T]) -> Callable[..., _T]:
    """Return ``func`` bound to a copy of the caller's context (trace context included).

    Use it for work handed to another greenlet or thread so that spans it starts join the
    caller's trace.
    """
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> _T:
        return ctx.run(func, *args, **kwargs)

    return run
