"""``baseplate-serve`` with ``factory = baseplate.server.thrift``: BaseplateService served."""

from __future__ import annotations

import pathlib
import random
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.transport.THeaderTransport import THeaderClientType, THeaderSubprotocolID
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport, TFramedTransport

from baseplate.thrift import BaseplateService

from .conftest import read_json_lines, wait_for_json_lines, wait_until, write_ini


def thrift_ini(tmp_path: pathlib.Path, **app: str) -> pathlib.Path:
    options = {
        "factory": "serve_apps:make_thrift_processor",
        "tracing.service_name": "thrift_test",
        "tracing.sample_rate": "1.0",
        "test.spans_path": str(tmp_path / "spans.jsonl"),
        **app,
    }
    server = {"factory": "baseplate.server.thrift", "stop_timeout": "10"}
    return write_ini(tmp_path / "thrift.ini", options, server)


def _header(socket_: TSocket, subprotocol: int = THeaderSubprotocolID.BINARY) -> Any:
    return THeaderProtocol(socket_, (THeaderClientType.HEADERS,), default_protocol=subprotocol)


#: Each client format a baseplate Thrift server must understand.
CLIENT_FORMATS: dict[str, Callable[[TSocket], Any]] = {
    "header-binary": _header,
    "header-compact": lambda s: _header(s, THeaderSubprotocolID.COMPACT),
    "framed-binary": lambda s: TBinaryProtocol(TFramedTransport(s)),
    "unframed-binary": lambda s: TBinaryProtocol(TBufferedTransport(s)),
    "framed-compact": lambda s: TCompactProtocol(TFramedTransport(s)),
    "unframed-compact": lambda s: TCompactProtocol(TBufferedTransport(s)),
}


class ThriftClient:
    """A BaseplateService client over one connection in a given format."""

    def __init__(self, port: int, make_protocol: Callable[[TSocket], Any] = _header) -> None:
        self.socket = TSocket("127.0.0.1", port)
        self.socket.setTimeout(30000)
        self.protocol = make_protocol(self.socket)
        self.protocol.trans.open()
        self.client = BaseplateService.Client(self.protocol)

    def close(self) -> None:
        self.protocol.trans.close()


@pytest.mark.parametrize("client_format", sorted(CLIENT_FORMATS))
def test_every_client_format_is_answered(tmp_path, serve, client_format):
    server = serve(thrift_ini(tmp_path))
    client = ThriftClient(server.port, CLIENT_FORMATS[client_format])
    try:
        assert client.client.is_healthy() is True
        assert client.client.is_healthy() is True  # and again on the same connection
    finally:
        client.close()


def test_trace_headers_continue_the_callers_trace(tmp_path, serve):
    server = serve(thrift_ini(tmp_path))
    client = ThriftClient(server.port)
    try:
        for name, value in (
            (b"Trace", b"2468"),
            (b"Parent", b"13"),
            (b"Span", b"99"),
            (b"Sampled", b"1"),
        ):
            client.protocol.trans.set_header(name, value)
        assert client.client.is_healthy() is True
    finally:
        client.close()

    def exported() -> list[dict[str, Any]]:
        return [s for s in read_json_lines(tmp_path / "spans.jsonl") if s["name"] == "is_healthy"]

    (span,) = wait_until(exported, "the is_healthy span")
    assert (span["trace_id"], span["span_id"], span["parent_id"]) == (2468, 99, 13)
    assert span["kind"] == "SERVER"


def test_calls_on_one_connection_get_their_own_traces(tmp_path, serve):
    server = serve(thrift_ini(tmp_path))
    client = ThriftClient(server.port)
    try:
        for _ in range(3):
            assert client.client.is_healthy() is True
    finally:
        client.close()

    spans = wait_for_json_lines(tmp_path / "spans.jsonl", 3)
    assert len({span["trace_id"] for span in spans}) == 3
    assert all(span["parent_id"] is None for span in spans)


def test_call_metrics_reach_statsd(tmp_path, serve, statsd):
    ini = thrift_ini(tmp_path, **{"metrics.namespace": "tsvc", "metrics.endpoint": statsd.endpoint})
    server = serve(ini)
    client = ThriftClient(server.port)
    try:
        client.client.is_healthy()
    finally:
        client.close()

    timer = statsd.wait_for_line("tsvc.server.is_healthy:")
    assert re.fullmatch(r"tsvc\.server\.is_healthy:[0-9.]+\|ms", timer)
    assert "tsvc.server.is_healthy.success:1|c" in statsd.lines()


def test_garbage_closes_only_that_connection(tmp_path, serve):
    server = serve(thrift_ini(tmp_path))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        raw.sendall(b"\x00\x00\x00\x08GET / HT")
        assert raw.recv(100) == b""  # the server hung up

    client = ThriftClient(server.port)
    try:
        assert client.client.is_healthy() is True
    finally:
        client.close()


#: Bytes that are not a Thrift request, each sent on a connection of its own.
BAD_FRAMES = {
    "zeros": b"\x00\x00\x00\x00",
    "huge length": b"\x7f\xff\xff\xff" + b"x" * 16,
    "negative length": b"\xff\xff\xff\xff",
    "random bytes": random.Random(16).randbytes(64),
    "truncated frame": b"\x00\x00\x00\x20\x0f\xff\x00\x00",
    "truncated header": b"\x00\x00\x00\x10\x0f\xff\x00\x00\x00\x00\x00\x01\x00\x05" + b"\xff" * 4,
    "huge method name": b"\x80\x01\x00\x01\x7f\xff\xff\xff",
    "method name not utf-8": b"\x00\x00\x00\x0d\x80\x01\x00\x01\x00\x00\x00\x02\xff\xfe"
    + b"\x00\x00\x00",
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


def _send_and_wait_for_hang_up(port: int, data: bytes) -> str:
    """Send ``data``, close our side, and wait until the server closes the connection;
    return our address as the server names it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        host, client_port = raw.getsockname()[:2]
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
        try:
            while raw.recv(4096):
                pass
        except ConnectionResetError:
            pass  # the server closed with our bytes unread
    return f"{host}:{client_port}"


def test_bad_frames_are_one_warning_line_naming_the_peer_and_serving_goes_on(tmp_path, serve):
    server = serve(thrift_ini(tmp_path))

    peers = [_send_and_wait_for_hang_up(server.port, data) for data in BAD_FRAMES.values()]

    client = ThriftClient(server.port)
    try:
        assert client.client.is_healthy() is True
    finally:
        client.close()
    log = server.log()
    assert "Traceback" not in log
    assert " ERROR " not in log
    # rate-limited: one line a minute at most, however many connections sent garbage
    (line,) = [line for line in log.splitlines() if "bad request" in line]
    assert " WARNING " in line
    assert f"closing Thrift connection from {peers[0]}: bad request: struct.error" in line


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_each_bad_frame_is_reported_as_bad_input(tmp_path, serve, name):
    # one shape per server, so that each one's line is the first of its interval
    server = serve(thrift_ini(tmp_path))

    peer = _send_and_wait_for_hang_up(server.port, BAD_FRAMES[name])

    client = ThriftClient(server.port)
    try:
        assert client.client.is_healthy() is True
    finally:
        client.close()
    log = server.log()
    assert "Traceback" not in log
    (line,) = [line for line in log.splitlines() if "bad request" in line]
    assert " WARNING " in line and f"from {peer}: bad request: " in line
