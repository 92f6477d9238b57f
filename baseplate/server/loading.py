"""Configuration loading for the ``baseplate-*`` commands: the INI file, and what it builds.

:func:`read_config` reads the file (:class:`configparser.RawConfigParser`: values as written,
without ``%(name)s`` interpolation; a ``[DEFAULT]`` section is shared by every section) into a
:class:`Configuration`; :func:`make_app` and :func:`make_server` call the ``factory`` of the
app and server sections; :func:`configure_logging` sets logging up from the file. Everything
here is importable from :mod:`baseplate.server` as well, the documented place.

Only the standard library and :mod:`baseplate.config` (itself standard library only) are
imported at module level: the entry points patch gevent before anything that creates locks or
threads is loaded. This module imports no other part of :mod:`baseplate.server`.
"""

from __future__ import annotations

import configparser
import importlib
import logging
import logging.config
import socket
import sys
from collections.abc import Collection
from typing import IO, Any, NamedTuple

from baseplate.config import ConfigurationError, warn_unknown_keys

logger = logging.getLogger(__name__)

#: Format of the default log lines; ``trace_id`` is the current trace's id, ``-`` outside one.
DEFAULT_LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(process)d] [trace_id=%(trace_id)s] %(name)s: %(message)s"
)


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
    #: The options of the ``[DEFAULT]`` section (which every section's dict also holds).
    default_keys: frozenset[str] = frozenset()


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of white space as single spaces."""
    return " ".join(str(text).split())


def _parse_error(filename: str, exc: configparser.Error) -> ConfigFileError:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return ConfigFileError(
            f"{filename}, line {exc.lineno}: {exc.line.strip()!r} comes before any [section] header"
        )
    if isinstance(exc, configparser.ParsingError):
        lineno, line = exc.errors[0]
        return ConfigFileError(
            f"{filename}, line {lineno}: cannot parse {line.strip()!r} (expected 'key = value')"
        )
    return ConfigFileError(f"{filename}: {one_line(exc.message)}")


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
        default_keys=frozenset(parser.defaults()),
    )


def load_factory(spec: str, default_name: str | None = None) -> Any:
    """Load the object named by ``module.path:name`` (or ``module.path.name``; with
    ``default_name``, a bare ``module.path`` means ``module.path:default_name``).

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
    factory_name = section.get("factory")
    if not factory_name:
        raise ConfigurationError("factory", f"required option is missing ({expected})")
    try:
        factory = load_factory(factory_name, default_name=default_name)
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


def make_server(
    server_config: dict[str, str],
    listener: socket.socket,
    app: Any,
    default_keys: Collection[str] = (),
) -> Any:
    """Build the server: call the ``factory`` of the server section (default function
    ``make_server``) with the section, the listening socket and the application.

    When the factory's module lists the options it reads in ``SERVER_KEYS`` (as
    :mod:`baseplate.server.thrift` and :mod:`baseplate.server.wsgi` do), any other option of
    the section (a typo such as ``stop_timout``) is warned about; ``default_keys``, the
    ``[DEFAULT]`` section's options, are not.

    :raises baseplate.config.ConfigurationError: naming the option that is wrong.
    """
    factory = _section_factory(server_config, "make_server", "baseplate.server.thrift or .wsgi")
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    known = getattr(module, "SERVER_KEYS", None)
    if known is not None:
        warn_unknown_keys(server_config, "", known, logger, ignore=default_keys)
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
                f"{one_line(f'{type(exc).__name__}: {exc}')}"
            )


def section_error(config: Configuration, section: str, exc: ConfigurationError) -> ConfigFileError:
    """The one-line error for a bad option of a section: ``<file>: [<section>] <key>: ...``."""
    return ConfigFileError(f"{config.filename}: [{section}] {exc}")


__all__ = [
    "DEFAULT_LOG_FORMAT",
    "ConfigFileError",
    "Configuration",
    "configure_logging",
    "load_factory",
    "make_app",
    "make_server",
    "one_line",
    "read_config",
    "section_error",
]
