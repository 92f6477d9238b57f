"""Watch a file and keep a parsed copy in memory that's updated on changes.

The contents of the file are re-loaded and parsed only when necessary: when its
modification time changes. For example, a JSON file containing
``{"one": 1, "two": 2}`` might be watched and parsed like this:

    >>> watcher = FileWatcher(path, parser=json.load)
    >>> watcher.get_data() == {"one": 1, "two": 2}
    True

The return value of :meth:`FileWatcher.get_data` changes whenever the underlying
file changes. If a later version of the file cannot be read or parsed, the last
good data is kept (and the failure logged) until the file changes again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Waiting for a missing file polls with short sleeps; ``time.sleep`` yields to other
# greenlets when gevent has monkey-patched the process.
_POLL_INTERVAL_MIN = 0.005
_POLL_INTERVAL_MAX = 0.1


class _NotLoaded:
    pass


_NOT_LOADED = _NotLoaded()


class WatchedFileNotAvailableError(Exception):
    """Raised when the watched file could not be loaded.

    ``path`` is the watched file and ``inner`` the exception that stopped it from
    loading (missing file, permission error, parser error, ...).
    """

    def __init__(self, path: str, inner: BaseException | str) -> None:
        super().__init__(f"{path}: {inner}")
        self.path = path
        self.inner = inner


class FileWatcher(Generic[T]):
    """Watch a file and load its data when it changes.

    :param path: Full path to a file to watch.
    :param parser: A callable that takes an open file object, parses or otherwise
        interprets the file, and returns whatever data is meaningful.
    :param timeout: How long, in seconds, to block instantiation waiting for the
        watched file to become available (defaults to not blocking). If the file
        still cannot be loaded when the time is up,
        :exc:`WatchedFileNotAvailableError` is raised.
    :param binary: Open the file in binary mode (the parser gets bytes).
    :param encoding: The text encoding of the file (default UTF-8); text mode only.
    :param newline: Newline handling, as for :func:`open`; text mode only.
    """

    def __init__(
        self,
        path: str,
        parser: Callable[[IO[Any]], T],
        timeout: float | None = None,
        binary: bool = False,
        encoding: str | None = None,
        newline: str | None = None,
    ) -> None:
        if binary and encoding is not None:
            raise TypeError("'encoding' is not supported in binary mode")
        if binary and newline is not None:
            raise TypeError("'newline' is not supported in binary mode")

        self._path = os.fspath(path)
        self._parser = parser
        self._mode = "rb" if binary else "r"
        self._encoding = None if binary else (encoding or "UTF-8")
        self._newline = newline
        self._mtime_ns: int | None = None
        self._data: T | _NotLoaded = _NOT_LOADED
        self._lock = threading.Lock()

        if timeout is not None:
            self._wait_for_first_load(timeout)

    def _wait_for_first_load(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        interval = _POLL_INTERVAL_MIN
        while True:
            try:
                self.get_data()
                return
            except WatchedFileNotAvailableError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logger.warning("%s: not available after waiting %.3gs", self._path, timeout)
                    raise
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, _POLL_INTERVAL_MAX)

    def get_data(self) -> T:
        """Return the current contents of the file, parsed.

        The watcher ensures that the file is re-loaded and parsed whenever its
        contents change. Parsing only occurs when necessary, not on each call to this
        method. This method returns whatever the most recent successful call to the
        parser returned.

        Make sure to call this method each time you need data from the file rather
        than saving its results elsewhere. This ensures you always have the freshest
        data.

        :raises WatchedFileNotAvailableError: The file has never been loaded
            successfully.
        """
        try:
            mtime_ns = os.stat(self._path).st_mtime_ns
        except OSError as exc:
            return self._loaded_or_raise(exc)

        if mtime_ns == self._mtime_ns:
            return self._loaded_or_raise("not loaded")

        with self._lock:
            if mtime_ns != self._mtime_ns:
                self._reload(mtime_ns)
        return self._loaded_or_raise("not loaded")

    def _reload(self, mtime_ns: int) -> None:
        logger.debug("Loading %s.", self._path)
        try:
            with open(
                self._path, mode=self._mode, encoding=self._encoding, newline=self._newline
            ) as f:
                data = self._parser(f)
        except Exception as exc:
            if isinstance(self._data, _NotLoaded):
                # Nothing to fall back to: leave the mtime unset so the next call retries.
                raise WatchedFileNotAvailableError(self._path, exc)
            logger.warning("%s: failed to reload, keeping the previous data: %s", self._path, exc)
        else:
            self._data = data
        self._mtime_ns = mtime_ns

    def _loaded_or_raise(self, reason: BaseException | str) -> T:
        data = self._data
        if isinstance(data, _NotLoaded):
            raise WatchedFileNotAvailableError(self._path, reason)
        return data


__all__ = ["FileWatcher", "WatchedFileNotAvailableError"]
