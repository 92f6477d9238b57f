"""``baseplate-script``, ``baseplate-tshell``, ``baseplate-healthcheck`` and every tool's help."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess

import pytest

from .conftest import command, free_port, read_json_lines, subprocess_env, write_ini
from .test_serve_thrift import thrift_ini
from .test_serve_wsgi import pyramid_ini


def run(
    tool: str,
    *args: str,
    cwd: pathlib.Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(tool), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or subprocess_env(),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=60,
    )


# -- baseplate-script ---------------------------------------------------------------------


def test_script_documented_example(tmp_path):
    ini = tmp_path / "printer.ini"
    ini.write_text("[app:main]\nmessage = Hello!\n[app:bizarro]\nmessage = !olleH\n")

    main = run("baseplate-script", str(ini), "serve_apps:print_message", cwd=tmp_path)
    bizarro = run(
        "baseplate-script",
        str(ini),
        "--app-name=bizarro",
        "serve_apps:print_message",
        cwd=tmp_path,
    )

    assert (main.returncode, main.stdout) == (0, "Hello!\n")
    assert (bizarro.returncode, bizarro.stdout) == (0, "!olleH\n")


def test_script_gets_the_app_section_with_defaults(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[DEFAULT]\nregion = eu\n\n"
        "[app:main]\nfactory = serve_apps:config_echo_app\ndb.url = pg://%(region)s/db\n"
    )

    result = run("baseplate-script", str(ini), "serve_apps:print_config", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "region": "eu",
        "factory": "serve_apps:config_echo_app",
        "db.url": "pg://%(region)s/db",
    }


def test_script_function_from_a_module_in_the_working_directory(tmp_path):
    (tmp_path / "local_job.py").write_text("def run(cfg):\n    print('job', cfg['n'])\n")
    ini = write_ini(tmp_path / "job.ini", {"n": "7"})

    result = run("baseplate-script", str(ini), "local_job:run", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "job 7\n")


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [
        ("no_such_module:run", "no module named 'no_such_module'"),
        ("serve_apps:no_such_function", "no_such_function"),
        ("serve_apps:logger", "not callable"),
    ],
)
def test_script_bad_function_is_one_line(tmp_path, entrypoint, expected):
    ini = write_ini(tmp_path / "job.ini", {"n": "7"})

    result = run("baseplate-script", str(ini), entrypoint, cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("baseplate-script: error: ") and expected in line


# -- baseplate-tshell ---------------------------------------------------------------------


def without_ipython(tmp_path: pathlib.Path) -> dict[str, str]:
    """The tools' environment with ``import IPython`` failing, as where it is not installed."""
    stub = tmp_path / "no-ipython"
    (stub / "IPython").mkdir(parents=True)
    (stub / "IPython" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(stub), env["PYTHONPATH"]])
    return env


@pytest.mark.parametrize("shell", ["ipython", "stdlib"])
def test_tshell_exposes_app_context_and_setup_variables(tmp_path, statsd, shell):
    ini = thrift_ini(
        tmp_path, **{"metrics.namespace": "shell", "metrics.endpoint": statsd.endpoint}
    )
    ini.write_text(ini.read_text() + "[tshell]\nsetup = serve_apps:tshell_setup\n")
    commands = "\n".join(
        [
            "print('APP', type(app).__name__)",
            "print('SPAN', type(context.trace).__name__, context.trace.name,"
            " context.trace.otel_span is not None)",
            "print('METRICS', hasattr(context, 'metrics'))",
            "print('ANSWER', answer)",
            "with context.trace.make_child('lookup', local=True, component_name='shell'):",
            "    pass",
            "",
            "print('TRACE', context.trace.trace_id)",
        ]
    )

    env = without_ipython(tmp_path) if shell == "stdlib" else None
    result = run("baseplate-tshell", str(ini), cwd=tmp_path, stdin=commands + "\n", env=env)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    # IPython prints its banner to stdout, the standard library's console to stderr
    banner = result.stdout if shell == "ipython" else result.stderr
    assert ("IPython" in result.stdout) is (shell == "ipython")
    assert "APP ContextProcessor" in out
    assert "SPAN ServerSpan shell True" in out
    assert "METRICS True" in out  # the app's own Baseplate, with its context factories
    assert "ANSWER 42" in out
    assert "Baseplate Interactive Shell" in banner
    assert "Available Objects:" in banner
    for name in ("app", "context", "answer"):
        assert f"    {name} " in banner
    trace_id = int(out.split("TRACE ")[1].split()[0])
    spans = read_json_lines(tmp_path / "spans.jsonl")  # exported before the shell exited
    assert {(s["name"], s["trace_id"]) for s in spans} == {
        ("shell", trace_id),
        ("lookup", trace_id),
    }


