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

# Only the standard library is imported at module level: the entry points patch gevent
# before anything that creates locks or threads (OpenTelemetry, the application) is loaded.
import argparse
import configparser
import importlib
import logging
import logging.config
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, NamedTuple, NoReturn

if TYPE_CHECKING:
    from baseplate.config import EndpointConfiguration

logger = logging.getLogger(__name__)

#: Format of the default log lines; ``trace_id`` is the current trace's id, ``-`` outside one.
DEFAULT_LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(process)d] [trace_id=%(trace_id)s] %(name)s: %(message)s"
)
#: Seconds the server waits for spans to be exported when it stops.
TELEMETRY_FLUSH_TIMEOUT = 5.0
#: The endpoint ``baseplate-serve`` listens on without ``--bind``.
DEFAULT_BIND = "localhost:9090"


class ConfigFileError(Exception):
    """The configuration file cannot be used; the message says where and why."""


class Configuration(NamedTuple):
    """The parts of the INI file the tools use."""

    #: Path of the configuration file.
    filename: str
    #: The ``[server:NAME]`` section (None when not asked for).
    server: dict[str, str] | None
    #: The ``[app:NAME]`` section, ``factory`` included.
    app: dict[str, str]
    #: Whether the file has logging sections (``[loggers]``) for :func:`logging.config.fileConfig`.
    has_logging_options: bool
    #: The ``[tshell]`` section, if any.
    tshell: dict[str, str] | None
    #: The name of the app section (``app:NAME``).
    app_section: str = "app:main"
    #: The name of the server section (``server:NAME``).
    server_section: str = "server:main"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _parse_error(filename: str, exc: configparser.Error) -> ConfigFileError:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return ConfigFileError(
            f"{filename}, line {exc.lineno}: {exc.line.strip()!r} comes before any "
            "[section] header"
        )
    if isinstance(exc, configparser.ParsingError):
        lineno, line = exc.errors[0]
        return ConfigFileError(
            f"{filename}, line {lineno}: cannot parse {line.strip()!r} "
            "(expected 'key = value')"
        )
    return ConfigFileError(f"{filename}: {_one_line(exc.message)}")


def _section(parser: configparser.RawConfigParser, name: str) -> dict[str, str]:
    return dict(parser.items(name)) if parser.has_section(name) else {}


def read_config(
    config_file: str | IO[str], server_name: str | None, app_name: str
) -> Configuration:
    """Read the configuration file (a path or an open file).

    Values are read as written (no ``%`` interpolation); each section's dict also holds the
    ``[DEFAULT]`` section's options.

    :param server_name: the ``server:NAME`` section to read, or None to read none.
    :param app_name: the ``app:NAME`` section to read.
    :raises ConfigFileError: the file cannot be read or parsed, or a section is missing.
    """
    parser = configparser.RawConfigParser()
    if isinstance(config_file, str):
        filename = config_file
        try:
            with open(config_file, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigFileError(f"cannot read configuration file {filename!r}: {reason}")
        except UnicodeDecodeError as exc:
            raise ConfigFileError(f"{filename}: not a UTF-8 text file ({exc.reason})")
        except configparser.Error as exc:
            raise _parse_error(filename, exc)
    else:
        filename = getattr(config_file, "name", "<config>")
        try:
            parser.read_file(config_file)
        except configparser.Error as exc:
            raise _parse_error(filename, exc)

    app_section = "app:" + app_name
    if not parser.has_section(app_section):
        raise ConfigFileError(
            f"{filename}: no [{app_section}] section (--app-name chooses the app section)"
        )
    server_section = "server:" + (server_name or "main")
    server = None
    if server_name is not None:
        if not parser.has_section(server_section):
            raise ConfigFileError(
                f"{filename}: no [{server_section}] section "
                "(--server-name chooses the server section)"
            )
        server = _section(parser, server_section)
    tshell = _section(parser, "tshell") if parser.has_section("tshell") else None
    return Configuration(
        filename=filename,
        server=server,
        app=_section(parser, app_section),
        has_logging_options=parser.has_section("loggers"),
        tshell=tshell,
        app_section=app_section,
        server_section=server_section,
    )


def _load_factory(spec: str, default_name: str | None = None) -> Any:
    """Load the object named by ``module.path:name`` (or ``module.path.name``).

    :raises ValueError: naming what could not be found. Errors raised while the module
        itself is imported (its own bugs) propagate unchanged.
    """
    spec = spec.strip()
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        if default_name:
            attribute = default_name
        else:
            module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute or any(not part for part in module_name.split(".")):
        raise ValueError(f"{spec!r} is not a 'module.path:name' reference")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(f"cannot import {spec!r}: no module named {missing!r}")
        raise
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"cannot import {spec!r}: module {module_name!r} has no {attribute!r}")
    return target


def _section_factory(section: dict[str, str], default_name: str, expected: str) -> Any:
    """The callable named by a section's ``factory`` option (``expected`` describes it when the
    option is missing).

    :raises baseplate.config.ConfigurationError: naming ``factory``.
    """
    from baseplate.config import ConfigurationError

    factory_name = section.get("factory")
    if not factory_name:
        raise ConfigurationError("factory", f"required option is missing ({expected})")
    try:
        factory = _load_factory(factory_name, default_name=default_name)
    except ValueError as exc:
        raise ConfigurationError("factory", exc)
    if not callable(factory):
        raise ConfigurationError("factory", f"{factory_name!r} is not callable")
    return factory


def make_app(app_config: dict[str, str]) -> Any:
    """Build the application: call the ``factory`` of the app section with the whole section
    (``factory`` included) as a dict of strings.

    :raises baseplate.config.ConfigurationError: naming ``factory`` when it is missing or
        cannot be loaded (the factory's own configuration errors propagate too).
    """
    factory = _section_factory(app_config, "make_app", "module:callable")
    return factory(dict(app_config))


