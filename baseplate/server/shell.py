"""``baseplate-tshell CONFIG``: an interactive Python shell inside the application.

The shell has two variables: ``app``, what the ``[app:NAME]`` factory returned, and
``context``, a context object whose ``trace`` is a started server span named ``shell`` (so
clients added with ``Baseplate.add_to_context`` are there, and their calls are traced). The
span ends, and its spans are exported, when the shell exits.

The application's :class:`~baseplate.core.Baseplate` is found as ``app.baseplate``, or as the
event handler's of a :class:`~baseplate.integration.thrift.ContextProcessor`; without one the
span comes from a plain ``Baseplate()``.

A setup function may add variables::

    [tshell]
    setup = my_service:tshell_setup

    def tshell_setup(env, env_banner):
        from my_service import models
        env["models"] = models
        env_banner["models"] = "Models module"

IPython is used when it is installed, else the standard library's interactive console (which
also reads commands piped to stdin). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import code
import sys
from collections.abc import Sequence
from typing import Any

from baseplate.server.cli import fail, flush_telemetry, load_tool_config, tool_parser
from baseplate.server.loading import ConfigFileError, load_factory, make_app, section_error

PROGRAM = "baseplate-tshell"


def parse_args(args: Sequence[str]) -> argparse.Namespace:
    """Parse ``baseplate-tshell``'s command line."""
    parser = tool_parser(
        PROGRAM,
        description=(
            "Open an interactive Python shell with the application and a context object "
            "(with a live server span) loaded."
        ),
        epilog="A [tshell] section's 'setup = module:function' can add variables.",
    )
    return parser.parse_args(args)


def find_baseplate(app: Any) -> Any:
    """The :class:`~baseplate.core.Baseplate` an application uses (a new one if none is found)."""
    from baseplate.core import Baseplate

    candidates = (
        getattr(app, "baseplate", None),
        getattr(getattr(app, "_event_handler", None), "baseplate", None),
    )
    for candidate in candidates:
        if isinstance(candidate, Baseplate):
            return candidate
    return Baseplate()


def make_banner(env_banner: dict[str, str]) -> str:
    """The text shown when the shell starts."""
    lines = ["Baseplate Interactive Shell", f"Python {sys.version}", "", "Available Objects:"]
    width = max((len(name) for name in env_banner), default=0) + 4
    for name in sorted(env_banner):
        lines.append(f"    {name:<{width}}{env_banner[name]}")
    return "\n".join(lines)


def _interact(env: dict[str, Any], banner: str) -> None:
    try:
        from IPython import start_ipython
        from traitlets.config import Config
    except ImportError:
        code.interact(banner=banner, local=env, exitmsg="")
        return
    ipython_config = Config()
    ipython_config.TerminalInteractiveShell.banner2 = banner
    start_ipython(argv=[], user_ns=env, config=ipython_config)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``baseplate-tshell``."""
    from baseplate.config import ConfigurationError
    from baseplate.core import RequestContext

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_tool_config(args)
        try:
            app = make_app(config.app)
        except ConfigurationError as exc:
            raise section_error(config, config.app_section, exc)
        setup = None
        setup_name = (config.tshell or {}).get("setup")
        if setup_name:
            try:
                setup = load_factory(setup_name)
            except ValueError as exc:
                raise ConfigFileError(f"{config.filename}: [tshell] setup: {exc}")
    except ConfigFileError as exc:
        fail(PROGRAM, str(exc))

    baseplate = find_baseplate(app)
    context = RequestContext()
    span = baseplate.make_server_span(context, "shell")
    span.start()
    env: dict[str, Any] = {"app": app, "context": context}
    env_banner = {
        "app": "This project's app instance",
        "context": "The context for this shell instance's span",
    }
    try:
        if setup is not None:
            setup(env, env_banner)
        _interact(env, make_banner(env_banner))
    finally:
        span.finish()
        flush_telemetry()


__all__ = ["find_baseplate", "main", "make_banner", "parse_args"]
