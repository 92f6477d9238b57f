"""Telemetry health: what became of the spans, metrics and error reports, as metrics.

Every part that sends telemetry counts what it did with it (``telemetry_counts()``): the
span batch processors (``spans.exported``, ``.failed``, ``.dropped`` when the queue was full,
``.lost`` at shutdown, ``.queued``, ``.in_flight``: each sampled span is exactly one of them),
the statsd transport (``metrics.sent``, ``.failed``, ``.dropped``, ``.queued``) and the Sentry
sender (``error_reports.sent``, ``.failed``, ``.dropped``, ``.queued``).
:func:`telemetry_counts` adds them up for one :class:`~baseplate.core.Baseplate`.

Once metrics are configured, a :class:`TelemetryHealthReporter` sends them every
:data:`REPORT_INTERVAL` seconds through the Baseplate's metrics client: what changed since
the last report as counters named ``baseplate.telemetry.<name>`` (e.g.
``myservice.baseplate.telemetry.spans.dropped``), what is waiting as gauges
(``baseplate.telemetry.spans.queued``, while not zero). When something was lost (dropped,
failed or lost), it also logs one line saying how much, at most once per interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from otel_bridge.provider import state_of

if TYPE_CHECKING:
    from baseplate.core import Baseplate
    from baseplate.metrics import Client

logger = logging.getLogger(__name__)

#: Seconds between two health reports.
REPORT_INTERVAL = 10.0
#: Prefix of the health metric names.
METRIC_PREFIX = "baseplate.telemetry."
#: Counts that say how much is waiting now (sent as gauges); the others only grow.
LEVELS = frozenset({"spans.queued", "spans.in_flight", "metrics.queued", "error_reports.queued"})
#: Counts that mean telemetry was lost.
LOSSES = ("dropped", "failed", "lost")


def _sources(baseplate: Baseplate) -> Iterator[Any]:
    yield from state_of(baseplate.tracer_provider).processors
    for observer in baseplate.observers:
        client = getattr(observer, "client", None)
        transport = getattr(client, "transport", None)
        if transport is not None:
            yield transport
        if client is not None and hasattr(client, "captureException"):
            from baseplate.diagnostics.sentry import report_sender

            sender = report_sender(client)
            if sender is not None:
                yield sender


def telemetry_counts(baseplate: Baseplate) -> dict[str, int]:
    """The telemetry counts of everything ``baseplate`` sends through, added up by name."""
    totals: dict[str, int] = {}
    seen: set[int] = set()
    for source in _sources(baseplate):
        counts = getattr(source, "telemetry_counts", None)
        if id(source) in seen or not callable(counts):
            continue
        seen.add(id(source))
        try:
            values = counts()
        except Exception:
            continue
        for name, value in values.items():
            totals[name] = totals.get(name, 0) + int(value)
    return totals


class TelemetryHealthReporter:
    """Sends ``baseplate``'s telemetry counts through ``client`` every ``interval`` seconds,
    from a background thread (a greenlet under gevent) started by :meth:`start`."""

    def __init__(
        self, baseplate: Baseplate, client: Client, interval: float = REPORT_INTERVAL
    ) -> None:
        self._baseplate = weakref.ref(baseplate)
        self.client = client
        self.interval = interval
        self._last: dict[str, int] = {}
        self._pid = 0

    def start(self) -> None:
        """Start reporting (again, in a forked process); does nothing if already running."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._last = {}
        thread = threading.Thread(target=self._run, name="baseplate-telemetry-health", daemon=True)
        thread.start()

    def _run(self) -> None:
        pid = os.getpid()
        while pid == self._pid:
            time.sleep(self.interval)
            baseplate = self._baseplate()
            if baseplate is None:
                return
            try:
                self.report(baseplate)
            except Exception:
                logger.debug("telemetry health report failed", exc_info=True)

    def report(self, baseplate: Baseplate) -> dict[str, int]:
        """Send one report now; returns what changed since the previous one."""
        counts = telemetry_counts(baseplate)
        changes: dict[str, int] = {}
        with self.client.batch() as batch:
            for name, value in sorted(counts.items()):
                if name in LEVELS:
                    if value or self._last.get(name):  # report a level once it is back at 0
                        batch.gauge(METRIC_PREFIX + name).replace(value)
                    continue
                delta = value - self._last.get(name, 0)
                if delta > 0:
                    changes[name] = delta
                    batch.counter(METRIC_PREFIX + name).increment(delta)
        self._last = dict(counts)
        losses = [
            f"{delta} {name.replace('.', ' ')}"
            for name, delta in changes.items()
            if name.rsplit(".", 1)[-1] in LOSSES
        ]
        if losses:
            logger.warning("telemetry lost in the last %gs: %s", self.interval, ", ".join(losses))
        return changes


__all__ = [
    "LEVELS",
    "METRIC_PREFIX",
    "REPORT_INTERVAL",
    "TelemetryHealthReporter",
    "telemetry_counts",
]
