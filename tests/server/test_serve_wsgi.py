"""``baseplate-serve`` with ``factory = baseplate.server.wsgi``: a Pyramid app in a subprocess."""

from __future__ import annotations

import http.client
import json
import pathlib
import re
import socket
import threading
from typing import Any

from .conftest import ServeProcess, read_json_lines, wait_until, write_ini


def pyramid_ini(tmp_path: pathlib.Path, **app: str) -> pathlib.Path:
    options = {
        "factory": "serve_apps:make_wsgi_app",
        "tracing.service_name": "wsgi_test",
        "tracing.sample_rate": "1.0",
        "test.spans_path": str(tmp_path / "spans.jsonl"),
        "test.report_path": str(tmp_path / "report.jsonl"),
        **app,
    }
    server = {"factory": "baseplate.server.wsgi", "stop_timeout": "10"}
    return write_ini(tmp_path / "app.ini", options, server)


def spans_named(tmp_path: pathlib.Path, name: str, count: int = 1) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        spans = [s for s in read_json_lines(tmp_path / "spans.jsonl") if s["name"] == name]
        return spans if len(spans) >= count else None

    return list(wait_until(found, f"{count} exported span(s) named {name!r}"))


def test_request_with_trace_headers_continues_the_trace(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    headers = {"X-Trace": "1234", "X-Parent": "5", "X-Span": "77", "X-Sampled": "1"}

    body = server.get_json("/hello", headers)

    assert body["hello"] == "world"
    (span,) = spans_named(tmp_path, "hello")
    assert (span["trace_id"], span["span_id"], span["parent_id"]) == (1234, 77, 5)
    assert span["kind"] == "SERVER"
    assert span["attributes"]["http.method"] == "GET"
    assert span["attributes"]["http.status_code"] == 200


def test_failing_view_is_a_500_and_an_error_span(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))

    status, _, _ = server.get("/fail")

    assert status == 500
    (span,) = spans_named(tmp_path, "fail")
    assert span["status"] == "ERROR"
    server.wait_for_log("RuntimeError: this view always fails")


def test_application_error_is_logged_once_with_its_trace_and_span_ids(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    headers = {"X-Trace": "1234", "X-Parent": "5", "X-Span": "77", "X-Sampled": "1"}

    status, _, _ = server.get("/fail", headers)
    assert status == 500
    assert server.get_json("/hello")["hello"] == "world"  # and the server goes on

    server.wait_for_log("RuntimeError: this view always fails")
    log = server.log()
    # once, through logging (not gevent's print of the environ), with the request's ids
    assert log.count("RuntimeError: this view always fails") == 1
    assert "failed with RuntimeError" not in log
    (line,) = [line for line in log.splitlines() if "Unexpected error handling" in line]
    assert " ERROR " in line
    assert "[trace_id=1234]" in line
    assert "Unexpected error handling GET /fail from 127.0.0.1:" in line
    assert line.endswith("(trace_id=1234 span_id=77)")
    traceback_start = log.index(line) + len(line) + 1
    assert log[traceback_start:].startswith("Traceback (most recent call last):")


def test_application_error_of_a_new_trace_names_its_ids(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))

    assert server.get("/fail")[0] == 500

    server.wait_for_log("RuntimeError: this view always fails")
    (line,) = [line for line in server.log().splitlines() if "Unexpected error handling" in line]
    match = re.search(r"\(trace_id=(\d+) span_id=(\d+)\)$", line)
    assert match, line
    assert f"[trace_id={match.group(1)}]" in line
    (span,) = spans_named(tmp_path, "fail")
    assert (span["trace_id"], span["span_id"]) == (int(match.group(1)), int(match.group(2)))


