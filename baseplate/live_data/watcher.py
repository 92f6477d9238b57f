"""Watch nodes in ZooKeeper and sync their contents to local files on change.

Run as ``python -m baseplate.live_data.watcher CONFIG``. The ``[live-data]`` section of the
INI file holds the ZooKeeper connection keys (see
:func:`~baseplate.live_data.zookeeper_client_from_config`) and one group of keys per node::

    nodes.<name>.source = /a/node/in/zookeeper
    nodes.<name>.dest = /var/local/file-on-disk
    nodes.<name>.owner = www-data     (optional)
    nodes.<name>.group = www-data     (optional)
    nodes.<name>.mode = 0400          (optional, octal, default 0400)

Each destination file is replaced atomically when its node changes and removed when the node
is deleted. While connected to ZooKeeper, the daemon touches every destination file's mtime
periodically so monitoring can tell a live, synchronised file from a stale one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from baseplate.live_data._tool import (
    DEFAULT_CONNECT_TIMEOUT,
    LiveDataToolError,
    configure_logging,
    connect,
    read_live_data_config,
)

if TYPE_CHECKING:
    from kazoo.client import KazooClient

logger = logging.getLogger(__name__)

#: Seconds between liveness touches of the destination files.
HEARTBEAT_INTERVAL = 300.0

#: Permissions of a destination file when ``nodes.<name>.mode`` is not set.
DEFAULT_MODE = 0o400


class WatchedNodeConfig(Protocol):
    """One ``nodes.<name>`` group of the ``[live-data]`` section, parsed."""

    source: str
    dest: str
    owner: int | None
    group: int | None
    mode: int


class NodeWatcher:
    """Keeps one local file in step with the data of one ZooKeeper node.

    :param dest: Path of the local file.
    :param owner: Numeric user id to give the file, or ``None`` to leave it as created.
    :param group: Numeric group id to give the file, or ``None`` to leave it as created.
    :param mode: Permission bits of the file.
    """

    def __init__(
        self,
        dest: str,
        owner: int | None = None,
        group: int | None = None,
        mode: int = DEFAULT_MODE,
    ) -> None:
        self.dest = dest
        self.owner = owner
        self.group = group
        self.mode = mode

    def on_change(self, data: bytes | None, stat: Any, event: Any = None) -> None:
        """Handle a kazoo ``DataWatch`` notification: write the data, or remove the file.

        ``data`` is ``None`` when the node does not exist.
        """
        try:
            if data is None:
                self.remove()
            else:
                self.write(data)
        except OSError as exc:
            # Keep watching: the next change (or a fixed directory) may well succeed, and the
            # stale file stops being heartbeated only if the problem is with the file itself.
            logger.error("%s: could not update: %s", self.dest, exc)

    def write(self, data: bytes) -> None:
        """Replace the file with ``data`` atomically, with the configured owner and mode."""
        directory = os.path.dirname(os.path.abspath(self.dest))
        os.makedirs(directory, exist_ok=True)
        # Written beside the destination and renamed over it, so readers see either the old
        # or the new contents in full, never a partial file.
        fd, temp_path = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(self.dest) + ".", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as temp_file:
                if self.owner is not None or self.group is not None:
                    os.fchown(
                        temp_file.fileno(),
                        -1 if self.owner is None else self.owner,
                        -1 if self.group is None else self.group,
                    )
                os.fchmod(temp_file.fileno(), self.mode)
                temp_file.write(data)
            os.replace(temp_path, self.dest)
        except BaseException:
            try:
                os.unlink(temp_path)
            except OSError:
                pass
            raise
        logger.info("Updated %s (%d bytes)", self.dest, len(data))

    def remove(self) -> None:
        """Remove the file because its node does not exist."""
        try:
            os.unlink(self.dest)
        except FileNotFoundError:
            return
        logger.info("Removed %s; its node does not exist", self.dest)

    def heartbeat(self) -> None:
        """Touch the file's mtime to show it is still being kept in sync."""
        try:
            os.utime(self.dest, None)
        except FileNotFoundError:
            # No node, no file: nothing to vouch for.
            logger.debug("%s: not heartbeating, file does not exist", self.dest)
        except OSError as exc:
            logger.warning("%s: could not heartbeat: %s", self.dest, exc)


def watch_zookeeper_nodes(
    zookeeper: KazooClient,
    nodes: Iterable[WatchedNodeConfig],
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    stop_event: threading.Event | None = None,
) -> None:
    """Sync each node to its file, then heartbeat the files until ``stop_event`` is set.

    :param zookeeper: A started ZooKeeper client.
    :param nodes: What to watch: objects with ``source``, ``dest``, ``owner``, ``group`` and
        ``mode`` attributes (the parsed ``nodes.<name>`` groups).
    :param heartbeat_interval: Seconds between mtime touches.
    :param stop_event: Return once this is set (never, when ``None``).
    """
    watchers = []
    for node in nodes:
        watcher = NodeWatcher(node.dest, node.owner, node.group, node.mode)
        zookeeper.DataWatch(node.source, watcher.on_change)
        watchers.append(watcher)

    stop_event = stop_event or threading.Event()
    # Kazoo's own thread (or greenlet) delivers the changes; this loop only proves liveness.
    while not stop_event.wait(heartbeat_interval):
        # While disconnected the files may be stale, so they must look stale to monitoring.
        if not zookeeper.connected:
            logger.warning("Not connected to ZooKeeper; skipping heartbeat")
            continue
        for watcher in watchers:
            watcher.heartbeat()


def parse_nodes(raw_config: dict[str, str]) -> list[WatchedNodeConfig]:
    """Parse the ``nodes.<name>.*`` keys of the ``[live-data]`` section."""
    from baseplate import config

    cfg = config.parse_config(
        raw_config,
        {
            "nodes": config.DictOf(
                {
                    "source": config.String,
                    "dest": config.String,
                    "owner": config.Optional(config.UnixUser),
                    "group": config.Optional(config.UnixGroup),
                    "mode": config.Optional(config.Integer(base=8), default=DEFAULT_MODE),
                }
            )
        },
    )
    nodes = list(cfg.nodes.values())
    if not nodes:
        raise LiveDataToolError("no nodes to watch: add nodes.<name>.source and .dest keys")
    return nodes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the watcher daemon; returns the process exit status."""
    arg_parser = argparse.ArgumentParser(description=sys.modules[__name__].__doc__)
    arg_parser.add_argument(
        "config_file", type=argparse.FileType("r"), help="path to a configuration file"
    )
    arg_parser.add_argument("--debug", action="store_true", help="enable debug logging")
    arg_parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=HEARTBEAT_INTERVAL,
        help="seconds between touches of the files' mtime (default: %(default)s)",
    )
    arg_parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to wait for ZooKeeper at start-up (default: %(default)s)",
    )
    args = arg_parser.parse_args(argv)
    configure_logging(args.debug)

    from baseplate.config import ConfigurationError

    try:
        with args.config_file:
            raw_config = read_live_data_config(args.config_file)
        nodes = parse_nodes(raw_config)
        zookeeper = connect(raw_config, read_only=True, connect_timeout=args.connect_timeout)
    except (LiveDataToolError, ConfigurationError) as exc:
        logger.error("live data watcher: %s", exc)
        return 1

    # Leave through the finally clause on SIGTERM too, so the session is closed cleanly.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        watch_zookeeper_nodes(zookeeper, nodes, heartbeat_interval=args.heartbeat_interval)
    except KeyboardInterrupt:
        pass
    finally:
        zookeeper.stop()
        zookeeper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
