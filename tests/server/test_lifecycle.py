"""The server process: graceful stop, telemetry flush, SIGUSR1 stacks, forks and ``--reload``."""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import signal
import socket
import threading
import time
from typing import Any

import pytest

from .conftest import read_json_lines, wait_for_json_lines, wait_until, write_ini
from .test_serve_thrift import ThriftClient, thrift_ini
from .test_serve_wsgi import pyramid_ini


def _slow_request_in_thread(
    server: Any, seconds: float, marker: pathlib.Path, route: str = "slow"
) -> dict[str, Any]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = server.get(f"/{route}?seconds={seconds}&marker={marker}")
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    outcome["thread"] = thread
    wait_until(marker.exists, "the slow request to be in progress")
    return outcome


def test_sigterm_lets_the_request_in_progress_finish_and_flushes_its_span(tmp_path, serve):
    # Spans are exported every 60 s: only the flush at shutdown can get the span out in time.
    server = serve(pyramid_ini(tmp_path, **{"test.schedule_delay": "60"}))
    outcome = _slow_request_in_thread(server, 1.0, tmp_path / "marker")

    server.send(signal.SIGTERM)
    server.wait_for_log("Received SIGTERM")
    with pytest.raises(ConnectionRefusedError):  # no new connections once stopping
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    outcome["thread"].join(30)

    status, headers, body = outcome["response"]
    assert status == 200
    assert json.loads(body) == {"slept": 1.0}
    assert headers.get("Connection") == "close"
    assert server.stop() == 0
    assert [span["name"] for span in read_json_lines(tmp_path / "spans.jsonl")] == ["slow"]


def test_stop_is_bounded_when_the_collector_hangs(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path, **{"test.hanging_exporter": "true"}))
    for _ in range(3):
        assert server.get_json("/hello")["hello"] == "world"

    # the export in progress never returns: the server gives up on it and exits, within the
    # one shutdown budget (5 s) for the flush and the shutdown together
    started = time.monotonic()
    assert server.stop(limit=60) == 0
    elapsed = time.monotonic() - started
    log = server.log()
    assert "spans not exported" in log or "spans were not exported" in log
    assert "Stopped" in log
    assert elapsed < 8, elapsed  # 5 s budget, plus the process's own start and exit
    assert "Traceback" not in log


