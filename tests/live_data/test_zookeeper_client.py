"""zookeeper_client_from_config against the real ZooKeeper."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.security import make_digest_acl

from baseplate.config import ConfigurationError
from baseplate.live_data import zookeeper_client_from_config
from baseplate.secrets import SecretsStore

from .conftest import REPO_ROOT, SHARED_ZOOKEEPER, run_module, wait_for


def write_secrets(path: Path, secrets: dict[str, dict[str, str]]) -> Path:
    path.write_text(json.dumps({"secrets": secrets, "vault": {"token": "t", "url": "u"}}))
    return path


def test_connects_with_hosts_and_timeout(zk: KazooClient, node_path: str) -> None:
    zk.create(node_path, b"hello", makepath=True)
    client = zookeeper_client_from_config(
        None, {"zookeeper.hosts": SHARED_ZOOKEEPER, "zookeeper.timeout": "3 seconds"}
    )
    assert client._session_timeout == 3000  # what the client asks the server for, in ms
    assert isinstance(client.handler, SequentialThreadingHandler)
    client.start(timeout=30)
    try:
        assert client.get(node_path)[0] == b"hello"
    finally:
        client.stop()
        client.close()


def test_hosts_may_end_in_a_chroot(zk: KazooClient, node_path: str) -> None:
    chroot = node_path.rsplit("/", 1)[0]
    zk.ensure_path(chroot)
    client = zookeeper_client_from_config(None, {"zookeeper.hosts": SHARED_ZOOKEEPER + chroot})
    client.start(timeout=30)
    try:
        client.create("/inside", b"chrooted")
    finally:
        client.stop()
        client.close()
    assert zk.get(chroot + "/inside")[0] == b"chrooted"


def test_read_only_is_passed_on() -> None:
    client = zookeeper_client_from_config(
        None, {"zookeeper.hosts": SHARED_ZOOKEEPER}, read_only=True
    )
    assert client.read_only is True


@pytest.mark.parametrize(
    ("raw_config", "key"),
    [
        ({}, "zookeeper.hosts"),
        ({"zookeeper.hosts": SHARED_ZOOKEEPER, "zookeeper.timeout": "soon"}, "zookeeper.timeout"),
        (
            {"zookeeper.hosts": SHARED_ZOOKEEPER, "zookeeper.credentials": "secret/zk"},
            "zookeeper.credentials",
        ),
    ],
)
def test_bad_configuration_names_the_key(raw_config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        zookeeper_client_from_config(None, raw_config)


def test_credentials_from_the_secrets_store_authenticate(
    zk: KazooClient, node_path: str, tmp_path: Path
) -> None:
    zk.ensure_path(node_path.rsplit("/", 1)[0])
    zk.create(node_path, b"members only", acl=[make_digest_acl("svc", "s3cret", read=True)])
    secrets = SecretsStore(
        str(
            write_secrets(
                tmp_path / "secrets.json",
                {
                    "secret/zk": {"type": "simple", "value": "svc:s3cret"},
                    "secret/zk-b64": {"type": "simple", "value": "c3ZjOnMzY3JldA==",
                                      "encoding": "base64"},
                    "secret/not-a-pair": {"type": "simple", "value": "just-a-token"},
                },
            )
        )
    )
    try:
        for path in ("secret/zk", "secret/zk-b64"):
            client = zookeeper_client_from_config(
                secrets,
                {"zookeeper.hosts": SHARED_ZOOKEEPER, "zookeeper.credentials": path},
            )
            client.start(timeout=30)
            try:
                assert client.get(node_path)[0] == b"members only"
            finally:
                client.stop()
                client.close()

        anonymous = zookeeper_client_from_config(None, {"zookeeper.hosts": SHARED_ZOOKEEPER})
        anonymous.start(timeout=30)
        try:
            with pytest.raises(NoAuthError):
                anonymous.get(node_path)
        finally:
            anonymous.stop()
            anonymous.close()

        with pytest.raises(ConfigurationError, match="username:password"):
            zookeeper_client_from_config(
                secrets,
                {"zookeeper.hosts": SHARED_ZOOKEEPER, "zookeeper.credentials": "secret/not-a-pair"},
            )
    finally:
        zk.delete(node_path)


def test_watcher_daemon_authenticates_with_credentials(
    zk: KazooClient,
    node_path: str,
    tmp_path: Path,
    live_data_config: Callable[[dict[str, str]], Path],
) -> None:
    zk.ensure_path(node_path.rsplit("/", 1)[0])
    zk.create(node_path, b"members only", acl=[make_digest_acl("svc", "s3cret", read=True)])
    secrets_path = write_secrets(
        tmp_path / "secrets.json", {"secret/zk": {"type": "simple", "value": "svc:s3cret"}}
    )
    dest = tmp_path / "data"
    config = live_data_config(
        {
            "zookeeper.hosts": SHARED_ZOOKEEPER,
            "zookeeper.credentials": "secret/zk",
            "secrets.path": str(secrets_path),
            "nodes.a.source": node_path,
            "nodes.a.dest": str(dest),
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
        wait_for(lambda: dest.exists() and dest.read_bytes() == b"members only", timeout=60)
    finally:
        process.terminate()
        process.communicate(timeout=30)
        zk.delete(node_path)


def test_tools_report_a_missing_secret(
    tmp_path: Path, live_data_config: Callable[[dict[str, str]], Path]
) -> None:
    secrets_path = write_secrets(tmp_path / "secrets.json", {})
    config = live_data_config(
        {
            "zookeeper.hosts": SHARED_ZOOKEEPER,
            "zookeeper.credentials": "secret/zk",
            "secrets.path": str(secrets_path),
        }
    )
    source = tmp_path / "input"
    source.write_text("x")

    result = run_module("baseplate.live_data.writer", str(config), str(source), "/x")

    assert result.returncode == 1
    assert "zookeeper.credentials" in result.stderr
    assert "secret/zk" in result.stderr


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()

import sys
from baseplate.live_data import zookeeper_client_from_config

client = zookeeper_client_from_config(None, {"zookeeper.hosts": sys.argv[1]})
print(type(client.handler).__name__)
client.start(timeout=30)
print(client.get(sys.argv[2])[0].decode())
client.stop()
client.close()
"""


def test_uses_the_gevent_handler_when_gevent_is_patched(zk: KazooClient, node_path: str) -> None:
    zk.create(node_path, b"from a greenlet", makepath=True)

    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, SHARED_ZOOKEEPER, node_path],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["SequentialGeventHandler", "from a greenlet"]
