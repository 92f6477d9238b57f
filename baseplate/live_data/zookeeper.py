"""Connecting to ZooKeeper from the ``zookeeper.*`` configuration keys."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from baseplate.secrets import SecretsStore

logger = logging.getLogger(__name__)

#: Retry policy for (re)connecting: keep trying forever, backing off exponentially from
#: 100 ms to at most one minute, so a ZooKeeper outage never kills a long-running client.
CONNECTION_RETRY: dict[str, Any] = {
    "max_tries": -1,
    "delay": 0.1,
    "backoff": 2,
    "max_jitter": 1,
    "max_delay": 60,
}


def _gevent_is_patched() -> bool:
    # Only look if gevent is already loaded: a process that never imported gevent cannot have
    # been monkey-patched, and importing it here would be wasted work.
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket") or monkey.is_module_patched("threading"))


def zookeeper_client_from_config(
    secrets: SecretsStore | None,
    app_config: dict[str, str],
    read_only: bool | None = None,
) -> KazooClient:
    """Configure and return a (not yet started) ZooKeeper client.

    The configuration keys are:

    ``zookeeper.hosts``
        A comma-delimited list of ``host:port`` pairs, optionally followed by a chroot, e.g.
        ``zk01:2181,zk02:2181`` or ``zk01:2181,zk02:2181/some/root``.
    ``zookeeper.credentials``
        (Optional) A comma-delimited list of paths to simple secrets in the secrets store,
        each holding ``username:password`` for ZooKeeper digest authentication.
    ``zookeeper.timeout``
        (Optional) How long to wait for each connection attempt, e.g. ``5 seconds`` (the
        default).

    The client retries forever on connection loss. When gevent has monkey-patched the
    process, the client uses kazoo's gevent handler so that its work runs in greenlets.

    :param secrets: The secrets store the credentials are read from (may be ``None`` when
        ``zookeeper.credentials`` is not set).
    :param app_config: The raw configuration dictionary.
    :param read_only: Whether connections to read-only ZooKeeper servers are allowed.
    :rtype: :py:class:`kazoo.client.KazooClient`
    """
    from kazoo.client import KazooClient

    from baseplate import config

    spec = {
        "zookeeper": {
            "hosts": config.String,
            "credentials": config.Optional(config.TupleOf(config.String), default=()),
            "timeout": config.Optional(config.Timespan, default=None),
        }
    }
    config.warn_unknown_keys(app_config, "zookeeper.", spec["zookeeper"], logger)
    cfg = config.parse_config(app_config, spec).zookeeper

    auth_data = []
    for path in cfg.credentials:
        if secrets is None:
            raise config.ConfigurationError(
                "zookeeper.credentials", "a secrets store is needed to read the credentials"
            )
        credentials = secrets.get_simple(path)
        try:
            text = credentials.decode("utf-8")
        except UnicodeDecodeError:
            raise config.ConfigurationError(
                "zookeeper.credentials", f"secret {path!r} is not UTF-8 text"
            )
        if ":" not in text:
            raise config.ConfigurationError(
                "zookeeper.credentials", f"secret {path!r} must be of the form username:password"
            )
        auth_data.append(("digest", text))

    timeout = cfg.timeout.total_seconds() if cfg.timeout is not None else 5.0

    kwargs: dict[str, Any] = {}
    if _gevent_is_patched():
        from kazoo.handlers.gevent import SequentialGeventHandler

        kwargs["handler"] = SequentialGeventHandler()

    return KazooClient(
        hosts=cfg.hosts,
        timeout=timeout,
        auth_data=auth_data,
        read_only=read_only,
        connection_retry=dict(CONNECTION_RETRY),
        **kwargs,
    )


__all__ = ["CONNECTION_RETRY", "zookeeper_client_from_config"]
