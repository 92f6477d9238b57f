"""Fixtures for the edge request context tests.

Tokens are signed here with RSA keys generated for the test run, as the authentication
service would sign them; the public keys go into a real secrets file read by a real
:class:`~baseplate.secrets.SecretsStore`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from baseplate.edge_context import AUTHENTICATION_PUBLIC_KEY_SECRET, EdgeRequestContextFactory
from baseplate.secrets import SecretsStore


class SigningKey:
    """An RSA key pair of the authentication service."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: dict[str, Any], expires_in: float | None = 3600) -> str:
        """A token with ``claims``, expiring ``expires_in`` seconds from now (None: no exp)."""
        payload = dict(claims)
        if expires_in is not None:
            payload.setdefault("exp", int(time.time() + expires_in))
        return jwt.encode(payload, self.private_key, algorithm="RS256")


@pytest.fixture(scope="session")
def keys() -> dict[str, SigningKey]:
    """Key pairs: ``current``, ``previous`` and ``next`` versions of the secret, and
    ``stranger``, a key the service does not know."""
    return {name: SigningKey() for name in ("current", "previous", "next", "stranger")}


def write_secrets(path: Path, public_key_versions: dict[str, str]) -> None:
    """Write a secrets file as the fetcher does (temp file + rename, mtime moved on)."""
    secret: dict[str, Any] = {"type": "versioned", "encoding": "identity"}
    secret.update(public_key_versions)
    document = {
        "secrets": {AUTHENTICATION_PUBLIC_KEY_SECRET: secret},
        "vault": {"token": "test-token", "url": "http://127.0.0.1:8200/"},
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    # the store reloads on a changed mtime; make sure a rewrite within one tick is seen
    mtime = path.stat().st_mtime + 1 if path.exists() else time.time()
    os.utime(temporary, (mtime, mtime))
    temporary.replace(path)


@pytest.fixture
def secrets_path(tmp_path: Path, keys: dict[str, SigningKey]) -> Path:
    """The secrets file: the public key's current and previous versions."""
    path = tmp_path / "secrets.json"
    write_secrets(
        path, {"current": keys["current"].public_pem, "previous": keys["previous"].public_pem}
    )
    return path


@pytest.fixture
def secrets(secrets_path: Path) -> SecretsStore:
    return SecretsStore(str(secrets_path))


@pytest.fixture
def factory(secrets: SecretsStore) -> EdgeRequestContextFactory:
    return EdgeRequestContextFactory(secrets)


@pytest.fixture
def sign(keys: dict[str, SigningKey]) -> Callable[..., str]:
    """``sign(claims, key="current", expires_in=3600)``: a token as the auth service makes it."""

    def make(claims: dict[str, Any], key: str = "current", expires_in: float | None = 3600) -> str:
        return keys[key].sign(claims, expires_in)

    return make
