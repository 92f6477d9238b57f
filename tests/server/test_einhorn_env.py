"""The Einhorn worker environment, read in this process (the master's side is test_einhorn)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from baseplate.server import einhorn


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("EINHORN_"):
            monkeypatch.delenv(key)


def test_not_a_worker_without_einhorn_variables():
    assert not einhorn.is_worker()
    with pytest.raises(einhorn.NotEinhornWorker):
        einhorn.get_socket()
    with pytest.raises(einhorn.NotEinhornWorker):
        einhorn.ack_startup()


def test_master_pid_decides_when_present(monkeypatch):
    monkeypatch.setenv("EINHORN_MASTER_PID", str(os.getppid()))
    assert einhorn.is_worker()
    monkeypatch.setenv("EINHORN_FD_COUNT", "1")
    monkeypatch.setenv("EINHORN_MASTER_PID", str(os.getppid() + 1))
    assert not einhorn.is_worker()


def test_sockets_from_the_environment(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        bound.listen(1)
        monkeypatch.setenv("EINHORN_FD_COUNT", "1")
        monkeypatch.setenv("EINHORN_FD_0", str(bound.fileno()))

        assert einhorn.get_socket_count() == 1
        with einhorn.get_socket() as inherited:
            assert inherited.family == socket.AF_INET
            assert inherited.getsockname() == bound.getsockname()
        with pytest.raises(IndexError):
            einhorn.get_socket(1)

        monkeypatch.setenv("EINHORN_FD_FAMILY_0", "AF_NOPE")
        with pytest.raises(ValueError, match="EINHORN_FD_FAMILY_0"):
            einhorn.get_socket()
        monkeypatch.setenv("EINHORN_FD_0", "three")
        with pytest.raises(ValueError, match="EINHORN_FD_0"):
            einhorn.get_socket()


def test_ack_is_one_compact_json_line(monkeypatch, tmp_path):
    path = str(tmp_path / "command.sock")
    received: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as command:
        command.bind(path)
        command.listen(1)

        def accept() -> None:
            connection, _ = command.accept()
            with connection:
                received.append(connection.recv(1000))

        thread = threading.Thread(target=accept)
        thread.start()
        monkeypatch.setenv("EINHORN_SOCK_PATH", path)
        einhorn.ack_startup()
        thread.join(10)

    assert received == [f'{{"command":"worker:ack","pid":{os.getpid()}}}\n'.encode()]
    assert json.loads(received[0]) == {"command": "worker:ack", "pid": os.getpid()}
