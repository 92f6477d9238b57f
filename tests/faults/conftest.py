"""The fault suite runs the server tests' real ``baseplate-serve`` fixture and applications."""

from tests.server.conftest import serve  # noqa: F401
