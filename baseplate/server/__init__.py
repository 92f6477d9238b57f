"""The baseplate server: ``baseplate-serve`` runs a Thrift or WSGI application under gevent.

``baseplate-serve CONFIG [--debug] [--reload] [--app-name NAME] [--server-name NAME]
[--bind ENDPOINT]`` reads an INI file (:class:`configparser.RawConfigParser`: values are read
as written, without ``%(name)s`` interpolation, so ``37%`` needs no escaping; a ``[DEFAULT]``
section is shared by every section) with two sections::

    [server:main]
    factory = baseplate.server.thrift
    max_concurrency = 100
    stop_timeout = 30

    [app:main]
    factory = my_service:make_processor
    foo = 3

The app factory is called with its whole section (``factory`` included, ``[DEFAULT]``'s
options too) as a dict of strings and returns a ``TProcessor`` (Thrift) or a WSGI callable.
``--app-name``/``--server-name`` choose other sections than ``main``; ``--bind`` is
``host:port`` or a UNIX socket path (default ``localhost:9090``; ignored when running under
Einhorn, see :mod:`baseplate.server.einhorn`).

The process:

* gevent's monkey-patching happens before anything else is imported (OpenTelemetry included);
* logs go to stdout, with each record's trace id, at INFO (DEBUG with ``--debug``); logging
  sections in the INI file (``[loggers]`` ...) replace that (:func:`logging.config.fileConfig`);
* SIGUSR1 logs the stack of every greenlet and thread;
* SIGTERM, SIGINT (and SIGUSR2, Einhorn's request) stop the server gracefully: it stops
  accepting, lets requests in progress finish for up to ``stop_timeout`` seconds, exports
  pending telemetry (at most :data:`TELEMETRY_FLUSH_TIMEOUT` seconds) and exits;
* ``--reload`` restarts the process when a loaded module or the INI file changes
  (development only).

A configuration that cannot be used (missing file or section, bad factory, a value that does
not parse) ends the command with one line on stderr naming the problem and exit status 1.
"""

from __future__ import annotations

# Only the standard library and baseplate.config are imported at module level: the entry
# points patch gevent before anything that creates locks or threads (OpenTelemetry, the
# application) is loaded.
import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from baseplate import _distribution as _distribution  # warns if reddit's baseplate is installed

# Configuration loading and the commands' shared pieces live in their own modules (which
# import neither this one nor the tools); they are re-exported here, the documented place.
from baseplate.server.cli import TELEMETRY_FLUSH_TIMEOUT as TELEMETRY_FLUSH_TIMEOUT
from baseplate.server.cli import endpoint_argument as endpoint_argument
from baseplate.server.cli import fail as fail
from baseplate.server.cli import flush_telemetry as flush_telemetry
from baseplate.server.cli import load_tool_config as load_tool_config
from baseplate.server.cli import tool_parser as tool_parser
from baseplate.server.loading import DEFAULT_LOG_FORMAT as DEFAULT_LOG_FORMAT
from baseplate.server.loading import ConfigFileError as ConfigFileError
from baseplate.server.loading import Configuration as Configuration
from baseplate.server.loading import _parse_error as _parse_error
from baseplate.server.loading import _section as _section
from baseplate.server.loading import _section_factory as _section_factory
from baseplate.server.loading import _TraceFormatter as _TraceFormatter
from baseplate.server.loading import configure_logging as configure_logging
from baseplate.server.loading import load_factory as load_factory
from baseplate.server.loading import make_app as make_app
from baseplate.server.loading import make_server as make_server
from baseplate.server.loading import one_line as one_line
from baseplate.server.loading import read_config as read_config
from baseplate.server.loading import section_error as section_error

if TYPE_CHECKING:
    from baseplate.config import EndpointConfiguration

logger = logging.getLogger(__name__)

#: The endpoint ``baseplate-serve`` listens on without ``--bind``.
DEFAULT_BIND = "localhost:9090"

# The names these helpers had before they moved, kept importable.
_load_factory = load_factory
_tool_parser = tool_parser
_load_tool_config = load_tool_config
_endpoint = endpoint_argument
_one_line = one_line


