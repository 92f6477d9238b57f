"""``baseplate-serve`` as an Einhorn worker, with this test playing the Einhorn master.

The master binds the listening socket, passes its descriptor to each worker
(``EINHORN_FD_*``) and waits for each worker's ``worker:ack`` on its command socket
(``EINHORN_SOCK_PATH``).
"""

from __future__ import annotations

import http.client
import os
import pathlib
import socket
import threading
from collections.abc import Iterator

import pytest

from .conftest import read_json_lines, subprocess_env, wait_until
from .test_serve_thrift import ThriftClient, thrift_ini
from .test_serve_wsgi import pyramid_ini


class EinhornMaster:
    """The master's side: a listening socket for workers and a command socket for acks."""

    def __init__(self, tmp_path: pathlib.Path, family: int = socket.AF_INET) -> None:
        if family == socket.AF_UNIX:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.address: object = str(tmp_path / "service.sock")
            self.listener.bind(str(self.address))
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.address = self.listener.getsockname()
        self.listener.listen(128)
        self.listener.set_inheritable(True)
        self.family_name = "AF_UNIX" if family == socket.AF_UNIX else "AF_INET"

        self.command_path = str(tmp_path / "einhorn.sock")
        self.command = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.command.bind(self.command_path)
        self.command.listen(16)
        self.command.settimeout(0.2)
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.command.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                connection.settimeout(10)
                data = b""
                while chunk := connection.recv(4096):
                    data += chunk
                self.messages.append(data)

    def worker_env(self, **extra: str) -> dict[str, str]:
        env = {
            "EINHORN_FD_COUNT": "1",
            "EINHORN_FD_0": str(self.listener.fileno()),
            "EINHORN_SOCK_PATH": self.command_path,
            "EINHORN_MASTER_PID": str(os.getpid()),
            **extra,
        }
        if self.family_name != "AF_INET":
            env["EINHORN_FD_FAMILY_0"] = self.family_name
        return subprocess_env(**env)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.command.close()
        self.listener.close()


@pytest.fixture
def master(tmp_path: pathlib.Path) -> Iterator[EinhornMaster]:
    einhorn = EinhornMaster(tmp_path)
    yield einhorn
    einhorn.close()


def test_worker_serves_the_masters_socket_and_acks_once_ready(tmp_path, serve, master):
    port = master.address[1]  # type: ignore[index]
    worker = serve(
        thrift_ini(tmp_path),
        "--bind",
        "127.0.0.1:1",  # ignored under Einhorn
        port=port,
        env=master.worker_env(),
        pass_fds=(master.listener.fileno(),),
    )

    ack = f'{{"command":"worker:ack","pid":{worker.pid}}}\n'.encode()
    wait_until(lambda: master.messages == [ack], "the worker's ack")
    client = ThriftClient(port)
    try:
        assert client.client.is_healthy() is True
    finally:
        client.close()
    assert worker.stop() == 0


def test_several_workers_share_the_socket_and_each_exports_its_spans(tmp_path, serve, master):
    port = master.address[1]  # type: ignore[index]
    workers = [
        serve(
            pyramid_ini(tmp_path),
            port=port,
            env=master.worker_env(),
            pass_fds=(master.listener.fileno(),),
        )
        for _ in range(2)
    ]
    wait_until(lambda: len(master.messages) == 2, "both workers' acks")

    pids: set[int] = set()
    for _ in range(400):  # the kernel picks which worker accepts each connection
        pids.add(workers[0].get_json("/hello")["pid"])
        if len(pids) == 2:
            break
    assert pids == {worker.pid for worker in workers}

    def exported_by_both() -> bool:
        return {span["pid"] for span in read_json_lines(tmp_path / "spans.jsonl")} == pids

    wait_until(exported_by_both, "spans from both workers")
    assert [worker.stop() for worker in workers] == [0, 0]


def test_unix_socket_from_the_master(tmp_path, serve):
    master = EinhornMaster(tmp_path, socket.AF_UNIX)
    try:
        worker = serve(
            pyramid_ini(tmp_path),
            port=None,
            env=master.worker_env(),
            pass_fds=(master.listener.fileno(),),
        )
        wait_until(lambda: len(master.messages) == 1, "the worker's ack")

        connection = http.client.HTTPConnection("localhost", timeout=30)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(master.address))
        connection.sock = sock
        connection.request("GET", "/hello")
        assert connection.getresponse().status == 200
        connection.close()
        assert worker.stop() == 0
        assert os.path.exists(str(master.address))  # the master's socket is the master's
    finally:
        master.close()


def test_not_a_worker_when_the_master_is_another_process(tmp_path, serve, master):
    # Processes started by a worker inherit its environment; they are not workers.
    env = master.worker_env(EINHORN_MASTER_PID="1")
    server = serve(pyramid_ini(tmp_path), env=env, pass_fds=(master.listener.fileno(),))

    assert server.get_json("/hello")["hello"] == "world"  # on its own --bind port
    assert master.messages == []
