"""``baseplate-script CONFIG module:function``: run a function with the app's configuration.

The function is called with the ``[app:NAME]`` section (``--app-name``, default ``main``) as a
dict of strings, the same dict an application factory gets (``factory`` included, if the
section has one; values as written, see :func:`baseplate.server.read_config`)::

    # printer.py
    def run(app_config):
        print(app_config["message"])

    $ baseplate-script printer.ini printer:run

Logs go to stderr (stdout is the script's), at INFO or DEBUG with ``--debug``, unless the INI
file has logging sections. Pending spans are exported before the command exits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from baseplate.server.cli import fail, flush_telemetry, load_tool_config, tool_parser
from baseplate.server.loading import ConfigFileError, load_factory

PROGRAM = "baseplate-script"


def parse_args(args: Sequence[str]) -> argparse.Namespace:
    """Parse ``baseplate-script``'s command line."""
    parser = tool_parser(
        PROGRAM,
        description="Run a Python function with the application's configuration loaded.",
        epilog="The function is called with the [app:NAME] section as a dict of strings.",
    )
    parser.add_argument(
        "entrypoint",
        metavar="module:function",
        help="the function to call, e.g. my_service.models:create_schema",
    )
    return parser.parse_args(args)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``baseplate-script``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_tool_config(args)
    except ConfigFileError as exc:
        fail(PROGRAM, str(exc))
    try:
        function = load_factory(args.entrypoint)
    except ValueError as exc:
        fail(PROGRAM, str(exc))
    if not callable(function):
        fail(PROGRAM, f"{args.entrypoint!r} is not callable")
    try:
        function(dict(config.app))
    finally:
        flush_telemetry()


__all__ = ["main", "parse_args"]
