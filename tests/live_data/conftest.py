"""Fixtures for the live data tests: real ZooKeeper servers, unique nodes, polling."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

SHARED_ZOOKEEPER = "127.0.0.1:2181"
ZOOKEEPER_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/*"
REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it is true; fail the test if it never becomes true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def free_port() -> int:
    """Return a loopback TCP port nothing is listening on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def run_module(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args...`` from the checkout and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def zk() -> Iterator[KazooClient]:
    """A client of the shared ZooKeeper, for arranging and checking node data."""
    client = KazooClient(hosts=SHARED_ZOOKEEPER, timeout=5)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def node_path(zk: KazooClient) -> Iterator[str]:
    """A node path no other test uses (not created); removed after the test."""
    parent = f"/baseplate-tests/live-data/{uuid.uuid4().hex}"
    yield f"{parent}/node"
    zk.delete(parent, recursive=True)


class PrivateZooKeeper:
    """A ZooKeeper server of this test alone, which the test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        data_dir = directory / "data"
        data_dir.mkdir()
        self.config_path = directory / "zoo.cfg"
        self.config_path.write_text(
            "tickTime=500\n"
            f"dataDir={data_dir}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            # Sessions outlive a quick restart, as they would in production.
            "minSessionTimeout=1000\n"
            "maxSessionTimeout=60000\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.directory / "zookeeper.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                "java",
                "-Xmx96m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                ZOOKEEPER_CLASSPATH,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                str(self.config_path),
            ],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(lambda: port_open(self.port), timeout=60, interval=0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        wait_for(lambda: not port_open(self.port), timeout=10)


@pytest.fixture
def private_zookeeper(tmp_path: Path) -> Iterator[PrivateZooKeeper]:
    """A started ZooKeeper on a free port with its own data directory."""
    directory = tmp_path / "zookeeper"
    directory.mkdir()
    server = PrivateZooKeeper(directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_data_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an INI file with a ``[live-data]`` section holding the given keys."""

    def write(keys: dict[str, str]) -> Path:
        path = tmp_path / f"live-data-{uuid.uuid4().hex[:8]}.ini"
        lines = ["[live-data]"] + [f"{key} = {value}" for key, value in keys.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
