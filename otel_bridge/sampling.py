"""The sampler: upstream decision first, then the debug flag, then ``tracing.sample_rate``.

Unsampled is not unrecorded: a span that is not sampled is still recorded (``RECORD_ONLY``)
so that span processors (metrics, error reporting) see every request; only sampled spans
reach exporters.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

from otel_bridge.context import SAMPLING_UNDECIDED_KEY
from otel_bridge.ids import SPAN_ID_LIMIT, current_preset
from otel_bridge.semconv import FLAG_DEBUG, flags_from_trace_state

_MAX_64 = SPAN_ID_LIMIT
DEFAULT_SAMPLE_RATE = 0.1


class BaseplateSampler(Sampler):
    """Parent-based sampling with baseplate's debug flag and a configurable root sample rate.

    ``sample_rate`` (0.0 to 1.0) may be changed at any time; it applies to new traces. The
    decision for a new trace is a pure function of the trace id, so it is the same wherever
    the id is seen.
    """

    def __init__(self, sample_rate: float = DEFAULT_SAMPLE_RATE):
        self.sample_rate = sample_rate

    @property
    def sample_rate(self) -> float:
        return self._sample_rate

    @sample_rate.setter
    def sample_rate(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {value!r}")
        self._sample_rate = value
        self._bound = round(value * _MAX_64)

    def samples_new_trace(self, trace_id: int) -> bool:
        """Whether a new trace with this id is sampled at the current rate."""
        return (trace_id & (_MAX_64 - 1)) < self._bound

    def decide(self, trace_id: int, sampled: bool | None, flags: int | None) -> bool:
        """The decision for a request: upstream flag, then debug flag, then the rate."""
        if flags and flags & FLAG_DEBUG:
            return True
        if sampled is not None:
            return sampled
        return self.samples_new_trace(trace_id)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        preset = current_preset()
        if preset is not None and preset.sampled is not None:
            state = preset.trace_state
            if state is None:
                state = get_current_span(parent_context).get_span_context().trace_state
            if attributes is None and state is DEFAULT_TRACE_STATE:
                return _PLAIN_SAMPLED if preset.sampled else _PLAIN_UNSAMPLED
            return SamplingResult(_decision(preset.sampled), attributes, state)

        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid and parent.is_remote and _undecided(parent_context):
            return SamplingResult(
                _decision(self.samples_new_trace(trace_id)), attributes, parent.trace_state
            )
        if parent.is_valid:
            sampled = bool(parent.trace_flags.sampled) or bool(
                flags_from_trace_state(parent.trace_state) & FLAG_DEBUG
            )
            return SamplingResult(_decision(sampled), attributes, parent.trace_state)
        state = preset.trace_state if preset is not None else None
        return SamplingResult(_decision(self.samples_new_trace(trace_id)), attributes, state)

    def get_description(self) -> str:
        return f"BaseplateSampler{{rate={self._sample_rate}}}"


def _undecided(parent_context: Context | None) -> bool:
    return parent_context is not None and bool(parent_context.get(SAMPLING_UNDECIDED_KEY))


def _decision(sampled: bool) -> Decision:
    return Decision.RECORD_AND_SAMPLE if sampled else Decision.RECORD_ONLY


# Most spans carry no initial attributes and an empty trace state: their results are alike
# (SamplingResult is not changed by the SDK), so two shared ones serve them all.
_PLAIN_SAMPLED = SamplingResult(Decision.RECORD_AND_SAMPLE, None, DEFAULT_TRACE_STATE)
_PLAIN_UNSAMPLED = SamplingResult(Decision.RECORD_ONLY, None, DEFAULT_TRACE_STATE)
