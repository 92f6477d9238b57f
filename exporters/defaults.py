"""Defaults shared by the exporters and the batch processor, each defined once.

The exporters, the batch processor and the configuration code that builds them
(``tracing.*`` keys) all import these names instead of repeating the numbers.
"""

from __future__ import annotations

#: Seconds allowed for one export (each network operation of it, retries included), and
#: for ``shutdown`` to drain what is queued: a collector that is down or hangs costs at
#: most this long.
DEFAULT_EXPORT_TIMEOUT = 5.0

#: Milliseconds ``force_flush`` may take when the caller gives no timeout (the
#: OpenTelemetry SDK's own default for ``SpanProcessor`` and ``SpanExporter``).
DEFAULT_FLUSH_TIMEOUT_MILLIS = 30000

#: Finished spans held while waiting for export; more are dropped and counted.
DEFAULT_MAX_QUEUE_SIZE = 50000

#: Largest number of spans handed to an exporter in one call.
DEFAULT_MAX_EXPORT_BATCH_SIZE = 512

#: Seconds a span may wait before the background worker exports what it has.
DEFAULT_SCHEDULE_DELAY = 0.5
