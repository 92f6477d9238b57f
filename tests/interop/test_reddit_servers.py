"""``baseplate-serve`` and ``baseplate-healthcheck`` next to reddit's own: each side's health
check passes against the other side's server."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Callable

import pytest

from tests.server import conftest as server_fixtures
from tests.server.conftest import (
    ServeProcess,
    command,
    free_port,
    subprocess_env,
    wait_until,
    write_ini,
)
from tests.server.test_serve_thrift import thrift_ini
from tests.server.test_serve_wsgi import pyramid_ini

from .conftest import PEER_PYTHON

serve = server_fixtures.serve  # the fixture starting our baseplate-serve

PEER_BIN = PEER_PYTHON.parent
INTEROP_TESTS = pathlib.Path(__file__).parent


def reddit_healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    """Reddit's ``baseplate-healthcheck``; no PYTHONPATH, so our checkout stays out of it."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [str(PEER_BIN / "baseplate-healthcheck"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd="/",
    )


@pytest.mark.parametrize("unix_socket", [False, True], ids=["tcp", "unix"])
def test_reddit_healthcheck_passes_on_our_thrift_server(
    tmp_path: pathlib.Path, serve: Callable[..., ServeProcess], unix_socket: bool
) -> None:
    if unix_socket:
        path = tmp_path / "thrift.sock"
        serve(thrift_ini(tmp_path), "--bind", str(path), port=None)
        endpoint = str(path)
    else:
        endpoint = f"127.0.0.1:{serve(thrift_ini(tmp_path)).port}"

    result = reddit_healthcheck("thrift", endpoint)

    assert result.returncode == 0, result.stderr


def test_reddit_healthcheck_passes_on_our_wsgi_server(
    tmp_path: pathlib.Path, serve: Callable[..., ServeProcess]
) -> None:
    server = serve(pyramid_ini(tmp_path))

    result = reddit_healthcheck("wsgi", f"127.0.0.1:{server.port}")

    assert result.returncode == 0, result.stderr


def test_reddit_healthcheck_fails_on_our_unhealthy_thrift_server(
    tmp_path: pathlib.Path, serve: Callable[..., ServeProcess]
) -> None:
    server = serve(thrift_ini(tmp_path, **{"test.healthy": "false"}))

    result = reddit_healthcheck("thrift", f"127.0.0.1:{server.port}")

    assert result.returncode != 0


def test_our_healthcheck_passes_on_a_reddit_thrift_server(tmp_path: pathlib.Path) -> None:
    port = free_port()
    ini = write_ini(
        tmp_path / "reddit.ini",
        {"factory": "reddit_peer:make_processor"},
        {"factory": "baseplate.server.thrift", "max_concurrency": "10"},
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(INTEROP_TESTS)  # reddit_peer.py only: no `baseplate` in there
    log_path = tmp_path / "reddit-serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(PEER_BIN / "baseplate-serve"), str(ini), "--bind", f"127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    try:

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()
            result = subprocess.run(
                [*command("baseplate-healthcheck"), "thrift", f"127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                timeout=60,
                env=subprocess_env(),
            )
            return result.returncode == 0 and result.stdout == "OK!\n"

        wait_until(healthy, "our healthcheck to pass against reddit's server")
    finally:
        process.kill()
        process.wait(10)
