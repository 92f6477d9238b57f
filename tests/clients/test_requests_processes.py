"""baseplate.clients.requests in processes of its own: under gevent (monkey-patched, calls
overlapping) and under ``opentelemetry-instrument`` with the vendor requests instrumentation
active (one client span per call)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OPENTELEMETRY_INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")


def run(*command: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    done = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_calls_under_gevent_carry_each_request_s_own_trace() -> None:
    result = run(sys.executable, str(HERE / "gevent_calls.py"))

    assert result["patched"]
    assert result["most_in_flight"] > 1  # the calls overlapped: the sockets cooperate
    spans = result["spans"]
    for call in result["calls"]:
        (client,) = [
            s for s in spans if s["kind"] == "CLIENT" and s["parent_id"] == call["span_id"]
        ]
        assert client["name"] == "peer.request" and client["trace_id"] == call["trace_id"]
        seen = call["seen"]
        assert seen["X-Trace"] == str(call["trace_id"])
        assert seen["X-Parent"] == str(call["span_id"])
        assert seen["X-Span"] == str(client["span_id"])
        assert base64.b64decode(seen["X-Edge-Request"]) == bytes([call["index"]])
    assert len([s for s in spans if s["kind"] == "CLIENT"]) == len(result["calls"]) == 20


def test_one_client_span_per_call_under_opentelemetry_instrument() -> None:
    result = run(
        str(OPENTELEMETRY_INSTRUMENT),
        sys.executable,
        str(HERE / "auto_instrumented_calls.py"),
        env={
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        },
    )

    assert result["vendor_active"]
    assert result["provider"] == "opentelemetry.sdk.trace.TracerProvider"
    spans = result["spans"]
    (ours,) = [s for s in spans if s["name"] == "peer.request"]
    server = next(s for s in spans if s["name"] == "through_baseplate")
    plain_server = next(s for s in spans if s["name"] == "plain")
    under_ours = [s for s in spans if s["parent_id"] in (server["span_id"], ours["span_id"])]
    assert under_ours == [ours]  # no vendor span beside or below baseplate's client span
    assert ours["kind"] == "CLIENT" and ours["scope"] == "baseplate"
    assert result["through_baseplate"]["x-span"] == str(ours["span_id"])
    # the plain call is the vendor's, so the instrumentation was live
    (vendor,) = [s for s in spans if s["parent_id"] == plain_server["span_id"]]
    assert vendor["kind"] == "CLIENT" and "requests" in vendor["scope"]
    assert result["plain"]["traceparent"].split("-")[2] == f"{vendor['span_id']:016x}"
