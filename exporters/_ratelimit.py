"""Rate-limited logging for telemetry failures.

An exporter that cannot reach its collector fails on every batch; logging each failure would
flood the application's log. :class:`RateLimitedLog` writes at most one record per interval
and says how many it held back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class RateLimitedLog:
    """Log through ``logger`` at most once every ``interval`` seconds.

    :param logger: The logger records go to.
    :param interval: Minimum seconds between two records.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._next_allowed = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log a warning unless one was logged less than ``interval`` seconds ago."""
        self._log(logging.WARNING, message, args, exc_info)

    def error(self, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log an error unless one was logged less than ``interval`` seconds ago."""
        self._log(logging.ERROR, message, args, exc_info)

    def _log(self, level: int, message: str, args: tuple[Any, ...], exc_info: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_allowed:
                self._suppressed += 1
                return
            self._next_allowed = now + self.interval
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self.logger.log(level, message, *args, exc_info=exc_info)


class RateLimitFilter(logging.Filter):
    """A logging filter letting through at most one record every ``interval`` seconds (the
    next one says how many were held back), for loggers of libraries baseplate cannot change
    (the OTLP exporter's logs every failed export)."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._next_allowed = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next_allowed:
                self._suppressed += 1
                return False
            self._next_allowed = now + self.interval
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            record.msg = f"{record.getMessage()} ({suppressed} similar messages suppressed)"
            record.args = None
        return True


def rate_limit_logger(name: str, interval: float = 60.0) -> None:
    """Put a :class:`RateLimitFilter` on the logger ``name`` (once)."""
    target = logging.getLogger(name)
    if not any(isinstance(existing, RateLimitFilter) for existing in target.filters):
        target.addFilter(RateLimitFilter(interval))
