"""Integration with Synapse's ``file_output`` service discovery method.

.. note:: Production baseplate services have Synapse hooked up to a local HAProxy
   instance which will automatically route connections to services for you if you
   connect to the correct address/port on localhost. That is the preferred method of
   connecting to services.

The contents of this module are useful for inspecting the service inventory directly
for cases where a blind TCP connection is insufficient (e.g. to give service
addresses to a client, or for topology-aware clients like Cassandra)::

    inventory = ServiceInventory("/var/lib/synapse/example.json")
    backend = inventory.get_backend()
    print(backend.endpoint.address)

Synapse writes the inventory as a JSON list of objects with (at least) ``host`` and
``port``, plus ``id``, ``name`` and ``weight`` (``null`` meaning the default, 1).
"""

from __future__ import annotations

import json
import logging
import socket
from typing import IO, Any, NamedTuple

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.file_watcher import FileWatcher, WatchedFileNotAvailableError
from baseplate.random import WeightedLottery

logger = logging.getLogger(__name__)


class NoBackendsAvailableError(Exception):
    """Raised when no backends are available for this service."""


class Backend(NamedTuple):
    """A description of a service backend.

    ``id``
        A unique integer ID identifying the backend.
    ``name``
        The name of the backend.
    ``endpoint``
        An :class:`~baseplate.config.EndpointConfiguration` object describing the
        network address of the backend.
    ``weight``
        An integer weight indicating how much to prefer this backend when choosing
        whom to connect to.
    """

    id: Any
    name: str
    endpoint: EndpointConfiguration
    weight: int


class _Inventory(NamedTuple):
    backends: list[Backend]
    lottery: WeightedLottery[Backend] | None


def _parse_backend(index: int, entry: Any) -> Backend:
    where = f"inventory entry {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")

    host = entry.get("host")
    if not isinstance(host, str) or not host:
        raise ValueError(f"{where}: 'host' must be a non-empty string, got {host!r}")
    port = entry.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"{where}: 'port' must be an integer from 0 to 65535, got {port!r}")
    weight = entry.get("weight")
    if weight is None:
        weight = 1
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise ValueError(f"{where}: 'weight' must be a non-negative integer, got {weight!r}")
    name = entry.get("name")
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress(host, port))
    return Backend(entry.get("id"), name if name is not None else "", endpoint, weight)


def _parse(watched_file: IO[str]) -> _Inventory:
    """Parse a Synapse inventory file into backends and a weighted lottery over them."""
    data = json.load(watched_file)
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of backends, got {type(data).__name__}")
    backends = [_parse_backend(index, entry) for index, entry in enumerate(data)]
    lottery = None
    if any(backend.weight > 0 for backend in backends):
        lottery = WeightedLottery(backends, weight_key=lambda backend: backend.weight)
    return _Inventory(backends, lottery)


class ServiceInventory:
    """The inventory enumerates available backends for a single service.

    :param filename: The absolute path to the Synapse-generated inventory file in
        JSON format.
    """

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._filewatcher = FileWatcher(filename, _parse)
        self._reported_unavailable = False

    def _get_inventory(self) -> _Inventory | None:
        try:
            inventory = self._filewatcher.get_data()
        except WatchedFileNotAvailableError as exc:
            # once per outage, not on every lookup
            if not self._reported_unavailable:
                logger.warning("service inventory unavailable: %s", exc)
                self._reported_unavailable = True
            return None
        self._reported_unavailable = False
        return inventory

    def get_backends(self) -> list[Backend]:
        """Return a list of all available backends in the inventory.

        If the inventory file becomes unavailable, the previously seen inventory is
        returned (an empty list if it has never been readable).
        """
        inventory = self._get_inventory()
        if inventory is None:
            return []
        return list(inventory.backends)

    def get_backend(self) -> Backend:
        """Return a randomly chosen backend from the available backends.

        If weights are specified in the inventory, they will be respected when making
        the random selection.

        :raises NoBackendsAvailableError: if the inventory has no available endpoints
            (including when every backend has weight 0).
        """
        inventory = self._get_inventory()
        if inventory is None:
            raise NoBackendsAvailableError(f"{self.filename}: inventory is unavailable")
        if inventory.lottery is None:
            raise NoBackendsAvailableError(f"{self.filename}: no backends with weight > 0")
        return inventory.lottery.pick()


__all__ = ["Backend", "NoBackendsAvailableError", "ServiceInventory"]
