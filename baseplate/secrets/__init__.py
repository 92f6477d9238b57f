"""Secure access to secret tokens stored in Vault.

The fetcher daemon (``python -m baseplate.secrets.fetcher``, see
:py:mod:`baseplate.secrets.fetcher`) authenticates to Vault, fetches the secrets a server
needs and keeps them in a local JSON file. :py:class:`SecretsStore` is the in-application
side: it reads that file, reloads it whenever it changes, and decodes the secret
conventions (``simple`` and ``versioned`` secrets, ``identity`` or ``base64`` encoded).

The file looks like::

    {
        "secrets": {
            "secret/myservice/some-api-key": {
                "type": "simple",
                "value": "Y2RvVXhNMVZ2aQ==",
                "encoding": "base64"
            },
            "secret/myservice/signing-key": {
                "type": "versioned",
                "current": "aGVsbG8=",
                "previous": "aGVsbG8i",
                "encoding": "base64"
            }
        },
        "vault": {"token": "...", "url": "https://vault.example.com:8200/"}
    }
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterator, Mapping
from typing import IO, Any, NamedTuple

from baseplate import config
from baseplate.context import ContextFactory
from baseplate.file_watcher import FileWatcher, WatchedFileNotAvailableError

logger = logging.getLogger(__name__)

#: Where the fetcher daemon writes the secrets file unless configured otherwise.
DEFAULT_SECRETS_PATH = "/var/local/secrets.json"

#: The encodings a secret's ``encoding`` key may name.
ENCODINGS = ("identity", "base64")


class SecretNotFoundError(Exception):
    """Raised when the requested secret is not in the local vault."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret not found: {name!r}")
        self.name = name


