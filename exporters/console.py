"""Development exporter: print each finished request as a tree of spans with a waterfall.

Spans of a request arrive as they finish (children before their parent), so the exporter
holds them per trace until the request's local root ends, then prints, e.g.::

    trace 1f2e3d4c5b6a7980  GET /hello  12.40 ms
      GET /hello          12.40 ms  [##############################]
      ├─ redis.GET         1.20 ms  [  ###                         ]
      └─ render (local)    6.00 ms  [       ##############         ]

Spans still held are bounded: when more than ``max_pending_spans`` wait, the oldest traces
are printed as they are (their root has not ended in this process).

:class:`RequestTreeConsoleExporter` is what ``tracing.exporter = console`` installs. It is
not OpenTelemetry's ``ConsoleSpanExporter`` (one JSON document per span), whose name it
had at first; ``ConsoleSpanExporter`` here remains an alias of it.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from exporters.defaults import DEFAULT_FLUSH_TIMEOUT_MILLIS
from exporters.spans import hex_trace_id, is_local_root
from otel_bridge import semconv
from otel_bridge.concurrency import yielding_the_loop

#: Width, in characters, of the waterfall bars.
DEFAULT_BAR_WIDTH = 30
#: Spans held waiting for their request's root before the oldest traces are printed anyway.
DEFAULT_MAX_PENDING_SPANS = 10000

_KIND_LABELS = {
    SpanKind.CLIENT: "",
    SpanKind.SERVER: "",
    SpanKind.INTERNAL: " (local)",
    SpanKind.PRODUCER: " (producer)",
    SpanKind.CONSUMER: " (consumer)",
}


def _milliseconds(nanoseconds: int) -> float:
    return nanoseconds / 1e6


def format_trace_tree(spans: Sequence[ReadableSpan], bar_width: int = DEFAULT_BAR_WIDTH) -> str:
    """Render the spans of one request as an indented tree with durations and a waterfall."""
    if not spans:
        return ""
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    children: dict[int | None, list[ReadableSpan]] = collections.defaultdict(list)
    for span in spans:
        parent_id = span.parent.span_id if span.parent is not None else None
        if parent_id not in by_id:
            parent_id = None
        children[parent_id].append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: s.start_time or 0)

    start = min(span.start_time or 0 for span in spans)
    end = max(span.end_time or span.start_time or 0 for span in spans)
    total = max(end - start, 1)

    rows: list[tuple[str, str, str]] = []

    def label(span: ReadableSpan) -> str:
        text = span.name + _KIND_LABELS.get(span.kind, "")
        if span.status.status_code is StatusCode.ERROR:
            text += " !error"
        return text

    def bar(span: ReadableSpan) -> str:
        span_start = span.start_time or start
        span_end = span.end_time or span_start
        offset = int((span_start - start) * bar_width / total)
        length = max(1, round((span_end - span_start) * bar_width / total))
        offset = min(offset, bar_width - 1)
        length = min(length, bar_width - offset)
        return "[" + " " * offset + "#" * length + " " * (bar_width - offset - length) + "]"

    def walk(span: ReadableSpan, prefix: str, connector: str) -> None:
        duration = (span.end_time or 0) - (span.start_time or 0)
        rows.append(
            (prefix + connector + label(span), f"{_milliseconds(duration):.2f} ms", bar(span))
        )
        kids = children.get(span.context.span_id if span.context else None, [])
        if connector == "":
            child_prefix = prefix
        else:
            child_prefix = prefix + ("   " if connector == "└─ " else "│  ")
        for index, kid in enumerate(kids):
            walk(kid, child_prefix, "└─ " if index == len(kids) - 1 else "├─ ")

    roots = children.get(None, [])
    for root in roots:
        walk(root, "", "")

    first = roots[0] if roots else spans[0]
    trace_id = first.context.trace_id if first.context is not None else 0
    header = f"trace {hex_trace_id(trace_id)}  {first.name}  {_milliseconds(total):.2f} ms"
    if first.context is not None and semconv.is_debug(first.context):
        header += "  (debug)"
    name_width = max(len(row[0]) for row in rows)
    time_width = max(len(row[1]) for row in rows)
    lines = [header]
    for name, duration_text, waterfall in rows:
        lines.append(f"  {name.ljust(name_width)}  {duration_text.rjust(time_width)}  {waterfall}")
    return "\n".join(lines) + "\n"


class RequestTreeConsoleExporter(SpanExporter):
    """Print each finished request (local root and its descendants) as a readable tree.

    :param out: Stream to write to; standard error by default (looked up at each write, so
        test runners capturing ``sys.stderr`` see the output).
    :param bar_width: Width of the waterfall bars.
    :param max_pending_spans: Most spans held while waiting for their request's root.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        bar_width: int = DEFAULT_BAR_WIDTH,
        max_pending_spans: int = DEFAULT_MAX_PENDING_SPANS,
    ) -> None:
        self.out = out
        self.bar_width = bar_width
        self.max_pending_spans = max_pending_spans
        self._pending: collections.OrderedDict[int, list[ReadableSpan]] = collections.OrderedDict()
        self._pending_count = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Hold spans until their request's root ends, then print the request's tree."""
        ready: list[list[ReadableSpan]] = []
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                held = self._pending.setdefault(trace_id, [])
                held.append(span)
                self._pending_count += 1
                if is_local_root(span):
                    ready.append(self._take_request(trace_id, span))
            while self._pending_count > self.max_pending_spans and self._pending:
                _, oldest = self._pending.popitem(last=False)
                self._pending_count -= len(oldest)
                ready.append(oldest)
        # under gevent, give the event loop back between requests once it has been held for
        # 0.5 ms: a batch of 512 spans takes about 5 ms to format
        for request_spans in yielding_the_loop(ready):
            self._write(format_trace_tree(request_spans, self.bar_width))
        return SpanExportResult.SUCCESS

    def _take_request(self, trace_id: int, root: ReadableSpan) -> list[ReadableSpan]:
        # Take the root and its descendants; other requests of the same trace stay held.
        held = self._pending[trace_id]
        by_parent: dict[int, list[ReadableSpan]] = collections.defaultdict(list)
        for span in held:
            if span.parent is not None:
                by_parent[span.parent.span_id].append(span)
        taken: list[ReadableSpan] = []
        stack = [root]
        while stack:
            span = stack.pop()
            taken.append(span)
            if span.context is not None:
                stack.extend(by_parent.pop(span.context.span_id, []))
        taken_ids = {id(span) for span in taken}
        remaining = [span for span in held if id(span) not in taken_ids]
        if remaining:
            self._pending[trace_id] = remaining
        else:
            del self._pending[trace_id]
        self._pending_count -= len(taken)
        return taken

    def _write(self, text: str) -> None:
        out = self.out if self.out is not None else sys.stderr
        try:
            out.write(text)
            out.flush()
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Print nothing more; spans waiting for their root stay held."""
        return True

    def shutdown(self) -> None:
        """Print what is still held, as partial trees."""
        with self._lock:
            leftovers = list(self._pending.values())
            self._pending.clear()
            self._pending_count = 0
        for request_spans in leftovers:
            self._write(format_trace_tree(request_spans, self.bar_width))


#: The first name of :class:`RequestTreeConsoleExporter`, kept for code importing it; new
#: code uses the name that does not clash with OpenTelemetry's ``ConsoleSpanExporter``.
ConsoleSpanExporter = RequestTreeConsoleExporter