def test_sigint_stops_gracefully_too(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    outcome = _slow_request_in_thread(server, 0.5, tmp_path / "marker")

    assert server.stop(signal.SIGINT) == 0

    outcome["thread"].join(30)
    assert outcome["response"][0] == 200


def test_requests_outliving_stop_timeout_are_cut_off(tmp_path, serve):
    ini = pyramid_ini(tmp_path)
    ini.write_text(ini.read_text().replace("stop_timeout = 10", "stop_timeout = 0.2"))
    server = serve(ini)
    outcome = _slow_request_in_thread(server, 300, tmp_path / "marker")

    assert server.stop() == 0

    outcome["thread"].join(30)
    if "response" in outcome:  # cut off while the application ran: the server's own 500
        assert outcome["response"][0] == 500
    else:  # or the connection is dropped
        assert isinstance(outcome["error"], (http.client.HTTPException, OSError))
    assert "still in progress after stop_timeout" in server.log()


def test_idle_keep_alive_connections_do_not_hold_up_the_stop(tmp_path, serve):
    ini = pyramid_ini(tmp_path)
    ini.write_text(ini.read_text().replace("stop_timeout = 10", "stop_timeout = 600"))
    server = serve(ini)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/hello")
    assert connection.getresponse().read()

    # stop_timeout is 10 minutes: only a stop that closes idle connections ends in time
    assert server.stop(limit=60) == 0
    connection.close()


def test_idle_thrift_connections_do_not_hold_up_the_stop(tmp_path, serve):
    ini = thrift_ini(tmp_path)
    ini.write_text(ini.read_text().replace("stop_timeout = 10", "stop_timeout = 600"))
    server = serve(ini)
    client = ThriftClient(server.port)
    assert client.client.is_healthy() is True

    # stop_timeout is 10 minutes: only a stop that closes idle connections ends in time
    assert server.stop(limit=60) == 0
    client.close()


def test_sigusr2_stops_gracefully_as_einhorn_asks(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    outcome = _slow_request_in_thread(server, 0.5, tmp_path / "marker")

    assert server.stop(signal.SIGUSR2) == 0

    outcome["thread"].join(30)
    assert outcome["response"][0] == 200
    assert "Received SIGUSR2" in server.log()


def test_thrift_max_concurrency_queues_extra_connections(tmp_path, serve):
    ini = thrift_ini(tmp_path)
    ini.write_text(ini.read_text().replace("stop_timeout = 10", "max_concurrency = 1"))
    server = serve(ini)
    first = ThriftClient(server.port)
    assert first.client.is_healthy() is True
    answered: list[str] = []

    def second_call() -> None:
        second = ThriftClient(server.port)
        try:
            answered.append(str(second.client.is_healthy()))
        finally:
            second.close()

    thread = threading.Thread(target=second_call)
    thread.start()
    thread.join(0.5)
    assert answered == []  # the only slot is the first connection's
    first.close()
    thread.join(30)
    assert answered == ["True"]


def test_thrift_call_in_progress_finishes_on_sigterm(tmp_path, serve):
    server = serve(thrift_ini(tmp_path, **{"test.delay": "1"}))
    client = ThriftClient(server.port)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(ok=client.client.is_healthy()))
    thread.start()
    server.wait_for_log("is_healthy called")

    server.send(signal.SIGTERM)
    thread.join(30)

    assert result == {"ok": True}
    assert server.stop() == 0
    client.close()
    assert [span["name"] for span in read_json_lines(tmp_path / "spans.jsonl")] == ["is_healthy"]


def test_sigusr1_logs_the_stacks_of_all_greenlets_and_threads(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    outcome = _slow_request_in_thread(server, 2.0, tmp_path / "marker")

    server.send(signal.SIGUSR1)

    server.wait_for_log("Received SIGUSR1")
    wait_until(lambda: "in slow" in server.log(), "the slow view's frame in the dump")
    log = server.log()
    assert "Threads" in log and "Greenlets" in log
    assert "stopping.wait()" in log  # the main greenlet
    outcome["thread"].join(30)
    assert outcome["response"][0] == 200  # and the server carries on
    assert server.get_json("/hello")["hello"] == "world"


def test_sigusr1_dumps_stacks_even_while_a_greenlet_hogs_the_cpu(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    outcome = _slow_request_in_thread(server, 4.0, tmp_path / "marker", route="spin")

    server.send(signal.SIGUSR1)

    server.wait_for_log("Received SIGUSR1")
    wait_until(lambda: "in spin" in server.log(), "the spinning view's frame in the dump")
    outcome["thread"].join(30)
    assert outcome["response"][0] == 200


def test_app_that_forks_exports_spans_from_every_process(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path, **{"test.fork": "true"}))
    report_path = tmp_path / "report.jsonl"
    reports = wait_for_json_lines(report_path, 2)
    child_pid = next(r["pid"] for r in reports if r.get("forked_child"))
    try:
        pids: set[int] = set()
        for _ in range(400):  # the kernel picks which process accepts each connection
            pids.add(server.get_json("/hello")["pid"])
            if len(pids) == 2:
                break
        assert pids == {server.pid, child_pid}

        def exported_by_both() -> bool:
            spans = read_json_lines(tmp_path / "spans.jsonl")
            return {span["pid"] for span in spans} == pids

        wait_until(exported_by_both, "spans exported by both processes")
    finally:
        os.kill(child_pid, signal.SIGTERM)
        assert server.stop() == 0
        wait_until(lambda: not _alive(child_pid), "the forked process to exit")
    prefork = [s for s in read_json_lines(tmp_path / "spans.jsonl") if s["name"] == "prefork"]
    assert [span["pid"] for span in prefork] == [server.pid]  # exported once, by the parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_reload_restarts_when_the_source_changes(tmp_path, serve):
    module = tmp_path / "reloading_app.py"
    module.write_text(_reloading_app("v1"))
    ini = write_ini(
        tmp_path / "reload.ini",
        {"factory": "reloading_app:make_app", "colour": "red"},
        {"factory": "baseplate.server.wsgi"},
    )
    server = serve(ini, "--reload")
    assert server.get_json("/") == {"version": "v1", "colour": "red"}

    def answer() -> dict[str, str] | None:
        try:
            return dict(server.get_json("/"))
        except OSError:
            return None  # restarting

    module.write_text(_reloading_app("v2"))
    later = time.time() + 5
    os.utime(module, (later, later))
    wait_until(lambda: answer() == {"version": "v2", "colour": "red"}, "the restart for code")

    ini.write_text(ini.read_text().replace("colour = red", "colour = blue"))
    later += 5
    os.utime(ini, (later, later))
    wait_until(lambda: answer() == {"version": "v2", "colour": "blue"}, "the restart for config")
    assert server.process.poll() is None  # the same process, re-executed


def _reloading_app(version: str) -> str:
    return (
        "import json\n"
        "def make_app(app_config):\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'application/json')])\n"
        f"        body = {{'version': {version!r}, 'colour': app_config['colour']}}\n"
        "        return [json.dumps(body).encode()]\n"
        "    return app\n"
    )
