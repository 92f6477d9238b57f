"""Applications, scripts and drivers for ``test_reddit_tools_diff.py``: the command-line tools
and live data, reddit's baseplate next to ours.

Both sides import this module: reddit's ``baseplate-serve``, ``baseplate-script`` and
``baseplate-tshell`` find it with only this directory on ``PYTHONPATH`` (which holds no
``baseplate``), ours with the checkout too. Nothing from baseplate is imported at module level:
what needs baseplate imports it inside the function, so each side gets its own, and uses
only the documented API.

Run as a script with reddit's interpreter (``-I``), it answers one command, a JSON request on
stdin and one JSON line on stdout:

``healthchecks``
    run reddit's ``baseplate-healthcheck`` entry point once per command line (its 30 s
    timeout shortened for the silent-server cases), reporting exit status and output;
``live-data``
    run :func:`live_data_cases` with reddit's live data modules.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

logger = logging.getLogger("reddit_peer_tools")

# --- applications and functions the tools load from INI files and command lines -----------


def make_app(app_config: dict[str, str]) -> Callable[..., list[bytes]]:
    """A bare WSGI application (no baseplate at all): ``GET /health`` answers healthy, any
    other path answers the app config it was built with, as JSON."""
    logger.info("tools app built")
    config_body = json.dumps(app_config, sort_keys=True).encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = b'{"status": "healthy"}' if environ["PATH_INFO"] == "/health" else config_body
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app


class ShellApp:
    """What :func:`make_shell_app` builds: an application with a ``baseplate`` attribute."""

    def __init__(self, app_config: dict[str, str]) -> None:
        from baseplate.core import Baseplate

        self.config = app_config
        self.baseplate = Baseplate()


def make_shell_app(app_config: dict[str, str]) -> ShellApp:
    """The app factory of the ``baseplate-tshell`` cases."""
    return ShellApp(app_config)


def tshell_setup(env: dict[str, Any], env_banner: dict[str, str]) -> None:
    """A ``[tshell] setup`` hook: records what it was given and adds a variable."""
    env["setup_saw"] = {
        "env": sorted(env),
        "banner": dict(env_banner),
        "app": type(env["app"]).__name__,
    }
    env["answer"] = 42
    env_banner["answer"] = "The answer"


def print_config(app_config: dict[str, str]) -> None:
    """A ``baseplate-script`` function: prints the dict it got, as JSON on one line."""
    print("CONFIG " + json.dumps(app_config, sort_keys=True), flush=True)


def raise_error(app_config: dict[str, str]) -> None:
    """A ``baseplate-script`` function that fails."""
    raise LookupError("the script function failed")


not_callable = "a module attribute that is not a function"


# --- reddit's baseplate-healthcheck, many command lines in one process ---------------------


def run_reddit_healthchecks(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run reddit's ``baseplate-healthcheck`` entry point for each ``{"argv": [...],
    "timeout": seconds or None}``, as its console script would: an exception ends the
    command with exit status 1 and a traceback, argparse's errors with its own status."""
    import baseplate.server.healthcheck

    healthcheck: Any = baseplate.server.healthcheck  # reddit's: it has a TIMEOUT
    default_timeout = healthcheck.TIMEOUT
    results = []
    for case in cases:
        healthcheck.TIMEOUT = case.get("timeout") or default_timeout
        sys.argv = ["baseplate-healthcheck", *case["argv"]]
        stdout, stderr = io.StringIO(), io.StringIO()
        result: dict[str, Any] = {"error": None}
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                healthcheck.run_healthchecks()
                result["returncode"] = 0
            except SystemExit as exc:
                result["returncode"] = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:
                traceback.print_exc()
                result["returncode"] = 1
                result["error"] = type(exc).__name__
        result.update(stdout=stdout.getvalue(), stderr=stderr.getvalue())
        results.append(result)
    return results


# --- live data: the writer and the ZooKeeper client, driven the same way on both sides ------


def _outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"value": call()}
    except Exception as exc:
        return {"error": type(exc).__name__}


@contextlib.contextmanager
def _client(modules: SimpleNamespace, config: dict[str, str]) -> Iterator[Any]:
    secrets = modules.secrets.secrets_store_from_config(config)
    client = modules.zookeeper.zookeeper_client_from_config(secrets, config)
    client.start(timeout=30)
    try:
        yield client
    finally:
        client.stop()
        client.close()


class _RacingClient:
    """A ZooKeeper client through which another writer changes the node right after it has
    been read: the compare-and-set that follows must fail."""

    def __init__(self, client: Any, racing_data: bytes) -> None:
        self.client = client
        self.racing_data = racing_data

    def get(self, path: str) -> Any:
        answer = self.client.get(path)
        self.client.set(path, self.racing_data)
        return answer

    def set(self, path: str, data: bytes, version: int = -1) -> Any:
        return self.client.set(path, data, version=version)


def live_data_cases(modules: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Connect with ``zookeeper_client_from_config`` (digest credentials from the secrets
    store) and write with ``write_file_to_zookeeper``; every answer is plain JSON.

    ``request``: ``config`` (the ``[live-data]`` keys, with ``zookeeper.credentials``),
    ``protected`` (a node only those credentials may read), ``nodes`` (existing writable
    nodes by case name) and ``missing`` (a node that does not exist).
    """
    config = request["config"]
    answers: dict[str, Any] = {}
    write = modules.writer.write_file_to_zookeeper
    with contextlib.redirect_stdout(io.StringIO()), _client(modules, config) as zk:
        answers["client"] = {
            "auth_data": sorted(list(item) for item in zk.auth_data),
            "session_timeout_ms": zk._session_timeout,
            "read_only": zk.read_only,
        }
        answers["protected"] = _outcome(lambda: zk.get(request["protected"])[0].decode())
        for name, path in request["nodes"].items():
            client = _RacingClient(zk, b"the other writer's data") if name == "cas" else zk
            source = io.BytesIO(f"{name}: new\n".encode())
            answers[name] = _outcome(functools.partial(write, client, source, path))
            answers[name]["node"] = zk.get(path)[0].decode()
        answers["unchanged"] = _outcome(
            lambda: write(
                zk, io.BytesIO(zk.get(request["nodes"]["plain"])[0]), request["nodes"]["plain"]
            )
        )
        answers["missing"] = _outcome(lambda: write(zk, io.BytesIO(b"x"), request["missing"]))
        answers["missing_created"] = zk.exists(request["missing"]) is not None
    for label, credentials in (("wrong", request["wrong_credentials"]), ("none", None)):
        other = dict(config)
        if credentials is None:
            del other["zookeeper.credentials"]
        else:
            other["zookeeper.credentials"] = credentials
        with _client(modules, other) as zk:
            answers[f"protected_{label}_credentials"] = _outcome(
                lambda: zk.get(request["protected"])[0].decode()
            )
    return answers


def live_data_modules() -> SimpleNamespace:
    """The live data modules of whichever baseplate this process imports."""
    import baseplate.live_data.writer
    import baseplate.live_data.zookeeper
    import baseplate.secrets

    return SimpleNamespace(
        writer=baseplate.live_data.writer,
        zookeeper=baseplate.live_data.zookeeper,
        secrets=baseplate.secrets,
    )


def main(command: str) -> None:
    request = json.load(sys.stdin)
    if command == "healthchecks":
        answer: Any = run_reddit_healthchecks(request)
    elif command == "live-data":
        answer = live_data_cases(live_data_modules(), request)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
