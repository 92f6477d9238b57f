"""What the live data command line tools share: reading the INI file and connecting."""

from __future__ import annotations

import configparser
import logging
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from kazoo.client import KazooClient

logger = logging.getLogger(__name__)

#: The INI section both tools read.
CONFIG_SECTION = "live-data"

#: How long the tools wait for the first ZooKeeper connection before giving up (seconds).
DEFAULT_CONNECT_TIMEOUT = 30.0


class LiveDataToolError(Exception):
    """A problem a live data tool reports to its user and exits non-zero for."""


def read_live_data_config(config_file: TextIO) -> dict[str, str]:
    """Return the raw ``[live-data]`` section of an INI file."""
    parser = configparser.RawConfigParser()
    parser.read_file(config_file)
    if not parser.has_section(CONFIG_SECTION):
        name = getattr(config_file, "name", "the configuration file")
        raise LiveDataToolError(f"{name} has no [{CONFIG_SECTION}] section")
    return dict(parser.items(CONFIG_SECTION))


def connect(
    raw_config: dict[str, str], read_only: bool | None, connect_timeout: float
) -> KazooClient:
    """Build a ZooKeeper client from ``raw_config`` and wait until it is connected.

    The secrets store (``secrets.path``) is only opened when ``zookeeper.credentials`` asks
    for it, so credential-less set-ups need no secrets file.
    """
    from baseplate.live_data import zookeeper_client_from_config

    secrets = None
    if raw_config.get("zookeeper.credentials", "").strip():
        from baseplate.secrets import (
            CorruptSecretError,
            SecretNotFoundError,
            SecretsNotAvailableError,
            secrets_store_from_config,
        )

        try:
            secrets = secrets_store_from_config(raw_config, timeout=connect_timeout)
            zookeeper = zookeeper_client_from_config(secrets, raw_config, read_only=read_only)
        except (CorruptSecretError, SecretNotFoundError, SecretsNotAvailableError) as exc:
            raise LiveDataToolError(f"could not read zookeeper.credentials: {exc}")
    else:
        zookeeper = zookeeper_client_from_config(None, raw_config, read_only=read_only)
    try:
        zookeeper.start(timeout=connect_timeout)
    except zookeeper.handler.timeout_exception:
        raise LiveDataToolError(
            f"could not connect to ZooKeeper at {raw_config.get('zookeeper.hosts')!r} "
            f"within {connect_timeout:g} seconds"
        )
    return zookeeper


def configure_logging(debug: bool) -> None:
    """Log plain messages to stderr, keeping kazoo's chatter to warnings."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")
    logging.getLogger("kazoo").setLevel(logging.WARNING)
