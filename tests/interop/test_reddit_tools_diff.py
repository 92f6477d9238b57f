"""Differential tests of the command-line tools and live data against reddit's baseplate.

The same INI files, applications (``reddit_peer_tools.py``, imported by both sides and using
only the documented API) and ZooKeeper nodes go through reddit's tools (the console scripts
and ``python -m`` modules of ``.services/reddit-baseplate``, run with a clean environment
whose ``PYTHONPATH`` holds only this directory) and through ours. Independent runs go in
parallel: process start-up is most of the time. Where the two differ on purpose, each side's
behaviour is asserted explicitly, with the reason next to it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import grp
import http.client
import http.server
import io
import json
import os
import pwd
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from tests.server.conftest import wait_until

from . import reddit_peer_tools as tools
from .conftest import PEER_PYTHON, run_peer_script

INTEROP = Path(__file__).resolve().parent
REPO_ROOT = INTEROP.parents[1]
PEER_SCRIPT = INTEROP / "reddit_peer_tools.py"
BINS = {"ours": Path(sys.executable).parent, "reddit": PEER_PYTHON.parent}
PYTHONS = {"ours": Path(sys.executable), "reddit": PEER_PYTHON}
SIDES = ("ours", "reddit")
ZOOKEEPER = "127.0.0.1:2181"
R = TypeVar("R")


def tool_env(side: str, *extra_path: Path) -> dict[str, str]:
    """The environment of a tool run: reddit's sees only this directory (no ``baseplate``
    in it) on ``PYTHONPATH``, ours also the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EINHORN_", "OTEL_", "PYTHON"))
    }
    paths = [*extra_path, INTEROP] + ([REPO_ROOT] if side == "ours" else [])
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_tool(
    side: str,
    tool: str,
    *args: str,
    cwd: Path,
    stdin: str = "",
    extra_path: tuple[Path, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run one side's console script ``tool`` (or ``-m module`` when ``tool`` is a module)
    to its end."""
    if "." in tool:
        command = [str(PYTHONS[side]), *(["-I"] if side == "reddit" else []), "-m", tool]
    else:
        command = [str(BINS[side] / tool)]
    env = tool_env(side, *extra_path)
    if side == "reddit" and "." in tool:
        env.pop("PYTHONPATH")  # -I ignores it anyway
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        input=stdin,
        timeout=120,
    )


def in_parallel(function: Callable[..., R], calls: Iterable[tuple[Any, ...]]) -> list[R]:
    """``function(*call)`` for every call, four at a time; results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: function(*call), calls))


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def one_line_error(result: subprocess.CompletedProcess[str], program: str) -> str:
    """Our tools end a bad configuration with one line, no traceback: return it."""
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{program}: error: "), line
    return line


INI = """\
[DEFAULT]
shared = from-default
log_dir = %(here)s/logs

[app:main]
factory = reddit_peer_tools:make_app
Mixed.Case = Kept
rate = 37%
escaped = 100%%
ref = %(shared)s/sub
missing_ref = %(nope)s
empty =
multi = one
    two

[app:other]
factory = reddit_peer_tools:make_app
which = other
shared = overridden

[app:broken]
factory = no_such_module_here:make_app

[app:shell]
factory = reddit_peer_tools:make_shell_app
which = shell

[server:main]
factory = baseplate.server.wsgi
max_concurrency = 10
stop_timeout = 1

[server:alt]
factory = baseplate.server.wsgi
max_concurrency = 5

[server:bad_concurrency]
factory = baseplate.server.wsgi
max_concurrency = lots

[server:bad_timeout]
factory = baseplate.server.wsgi
max_concurrency = 10
stop_timeout = soon

[server:unlimited]
factory = baseplate.server.wsgi
stop_timeout = 1.5

[tshell]
setup = reddit_peer_tools:tshell_setup
"""

