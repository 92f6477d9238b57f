"""What the ``baseplate-*`` commands share: their common command line, ending with an error,
and exporting pending telemetry before exit.

``baseplate-script`` and ``baseplate-tshell`` take the same ``CONFIG [--app-name NAME]
[--debug]`` (:func:`tool_parser`) and load it the same way (:func:`load_tool_config`);
``baseplate-serve`` and ``baseplate-healthcheck`` parse endpoints with
:func:`endpoint_argument`. Importable from :mod:`baseplate.server` as well.

Only the standard library and :mod:`baseplate.config` are imported at module level (see
:mod:`baseplate.server.loading`); this module imports neither the serve loop nor the tools.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import NoReturn

from baseplate.config import Endpoint, EndpointConfiguration
from baseplate.server.loading import Configuration, configure_logging, read_config

logger = logging.getLogger("baseplate.server")

#: Seconds the commands wait for spans to be exported when they end.
TELEMETRY_FLUSH_TIMEOUT = 5.0


def endpoint_argument(text: str) -> EndpointConfiguration:
    """An ``ENDPOINT`` command-line argument (``host:port`` or a UNIX socket path), for
    :mod:`argparse`'s ``type=``."""
    try:
        return Endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def tool_parser(program: str, description: str, epilog: str) -> argparse.ArgumentParser:
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


def load_tool_config(args: argparse.Namespace) -> Configuration:
    """Read the ``[app:NAME]`` configuration of a :func:`tool_parser` command line and log to
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


def flush_telemetry(timeout: float = TELEMETRY_FLUSH_TIMEOUT) -> bool:
    """Export pending spans and error reports and shut the global tracer provider down, all
    within ``timeout`` seconds (see :func:`otel_bridge.provider.shutdown`); what could not be
    exported is logged once with its count. Whether everything was exported; never raises."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from otel_bridge.provider import shutdown

    deadline = time.monotonic() + timeout
    provider = trace.get_tracer_provider()
    exported = True
    if isinstance(provider, TracerProvider):
        exported = shutdown(provider, timeout)
    # OpenTelemetry metric pipelines (metrics.exporter = otlp | prometheus), if any were made
    if "exporters.otel_metrics" in sys.modules:
        from exporters.otel_metrics import shutdown_pipelines

        shutdown_pipelines(max(deadline - time.monotonic(), 0.0))
    return exported


__all__ = [
    "TELEMETRY_FLUSH_TIMEOUT",
    "endpoint_argument",
    "fail",
    "flush_telemetry",
    "load_tool_config",
    "tool_parser",
]