def make_server(server_config: dict[str, str], listener: socket.socket, app: Any) -> Any:
    """Build the server: call the ``factory`` of the server section (default function
    ``make_server``) with the section, the listening socket and the application.

    :raises baseplate.config.ConfigurationError: naming the option that is wrong.
    """
    factory = _section_factory(server_config, "make_server", "baseplate.server.thrift or .wsgi")
    return factory(server_config, listener, app)


class _TraceFormatter(logging.Formatter):
    """Shows ``-`` for the trace id of records logged outside a trace."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        if getattr(record, "trace_id", ""):
            return super().formatMessage(record)
        values = dict(record.__dict__)
        values["trace_id"] = "-"
        return self._fmt % values if self._fmt else record.getMessage()


def configure_logging(config: Configuration, debug: bool, stream: IO[str] | None = None) -> None:
    """Log to ``stream`` (stdout) with trace ids, at INFO or DEBUG; the file's logging
    sections, if it has any, replace that set-up.

    :raises ConfigFileError: when the logging sections cannot be used.
    """
    from baseplate.diagnostics.logging import install_record_factory

    install_record_factory()
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_TraceFormatter(DEFAULT_LOG_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.captureWarnings(True)

    if config.has_logging_options:
        try:
            logging.config.fileConfig(config.filename, disable_existing_loggers=False)
        except KeyError as exc:  # what fileConfig raises for a missing section or option
            raise ConfigFileError(
                f"{config.filename}: bad logging configuration: {exc.args[0]!r} is missing"
            )
        except Exception as exc:
            raise ConfigFileError(
                f"{config.filename}: bad logging configuration: "
                f"{_one_line(f'{type(exc).__name__}: {exc}')}"
            )


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


def _endpoint(text: str) -> EndpointConfiguration:
    from baseplate.config import Endpoint

    try:
        return Endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


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
    parser.add_argument(
        "--debug", action="store_true", help="log at DEBUG level instead of INFO"
    )
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
        type=_endpoint,
        default=None,
        metavar="ENDPOINT",
        help=f"host:port or UNIX socket path to listen on (default: {DEFAULT_BIND}; "
        "ignored under Einhorn)",
    )
    return parser.parse_args(args)


def _tool_parser(program: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """The command line ``baseplate-script`` and ``baseplate-tshell`` share: ``CONFIG``,
    ``--app-name`` and ``--debug``."""
    parser = argparse.ArgumentParser(prog=program, description=description, epilog=epilog)
    parser.add_argument("config_file", metavar="CONFIG", help="path to the INI configuration file")
    parser.add_argument(
        "--app-name",
        default="main",
        metavar="NAME",
        help="use the [app:NAME] section (default: main)",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level instead of INFO")
    return parser


def _load_tool_config(args: argparse.Namespace) -> Configuration:
    """Read the ``[app:NAME]`` configuration of a :func:`_tool_parser` command line and log to
    stderr (stdout is the tool's); the working directory joins the import path.

    :raises ConfigFileError: the file, its app section or its logging sections cannot be used.
    """
    sys.path.append(os.getcwd())
    config = read_config(args.config_file, server_name=None, app_name=args.app_name)
    configure_logging(config, args.debug, stream=sys.stderr)
    return config


def fail(program: str, message: str) -> NoReturn:
    """End a command: ``<program>: error: <message>`` on stderr, exit status 1."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def flush_telemetry(timeout: float = TELEMETRY_FLUSH_TIMEOUT) -> None:
    """Export pending spans (waiting at most ``timeout`` seconds) and shut the global tracer
    provider down (each span processor bounds its own shutdown); failures are logged, never
    raised. ``baseplate-serve`` also bounds the two steps together by ``timeout``."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    shutdown = getattr(provider, "shutdown", None)
    try:
        if callable(force_flush) and not force_flush(int(timeout * 1000)):
            logger.warning("not every span could be exported within %gs", timeout)
        if callable(shutdown):
            shutdown()
    except Exception:
        logger.exception("flushing telemetry failed")


def _log_stacks(signum: int, frame: Any) -> None:
    try:
        from gevent.util import format_run_info

        lines = format_run_info()
    except Exception:
        import traceback

        lines = ["".join(traceback.format_stack(frame))] if frame else []
    logger.warning(
        "Received SIGUSR1; stacks of all threads and greenlets:\n%s", "\n".join(lines)
    )


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
    bind = args.bind or _endpoint(DEFAULT_BIND)
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

    try:
        app = make_app(config.app)
    except ConfigurationError as exc:
        close_listener()
        raise ConfigFileError(f"{config.filename}: [{config.app_section}] {exc}")
    try:
        server = make_server(config.server, listener, app)
    except ConfigurationError as exc:
        close_listener()
        raise ConfigFileError(f"{config.filename}: [{config.server_section}] {exc}")

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
    # One bound for flush and shutdown together: a hung exporter cannot hold the exit.
    timer = gevent.Timeout(TELEMETRY_FLUSH_TIMEOUT)
    timer.start()
    try:
        flush_telemetry(TELEMETRY_FLUSH_TIMEOUT)
    except gevent.Timeout as timeout:
        if timeout is not timer:
            raise
        logger.warning(
            "telemetry export did not finish within %gs; exiting anyway", TELEMETRY_FLUSH_TIMEOUT
        )
    finally:
        timer.close()
    logger.info("Stopped")


def load_app_and_run_server(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``baseplate-serve``."""
    # First thing: everything imported from here on sees the cooperative stdlib.
    from gevent import monkey

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