def _raw_request(server: ServeProcess, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        raw.sendall(request)
        response = b""
        while chunk := raw.recv(65536):
            response += chunk
        return response


def test_an_over_long_header_is_a_client_error_logged_as_one_warning(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    long_header = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"

    responses = [_raw_request(server, long_header) for _ in range(5)]
    garbage = _raw_request(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert server.get_json("/hello")["hello"] == "world"

    assert all(r.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n") for r in responses)
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    log = server.log()
    assert "Traceback" not in log
    assert " ERROR " not in log
    # rate-limited: one line a minute at most, for every kind of unparsable request
    (line,) = [line for line in log.splitlines() if "bad HTTP request" in line]
    assert " WARNING " in line
    assert re.search(r"bad HTTP request from 127\.0\.0\.1:\d+: .*Line too long", line), line


def test_request_metrics_reach_statsd(tmp_path, serve, statsd):
    ini = pyramid_ini(tmp_path, **{"metrics.namespace": "svc", "metrics.endpoint": statsd.endpoint})
    server = serve(ini)

    server.get_json("/hello")

    timer = statsd.wait_for_line("svc.server.hello:")
    assert re.fullmatch(r"svc\.server\.hello:[0-9.]+\|ms", timer)
    assert "svc.server.hello.success:1|c" in statsd.lines()


def test_keep_alive_requests_do_not_share_trace_context(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        trace_ids = []
        for _ in range(3):
            connection.request("GET", "/log")
            response = connection.getresponse()
            assert response.status == 200
            trace_ids.append(json.loads(response.read())["trace_id"])
    finally:
        connection.close()

    assert len(set(trace_ids)) == 3
    spans = spans_named(tmp_path, "log", count=3)
    assert all(span["parent_id"] is None for span in spans)


def test_log_lines_carry_the_trace_id(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))

    trace_id = server.get_json("/log")["trace_id"]

    server.wait_for_log("handling the log route")
    (line,) = [line for line in server.log().splitlines() if "handling the log route" in line]
    assert f"[trace_id={trace_id}]" in line
    assert " INFO " in line
    listening = next(line for line in server.log().splitlines() if "Listening on" in line)
    assert "[trace_id=-]" in listening


def test_debug_flag_logs_at_debug_level(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path), "--debug")

    server.get_json("/hello")

    # the server's access log line is a DEBUG record
    server.wait_for_log('"GET /hello HTTP/1.1" 200')
    assert " DEBUG " in server.log()


def test_logging_sections_in_the_file_replace_the_default_setup(tmp_path, serve):
    ini = pyramid_ini(tmp_path)
    ini.write_text(
        ini.read_text()
        + "[loggers]\nkeys = root\n\n"
        + "[handlers]\nkeys = out\n\n"
        + "[formatters]\nkeys = custom\n\n"
        + "[logger_root]\nlevel = INFO\nhandlers = out\n\n"
        + "[handler_out]\nclass = StreamHandler\nargs = (sys.stdout,)\nformatter = custom\n\n"
        + "[formatter_custom]\nformat = CUSTOM %(trace_id)s %(message)s\n"
    )
    server = serve(ini)

    trace_id = server.get_json("/log")["trace_id"]

    server.wait_for_log(f"CUSTOM {trace_id} handling the log route")
    assert "CUSTOM  Listening on" in server.log()
    assert "[trace_id=" not in server.log()


def test_app_gets_its_whole_section_with_defaults_and_raw_values(tmp_path, serve):
    ini = tmp_path / "echo.ini"
    ini.write_text(
        "[DEFAULT]\n"
        "shared = from-default\n"
        "\n"
        "[app:main]\n"
        "factory = serve_apps:config_echo_app\n"
        "foo = 3\n"
        "bar = 22\n"
        "noodles.blah = one, two, three\n"
        "path = %(shared)s/sub\n"
        "\n"
        "[server:main]\n"
        "factory = baseplate.server.wsgi\n"
    )
    server = serve(ini)

    assert server.get_json("/") == {
        "shared": "from-default",
        "factory": "serve_apps:config_echo_app",
        "foo": "3",
        "bar": "22",
        "noodles.blah": "one, two, three",
        "path": "%(shared)s/sub",
    }


def test_app_and_server_names_choose_other_sections(tmp_path, serve):
    ini = tmp_path / "names.ini"
    ini.write_text(
        "[app:main]\nfactory = nonexistent_module:nothing\n\n"
        "[app:other]\nfactory = serve_apps:config_echo_app\nwhich = other\n\n"
        "[server:main]\nfactory = baseplate.server.thrift\n\n"
        "[server:web]\nfactory = baseplate.server.wsgi\n"
    )
    server = serve(ini, "--app-name", "other", "--server-name", "web")

    assert server.get_json("/") == {"factory": "serve_apps:config_echo_app", "which": "other"}


def test_custom_handler_class(tmp_path, serve):
    ini = write_ini(
        tmp_path / "handler.ini",
        {"factory": "serve_apps:environ_app"},
        {"factory": "baseplate.server.wsgi", "handler": "serve_apps:MarkingHandler"},
    )
    server = serve(ini)

    assert server.get_json("/") == {"handler": "MarkingHandler"}


def test_max_concurrency_queues_extra_connections(tmp_path, serve):
    ini = pyramid_ini(tmp_path)
    ini.write_text(ini.read_text().replace("stop_timeout = 10", "max_concurrency = 1"))
    server = serve(ini)
    marker = tmp_path / "in-progress"
    finished: list[str] = []

    def slow() -> None:
        server.get_json(f"/slow?seconds=1&marker={marker}")
        finished.append("slow")

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(marker.exists, "the slow request to start")
    server.get_json("/hello")
    finished.append("hello")
    thread.join(30)

    # with one connection at a time, the second request waits for the first one
    assert finished == ["slow", "hello"]


def test_unix_socket_bind(tmp_path, serve):
    socket_path = tmp_path / "wsgi.sock"
    server: ServeProcess = serve(pyramid_ini(tmp_path), "--bind", str(socket_path), port=None)

    connection = http.client.HTTPConnection("localhost", timeout=30)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(socket_path))
    connection.sock = sock
    connection.request("GET", "/hello")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["hello"] == "world"
    connection.close()

    assert server.stop() == 0
    assert not socket_path.exists()


def test_monkey_patching_happens_before_opentelemetry_is_imported(tmp_path, serve):
    serve(pyramid_ini(tmp_path))

    (report,) = read_json_lines(tmp_path / "report.jsonl")
    assert report["gevent_patched"] is True
    assert report["otel_lock_cooperative"] is True


def test_greenlets_spawned_with_the_request_context_join_its_trace(tmp_path, serve):
    server = serve(pyramid_ini(tmp_path))

    request_span = server.get_json("/spawn?wrapped=1")
    other_request = server.get_json("/spawn?wrapped=0")

    spans = spans_named(tmp_path, "spawned.work", count=2)
    joined = [s for s in spans if s["trace_id"] == request_span["trace_id"]]
    assert [s["parent_id"] for s in joined] == [request_span["span_id"]]
    # a plain gevent.spawn starts with an empty context: a trace of its own
    (alone,) = [s for s in spans if s is not joined[0]]
    assert alone["trace_id"] != other_request["trace_id"]
    assert alone["parent_id"] is None


def test_python_dash_m_runs_the_server(tmp_path):
    import subprocess
    import sys

    from .conftest import subprocess_env

    result = subprocess.run(
        [sys.executable, "-m", "baseplate.server", "--help"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )

    assert result.returncode == 0
    assert result.stdout.startswith("usage: baseplate-serve")


def test_ipv6_bind(tmp_path, serve):
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    serve(pyramid_ini(tmp_path), "--bind", f"[::1]:{port}", port=None)

    connection = http.client.HTTPConnection("::1", port, timeout=30)
    connection.request("GET", "/hello")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["hello"] == "world"
    connection.close()
