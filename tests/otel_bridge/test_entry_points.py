"""The ``opentelemetry_propagator`` entry points this package installs.

A plain OpenTelemetry process (no baseplate code) that merely has this package installed and
asks for ``OTEL_PROPAGATORS=b3`` must get OpenTelemetry's own B3 propagator; ours are
registered as ``baseplate_b3`` / ``baseplate_b3multi``. In baseplate's own configuration
``b3`` and ``b3multi`` keep meaning ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest

from otel_bridge.propagation import B3MultiPropagator, B3SinglePropagator, make_propagator
from otel_bridge.propagation.configuration import ENTRY_POINT_GROUP

# Injects a sampled span (64-bit trace id 0x1234, span 0x66) with OpenTelemetry's global
# textmap, configured by OpenTelemetry itself from OTEL_PROPAGATORS.
PLAIN_OTEL_PROCESS = """
import json, sys
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

span = NonRecordingSpan(SpanContext(0x1234, 0x66, is_remote=False, trace_flags=TraceFlags(1)))
carrier = {}
propagate.inject(carrier, context=trace.set_span_in_context(span))
print(json.dumps({"carrier": carrier, "modules": sorted(sys.modules)}))
"""

OURS = ("baseplate", "otel_bridge", "exporters")


def plain_otel_process(propagators: str) -> dict[str, Any]:
    environ = {**os.environ, "OTEL_PROPAGATORS": propagators}
    done = subprocess.run(
        [sys.executable, "-I", "-c", PLAIN_OTEL_PROCESS],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def loaded(result: dict[str, Any], package: str) -> bool:
    return any(name.split(".")[0] == package for name in result["modules"])


@pytest.mark.parametrize(
    "name, headers",
    [
        # OpenTelemetry's B3 writes 32 hex digits and lower-case names; ours would write
        # "0000000000001234-..." and X-B3-TraceId.
        ("b3", {"b3": f"{0x1234:032x}-{0x66:016x}-1"}),
        (
            "b3multi",
            {"x-b3-traceid": f"{0x1234:032x}", "x-b3-spanid": f"{0x66:016x}", "x-b3-sampled": "1"},
        ),
    ],
)
def test_plain_otel_process_gets_opentelemetry_s_b3(name: str, headers: dict[str, str]) -> None:
    result = plain_otel_process(name)
    assert result["carrier"] == headers
    assert "opentelemetry.propagators.b3" in result["modules"]
    assert not [package for package in OURS if loaded(result, package)]


@pytest.mark.parametrize(
    "name, headers",
    [
        ("baseplate_b3", {"b3": f"{0x1234:016x}-{0x66:016x}-1"}),
        (
            "baseplate_b3multi",
            {"X-B3-TraceId": f"{0x1234:016x}", "X-B3-SpanId": f"{0x66:016x}", "X-B3-Sampled": "1"},
        ),
    ],
)
def test_baseplate_b3_entry_points_load_ours(name: str, headers: dict[str, str]) -> None:
    result = plain_otel_process(name)
    assert result["carrier"] == headers
    assert loaded(result, "otel_bridge")
    assert not loaded(result, "baseplate")


def test_only_opentelemetry_registers_the_b3_names() -> None:
    for name in ("b3", "b3multi"):
        values = {ep.value for ep in entry_points(group=ENTRY_POINT_GROUP, name=name)}
        assert values and all(v.startswith("opentelemetry.propagators.b3:") for v in values)
    ours = {
        ep.name: ep.load()
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.startswith("otel_bridge.")
    }
    assert ours["baseplate_b3"] is B3SinglePropagator
    assert ours["baseplate_b3multi"] is B3MultiPropagator


def test_baseplate_configuration_b3_means_ours() -> None:
    # tracing.propagators = b3, b3multi (and OTEL_PROPAGATORS read by baseplate)
    single, multi = make_propagator(["b3", "b3multi"]).propagators
    assert type(single) is B3SinglePropagator
    assert type(multi) is B3MultiPropagator
    assert [
        type(p) for p in make_propagator(["baseplate_b3", "baseplate_b3multi"]).propagators
    ] == [
        B3SinglePropagator,
        B3MultiPropagator,
    ]