#: What both sides' app factories and script functions get from [app:main]: the whole
#: section (factory included) with [DEFAULT]'s options, keys lower-cased, values as written
#: (RawConfigParser: no %-interpolation; the API reference's "raw_config =
#: dict(config_parser.items('app:main'))" is what the factory is passed).
MAIN_CONFIG = {
    "factory": "reddit_peer_tools:make_app",
    "shared": "from-default",
    "log_dir": "%(here)s/logs",
    "mixed.case": "Kept",
    "rate": "37%",
    "escaped": "100%%",
    "ref": "%(shared)s/sub",
    "missing_ref": "%(nope)s",
    "empty": "",
    "multi": "one\ntwo",
}
OTHER_CONFIG = {
    "factory": "reddit_peer_tools:make_app",
    "shared": "overridden",
    "log_dir": "%(here)s/logs",
    "which": "other",
}


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "tools.ini"
    path.write_text(INI)
    return path


# --- baseplate-script ----------------------------------------------------------------------

SCRIPT_CASES: dict[str, list[str]] = {
    "main": ["reddit_peer_tools:print_config"],
    "other": ["--app-name=other", "reddit_peer_tools:print_config"],
    "missing file": ["reddit_peer_tools:print_config"],
    "missing section": ["--app-name", "nope", "reddit_peer_tools:print_config"],
    "bad module": ["no_such_module_here:run"],
    "bad function": ["reddit_peer_tools:no_such_function"],
    "not callable": ["reddit_peer_tools:not_callable"],
    "no colon": ["reddit_peer_tools.print_config"],
    "function raises": ["reddit_peer_tools:raise_error"],
}


def script_config(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("CONFIG ")]
    return json.loads(line[len("CONFIG ") :])


def test_baseplate_script(tmp_path: Path, ini: Path) -> None:
    def run(side: str, case: str) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "absent.ini" if case == "missing file" else ini
        return run_tool(side, "baseplate-script", str(config), *SCRIPT_CASES[case], cwd=tmp_path)

    calls = [(side, case) for case in SCRIPT_CASES for side in SIDES]
    results = dict(zip(calls, in_parallel(run, calls), strict=True))
    ours = {case: results["ours", case] for case in SCRIPT_CASES}
    reddit = {case: results["reddit", case] for case in SCRIPT_CASES}

    # the function gets the whole app section, [DEFAULT] included, values as written
    assert script_config(ours["main"]) == script_config(reddit["main"]) == MAIN_CONFIG
    assert script_config(ours["other"]) == script_config(reddit["other"]) == OTHER_CONFIG

    # what each failure names, in our one line and in the last line of reddit's traceback
    names = {
        "missing section": ("app:nope", "NoSectionError"),
        "bad module": ("no_such_module_here", "ModuleNotFoundError"),
        "bad function": ("no_such_function", "AttributeError"),
        "not callable": ("not_callable", "TypeError"),
    }
    for case, (name, reddit_error) in names.items():
        assert ours[case].returncode == reddit[case].returncode == 1, case
        assert name in one_line_error(ours[case], "baseplate-script"), case
        assert reddit_error in last_line(reddit[case].stderr), (case, reddit[case].stderr)

    # a function that raises: its traceback, exit status 1, on both
    for result in (ours["function raises"], reddit["function raises"]):
        assert result.returncode == 1
        assert last_line(result.stderr) == "LookupError: the script function failed"

    # A missing file: reddit's argparse.FileType exits 2 ("can't open"); ours ends every
    # unusable configuration the same way, one line and status 1 (the reference names no
    # status).
    assert reddit["missing file"].returncode == 2
    assert "can't open" in reddit["missing file"].stderr
    assert ours["missing file"].returncode == 1
    assert "No such file" in one_line_error(ours["missing file"], "baseplate-script")

    # module.path.function without a colon: reddit refuses it (exit 2, argparse); ours also
    # accepts the dotted form (the reference's "module path, a colon, and a function name"
    # still works the same on both).
    assert reddit["no colon"].returncode == 2
    assert script_config(ours["no colon"]) == MAIN_CONFIG


# --- baseplate-serve -----------------------------------------------------------------------

