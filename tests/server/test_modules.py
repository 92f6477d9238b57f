"""How baseplate.server is split: configuration loading (baseplate.server.loading) and the
commands' shared pieces (baseplate.server.cli) apart from the serve loop, with no import
cycle between the package and its tools, and every old name still importable."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import baseplate.server
from baseplate.server import cli, loading

SERVER_PACKAGE = Path(baseplate.server.__file__).parent

#: Every name baseplate.server had before the split (tests, docs and tools import them).
NAMES_BEFORE_THE_SPLIT = [
    "DEFAULT_BIND",
    "DEFAULT_LOG_FORMAT",
    "TELEMETRY_FLUSH_TIMEOUT",
    "ConfigFileError",
    "Configuration",
    "_TraceFormatter",
    "_describe_address",
    "_endpoint",
    "_load_factory",
    "_load_tool_config",
    "_log_stacks",
    "_one_line",
    "_parse_error",
    "_remove_stale_unix_socket",
    "_run_server",
    "_section",
    "_section_factory",
    "_tool_parser",
    "configure_logging",
    "fail",
    "flush_telemetry",
    "load_and_run_script",
    "load_and_run_tshell",
    "load_app_and_run_server",
    "make_app",
    "make_listener",
    "make_server",
    "parse_args",
    "read_config",
    "register_signal_handlers",
]


@pytest.mark.parametrize("name", NAMES_BEFORE_THE_SPLIT)
def test_every_old_name_is_importable_from_baseplate_server(name: str) -> None:
    assert hasattr(baseplate.server, name)


def test_the_reexported_names_are_the_loading_and_cli_objects() -> None:
    assert baseplate.server.read_config is loading.read_config
    assert baseplate.server.make_app is loading.make_app
    assert baseplate.server._load_factory is loading.load_factory
    assert baseplate.server.ConfigFileError is loading.ConfigFileError
    assert baseplate.server.flush_telemetry is cli.flush_telemetry
    assert baseplate.server._tool_parser is cli.tool_parser


def imported_modules(path: Path) -> set[str]:
    """The modules a source file imports (at any level, lazily or not)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "baseplate.server":
                # "from baseplate.server import einhorn" imports a submodule, not the package
                modules.update(
                    f"baseplate.server.{alias.name}"
                    if (SERVER_PACKAGE / f"{alias.name}.py").exists()
                    else "baseplate.server"
                    for alias in node.names
                )
            else:
                modules.add(node.module)
    return modules


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        (
            "loading",
            {"baseplate.server", "baseplate.server.cli", "baseplate.server.script"}
            | {"baseplate.server.shell"},
        ),
        ("cli", {"baseplate.server", "baseplate.server.script", "baseplate.server.shell"}),
        ("script", {"baseplate.server"}),
        ("shell", {"baseplate.server"}),
        ("wsgi", {"baseplate.server"}),
        ("healthcheck", {"baseplate.server"}),
    ],
)
def test_no_import_cycle_through_the_package(module: str, forbidden: set[str]) -> None:
    # baseplate.server imports loading and cli, and the tools from its entry points: none of
    # them may import it back
    assert not imported_modules(SERVER_PACKAGE / f"{module}.py") & forbidden


def test_importing_the_server_loads_neither_gevent_nor_opentelemetry() -> None:
    # the entry points monkey-patch gevent first: nothing that makes locks or threads may be
    # imported before they run
    code = (
        "import sys, baseplate.server, baseplate.server.script, baseplate.server.shell\n"
        "print(sorted(name for name in sys.modules\n"
        "      if name.split('.')[0] in ('gevent', 'opentelemetry', 'otel_bridge')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("script", "target"),
    [
        ("baseplate-serve", baseplate.server.load_app_and_run_server),
        ("baseplate-script", baseplate.server.load_and_run_script),
        ("baseplate-tshell", baseplate.server.load_and_run_tshell),
    ],
)
def test_console_scripts_point_at_baseplate_server(script: str, target: object) -> None:
    (entry_point,) = importlib.metadata.entry_points(group="console_scripts", name=script)
    assert entry_point.value.startswith("baseplate.server:")
    assert entry_point.load() is target
