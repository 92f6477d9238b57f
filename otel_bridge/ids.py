"""Span and trace ids: baseplate's 64-bit ids, and ids chosen before a span starts.

Baseplate hands out a child span's ids as soon as ``make_child`` returns, before the
OpenTelemetry span exists. :class:`BaseplateIdGenerator` lets the bridge tell the SDK which
ids the next span must have; without such a preset it makes random 64-bit ids, which legacy
peers can parse as int64.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from typing import NamedTuple

from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import TraceState

#: Span and parent ids are below this bound (64 bits, as every baseplate parses them).
SPAN_ID_LIMIT = 2**64
#: Trace ids are below this bound (128 bits; new ones are 64-bit).
TRACE_ID_LIMIT = 2**128


def new_id() -> int:
    """Return a random non-zero 64-bit id.

    ``random.getrandbits`` is looked up at each call, so a test that patches it (as
    baseplate 0.28 test suites do to pin ids) gets the ids it asked for.
    """
    value = random.getrandbits(64)
    while not value:
        value = random.getrandbits(64)
    return value


class SpanPreset(NamedTuple):
    """What the next span started on this greenlet/thread must look like."""

    span_id: int
    trace_id: int | None = None
    sampled: bool | None = None
    trace_state: TraceState | None = None


_PRESET: ContextVar[SpanPreset | None] = ContextVar("baseplate_span_preset", default=None)


def current_preset() -> SpanPreset | None:
    """Return the preset in force for the span being started, if any."""
    return _PRESET.get()


def set_preset(value: SpanPreset | None) -> object:
    """Make the next span started here take ``value``; returns a token for :func:`reset_preset`."""
    return _PRESET.set(value)


def reset_preset(token: object) -> None:
    """Undo :func:`set_preset`."""
    _PRESET.reset(token)  # type: ignore[arg-type]


class BaseplateIdGenerator(IdGenerator):
    """Id generator honouring presets, otherwise random 64-bit trace and span ids."""

    def generate_span_id(self) -> int:
        value = _PRESET.get()
        if value is not None:
            return value.span_id
        return new_id()

    def generate_trace_id(self) -> int:
        value = _PRESET.get()
        if value is not None and value.trace_id:
            return value.trace_id
        return new_id()