LOGGING_INI = """\
[app:main]
factory = reddit_peer_tools:make_app

[server:main]
factory = baseplate.server.wsgi
max_concurrency = 10

[loggers]
keys = root

[handlers]
keys = out

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = out

[handler_out]
class = StreamHandler
args = (sys.stdout,)
formatter = plain

[formatter_plain]
format = CUSTOM %(levelname)s %(name)s %(message)s
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def http_get(bind: str, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """``GET path`` from a ``host:port`` or UNIX socket endpoint."""
    connection: http.client.HTTPConnection
    if bind.startswith("/"):
        connection = UnixHTTPConnection(bind, timeout)
    else:
        host, port = bind.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(side: str, config: Path, args: list[str], bind: str, cwd: Path) -> dict[str, Any]:
    """Run one side's ``baseplate-serve``: if it serves, fetch ``/`` (the app config) and stop
    it with SIGTERM. Returns the exit status, output and (if it served) the config."""
    name = f"serve-{side}-{uuid.uuid4().hex[:8]}"
    out, err = cwd / f"{name}.out", cwd / f"{name}.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            [str(BINS[side] / "baseplate-serve"), str(config), *args, "--bind", bind],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=tool_env(side),
        )
    result: dict[str, Any] = {}
    try:

        def answered() -> Any:
            if process.poll() is not None:
                return "exited"
            try:
                status, body = http_get(bind, "/", timeout=30)
            except (OSError, http.client.HTTPException):
                return None
            assert status == 200, (status, body)
            return ("served", json.loads(body))

        state = wait_until(answered, f"{side}'s baseplate-serve {args}")
        if state != "exited":
            result["served"] = state[1]
            process.send_signal(signal.SIGTERM)
        result["returncode"] = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    result["stdout"] = out.read_text(errors="replace")
    result["stderr"] = err.read_text(errors="replace")
    return result


SERVE_CASES: dict[str, list[str]] = {
    "main": [],
    "names": ["--app-name", "other", "--server-name", "alt"],
    "logging": [],
    "no max_concurrency": ["--server-name", "unlimited"],
    "no such server": ["--server-name", "nope"],
    "bad app factory": ["--app-name", "broken"],
    "bad max_concurrency": ["--server-name", "bad_concurrency"],
    "bad stop_timeout": ["--server-name", "bad_timeout"],
}


def test_baseplate_serve(tmp_path: Path, ini: Path) -> None:
    logging_ini = tmp_path / "logging.ini"
    logging_ini.write_text(LOGGING_INI)

    def run(side: str, case: str) -> dict[str, Any]:
        config = logging_ini if case == "logging" else ini
        # TCP for the main case, a UNIX socket for the others
        socket_path = tmp_path / f"{side}{list(SERVE_CASES).index(case)}.sock"
        bind = f"127.0.0.1:{free_port()}" if case == "main" else str(socket_path)
        return serve(side, config, SERVE_CASES[case], bind, tmp_path)

    calls = [(side, case) for case in SERVE_CASES for side in SIDES]
    results = dict(zip(calls, in_parallel(run, calls), strict=True))
    ours = {case: results["ours", case] for case in SERVE_CASES}
    reddit = {case: results["reddit", case] for case in SERVE_CASES}

    # the factory gets the app section as the script's function does; SIGTERM stops cleanly
    assert ours["main"]["served"] == reddit["main"]["served"] == MAIN_CONFIG
    assert ours["names"]["served"] == reddit["names"]["served"] == OTHER_CONFIG
    logging_config = {"factory": "reddit_peer_tools:make_app"}
    assert ours["logging"]["served"] == reddit["logging"]["served"] == logging_config
    for case in ("main", "names", "logging"):
        assert ours[case]["returncode"] == reddit[case]["returncode"] == 0, case

    # Default logging, INFO: the reference says the root logger prints to stdout, as ours
    # does; reddit 0.30's handler writes to stderr.
    assert "tools app built" in ours["main"]["stdout"]
    assert "tools app built" in reddit["main"]["stderr"]
    assert "tools app built" not in reddit["main"]["stdout"]
    # The INI file's logging sections replace the default set-up on both sides.
    for result in (ours["logging"], reddit["logging"]):
        assert "CUSTOM INFO reddit_peer_tools tools app built" in result["stdout"]
        assert "tools app built" not in result["stderr"]
    # fileConfig's default disables the loggers that exist before it runs, so reddit's own
    # "Listening on" line is lost; ours keeps them (the reference only says the file
    # overrides the default set-up).
    assert "CUSTOM INFO baseplate.server Listening on" in ours["logging"]["stdout"]
    assert "Listening on" not in reddit["logging"]["stdout"] + reddit["logging"]["stderr"]

    # Unusable configurations: exit status 1; ours says it in one line naming the problem,
    # reddit with a traceback whose last line names it.
    names = {
        "no such server": ("server:nope", "NoSectionError"),
        "bad app factory": ("no_such_module_here", "ModuleNotFoundError"),
        "bad max_concurrency": ("max_concurrency", "ConfigurationError: max_concurrency"),
        "bad stop_timeout": ("stop_timeout", "ConfigurationError: stop_timeout"),
    }
    for case, (name, reddit_error) in names.items():
        assert "served" not in ours[case] and "served" not in reddit[case], case
        assert ours[case]["returncode"] == reddit[case]["returncode"] == 1, case
        line = one_line_error(
            subprocess.CompletedProcess([], 1, "", ours[case]["stderr"]), "baseplate-serve"
        )
        assert name in line, (case, line)
        assert reddit_error in last_line(reddit[case]["stderr"]), (case, reddit[case]["stderr"])
    for case in ("bad max_concurrency", "bad stop_timeout"):
        line = last_line(ours[case]["stderr"])
        assert f"[server:{SERVE_CASES[case][1]}] {case.split()[1]}:" in line, line

    # max_concurrency and stop_timeout are optional in the reference ("unlimited by default",
    # seconds): reddit 0.30 requires max_concurrency (and takes only whole seconds); ours
    # serves.
    assert "served" not in reddit["no max_concurrency"]
    assert "ConfigurationError: max_concurrency" in last_line(
        reddit["no max_concurrency"]["stderr"]
    )
    assert ours["no max_concurrency"]["served"] == MAIN_CONFIG
    assert ours["no max_concurrency"]["returncode"] == 0


# --- baseplate-healthcheck -----------------------------------------------------------------


def http_handler(status: int, body: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ThriftHealthServer:
    """``BaseplateService`` (THeader) on a socket, answering ``is_healthy`` with ``healthy``."""

    def __init__(self, listener: socket.socket, healthy: bool) -> None:
        from baseplate.thrift import BaseplateService

        class Handler(BaseplateService.Iface):
            def is_healthy(self) -> bool:
                return healthy

        self.listener = listener
        self.processor = BaseplateService.Processor(Handler())
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
        from thrift.transport.TSocket import TSocket

        transport = TSocket()
        transport.setHandle(client)
        protocol = THeaderProtocolFactory().getProtocol(transport)
        try:
            while True:
                self.processor.process(protocol, protocol)
        except Exception:
            pass
        finally:
            client.close()


def listening(path: Path | None = None) -> socket.socket:
    """A listening socket: on a UNIX socket ``path``, else on a loopback port."""
    sock = socket.socket(socket.AF_UNIX if path else socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(str(path) if path else ("127.0.0.1", 0))
    sock.listen(16)
    return sock


def endpoint_of(sock: socket.socket) -> str:
    address = sock.getsockname()
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


@pytest.fixture
def health_targets(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Services in this process to check: name -> endpoint."""
    sockets: list[socket.socket] = []
    servers: list[socketserver.BaseServer] = []
    targets: dict[str, str] = {}
    for name, path, healthy in [
        ("thrift healthy", None, True),
        ("thrift healthy unix", tmp_path / "thrift.sock", True),
        ("thrift unhealthy", None, False),
    ]:
        sock = listening(path)
        sockets.append(sock)
        ThriftHealthServer(sock, healthy)
        targets[name] = endpoint_of(sock)
    for name, status, body in [
        ("wsgi healthy", 200, b'{"status": "healthy"}'),
        ("wsgi unhealthy", 503, b'{"status": "unhealthy"}'),
        ("wsgi not json", 200, b"fine"),
    ]:
        http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http_handler(status, body))
        servers.append(http_server)
        targets[name] = f"127.0.0.1:{http_server.server_port}"
    unix_server = UnixHTTPServer(
        str(tmp_path / "wsgi.sock"), http_handler(200, b'{"status": "healthy"}')
    )
    servers.append(unix_server)
    targets["wsgi healthy unix"] = str(tmp_path / "wsgi.sock")
    silent = listening()  # accepts connections (the backlog), never answers
    sockets.append(silent)
    targets["silent"] = endpoint_of(silent)
    targets["refused"] = f"127.0.0.1:{free_port()}"
    targets["no socket file"] = str(tmp_path / "nothing.sock")
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield targets
    for server in servers:
        server.shutdown()
        server.server_close()
    for sock in sockets:
        with contextlib.suppress(OSError):  # wakes the accepting thread, which then ends
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


