"""Restart the process when its source changes (``baseplate-serve --reload``; development only).

A background watcher polls the modification times of every loaded module's file (and any
extra files, such as the configuration file) and, when one changes, replaces the process
with a fresh run of the same command line (``os.execv``), so every module is imported anew.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

#: Seconds between two looks at the files' modification times.
DEFAULT_POLL_INTERVAL = 0.5


def _module_files() -> Iterator[str]:
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not filename:
            continue
        if filename.endswith((".pyc", ".pyo")):
            filename = filename[:-1]
        yield filename


def _mtimes(extra_files: Iterable[str]) -> Iterator[tuple[str, float]]:
    for filename in (*_module_files(), *extra_files):
        try:
            yield filename, os.stat(filename).st_mtime
        except OSError:
            continue


def restart_command() -> list[str]:
    """The command line that runs this process again (console script or ``python -m``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        module = spec.name
        if module.endswith(".__main__"):
            module = module[: -len(".__main__")]
        return [sys.executable, "-m", module, *sys.argv[1:]]
    return [sys.executable, *sys.argv]


def _restart(changed: str) -> None:
    logger.info("%s changed; restarting", changed)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    command = restart_command()
    os.execv(command[0], command)


def watch_for_changes(
    extra_files: Iterable[str] = (), interval: float = DEFAULT_POLL_INTERVAL
) -> None:
    """Poll file modification times forever; restart the process when one changes."""
    extra = list(extra_files)
    known: dict[str, float] = {}
    while True:
        for filename, mtime in _mtimes(extra):
            previous = known.setdefault(filename, mtime)
            if mtime != previous:
                _restart(filename)
        time.sleep(interval)


def start_reload_watcher(
    extra_files: Iterable[str] = (), interval: float = DEFAULT_POLL_INTERVAL
) -> threading.Thread:
    """Start :func:`watch_for_changes` in a daemon thread (a greenlet under gevent)."""
    thread = threading.Thread(
        target=watch_for_changes,
        args=(list(extra_files), interval),
        name="baseplate reloader",
        daemon=True,
    )
    thread.start()
    return thread


__all__ = ["restart_command", "start_reload_watcher", "watch_for_changes"]
