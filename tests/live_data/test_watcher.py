"""The live data watcher against real ZooKeeper servers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from baseplate.config import ConfigurationError
from baseplate.live_data import zookeeper_client_from_config
from baseplate.live_data._tool import LiveDataToolError
from baseplate.live_data.watcher import (
    DEFAULT_MODE,
    NodeWatcher,
    parse_nodes,
    watch_zookeeper_nodes,
)

from .conftest import (
    REPO_ROOT,
    SHARED_ZOOKEEPER,
    PrivateZooKeeper,
    free_port,
    run_module,
    wait_for,
)


class RunningWatcher:
    def __init__(self, client: KazooClient, thread: threading.Thread, stop: threading.Event):
        self.client = client
        self.thread = thread
        self.stop_event = stop

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        self.client.stop()
        self.client.close()


@pytest.fixture
def start_watcher() -> Iterator[Callable[..., RunningWatcher]]:
    """Run the watcher loop in a thread, as the daemon's main() would, until the test ends."""
    running: list[RunningWatcher] = []

    def start(
        nodes: dict[str, str],
        hosts: str = SHARED_ZOOKEEPER,
        heartbeat_interval: float = 300.0,
    ) -> RunningWatcher:
        raw_config = {"zookeeper.hosts": hosts, "zookeeper.timeout": "2 seconds", **nodes}
        client = zookeeper_client_from_config(None, raw_config, read_only=True)
        client.start(timeout=30)
        stop = threading.Event()
        thread = threading.Thread(
            target=watch_zookeeper_nodes,
            args=(client, parse_nodes(raw_config)),
            kwargs={"heartbeat_interval": heartbeat_interval, "stop_event": stop},
            daemon=True,
        )
        thread.start()
        watcher = RunningWatcher(client, thread, stop)
        running.append(watcher)
        return watcher

    yield start
    for watcher in running:
        if watcher.thread.is_alive():
            watcher.stop()


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_writes_node_data_and_follows_changes(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    zk.create(node_path, b'{"key": "one"}', makepath=True)
    dest = tmp_path / "out" / "data.json"  # the directory does not exist yet
    start_watcher({"nodes.a.source": node_path, "nodes.a.dest": str(dest)})

    wait_for(lambda: read(dest) == b'{"key": "one"}')

    zk.set(node_path, b'{"key": "two"}')
    wait_for(lambda: read(dest) == b'{"key": "two"}')

    zk.set(node_path, b"")
    wait_for(lambda: read(dest) == b"")


def test_several_nodes_each_to_its_own_file(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    other_path = node_path + "-other"
    zk.create(node_path, b"first", makepath=True)
    zk.create(other_path, b"second", makepath=True)
    start_watcher(
        {
            "nodes.a.source": node_path,
            "nodes.a.dest": str(tmp_path / "a"),
            "nodes.b.source": other_path,
            "nodes.b.dest": str(tmp_path / "b"),
        }
    )
    wait_for(lambda: read(tmp_path / "a") == b"first" and read(tmp_path / "b") == b"second")


def test_replaces_the_file_atomically(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    zk.create(node_path, b"v1", makepath=True)
    dest = tmp_path / "data"
    start_watcher({"nodes.a.source": node_path, "nodes.a.dest": str(dest)})
    wait_for(lambda: read(dest) == b"v1")
    first_inode = dest.stat().st_ino

    zk.set(node_path, b"v2")
    wait_for(lambda: read(dest) == b"v2")

    # A new inode renamed into place (not the old file truncated and rewritten), and no
    # temporary file left behind.
    assert dest.stat().st_ino != first_inode
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_deleted_node_removes_the_file_and_recreation_restores_it(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    zk.create(node_path, b"here", makepath=True)
    dest = tmp_path / "data"
    start_watcher({"nodes.a.source": node_path, "nodes.a.dest": str(dest)})
    wait_for(lambda: read(dest) == b"here")

    zk.delete(node_path)
    wait_for(lambda: not dest.exists())

    zk.create(node_path, b"back again")
    wait_for(lambda: read(dest) == b"back again")


def test_node_missing_at_start_means_no_file_until_it_is_created(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    dest = tmp_path / "data"
    dest.write_bytes(b"left over from an earlier run")
    start_watcher({"nodes.a.source": node_path, "nodes.a.dest": str(dest)})

    wait_for(lambda: not dest.exists())

    zk.create(node_path, b"created later", makepath=True)
    wait_for(lambda: read(dest) == b"created later")


def test_file_gets_configured_owner_group_and_mode(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    assert os.geteuid() == 0, "changing a file's owner needs root, which the test machine is"
    zk.create(node_path, b"secret-ish", makepath=True)
    owned = tmp_path / "owned"
    default = tmp_path / "default"
    start_watcher(
        {
            "nodes.owned.source": node_path,
            "nodes.owned.dest": str(owned),
            "nodes.owned.owner": "nobody",
            "nodes.owned.group": "nogroup",
            "nodes.owned.mode": "0640",
            "nodes.default.source": node_path,
            "nodes.default.dest": str(default),
        }
    )
    wait_for(lambda: read(owned) == b"secret-ish" and read(default) == b"secret-ish")

    owned_stat = owned.stat()
    assert stat.S_IMODE(owned_stat.st_mode) == 0o640
    assert owned_stat.st_uid == 65534  # nobody
    assert owned_stat.st_gid == 65534  # nogroup

    default_stat = default.stat()
    assert stat.S_IMODE(default_stat.st_mode) == DEFAULT_MODE == 0o400
    assert (default_stat.st_uid, default_stat.st_gid) == (os.geteuid(), os.getegid())

    # A later update keeps the configured ownership and mode.
    zk.set(node_path, b"changed")
    wait_for(lambda: read(owned) == b"changed")
    owned_stat = owned.stat()
    assert (stat.S_IMODE(owned_stat.st_mode), owned_stat.st_uid, owned_stat.st_gid) == (
        0o640,
        65534,
        65534,
    )


def test_touches_mtime_periodically_while_connected(
    zk: KazooClient, node_path: str, tmp_path: Path, start_watcher: Callable[..., RunningWatcher]
) -> None:
    zk.create(node_path, b"data", makepath=True)
    dest = tmp_path / "data"
    start_watcher({"nodes.a.source": node_path, "nodes.a.dest": str(dest)}, heartbeat_interval=0.05)
    wait_for(lambda: read(dest) == b"data")

    os.utime(dest, (1_000_000, 1_000_000))
    wait_for(lambda: dest.stat().st_mtime > 1_000_000)
    assert read(dest) == b"data"


def test_reconnects_after_zookeeper_restart_and_stops_heartbeat_meanwhile(
    private_zookeeper: PrivateZooKeeper,
    tmp_path: Path,
    start_watcher: Callable[..., RunningWatcher],
) -> None:
    writer = KazooClient(hosts=private_zookeeper.hosts, timeout=5)
    writer.start(timeout=30)
    writer.create("/restart/node", b"before", makepath=True)
    writer.stop()
    writer.close()

    dest = tmp_path / "data"
    watcher = start_watcher(
        {"nodes.a.source": "/restart/node", "nodes.a.dest": str(dest)},
        hosts=private_zookeeper.hosts,
        heartbeat_interval=0.05,
    )
    wait_for(lambda: read(dest) == b"before")

    private_zookeeper.stop()
    wait_for(lambda: not watcher.client.connected)

    # While disconnected the file may be stale, so it must stop looking fresh.
    os.utime(dest, (1_000_000, 1_000_000))
    for _ in range(10):
        threading.Event().wait(0.05)
        assert dest.stat().st_mtime == 1_000_000
    assert read(dest) == b"before"  # disconnection alone does not remove the data

    private_zookeeper.start()
    writer = KazooClient(hosts=private_zookeeper.hosts, timeout=5)
    writer.start(timeout=30)
    try:
        writer.set("/restart/node", b"after")
    finally:
        writer.stop()
        writer.close()

    wait_for(lambda: read(dest) == b"after", timeout=60)
    wait_for(lambda: dest.stat().st_mtime > 1_000_000, timeout=60)


def test_node_watcher_keeps_going_when_the_file_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    watcher = NodeWatcher(str(blocker / "data"))

    watcher.on_change(b"data", None)  # logged, not raised into kazoo's thread

    assert sorted(os.listdir(tmp_path)) == ["not-a-directory"]


def test_parse_nodes_names_the_bad_key() -> None:
    with pytest.raises(ConfigurationError, match=r"nodes\.a\.mode"):
        parse_nodes({"nodes.a.source": "/x", "nodes.a.dest": "/tmp/x", "nodes.a.mode": "rw"})
    with pytest.raises(ConfigurationError, match=r"nodes\.a\.dest"):
        parse_nodes({"nodes.a.source": "/x"})
    with pytest.raises(LiveDataToolError, match="no nodes"):
        parse_nodes({"zookeeper.hosts": SHARED_ZOOKEEPER})


def test_daemon_syncs_nodes_and_exits_cleanly_on_sigterm(
    zk: KazooClient,
    node_path: str,
    tmp_path: Path,
    live_data_config: Callable[[dict[str, str]], Path],
) -> None:
    zk.create(node_path, b"from the daemon", makepath=True)
    dest = tmp_path / "data"
    config = live_data_config(
        {
            "zookeeper.hosts": SHARED_ZOOKEEPER,
            "zookeeper.timeout": "3 seconds",
            "nodes.a.source": node_path,
            "nodes.a.dest": str(dest),
            "nodes.a.mode": "0644",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "baseplate.live_data.watcher", str(config)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: read(dest) == b"from the daemon", timeout=60)
        assert stat.S_IMODE(dest.stat().st_mode) == 0o644
        zk.set(node_path, b"changed")
        wait_for(lambda: read(dest) == b"changed")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"Updated {dest}" in stderr


def test_daemon_exits_with_a_clear_error_when_zookeeper_is_down(
    tmp_path: Path, live_data_config: Callable[[dict[str, str]], Path]
) -> None:
    port = free_port()  # nothing listens there
    config = live_data_config(
        {
            "zookeeper.hosts": f"127.0.0.1:{port}",
            "nodes.a.source": "/whatever",
            "nodes.a.dest": str(tmp_path / "data"),
        }
    )

    result = run_module("baseplate.live_data.watcher", "--connect-timeout", "1", str(config))

    assert result.returncode == 1
    assert f"could not connect to ZooKeeper at '127.0.0.1:{port}' within 1 seconds" in result.stderr
    assert not (tmp_path / "data").exists()


def test_daemon_reports_configuration_errors(
    tmp_path: Path, live_data_config: Callable[[dict[str, str]], Path]
) -> None:
    config = live_data_config({"nodes.a.source": "/x", "nodes.a.dest": str(tmp_path / "d")})
    result = run_module("baseplate.live_data.watcher", str(config))
    assert result.returncode == 1
    assert "zookeeper.hosts" in result.stderr

    no_section = tmp_path / "empty.ini"
    no_section.write_text("[app:main]\nfoo = bar\n")
    result = run_module("baseplate.live_data.watcher", str(no_section))
    assert result.returncode == 1
    assert "has no [live-data] section" in result.stderr
