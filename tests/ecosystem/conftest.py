"""Fixtures for the ecosystem tests: a working directory and the plain-OpenTelemetry service."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.ecosystem.servers import VendorService


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("ecosystem")


@pytest.fixture(scope="module")
def vendor(module_dir: pathlib.Path) -> Iterator[VendorService]:
    service = VendorService(module_dir)
    yield service
    service.server.kill()