def test_tshell_without_setup_section(tmp_path):
    ini = pyramid_ini(tmp_path)

    result = run("baseplate-tshell", str(ini), cwd=tmp_path, stdin="print('OK', app.baseplate)\n")

    assert result.returncode == 0, result.stderr
    assert "OK <baseplate.core.Baseplate" in result.stdout


# -- baseplate-healthcheck ----------------------------------------------------------------


def healthcheck(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return run("baseplate-healthcheck", *args, cwd=cwd)


def assert_unhealthy(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert result.returncode == 1
    assert "OK!" not in result.stdout
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    for part in parts:
        assert part in line, line


def test_healthcheck_thrift_healthy(tmp_path, serve):
    server = serve(thrift_ini(tmp_path))

    result = healthcheck("thrift", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "OK!\n")


def test_healthcheck_thrift_unhealthy(tmp_path, serve):
    server = serve(thrift_ini(tmp_path, **{"test.healthy": "false"}))

    result = healthcheck("thrift", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert_unhealthy(result, "not healthy")


def test_healthcheck_thrift_handler_raises(tmp_path, serve):
    server = serve(thrift_ini(tmp_path, **{"test.mode": "raise"}))

    result = healthcheck("thrift", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert_unhealthy(result, "is_healthy() call", "failed")


def test_healthcheck_thrift_over_a_unix_socket(tmp_path, serve):
    path = tmp_path / "thrift.sock"
    serve(thrift_ini(tmp_path), "--bind", str(path), port=None)

    result = healthcheck("thrift", str(path), cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "OK!\n")


def test_healthcheck_wsgi_healthy(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))

    result = healthcheck("wsgi", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "OK!\n")


def test_healthcheck_wsgi_unhealthy(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path, **{"test.healthy": "false"}))

    result = healthcheck("wsgi", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert_unhealthy(result, "503")


def test_healthcheck_wsgi_app_without_a_health_route(tmp_path, serve):
    (tmp_path / "routeless_app.py").write_text(
        "def make_app(cfg):\n"
        "    def app(environ, start_response):\n"
        "        start_response('404 Not Found', [('Content-Type', 'application/json')])\n"
        "        return [b'{}']\n"
        "    return app\n"
    )
    ini = write_ini(
        tmp_path / "routeless.ini",
        {"factory": "routeless_app:make_app"},
        {"factory": "baseplate.server.wsgi"},
    )
    server = serve(ini)

    result = healthcheck("wsgi", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert_unhealthy(result, "404")


def test_healthcheck_wsgi_over_a_unix_socket(tmp_path, serve):
    path = tmp_path / "wsgi.sock"
    serve(pyramid_ini(tmp_path), "--bind", str(path), port=None)

    result = healthcheck("wsgi", str(path), cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "OK!\n")


@pytest.mark.parametrize("protocol", ["thrift", "wsgi"])
def test_healthcheck_absent_service(tmp_path, protocol):
    port = free_port()

    result = healthcheck(protocol, f"127.0.0.1:{port}", cwd=tmp_path)

    assert_unhealthy(result, f"127.0.0.1:{port}", "refused")


@pytest.mark.parametrize("protocol", ["thrift", "wsgi"])
def test_healthcheck_absent_unix_socket(tmp_path, protocol):
    result = healthcheck(protocol, str(tmp_path / "nothing.sock"), cwd=tmp_path)

    assert_unhealthy(result, "nothing.sock")


@pytest.mark.parametrize("protocol", ["thrift", "wsgi"])
def test_healthcheck_gives_up_on_a_service_that_never_answers(tmp_path, protocol):
    with socket.socket() as silent:  # accepts connections (backlog), never reads
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        result = healthcheck(protocol, f"127.0.0.1:{port}", "--timeout", "0.3", cwd=tmp_path)

    assert_unhealthy(result, "0.3")


def test_healthcheck_wsgi_rejects_a_body_that_is_not_json(tmp_path, serve):
    (tmp_path / "plain_app.py").write_text(
        "def make_app(cfg):\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "        return [b'fine']\n"
        "    return app\n"
    )
    ini = write_ini(
        tmp_path / "plain.ini",
        {"factory": "plain_app:make_app"},
        {"factory": "baseplate.server.wsgi"},
    )
    server = serve(ini)

    result = healthcheck("wsgi", f"127.0.0.1:{server.port}", cwd=tmp_path)

    assert_unhealthy(result, "not JSON")


# -- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "words"),
    [
        (
            "baseplate-serve",
            ["CONFIG", "--debug", "--reload", "--app-name", "--server-name", "--bind"],
        ),
        ("baseplate-script", ["CONFIG", "module:function", "--app-name"]),
        ("baseplate-tshell", ["CONFIG", "--app-name", "setup"]),
        ("baseplate-healthcheck", ["thrift", "wsgi", "ENDPOINT", "--timeout", "OK!"]),
    ],
)
def test_help(tmp_path, tool, words):
    result = run(tool, "--help", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: {tool}")
    for word in words:
        assert word in result.stdout
