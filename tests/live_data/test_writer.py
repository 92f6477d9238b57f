"""The live data writer tool against the real ZooKeeper."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from baseplate.live_data.writer import (
    NodeAccessDeniedError,
    NodeDoesNotExistError,
    UnexpectedChangeError,
    write_file_to_zookeeper,
)

from .conftest import SHARED_ZOOKEEPER, run_module

OLD = b'{\n  "key": "one",\n  "same": true\n}\n'
NEW = b'{\n  "key": "two",\n  "same": true\n}\n'


@pytest.fixture
def config(live_data_config: Callable[[dict[str, str]], Path]) -> Path:
    return live_data_config({"zookeeper.hosts": SHARED_ZOOKEEPER, "zookeeper.timeout": "3 seconds"})


def test_cli_shows_a_unified_diff_and_writes_the_file(
    zk: KazooClient, node_path: str, tmp_path: Path, config: Path
) -> None:
    zk.create(node_path, OLD, makepath=True)
    _, before = zk.get(node_path)
    source = tmp_path / "input.json"
    source.write_bytes(NEW)

    result = run_module("baseplate.live_data.writer", str(config), str(source), node_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"Writing {source} to ZooKeeper {node_path}...\n"
        f"--- {node_path} (ZooKeeper, version 0)\n"
        f"+++ {source}\n"
        "@@ -1,4 +1,4 @@\n"
        " {\n"
        '-  "key": "one",\n'
        '+  "key": "two",\n'
        '   "same": true\n'
        " }\n"
        "Wrote data to Zookeeper.\n"
    )
    data, after = zk.get(node_path)
    assert data == NEW
    assert after.version == before.version + 1


def test_cli_refuses_a_missing_node(
    zk: KazooClient, node_path: str, tmp_path: Path, config: Path
) -> None:
    source = tmp_path / "input.json"
    source.write_bytes(NEW)

    result = run_module("baseplate.live_data.writer", str(config), str(source), node_path)

    assert result.returncode == 1
    assert f"ZooKeeper node '{node_path}' does not exist" in result.stderr
    assert "create it with the appropriate ACLs" in result.stderr
    assert zk.exists(node_path) is None  # the writer never creates nodes


def test_cli_exits_with_a_clear_error_when_zookeeper_is_down(
    tmp_path: Path, live_data_config: Callable[[dict[str, str]], Path]
) -> None:
    from .conftest import free_port

    port = free_port()
    config = live_data_config({"zookeeper.hosts": f"127.0.0.1:{port}"})
    source = tmp_path / "input.json"
    source.write_bytes(NEW)

    result = run_module(
        "baseplate.live_data.writer", "--connect-timeout", "1", str(config), str(source), "/x"
    )

    assert result.returncode == 1
    assert f"could not connect to ZooKeeper at '127.0.0.1:{port}'" in result.stderr


class RacingFile(io.BytesIO):
    """Input whose reading coincides with another writer changing the node."""

    def __init__(self, data: bytes, zk: KazooClient, path: str, racing_data: bytes) -> None:
        super().__init__(data)
        self.zk = zk
        self.path = path
        self.racing_data = racing_data

    def read(self, size: int | None = -1) -> bytes:
        self.zk.set(self.path, self.racing_data)
        return super().read(size)


def test_compare_and_set_refuses_to_overwrite_a_concurrent_change(
    zk: KazooClient, node_path: str
) -> None:
    zk.create(node_path, OLD, makepath=True)
    source = RacingFile(NEW, zk, node_path, racing_data=b"someone else's change")
    output = io.StringIO()

    with pytest.raises(UnexpectedChangeError, match="changed while this write was being prepared"):
        write_file_to_zookeeper(zk, source, node_path, output=output)

    data, _ = zk.get(node_path)
    assert data == b"someone else's change"
    assert "Wrote data" not in output.getvalue()


def test_unchanged_data_is_not_written(zk: KazooClient, node_path: str) -> None:
    zk.create(node_path, OLD, makepath=True)
    output = io.StringIO()

    assert write_file_to_zookeeper(zk, io.BytesIO(OLD), node_path, output=output) is False

    _, stat = zk.get(node_path)
    assert stat.version == 0
    assert "No changes detected. Not writing." in output.getvalue()


def test_binary_data_is_written_without_a_diff(zk: KazooClient, node_path: str) -> None:
    zk.create(node_path, b"\xff\x00old", makepath=True)
    output = io.StringIO()

    assert write_file_to_zookeeper(zk, io.BytesIO(b"\xfe\x01new"), node_path, output=output)

    assert zk.get(node_path)[0] == b"\xfe\x01new"
    assert "not UTF-8 text; not showing a diff" in output.getvalue()
    assert "@@" not in output.getvalue()


def test_missing_node_raises(zk: KazooClient, node_path: str) -> None:
    with pytest.raises(NodeDoesNotExistError) as info:
        write_file_to_zookeeper(zk, io.BytesIO(NEW), node_path, output=io.StringIO())
    assert info.value.path == node_path


def test_access_denied_names_the_credentials_key(zk: KazooClient, node_path: str) -> None:
    acl = make_digest_acl("live-data-owner", "hunter2", all=True)
    zk.ensure_path(node_path.rsplit("/", 1)[0])
    zk.create(node_path, OLD, acl=[acl])
    anonymous = KazooClient(hosts=SHARED_ZOOKEEPER, timeout=5)
    anonymous.start(timeout=30)
    try:
        with pytest.raises(NodeAccessDeniedError, match="zookeeper.credentials"):
            write_file_to_zookeeper(anonymous, io.BytesIO(NEW), node_path, output=io.StringIO())
    finally:
        anonymous.stop()
        anonymous.close()
        # Deleting needs rights on the (open) parent only; the fixture's recursive delete
        # would first have to list the protected node's children, which it may not.
        zk.delete(node_path)
