"""A span exporter writing one JSON object per line to a file, and a reader for it.

Server processes under test export through it, so the test process can check the trace
tree they produced. Each span is written with a single ``os.write`` on a file opened with
``O_APPEND``, so several processes (forked workers, a vendor service) can share one file.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    """Appends every exported span to ``path`` as a JSON line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(json.dumps(span_record(span)).encode() + b"\n" for span in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is opened per export."""


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """What the tests need of a span, JSON-friendly."""
    context = span.context
    assert context is not None
    parent = span.parent
    scope = span.instrumentation_scope
    return {
        "name": span.name,
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "parent_id": parent.span_id if parent is not None else None,
        "parent_remote": bool(parent is not None and parent.is_remote),
        "kind": span.kind.name,
        "scope": scope.name if scope is not None else "",
        "status": span.status.status_code.name,
        "attributes": {key: _plain(value) for key, value in (span.attributes or {}).items()},
        "events": [event.name for event in span.events],
        "pid": os.getpid(),
        "service": str(span.resource.attributes.get("service.name", "")),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    return list(value)


@dataclass
class LoggedSpan:
    """One span read back from a span log."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    parent_remote: bool
    kind: str
    scope: str
    status: str
    attributes: dict[str, Any]
    events: list[str]
    pid: int
    service: str

    @property
    def is_baseplate(self) -> bool:
        """Made through the baseplate span API (else a vendor instrumentation's span)."""
        return self.scope == "baseplate"


def read_spans(path: str | os.PathLike[str]) -> list[LoggedSpan]:
    """Every span logged in ``path`` so far (an empty list when nothing was written)."""
    file = pathlib.Path(path)
    if not file.exists():
        return []
    # The last line may still be being written: only complete lines count.
    complete = file.read_text().split("\n")[:-1]
    return [LoggedSpan(**json.loads(line)) for line in complete if line.strip()]