class CorruptSecretError(Exception):
    """Raised when the requested secret does not match the expected format.

    ``path`` is the secret's path and ``message`` says what is wrong with it.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SecretsNotAvailableError(Exception):
    """Raised when the secrets store was not accessible.

    ``inner`` is the underlying error, which names the secrets file.
    """

    def __init__(self, inner: BaseException | str) -> None:
        super().__init__(f"could not load secrets: {inner}")
        self.inner = inner


class _SecretsFileTimedOutError(SecretsNotAvailableError, WatchedFileNotAvailableError):
    """The secrets file did not become available within the store's ``timeout``.

    A :exc:`SecretsNotAvailableError` (``inner`` is the file watcher's error) that is also
    the :exc:`~baseplate.file_watcher.WatchedFileNotAvailableError` (``path``) that
    earlier baseplate releases let through from ``SecretsStore(path, timeout=...)``.
    """

    def __init__(self, error: WatchedFileNotAvailableError) -> None:
        # Neither base's __init__: each would pass its own arguments up the shared MRO.
        Exception.__init__(self, f"could not load secrets: {error}")
        self.inner = error
        self.path = error.path


class VersionedSecret(NamedTuple):
    """A versioned secret.

    Versioned secrets allow for seamless rotation of keys. When using the secret to
    generate tokens (e.g. signing a message) always use the ``current`` value. When
    validating tokens, check against all the versions in ``all_versions``. This will allow
    keys to rotate smoothly even if not done instantly across all users of the secret.
    """

    previous: bytes | None
    current: bytes
    next: bytes | None

    @property
    def all_versions(self) -> Iterator[bytes]:
        """Return an iterator over the available versions of this secret."""
        yield self.current
        if self.previous is not None:
            yield self.previous
        if self.next is not None:
            yield self.next

    @classmethod
    def from_simple_secret(cls, value: bytes) -> VersionedSecret:
        """Make a fake versioned secret from a single value.

        This is a backwards compatibility shim for use with APIs that take versioned
        secrets. Try to use proper versioned secrets fetched from the secrets store instead.
        """
        return cls(previous=None, current=value, next=None)


def decode_secret(path: str, encoding: Any, value: Any) -> bytes:
    """Decode one stored secret value to bytes.

    ``identity`` values are the UTF-8 bytes of the stored string; ``base64`` values are
    decoded strictly (characters outside the alphabet or bad padding are errors), except
    that whitespace, such as the line breaks of wrapped base64 text, is ignored.

    :raises CorruptSecretError: The value is not a string, the encoding is unknown or the
        value does not decode; the message names ``path``.
    """
    if not isinstance(value, str):
        raise CorruptSecretError(path, f"secret value must be a string, not {type(value).__name__}")
    if encoding == "identity":
        # UTF-8 undoes the JSON text encoding, and bytes match what base64 gives.
        return value.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CorruptSecretError(path, f"unable to decode base64: {exc}")
    raise CorruptSecretError(
        path, f"unknown encoding: {encoding!r} (expected one of {', '.join(ENCODINGS)})"
    )


def _parse_secrets_file(secrets_file: IO[str]) -> dict[str, Any]:
    data = json.load(secrets_file)
    if not isinstance(data, dict):
        raise ValueError("secrets file must hold a JSON object")
    if not isinstance(data.get("secrets", {}), dict):
        raise ValueError("the 'secrets' key of the secrets file must hold a JSON object")
    return data


class SecretsStore(ContextFactory):
    """Access to secret tokens with automatic refresh when changed.

    This local vault allows access to the secrets cached on disk by the fetcher daemon. It
    will automatically reload the cache when it is changed. Do not cache or store the values
    returned by this class's methods but rather get them from this class each time you need
    them. The secrets are served from memory so there's little performance impact to doing
    so and you will be sure to always have the current version in the face of key rotation
    etc.

    :param path: The secrets file written by the fetcher daemon.
    :param timeout: How long, in seconds, to block instantiation waiting for the secrets
        file to become available (defaults to not blocking).
    :raises SecretsNotAvailableError: ``timeout`` was given and the file could not be
        loaded in that time (the error is also a
        :exc:`~baseplate.file_watcher.WatchedFileNotAvailableError`, as in earlier releases).
    """

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        try:
            self._filewatcher = FileWatcher(path, _parse_secrets_file, timeout=timeout)
        except WatchedFileNotAvailableError as exc:
            raise _SecretsFileTimedOutError(exc)

    def _get_data(self) -> dict[str, Any]:
        try:
            return self._filewatcher.get_data()
        except WatchedFileNotAvailableError as exc:
            raise SecretsNotAvailableError(exc)

    def get_raw(self, path: str) -> dict[str, Any]:
        """Return a dictionary of key/value pairs for the given secret path.

        This is the raw representation of the secret in the underlying store.

        :raises SecretNotFoundError: There is no secret at ``path``.
        :raises CorruptSecretError: The secret is not a JSON object.
        :raises SecretsNotAvailableError: The secrets file could not be loaded.
        """
        secrets = self._get_data().get("secrets", {})
        try:
            raw = secrets[path]
        except KeyError:
            raise SecretNotFoundError(path)
        if not isinstance(raw, dict):
            raise CorruptSecretError(
                path, f"secret must be a JSON object, not {type(raw).__name__}"
            )
        return raw

    def _get_typed(self, path: str, expected_type: str) -> tuple[dict[str, Any], Any]:
        raw = self.get_raw(path)
        secret_type = raw.get("type")
        if secret_type != expected_type:
            raise CorruptSecretError(
                path, f"secret does not have type={expected_type} (it has type={secret_type!r})"
            )
        return raw, raw.get("encoding", "identity")

    def get_simple(self, path: str) -> bytes:
        """Decode and return a simple secret.

        Simple secrets are a convention of key/value pairs in the raw secret payload. The
        following keys are significant:

        ``type``
            This must always be ``simple`` for this method.
        ``value``
            This contains the raw value of the secret token.
        ``encoding``
            (Optional) If present, how to decode the value from how it's encoded at rest
            (``identity``, the default, or ``base64``).

        :raises CorruptSecretError: The secret is not a well-formed simple secret.
        """
        raw, encoding = self._get_typed(path, "simple")
        if "value" not in raw:
            raise CorruptSecretError(path, "secret does not have value")
        return decode_secret(path, encoding, raw["value"])

    def get_versioned(self, path: str) -> VersionedSecret:
        """Decode and return a versioned secret.

        Versioned secrets are a convention of key/value pairs in the raw secret payload. The
        following keys are significant:

        ``type``
            This must always be ``versioned`` for this method.
        ``current``, ``next``, and ``previous``
            The raw secret value's versions. ``current`` is the "active" version, which is
            used for new creation/signing operations. ``previous`` and ``next`` are only used
            for validation (e.g. checking signatures) to ensure continuity when keys rotate.
            Both ``previous`` and ``next`` are optional.
        ``encoding``
            (Optional) If present, how to decode the values from how they are encoded at
            rest (``identity``, the default, or ``base64``).

        :raises CorruptSecretError: The secret is not a well-formed versioned secret.
        """
        raw, encoding = self._get_typed(path, "versioned")
        if "current" not in raw:
            raise CorruptSecretError(path, "secret does not have 'current' value")

        def optional(key: str) -> bytes | None:
            value = raw.get(key)
            return None if value is None else decode_secret(path, encoding, value)

        return VersionedSecret(
            previous=optional("previous"),
            current=decode_secret(path, encoding, raw["current"]),
            next=optional("next"),
        )

    def _get_vault_field(self, key: str) -> str:
        vault = self._get_data().get("vault")
        if not isinstance(vault, Mapping) or not isinstance(vault.get(key), str):
            raise SecretsNotAvailableError(
                f"{self.path}: the secrets file has no vault.{key} (is it written by an "
                "up-to-date secret fetcher?)"
            )
        return str(vault[key])

    def get_vault_url(self) -> str:
        """Return the URL for accessing Vault directly.

        .. seealso:: The :py:mod:`baseplate.context.hvac` module provides integration with
            HVAC, a Vault client.
        """
        return self._get_vault_field("url")

    def get_vault_token(self) -> str:
        """Return a Vault authentication token.

        The token will have policies attached based on the server's Vault role. This is only
        necessary if talking directly to Vault.

        .. seealso:: The :py:mod:`baseplate.context.hvac` module provides integration with
            HVAC, a Vault client.
        """
        return self._get_vault_field("token")

    def make_object_for_context(self, name: str, server_span: Any) -> SecretsStore:
        """Return an object that can be added to the context object.

        This allows the secret store to be used with
        :py:meth:`~baseplate.core.Baseplate.add_to_context`::

           secrets = SecretsStore("/var/local/secrets.json")
           baseplate.add_to_context("secrets", secrets)
        """
        return self


def secrets_store_from_config(
    app_config: Mapping[str, str], timeout: float | None = None
) -> SecretsStore:
    """Configure and return a secrets store.

    This expects one configuration option:

    ``secrets.path``
        The path to the secrets file generated by the secrets fetcher daemon (default
        ``/var/local/secrets.json``).

    :param app_config: The application configuration which should have settings for the
        secrets store.
    :param timeout: How long, in seconds, to block instantiation waiting for the secrets
        data to become available (defaults to not blocking).
    """
    spec = {"secrets": {"path": config.Optional(config.String, default=DEFAULT_SECRETS_PATH)}}
    config.warn_unknown_keys(app_config, "secrets.", spec["secrets"], logger)
    cfg = config.parse_config(app_config, spec)
    return SecretsStore(cfg.secrets.path, timeout=timeout)


__all__ = [
    "CorruptSecretError",
    "SecretNotFoundError",
    "SecretsNotAvailableError",
    "SecretsStore",
    "VersionedSecret",
    "secrets_store_from_config",
]
