"""A configuration the tools cannot use ends them with one clear line, not a traceback."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from .conftest import command, free_port, subprocess_env

GOOD_APP = "[app:main]\nfactory = serve_apps:config_echo_app\n\n"
GOOD_SERVER = "[server:main]\nfactory = baseplate.server.wsgi\n\n"
POOLS_APP = "[app:main]\nfactory = serve_apps:client_pools_app\nsvc.endpoint = localhost:9\n"

#: name -> (INI text or None for a missing file, extra arguments, what the error must say)
CASES: dict[str, tuple[str | None, list[str], list[str]]] = {
    "missing file": (None, [], ["cannot read configuration file", "No such file"]),
    "no app section": (GOOD_SERVER, [], ["no [app:main] section"]),
    "no such --app-name": (GOOD_APP + GOOD_SERVER, ["--app-name", "other"], ["[app:other]"]),
    "no server section": (GOOD_APP, [], ["no [server:main] section"]),
    "no such --server-name": (
        GOOD_APP + GOOD_SERVER,
        ["--server-name", "web"],
        ["no [server:web] section"],
    ),
    "line that is not key = value": (
        GOOD_APP + GOOD_SERVER + "[extra]\nthis line is broken\n",
        [],
        ["line 8", "this line is broken"],
    ),
    "option before any section": ("factory = x\n" + GOOD_APP, [], ["line 1", "before any"]),
    "duplicate option": (
        GOOD_SERVER + "[app:main]\nfactory = serve_apps:config_echo_app\nrate = 1\nrate = 2\n",
        [],
        ["option 'rate' in section 'app:main' already exists"],
    ),
    "app factory missing": (GOOD_SERVER + "[app:main]\nfoo = 1\n", [], ["[app:main] factory:"]),
    "app factory module missing": (
        GOOD_SERVER + "[app:main]\nfactory = no_such_module:make_app\n",
        [],
        ["[app:main] factory:", "no module named 'no_such_module'"],
    ),
    "app factory name missing": (
        GOOD_SERVER + "[app:main]\nfactory = serve_apps:no_such_factory\n",
        [],
        ["[app:main] factory:", "no_such_factory"],
    ),
    "app factory path malformed": (
        GOOD_SERVER + "[app:main]\nfactory = serve_apps..x:y\n",
        [],
        ["[app:main] factory:", "serve_apps..x:y"],
    ),
    "secrets file missing": (
        GOOD_SERVER
        + "[app:main]\nfactory = serve_apps:secrets_app\nsecrets.path = /nonexistent/s.json\n",
        [],
        ["[app:main]", "could not load secrets", "/nonexistent/s.json"],
    ),
    "secrets file not JSON": (
        GOOD_SERVER
        + "[app:main]\nfactory = serve_apps:secrets_app\nsecrets.path = /etc/hostname\n",
        [],
        ["[app:main]", "/etc/hostname"],
    ),
    "value the app cannot parse": (
        GOOD_SERVER + "[app:main]\nfactory = serve_apps:failing_config_app\nworkers = lots\n",
        [],
        ["[app:main] workers:", "invalid integer", "lots"],
    ),
    "server factory missing": (GOOD_APP + "[server:main]\nstop_timeout = 1\n", [], ["factory"]),
    "server factory module missing": (
        GOOD_APP + "[server:main]\nfactory = baseplate.server.nope\n",
        [],
        ["[server:main] factory:", "baseplate.server.nope"],
    ),
    "max_concurrency not a number": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", "\nmax_concurrency = lots\n\n"),
        [],
        ["[server:main] max_concurrency:", "lots"],
    ),
    "negative stop_timeout": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", "\nstop_timeout = -3\n\n"),
        [],
        ["[server:main] stop_timeout:", "-3"],
    ),
    "stop_timeout not a time": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", "\nstop_timeout = soon\n\n"),
        [],
        ["[server:main] stop_timeout:", "soon"],
    ),
    "handler not a handler": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", "\nhandler = serve_apps:HealthHandler\n\n"),
        [],
        ["[server:main] handler:", "WSGIHandler"],
    ),
    "handler missing": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", "\nhandler = serve_apps:Nope\n\n"),
        [],
        ["[server:main] handler:", "Nope"],
    ),
    "thrift server given a WSGI app": (
        GOOD_APP + GOOD_SERVER.replace("wsgi", "thrift"),
        [],
        ["[server:main] factory:", "TProcessor"],
    ),
    "wsgi server given a processor": (
        GOOD_SERVER + "[app:main]\nfactory = serve_apps:make_thrift_processor\n",
        [],
        ["[server:main] factory:", "WSGI callable", "ContextProcessor"],
    ),
    "thrift pool of size -1": (
        GOOD_SERVER + POOLS_APP + "svc.size = -1\n",
        [],
        ["[app:main] svc.size:", "'-1' is out of range: expected 1 to 10000"],
    ),
    # a pool that sets aside 10**30 slots would never finish starting
    "huge redis.max_connections": (
        GOOD_SERVER + POOLS_APP + "redis.url = redis://localhost:6379/0\n"
        f"redis.max_connections = {10**30}\n",
        [],
        ["[app:main] redis.max_connections:", "out of range"],
    ),
    "thrift pool timeout nan": (
        GOOD_SERVER + POOLS_APP + "svc.timeout = nan\n",
        [],
        ["[app:main] svc.timeout:", "not a number"],
    ),
    "stop_timeout infinite": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", "\nstop_timeout = inf\n\n"),
        [],
        ["[server:main] stop_timeout:", "out of range"],
    ),
    "max_concurrency absurd": (
        GOOD_APP + GOOD_SERVER.replace("\n\n", f"\nmax_concurrency = {10**30}\n\n"),
        [],
        ["[server:main] max_concurrency:", "out of range"],
    ),
    "broken logging sections": (
        GOOD_APP + GOOD_SERVER + "[loggers]\nkeys = root\n",
        [],
        ["bad logging configuration"],
    ),
}


def run(tool: str, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(tool), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], tool: str, *parts: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{tool}: error: ")
    for part in parts:
        assert part in lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_configuration_for_serve(tmp_path, case):
    text, arguments, expected = CASES[case]
    ini = tmp_path / "bad.ini"
    if text is not None:
        ini.write_text(text)

    result = run(
        "baseplate-serve", str(ini), "--bind", f"127.0.0.1:{free_port()}", *arguments, cwd=tmp_path
    )

    assert_one_line_error(result, "baseplate-serve", *expected)
    if text is None:
        assert str(ini) in result.stderr


def test_port_in_use(tmp_path):
    import socket

    ini = tmp_path / "app.ini"
    ini.write_text(GOOD_APP + GOOD_SERVER)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        result = run("baseplate-serve", str(ini), "--bind", f"127.0.0.1:{port}", cwd=tmp_path)

    assert_one_line_error(result, "baseplate-serve", f"127.0.0.1:{port}", "in use")


@pytest.mark.parametrize("bind", ["nohost", "127.0.0.1:port", "127.0.0.1:70000"])
def test_bad_bind_is_a_usage_error(tmp_path, bind):
    ini = tmp_path / "app.ini"
    ini.write_text(GOOD_APP + GOOD_SERVER)

    result = run("baseplate-serve", str(ini), "--bind", bind, cwd=tmp_path)

    assert result.returncode == 2
    assert "--bind" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "case",
    ["missing file", "no app section", "duplicate option", "line that is not key = value"],
)
def test_bad_configuration_for_script(tmp_path, case):
    text, _, expected = CASES[case]
    ini = tmp_path / "bad.ini"
    if text is not None:
        ini.write_text(text)

    result = run("baseplate-script", str(ini), "serve_apps:print_config", cwd=tmp_path)

    assert_one_line_error(result, "baseplate-script", *expected)


@pytest.mark.parametrize(
    "case", ["missing file", "no app section", "app factory module missing", "duplicate option"]
)
def test_bad_configuration_for_tshell(tmp_path, case):
    text, _, expected = CASES[case]
    ini = tmp_path / "bad.ini"
    if text is not None:
        ini.write_text(text)

    result = run("baseplate-tshell", str(ini), cwd=tmp_path)

    assert_one_line_error(result, "baseplate-tshell", *expected)


HIDE_GEVENT = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "gevent" or name.startswith("gevent."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
from baseplate.server import load_app_and_run_server
load_app_and_run_server(["--help"])
"""


def test_serve_without_gevent_says_which_extra_to_install() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", HIDE_GEVENT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "baseplate-serve: error: needs gevent: pip install 'baseplate-otel[gevent]'"
    ]