def make_listener(endpoint: EndpointConfiguration) -> socket.socket:
    """The listening socket: Einhorn's first socket in an Einhorn worker, else one bound to
    ``endpoint`` (``SO_REUSEADDR``, closed on exec)."""
    from baseplate.server import einhorn

    if einhorn.is_worker():
        try:
            return einhorn.get_socket()
        except IndexError:
            pass  # the master bound no socket: bind our own

    family = endpoint.family
    address: Any = endpoint.address
    if family == socket.AF_INET and address[0].startswith("["):
        family = socket.AF_INET6
        address = (address[0].strip("[]"), address[1])
    if family == socket.AF_UNIX:
        _remove_stale_unix_socket(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.set_inheritable(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {_describe_address(address)}: {exc.strerror}")
    sock.listen(socket.SOMAXCONN)
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a socket file nobody listens on any more
    except OSError:
        pass
    finally:
        probe.close()


def _describe_address(address: Any) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


def parse_args(args: Sequence[str]) -> argparse.Namespace:
    """Parse ``baseplate-serve``'s command line."""
    parser = argparse.ArgumentParser(
        prog="baseplate-serve",
        description="Serve the Thrift or WSGI application described by an INI file under gevent.",
        epilog=(
            "The file needs an [app:NAME] section (factory = module:callable, plus the "
            "app's own options) and a [server:NAME] section (factory = "
            "baseplate.server.thrift or baseplate.server.wsgi; max_concurrency, "
            "stop_timeout, handler). SIGTERM stops gracefully; SIGUSR1 logs all stacks."
        ),
    )
    parser.add_argument("config_file", metavar="CONFIG", help="path to the INI configuration file")
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level instead of INFO")
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart when source files or the configuration change (development only)",
    )
    parser.add_argument(
        "--app-name",
        default="main",
        metavar="NAME",
        help="use the [app:NAME] section (default: main)",
    )
    parser.add_argument(
        "--server-name",
        default="main",
        metavar="NAME",
        help="use the [server:NAME] section (default: main)",
    )
    parser.add_argument(
        "--bind",
        type=endpoint_argument,
        default=None,
        metavar="ENDPOINT",
        help=f"host:port or UNIX socket path to listen on (default: {DEFAULT_BIND}; "
        "ignored under Einhorn)",
    )
    return parser.parse_args(args)


def _log_stacks(signum: int, frame: Any) -> None:
    try:
        from gevent.util import format_run_info

        lines = format_run_info()
    except Exception:
        import traceback

        lines = ["".join(traceback.format_stack(frame))] if frame else []
    logger.warning("Received SIGUSR1; stacks of all threads and greenlets:\n%s", "\n".join(lines))


def register_signal_handlers(stop: Callable[[int], None]) -> None:
    """SIGUSR1 logs every stack; SIGTERM, SIGINT and SIGUSR2 call ``stop(signum)`` in a
    greenlet."""
    import gevent

    # A plain handler runs even while a greenlet hogs the CPU, which is when stacks matter.
    signal.signal(signal.SIGUSR1, _log_stacks)
    signal.siginterrupt(signal.SIGUSR1, False)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        gevent.signal_handler(signum, stop, signum)


def _run_server(args: argparse.Namespace) -> None:
    import gevent.event

    from baseplate.config import ConfigurationError
    from baseplate.server import einhorn

    sys.path.append(os.getcwd())  # the factories' modules usually live beside the INI file
    config = read_config(args.config_file, args.server_name, args.app_name)
    assert config.server is not None
    configure_logging(config, args.debug)

    stopping = gevent.event.Event()

    def stop(signum: int) -> None:
        if stopping.is_set():
            logger.info("Already stopping (%s)", signal.Signals(signum).name)
            return
        logger.info("Received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    register_signal_handlers(stop)
    # Listening before the application is built lets an application that forks (a pre-fork
    # model) serve the same socket from every process.
    bind = args.bind or endpoint_argument(DEFAULT_BIND)
    try:
        listener = make_listener(bind)
    except (OSError, ValueError) as exc:
        raise ConfigFileError(str(getattr(exc, "strerror", None) or exc))
    owner = os.getpid()
    owns_socket_file = bind.family == socket.AF_UNIX and not einhorn.is_worker()

    def close_listener() -> None:
        listener.close()
        if owns_socket_file and os.getpid() == owner:  # not in a process the app forked
            try:
                os.unlink(str(bind.address))
            except OSError:
                pass

    from baseplate.file_watcher import WatchedFileNotAvailableError
    from baseplate.secrets import SecretsNotAvailableError

    try:
        app = make_app(config.app)
    except ConfigurationError as exc:
        close_listener()
        raise section_error(config, config.app_section, exc)
    except (SecretsNotAvailableError, WatchedFileNotAvailableError) as exc:
        # a secrets or watched file that is missing or unreadable at start-up: one line
        close_listener()
        raise ConfigFileError(f"{config.filename}: [{config.app_section}] {exc}")
    try:
        server = make_server(config.server, listener, app, default_keys=config.default_keys)
    except ConfigurationError as exc:
        close_listener()
        raise section_error(config, config.server_section, exc)

    if args.reload:
        from baseplate.server import reloader

        reloader.start_reload_watcher(extra_files=[config.filename])

    server.start()
    logger.info("Listening on %s", _describe_address(listener.getsockname()))
    if einhorn.is_worker():
        einhorn.ack_startup()
    stopping.wait()

    stop_timeout = float(getattr(server, "stop_timeout", 0) or 0)
    stop_gracefully = getattr(server, "stop_gracefully", None)
    if callable(stop_gracefully):
        stop_gracefully(stop_timeout)
    else:
        server.stop(timeout=stop_timeout)
    close_listener()
    # One budget for flush and shutdown together: a hung exporter cannot hold the exit.
    flush_telemetry(TELEMETRY_FLUSH_TIMEOUT)
    logger.info("Stopped")


def load_app_and_run_server(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``baseplate-serve``."""
    # First thing: everything imported from here on sees the cooperative stdlib.
    try:
        from gevent import monkey
    except ImportError:
        fail("baseplate-serve", "needs gevent: pip install 'baseplate-otel[gevent]'")

    monkey.patch_all()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        _run_server(args)
    except ConfigFileError as exc:
        fail("baseplate-serve", str(exc))


def load_and_run_script(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``baseplate-script`` (see :mod:`baseplate.server.script`)."""
    from baseplate.server.script import main

    main(argv)


def load_and_run_tshell(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``baseplate-tshell`` (see :mod:`baseplate.server.shell`)."""
    from baseplate.server.shell import main

    main(argv)


__all__ = [
    "ConfigFileError",
    "Configuration",
    "configure_logging",
    "flush_telemetry",
    "load_and_run_script",
    "load_and_run_tshell",
    "load_app_and_run_server",
    "make_app",
    "make_listener",
    "make_server",
    "parse_args",
    "read_config",
]
