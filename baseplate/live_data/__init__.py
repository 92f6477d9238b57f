"""Live data: ZooKeeper nodes synchronised to local files across a cluster.

The watcher daemon (``python -m baseplate.live_data.watcher CONFIG``) keeps local files in
step with ZooKeeper nodes; the writer tool (``python -m baseplate.live_data.writer CONFIG
INPUT NODE``) puts a file's contents into a node. :func:`zookeeper_client_from_config` gives
direct access to ZooKeeper for anything those two do not cover.
"""

from __future__ import annotations

from baseplate.live_data.zookeeper import zookeeper_client_from_config

__all__ = ["zookeeper_client_from_config"]
