"""Ours -> reddit's baseplate 1.5.5 -> ours over HTTP, each hop a real client of its side.

Our Pyramid service calls ``reddit15_peer_http.py`` (reddit's 1.5.5 Pyramid integration)
through :class:`~baseplate.clients.requests.InternalRequestsClient`; the peer calls our
``/show`` back through reddit's own ``InternalRequestsClient``. The trace continues through
the 1.5.5 hop and back, and each side reads the other's headers as its own.

Reddit's 1.5.5 lives in ``.services/reddit-baseplate-1.5``, which ``scripts/setup.sh``
installs (through ``benchmarks/setup.sh``); without it these tests fail. ``advocate``,
imported by reddit's client and not installed there, is stood in for by
``reddit15_stubs/advocate.py``.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from baseplate.edge_context import EdgeRequestContextFactory

from .test_reddit_http_client import (
    SAMPLED,
    SPAN,
    TRACE,
    W3C_PARENT,
    WIDE_TRACE,
    OurService,
    factory,  # noqa: F401 (fixture)
    secrets_path,  # noqa: F401 (fixture)
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER15_PYTHON = REPO_ROOT / ".services" / "reddit-baseplate-1.5" / "bin" / "python"
PEER15_SCRIPT = Path(__file__).with_name("reddit15_peer_http.py")


class Reddit15Peer:
    """``reddit15_peer_http.py`` on loopback; what each relay saw is read back."""

    def __init__(self) -> None:
        assert PEER15_PYTHON.exists(), f"{PEER15_PYTHON} is missing: run scripts/setup.sh"
        self.process = subprocess.Popen(
            [str(PEER15_PYTHON), "-I", str(PEER15_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        self.port: int = self.next_seen()["port"]

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next_seen(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=30)
        except queue.Empty:
            self.process.kill()
            _, stderr = self.process.communicate()
            raise AssertionError(f"the 1.5.5 peer said nothing; stderr:\n{stderr}") from None
        value: dict[str, Any] = json.loads(line)
        return value

    def relay_url(self, to: str) -> str:
        return f"http://127.0.0.1:{self.port}/relay?to={to}"

    def stop(self) -> None:
        self.process.kill()
        self.process.communicate()


@pytest.fixture(scope="module")
def peer15() -> Iterator[Reddit15Peer]:
    peer = Reddit15Peer()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def ours(factory: EdgeRequestContextFactory) -> Iterator[OurService]:  # noqa: F811
    service = OurService("http://127.0.0.1:1/", factory)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def edge_header(factory: EdgeRequestContextFactory) -> str:  # noqa: F811
    header = factory.new(loid_id="t2_abc", loid_created_ms=7, session_id="s-1").header
    return base64.b64encode(header).decode()


def round_trip(
    ours: OurService, peer15: Reddit15Peer, headers: list[tuple[str, str]]
) -> dict[str, Any]:
    back = f"http://127.0.0.1:{ours.port}/show"
    seen = ours.call(None, "internal", headers, url=peer15.relay_url(back))
    assert peer15.next_seen() == seen["peer"]
    return seen


def test_trace_goes_through_a_1_5_hop_and_back(
    ours: OurService, peer15: Reddit15Peer, edge_header: str
) -> None:
    seen = round_trip(ours, peer15, [*SAMPLED, ("X-Edge-Request", edge_header)])

    client = ours.client_span()
    first, hop, back = seen["server"], seen["peer"], seen["peer"]["back"]
    assert first["trace_id"] == TRACE and first["span_id"] == SPAN
    # reddit 1.5.5 reads our client's headers as its own: our client span is its server span
    assert hop["span"] == {"trace_id": TRACE, "parent_id": SPAN,
                           "span_id": client.context.span_id, "sampled": True, "flags": None}
    # and its client's headers come back to us: the same trace, its client span ours
    assert back["server"]["trace_id"] == TRACE
    assert back["server"]["parent_id"] == hop["span"]["span_id"]
    assert back["server"]["sampled"] is True
    assert back["headers"]["x-trace"] == str(TRACE)
    assert back["headers"]["x-span"] == str(back["server"]["span_id"])
    # the edge request travels both hops unchanged, in the same padded base64
    assert hop["headers"]["x-edge-request"] == edge_header
    assert back["headers"]["x-edge-request"] == edge_header
    assert back["raw_request_context"] == edge_header
    # what our client sends reads as what reddit's sends (plus W3C and b3 beside)
    assert {"x-trace", "x-parent", "x-span", "x-sampled", "x-edge-request"} <= set(
        hop["headers"]
    )
    assert set(back["headers"]) <= set(hop["headers"]) | {"x-flags"}


def test_128_bit_trace_through_a_1_5_hop_and_back(
    ours: OurService, peer15: Reddit15Peer, edge_header: str
) -> None:
    traceparent = f"00-{WIDE_TRACE:032x}-{W3C_PARENT:016x}-01"
    seen = round_trip(ours, peer15, [("traceparent", traceparent),
                                     ("X-Edge-Request", edge_header)])

    lower = WIDE_TRACE & (2**64 - 1)
    assert seen["server"]["trace_id"] == WIDE_TRACE
    # the 1.5.5 hop continues the trace under the lower 64 bits (a full id would break it) ...
    assert seen["peer"]["span"]["trace_id"] == lower
    assert seen["peer"]["span"]["parent_id"] == seen["server"]["span_id"]
    # ... and that is what its calls carry onward: reddit's client sends no traceparent
    back = seen["peer"]["back"]
    assert "traceparent" not in back["headers"]
    assert back["server"]["trace_id"] == lower
    assert back["server"]["parent_id"] == seen["peer"]["span"]["span_id"]
