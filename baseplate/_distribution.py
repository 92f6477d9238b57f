"""Whether reddit's own ``baseplate`` distribution is installed beside this one.

reddit's ``baseplate`` and this distribution (``baseplate-otel``) install files at the same
paths: the ``baseplate-*`` console scripts, ``baseplate/__init__.py``, ``baseplate/server/*``
and ``baseplate/thrift/*``. pip lets the later install overwrite the earlier one's files, and
a later ``pip uninstall baseplate`` deletes them, ours included, leaving a broken package.
Importing :mod:`baseplate.server` (every ``baseplate-*`` command does) therefore checks, once
per process, whether a distribution named ``baseplate`` is visible on :data:`sys.path`, and
if so prints one line on stderr naming the problem and the fix. The check only reads package
metadata; it never raises and imports nothing that makes locks or threads (the server patches
gevent after importing this).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

#: This distribution, and reddit's, whose files overlap with ours.
DISTRIBUTION = "baseplate-otel"
CONFLICTING_DISTRIBUTION = "baseplate"

#: What to run to repair an environment holding both.
FIX = f"pip uninstall {CONFLICTING_DISTRIBUTION}, then pip install --force-reinstall {DISTRIBUTION}"

_warned = False


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _may_hold_it(search: Sequence[str]) -> bool:
    """Whether a directory of ``search`` has a ``baseplate`` dist-info or egg-info entry: a
    directory listing each, so that the usual case costs neither importing
    :mod:`importlib.metadata` (tens of milliseconds) nor reading any metadata."""
    for entry in search:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, or a directory that went away
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if (
                dot
                and suffix.lower() in ("dist-info", "egg-info")
                and _normalized(stem.partition("-")[0]) == CONFLICTING_DISTRIBUTION
            ):
                return True
    return False


def conflicting_distribution(path: Sequence[str] | None = None) -> tuple[str, str] | None:
    """The version and location of reddit's ``baseplate`` if it is installed on ``path``
    (default :data:`sys.path`), else None."""
    search = list(sys.path if path is None else path)
    if not _may_hold_it(search):
        return None
    import importlib.metadata

    for dist in importlib.metadata.distributions(name=CONFLICTING_DISTRIBUTION, path=search):
        try:
            version = dist.version or "(unknown version)"
        except Exception:
            version = "(unknown version)"
        try:
            location = str(dist.locate_file(""))
        except Exception:
            location = "(unknown location)"
        return version, location
    return None


def conflict_message(path: Sequence[str] | None = None) -> str | None:
    """The one-line warning for an environment that also holds reddit's ``baseplate``, or
    None when it does not."""
    found = conflicting_distribution(path)
    if found is None:
        return None
    version, location = found
    return (
        f"{DISTRIBUTION}: warning: reddit's {CONFLICTING_DISTRIBUTION} {version} is installed "
        f"in the same environment ({location}); it shares files with {DISTRIBUTION} "
        "(the baseplate-* commands, baseplate/__init__.py, baseplate/server/*, "
        "baseplate/thrift/*), so installing either overwrites the other's and "
        f"'pip uninstall {CONFLICTING_DISTRIBUTION}' deletes ours; fix: {FIX}"
    )


def warn_if_reddit_baseplate_installed(
    stream: TextIO | None = None, path: Sequence[str] | None = None
) -> str | None:
    """Print :func:`conflict_message` on ``stream`` (default stderr), at most once per
    process; return the message printed, if any. Never raises."""
    global _warned
    if _warned:
        return None
    try:
        message = conflict_message(path)
        if message is not None:
            _warned = True
            out = sys.stderr if stream is None else stream
            out.write(message + "\n")
            out.flush()
        return message
    except Exception:
        return None


#: The line printed when this module was first imported (baseplate.server imports it, so every
#: ``baseplate-*`` command checks at start-up), or None.
IMPORT_WARNING = warn_if_reddit_baseplate_installed()