#: case -> (protocol, target); the exit status is 0 exactly for the healthy ones
HEALTH_CASES = {
    "thrift healthy": ("thrift", "thrift healthy"),
    "thrift healthy unix": ("thrift", "thrift healthy unix"),
    "thrift unhealthy": ("thrift", "thrift unhealthy"),
    "thrift refused": ("thrift", "refused"),
    "thrift no socket file": ("thrift", "no socket file"),
    "thrift timeout": ("thrift", "silent"),
    "wsgi healthy": ("wsgi", "wsgi healthy"),
    "wsgi healthy unix": ("wsgi", "wsgi healthy unix"),
    "wsgi unhealthy": ("wsgi", "wsgi unhealthy"),
    "wsgi not json": ("wsgi", "wsgi not json"),
    "wsgi refused": ("wsgi", "refused"),
    "wsgi no socket file": ("wsgi", "no socket file"),
    "wsgi timeout": ("wsgi", "silent"),
}


def our_healthcheck(argv: list[str]) -> dict[str, Any]:
    """Our ``baseplate-healthcheck`` entry point, in this process."""
    from contextlib import redirect_stderr, redirect_stdout

    from baseplate.server.healthcheck import run_healthchecks

    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            run_healthchecks(argv)
            returncode = 0
        except SystemExit as exc:
            returncode = exc.code if isinstance(exc.code, int) else 1
    return {"returncode": returncode, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def test_baseplate_healthcheck(tmp_path: Path, health_targets: dict[str, str]) -> None:
    argvs = {
        case: [protocol, health_targets[target]]
        for case, (protocol, target) in HEALTH_CASES.items()
    }
    argvs["unknown protocol"] = ["grpc", health_targets["thrift healthy"]]
    timeouts = {case: 0.3 if case.endswith("timeout") else None for case in argvs}

    # every case through reddit's entry point in one peer process, and through ours here;
    # two of them also through both real console scripts
    def peer() -> Any:
        request = [{"argv": argv, "timeout": timeouts[case]} for case, argv in argvs.items()]
        answers = run_peer_script(PEER_SCRIPT, "healthchecks", request=request)
        return dict(zip(argvs, answers, strict=True))

    real_cases = ["thrift healthy unix", "wsgi unhealthy"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        reddit_future = pool.submit(peer)
        real = {
            (side, case): pool.submit(
                run_tool, side, "baseplate-healthcheck", *argvs[case], cwd=tmp_path
            )
            for side in SIDES
            for case in real_cases
        }
        ours = {
            case: our_healthcheck(argv + (["--timeout", "0.3"] if timeouts[case] else []))
            for case, argv in argvs.items()
        }
        reddit = reddit_future.result()
        real_results = {key: future.result() for key, future in real.items()}

    # The reference's "baseplate-healthcheck wsgi /run/myservice.sock": reddit 0.30's
    # http+unix adapter predates the adapter API of the requests the peer runs (2.32+), so
    # its check fails before connecting; ours answers as for TCP.
    assert reddit["wsgi healthy unix"]["error"] == "InvalidURL"
    reddit["wsgi healthy unix"] = {"returncode": 0, "stdout": "OK!\n"}
    for case in HEALTH_CASES:
        healthy = "healthy" in case and "unhealthy" not in case
        assert ours[case]["returncode"] == reddit[case]["returncode"] == (0 if healthy else 1), (
            case,
            ours[case],
            reddit[case],
        )
        if healthy:
            assert ours[case]["stdout"] == reddit[case]["stdout"] == "OK!\n", case
        else:
            # the reference: exit 1 and an error message (ours one line, reddit's a traceback)
            assert "OK!" not in ours[case]["stdout"] + reddit[case]["stdout"], case
            (line,) = ours[case]["stderr"].strip().splitlines()
            assert line.startswith("baseplate-healthcheck: "), line
            assert reddit[case]["error"] and reddit[case]["error"] in reddit[case]["stderr"]
    assert "0.3" in ours["thrift timeout"]["stderr"] and "0.3" in ours["wsgi timeout"]["stderr"]
    assert "503" in ours["wsgi unhealthy"]["stderr"] and "503" in reddit["wsgi unhealthy"]["stderr"]
    assert reddit["thrift unhealthy"]["error"] == "AssertionError"
    # an unknown protocol is a usage error on both
    assert ours["unknown protocol"]["returncode"] == reddit["unknown protocol"]["returncode"] == 2
    assert "invalid choice: 'grpc'" in ours["unknown protocol"]["stderr"]
    assert "invalid choice: 'grpc'" in reddit["unknown protocol"]["stderr"]

    # the real console scripts end the same way as their entry points
    for (side, case), result in real_results.items():
        expected = (ours if side == "ours" else reddit)[case]
        assert (result.returncode, result.stdout) == (expected["returncode"], expected["stdout"])


# --- baseplate-tshell ----------------------------------------------------------------------

TSHELL_INPUT = """\
print("VARS", sorted(name for name in dir() if not name.startswith("__")))
import json
print("SETUP", json.dumps(setup_saw, sort_keys=True))
print("APP", type(app).__name__, json.dumps(app.config, sort_keys=True))
print("ANSWER", answer)
print("CONTEXT", context is not None)
"""


def test_baseplate_tshell(tmp_path: Path, ini: Path) -> None:
    # Reddit's peer has no IPython: ours is run without it too, so both use the standard
    # library's console, which reads the commands from stdin.
    stub = tmp_path / "no-ipython"
    (stub / "IPython").mkdir(parents=True)
    (stub / "IPython" / "__init__.py").write_text("raise ImportError('not installed')\n")

    def run(side: str) -> subprocess.CompletedProcess[str]:
        return run_tool(
            side,
            "baseplate-tshell",
            str(ini),
            "--app-name",
            "shell",
            cwd=tmp_path,
            stdin=TSHELL_INPUT,
            extra_path=(stub,),
        )

    ours, reddit = in_parallel(run, [("ours",), ("reddit",)])

    def printed(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        lines = [line.lstrip("> .") for line in result.stdout.splitlines()]
        return dict(line.split(" ", 1) for line in lines if line.split(" ")[0].isupper())

    assert (
        printed(ours)
        == printed(reddit)
        == {
            "VARS": "['answer', 'app', 'context', 'setup_saw']",
            "SETUP": json.dumps(
                {
                    "app": "ShellApp",
                    "banner": {
                        "app": "This project's app instance",
                        "context": "The context for this shell instance's span",
                    },
                    "env": ["app", "context"],
                },
                sort_keys=True,
            ),
            "APP": "ShellApp "
            + json.dumps(
                {
                    "factory": "reddit_peer_tools:make_shell_app",
                    "log_dir": "%(here)s/logs",
                    "shared": "from-default",
                    "which": "shell",
                },
                sort_keys=True,
            ),
            "ANSWER": "42",
            "CONTEXT": "True",
        }
    )
    # the banner (on stderr, from the standard library's console) lists every variable
    for result in (ours, reddit):
        banner = result.stderr
        assert banner.startswith("Baseplate Interactive Shell\nPython ")
        assert "Available Objects:" in banner
        described = {
            tuple(line.split(None, 1))
            for line in banner.splitlines()
            if line.startswith("  ") and len(line.split(None, 1)) == 2
        }
        assert {
            ("app", "This project's app instance"),
            ("context", "The context for this shell instance's span"),
            ("answer", "The answer"),
        } <= described


# --- live data -----------------------------------------------------------------------------

CREDENTIALS = "alice:s3cret"


def write_secrets(path: Path) -> Path:
    simple = {"type": "simple", "value": CREDENTIALS}
    document = {
        "secrets": {
            "secret/zk/good": simple,
            "secret/zk/bad": {"type": "simple", "value": "alice:wrong"},
        },
        "vault": {"url": "http://127.0.0.1:8200/", "token": "t"},
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def zk() -> Iterator[KazooClient]:
    """A ZooKeeper client holding the digest credentials of the protected nodes."""
    client = KazooClient(hosts=ZOOKEEPER, timeout=5, auth_data=[("digest", CREDENTIALS)])
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def base(zk: KazooClient) -> Iterator[str]:
    """A node path of this test alone, removed with everything below it afterwards."""
    path = f"/baseplate-tests/tools-diff/{uuid.uuid4().hex}"
    zk.ensure_path(path)
    yield path
    zk.delete(path, recursive=True)


PROTECTED_ACL = [make_digest_acl("alice", "s3cret", all=True)]


def live_data_ini(path: Path, secrets: Path, **keys: str) -> Path:
    lines = [
        "[live-data]",
        f"zookeeper.hosts = {ZOOKEEPER}",
        "zookeeper.credentials = secret/zk/good",
        f"secrets.path = {secrets}",
        *(f"{key} = {value}" for key, value in keys.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_live_data_functions(tmp_path: Path, zk: KazooClient, base: str) -> None:
    secrets = write_secrets(tmp_path / "secrets.json")
    zk.create(f"{base}/protected", b"only for alice", acl=PROTECTED_ACL)

    def request(side: str) -> dict[str, Any]:
        nodes = {}
        for name in ("plain", "cas"):
            nodes[name] = zk.create(f"{base}/{side}/{name}", b"old\n", makepath=True)
        return {
            "config": {
                "zookeeper.hosts": ZOOKEEPER,
                "zookeeper.credentials": "secret/zk/good",
                "secrets.path": str(secrets),
            },
            "wrong_credentials": "secret/zk/bad",
            "protected": f"{base}/protected",
            "nodes": nodes,
            "missing": f"{base}/{side}/missing",
        }

    reddit_request = request("reddit")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        reddit_future = pool.submit(
            run_peer_script, PEER_SCRIPT, "live-data", request=reddit_request
        )
        ours = tools.live_data_cases(tools.live_data_modules(), request("ours"))
        reddit = reddit_future.result()

    assert (
        ours
        == reddit
        == {
            # zookeeper_client_from_config: digest credentials from the secrets store, 5 s
            "client": {
                "auth_data": [["digest", CREDENTIALS]],
                "session_timeout_ms": 5000,
                "read_only": None,
            },
            "protected": {"value": "only for alice"},
            "protected_wrong_credentials": {"error": "NoAuthError"},
            "protected_none_credentials": {"error": "NoAuthError"},
            # write_file_to_zookeeper: written, compare-and-set, unchanged, missing node
            "plain": {"value": True, "node": "plain: new\n"},
            "cas": {"error": "UnexpectedChangeError", "node": "the other writer's data"},
            "unchanged": {"value": False},
            "missing": {"error": "NodeDoesNotExistError"},
            "missing_created": False,
        }
    )


def test_live_data_writer_tool(tmp_path: Path, zk: KazooClient, base: str) -> None:
    ini = live_data_ini(tmp_path / "writer.ini", write_secrets(tmp_path / "secrets.json"))
    source = tmp_path / "input.json"
    source.write_bytes(b'{\n  "key": "two"\n}\n')

    def run(side: str) -> list[subprocess.CompletedProcess[str]]:
        node = zk.create(f"{base}/{side}/doc", b'{\n  "key": "one"\n}\n', makepath=True)
        runs = []
        for target in (node, node, f"{base}/{side}/missing"):
            runs.append(
                run_tool(
                    side, "baseplate.live_data.writer", str(ini), str(source), target, cwd=tmp_path
                )
            )
        return runs

    (ours, reddit) = in_parallel(run, [("ours",), ("reddit",)])

    for side, (written, unchanged, missing) in (("ours", ours), ("reddit", reddit)):
        data, stat = zk.get(f"{base}/{side}/doc")
        assert data == source.read_bytes()
        assert stat.version == 1  # the unchanged second run wrote nothing
        assert written.returncode == unchanged.returncode == 0, written.stderr
        output = written.stdout + written.stderr
        for line in ['-  "key": "one"', '+  "key": "two"', "Wrote data to Zookeeper."]:
            assert line in output.splitlines(), (side, output)
        assert "No changes detected" in unchanged.stdout + unchanged.stderr
        assert missing.returncode == 1
        assert "does not exist" in last_line(missing.stderr)
        assert zk.exists(f"{base}/{side}/missing") is None
    # Ours prints the reference's "Writing input.json to ZooKeeper /node..." on stdout;
    # reddit 0.30 logs its own wording to stderr.
    assert f"Writing {source} to ZooKeeper {base}/ours/doc..." in ours[0].stdout
    assert f"Writing to {base}/reddit/doc in ZooKeeper..." in reddit[0].stderr


def test_live_data_watcher(tmp_path: Path, zk: KazooClient, base: str) -> None:
    secrets = write_secrets(tmp_path / "secrets.json")
    root = os.geteuid() == 0
    # chown to another user needs root; elsewhere the files are given to their own user
    user = pwd.getpwuid(65534 if root else os.geteuid())
    group = grp.getgrgid(65534 if root else os.getegid())
    zk.create(f"{base}/a", b"alpha\x00\xff binary", acl=PROTECTED_ACL)
    zk.create(f"{base}/b", b'{"key": "one"}\n', acl=OPEN_ACL_UNSAFE)
    zk.create(f"{base}/c", b"c")

    processes = {}
    logs = {side: open(tmp_path / f"watcher-{side}.log", "wb") for side in SIDES}  # noqa: SIM115
    for side in SIDES:
        dest = tmp_path / side
        dest.mkdir()
        ini = live_data_ini(
            tmp_path / f"watcher-{side}.ini",
            secrets,
            **{
                "nodes.a.source": f"{base}/a",
                "nodes.a.dest": f"{dest}/a.bin",
                "nodes.a.owner": user.pw_name,
                "nodes.a.group": group.gr_name,
                "nodes.a.mode": "0640",
                "nodes.b.source": f"{base}/b",
                "nodes.b.dest": f"{dest}/b.json",
                "nodes.c.source": f"{base}/c",
                "nodes.c.dest": f"{dest}/c.txt",
                "nodes.c.owner": user.pw_name,
                "nodes.d.source": f"{base}/d",
                "nodes.d.dest": f"{dest}/d.txt",
            },
        )
        command = [str(PYTHONS[side])] + (["-I"] if side == "reddit" else [])
        processes[side] = subprocess.Popen(
            [*command, "-m", "baseplate.live_data.watcher", str(ini)],
            stdout=subprocess.DEVNULL,
            stderr=logs[side],
            cwd=tmp_path,
            env=tool_env(side),
        )

    def files(side: str) -> dict[str, Any]:
        """The destination files there are (not the watchers' temporary files)."""
        found = {}
        for name in ("a.bin", "b.json", "c.txt", "d.txt"):
            try:
                with open(tmp_path / side / name, "rb") as file:
                    info = os.fstat(file.fileno())
                    data = file.read()
            except FileNotFoundError:
                continue
            found[name] = (data, oct(info.st_mode & 0o777), info.st_uid, info.st_gid)
        return found

    def synced(expected: dict[str, bytes]) -> Callable[[], bool]:
        def check() -> bool:
            for side, process in processes.items():
                assert process.poll() is None, (tmp_path / f"watcher-{side}.log").read_text()
                contents = {name: entry[0] for name, entry in files(side).items()}
                if contents != expected:
                    return False
            return True

        return check

    try:
        first = {"a.bin": b"alpha\x00\xff binary", "b.json": b'{"key": "one"}\n', "c.txt": b"c"}
        wait_until(synced(first), "the first sync")
        ours, reddit = files("ours"), files("reddit")
        me = (os.geteuid(), os.getegid())
        for found in (ours, reddit):
            assert found["a.bin"][1:] == ("0o640", user.pw_uid, group.gr_gid)
            assert found["b.json"][1:] == ("0o400", *me)
        # owner without group: reddit changes ownership only when both are set; ours gives
        # the file the owner asked for (both are optional in the reference).
        assert ours["c.txt"][1:] == ("0o400", user.pw_uid, me[1])
        assert reddit["c.txt"][1:] == ("0o400", *me)

        # an update (byte for byte), a deletion (file removed), a node that appears
        zk.set(f"{base}/a", b"\xfe\xed new alpha")
        zk.delete(f"{base}/b")
        zk.create(f"{base}/d", b"dee")
        second = {"a.bin": b"\xfe\xed new alpha", "c.txt": b"c", "d.txt": b"dee"}
        wait_until(synced(second), "the changes")
        for found in (files("ours"), files("reddit")):
            assert found["a.bin"][1:] == ("0o640", user.pw_uid, group.gr_gid)
            assert found["d.txt"][1:] == ("0o400", *me)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(30)
        for log in logs.values():
            log.close()
