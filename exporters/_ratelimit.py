"""Rate-limited logging for telemetry failures.

An exporter that cannot reach its collector fails on every batch; logging each failure would
flood the application's log. :class:`RateLimitedLog` writes at most one record per interval
and says how many it held back.
"""

from __future__ import annotations

import logging
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

    def warning(self, message: str, *args: Any) -> None:
        """Log a warning unless one was logged less than ``interval`` seconds ago."""
        self._log(logging.WARNING, message, args)

    def error(self, message: str, *args: Any) -> None:
        """Log an error unless one was logged less than ``interval`` seconds ago."""
        self._log(logging.ERROR, message, args)

    def _log(self, level: int, message: str, args: tuple[Any, ...]) -> None:
        now = time.monotonic()
        if now < self._next_allowed:
            self._suppressed += 1
            return
        self._next_allowed = now + self.interval
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self.logger.log(level, message, *args)
