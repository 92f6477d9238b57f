"""Every use of a private OpenTelemetry name, in one place.

The OpenTelemetry API and SDK do not offer everything the bridge needs in public form: a
detach that does not log, the "suppress instrumentation" context key, the processors a
provider already has, renaming the resource of a provider that already made tracers. Each of
those reaches into a private name here and nowhere else; ``PRIVATE_NAMES`` lists them and a
test checks every one against the installed SDK, so an upgrade that moves one fails loudly
in one place instead of quietly changing behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import context as _context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

#: ``(module or class, attribute)`` pairs of the private names used below.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("opentelemetry.context", "_RUNTIME_CONTEXT"),
    ("opentelemetry.context", "_SUPPRESS_INSTRUMENTATION_KEY"),
    ("opentelemetry.sdk.trace.TracerProvider", "_active_span_processor"),
    ("opentelemetry.sdk.trace.SynchronousMultiSpanProcessor", "_span_processors"),
    ("opentelemetry.sdk.trace.TracerProvider", "_update_resource"),
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


def span_processors(provider: TracerProvider) -> Sequence[SpanProcessor]:
    """The span processors ``provider`` runs, in order (empty if that cannot be told)."""
    active = getattr(provider, "_active_span_processor", None)
    return tuple(getattr(active, "_span_processors", ()))


def update_resource(provider: TracerProvider, resource: Resource) -> None:
    """Merge ``resource`` into the provider's resource, for tracers already made too."""
    provider._update_resource(resource)
