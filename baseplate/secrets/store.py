"""The secret store under its older import path; everything lives in :py:mod:`baseplate.secrets`."""

from __future__ import annotations

from baseplate.secrets import (
    CorruptSecretError,
    SecretNotFoundError,
    SecretsNotAvailableError,
    SecretsStore,
    VersionedSecret,
    secrets_store_from_config,
)

__all__ = [
    "CorruptSecretError",
    "SecretNotFoundError",
    "SecretsNotAvailableError",
    "SecretsStore",
    "VersionedSecret",
    "secrets_store_from_config",
]
