"""Tests for baseplate.service_discovery.ServiceInventory over real Synapse-style files."""

from __future__ import annotations

import collections
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.service_discovery import Backend, NoBackendsAvailableError, ServiceInventory


def entry(backend_id: int, host: str, weight: int | None, name: str = "") -> dict[str, Any]:
    """One backend as Synapse's file_output writes it."""
    return {
        "haproxy_server_options": None,
        "host": host,
        "id": backend_id,
        "labels": None,
        "name": name or f"i-{backend_id}",
        "port": 9090,
        "weight": weight,
    }


def write_inventory(path: Path, content: Any, mtime: int) -> None:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=4))
    os.utime(path, (mtime, mtime))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "example.json"


def test_load_backends(path: Path) -> None:
    write_inventory(path, [entry(205, "10.0.1.2", None, "i-258fc8b6")], mtime=1000)
    inventory = ServiceInventory(str(path))

    backends = inventory.get_backends()
    assert len(backends) == 1
    backend = backends[0]
    assert isinstance(backend, Backend)
    assert backend.id == 205
    assert backend.name == "i-258fc8b6"
    assert backend.endpoint == EndpointConfiguration(
        socket.AF_INET, InternetAddress("10.0.1.2", 9090)
    )
    assert backend.endpoint.address.host == "10.0.1.2"  # type: ignore[union-attr]
    assert backend.endpoint.address.port == 9090  # type: ignore[union-attr]
    assert backend.weight == 1  # null weight means the default
    assert inventory.get_backend() == backend

    write_inventory(
        path,
        [entry(205, "10.0.1.2", 1), entry(215, "10.0.1.3", 2), entry(216, "10.0.1.4", 1)],
        mtime=2000,
    )
    assert [b.id for b in inventory.get_backends()] == [205, 215, 216]
    assert [b.weight for b in inventory.get_backends()] == [1, 2, 1]


def test_get_backend_respects_weights(path: Path) -> None:
    write_inventory(
        path, [entry(1, "10.0.0.1", 1), entry(2, "10.0.0.2", 3), entry(3, "10.0.0.3", 0)], 1000
    )
    inventory = ServiceInventory(str(path))
    counts = collections.Counter(inventory.get_backend().id for _ in range(4000))
    assert counts[3] == 0
    assert 2.2 < counts[2] / counts[1] < 4.0


def test_missing_file(path: Path) -> None:
    inventory = ServiceInventory(str(path))
    assert inventory.get_backends() == []
    with pytest.raises(NoBackendsAvailableError, match="unavailable"):
        inventory.get_backend()

    # the file appearing later is picked up
    write_inventory(path, [entry(1, "10.0.0.1", 1)], mtime=1000)
    assert inventory.get_backend().id == 1


def test_empty_inventory(path: Path) -> None:
    write_inventory(path, "[]", mtime=1000)
    inventory = ServiceInventory(str(path))
    assert inventory.get_backends() == []
    with pytest.raises(NoBackendsAvailableError):
        inventory.get_backend()


def test_all_zero_weights(path: Path) -> None:
    write_inventory(path, [entry(1, "10.0.0.1", 0)], mtime=1000)
    inventory = ServiceInventory(str(path))
    assert len(inventory.get_backends()) == 1
    with pytest.raises(NoBackendsAvailableError, match="weight"):
        inventory.get_backend()


def test_keeps_last_inventory_when_file_breaks_or_disappears(path: Path) -> None:
    write_inventory(path, [entry(1, "10.0.0.1", 1)], mtime=1000)
    inventory = ServiceInventory(str(path))
    assert inventory.get_backend().id == 1

    write_inventory(path, "[{truncated", mtime=2000)
    assert [b.id for b in inventory.get_backends()] == [1]

    write_inventory(path, [{"port": 1}], mtime=3000)
    assert inventory.get_backend().id == 1

    path.unlink()
    assert inventory.get_backend().id == 1

    write_inventory(path, [entry(2, "10.0.0.2", 1)], mtime=4000)
    assert inventory.get_backend().id == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"host": "x"}', "expected a JSON list"),
        ("[1]", "inventory entry 0: expected an object"),
        ('[{"port": 80}]', "inventory entry 0: 'host'"),
        ('[{"host": "h", "port": "80"}]', "'port'"),
        ('[{"host": "h", "port": 80, "weight": -1}]', "'weight'"),
        ('[{"host": "h", "port": 99999}]', "'port'"),
    ],
)
def test_bad_inventory_never_loaded(
    path: Path, content: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_inventory(path, content, mtime=1000)
    inventory = ServiceInventory(str(path))
    assert inventory.get_backends() == []
    with pytest.raises(NoBackendsAvailableError):
        inventory.get_backend()
    assert any(message in record.getMessage() for record in caplog.records)
