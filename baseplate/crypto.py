"""Utilities for common cryptographic operations: signing messages with expiring signatures.

::

    message = "Hello, world!"
    secret = secrets.get_versioned("some_signing_key")
    signature = make_signature(secret, message, max_age=datetime.timedelta(days=1))
    try:
        validate_signature(secret, message, signature)
    except SignatureError:
        print("Oh no, it was invalid!")
    else:
        print("Message was valid!")

A signature is the URL-safe base64 encoding of a 7-byte header (format version
``1``, two zero pad bytes, the expiration time as a little-endian unsigned 32-bit
count of seconds since the UNIX epoch) followed by the HMAC-SHA256 digest, keyed by
the secret, of the header and the UTF-8 encoded message. This is the format every
baseplate service uses, so signatures made here validate there and vice versa.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import struct
import time
from collections.abc import Iterable
from typing import NamedTuple, Protocol, Union

#: Compare two strings or bytes in constant time (:func:`hmac.compare_digest`).
constant_time_compare = hmac.compare_digest

_SIGNATURE_VERSION = 1
_HEADER = struct.Struct("<BxxI")
_DIGEST_SIZE = hashlib.sha256().digest_size
_MAX_EXPIRATION = 2**32 - 1


class VersionedSecretLike(Protocol):
    """What signing needs from a secret: :class:`baseplate.secrets.VersionedSecret` fits.

    ``current`` signs; every value of ``all_versions`` (current, previous, next) is
    accepted when validating, so keys can be rotated without rejecting signatures.
    """

    @property
    def current(self) -> bytes: ...

    @property
    def all_versions(self) -> Iterable[bytes]: ...


class SignatureError(Exception):
    """Base class for all message signing related errors."""


class UnreadableSignatureError(SignatureError):
    """Raised when the signature is corrupt or wrongly formatted."""


class IncorrectSignatureError(SignatureError):
    """Raised when the signature is readable but does not match the message."""


class ExpiredSignatureError(SignatureError):
    """Raised when the signature is valid but has expired.

    The ``expiration`` attribute is the time (as seconds since the UNIX epoch) at which
    the signature expired.
    """

    def __init__(self, expiration: int) -> None:
        super().__init__(f"signature expired at {expiration} (seconds since the epoch)")
        self.expiration = expiration


class SignatureInfo(NamedTuple):
    """Information about a valid signature.

    :ivar version: The version of the packed signature format.
    :ivar expiration: The time, in seconds since the UNIX epoch, at which the
        signature will expire.
    """

    version: int
    expiration: int


def _as_bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _compute_digest(secret_value: Union[str, bytes], header: bytes, message: str | bytes) -> bytes:
    return hmac.new(
        _as_bytes(secret_value), header + _as_bytes(message), hashlib.sha256
    ).digest()


def make_signature(
    secret: VersionedSecretLike, message: str, max_age: datetime.timedelta
) -> bytes:
    """Return a signature for the given message.

    To ensure that key rotation works automatically, always fetch the secret token
    from the secret store immediately before use and do not cache / save the token
    anywhere. The current version of the secret will be used to sign the token.

    :param secret: The secret signing key from the secret store (a
        :class:`baseplate.secrets.VersionedSecret`).
    :param message: The message to sign.
    :param max_age: The amount of time in the future the signature will be valid for.
    :return: An encoded signature (URL-safe base64, ASCII bytes).
    """
    expiration = int(time.time() + max_age.total_seconds())
    if not 0 <= expiration <= _MAX_EXPIRATION:
        raise ValueError(f"max_age {max_age} gives an expiration outside the signature format")
    header = _HEADER.pack(_SIGNATURE_VERSION, expiration)
    digest = _compute_digest(secret.current, header, message)
    return base64.urlsafe_b64encode(header + digest)


def _decode_signature(signature: Union[str, bytes]) -> tuple[bytes, int, bytes]:
    """Split a signature into (header, expiration, digest) or raise UnreadableSignatureError."""
    try:
        raw = _as_bytes(signature)
        # accept both base64 alphabets (as the urlsafe decoder does) but nothing else
        raw = raw.replace(b"-", b"+").replace(b"_", b"/")
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise UnreadableSignatureError("signature is not valid base64")

    if len(decoded) < _HEADER.size:
        raise UnreadableSignatureError("signature is too short to hold a header")
    header, digest = decoded[: _HEADER.size], decoded[_HEADER.size :]
    version, expiration = _HEADER.unpack(header)
    if version != _SIGNATURE_VERSION:
        raise UnreadableSignatureError(f"unknown signature format version {version}")
    if len(digest) != _DIGEST_SIZE:
        raise UnreadableSignatureError(
            f"signature digest is {len(digest)} bytes, expected {_DIGEST_SIZE}"
        )
    return header, expiration, digest


def validate_signature(
    secret: VersionedSecretLike, message: str, signature: Union[str, bytes]
) -> SignatureInfo:
    """Validate and assert a message's signature is correct.

    If the signature is valid, the function will return normally with a
    :class:`SignatureInfo` with some details about the signature. Otherwise, an
    exception will be raised.

    To ensure that key rotation works automatically, always fetch the secret token
    from the secret store immediately before use and do not cache / save the token
    anywhere. All active versions of the secret will be checked when validating the
    signature.

    :param secret: The secret signing key from the secret store (a
        :class:`baseplate.secrets.VersionedSecret`).
    :param message: The message payload to validate.
    :param signature: The signature supplied with the message.
    :raises UnreadableSignatureError: The signature is corrupt.
    :raises IncorrectSignatureError: The digest is incorrect.
    :raises ExpiredSignatureError: The signature expired.
    """
    header, expiration, digest = _decode_signature(signature)

    for secret_value in secret.all_versions:
        if secret_value is None:  # an unset previous/next version
            continue
        if constant_time_compare(_compute_digest(secret_value, header, message), digest):
            break
    else:
        raise IncorrectSignatureError("signature does not match the message")

    if time.time() > expiration:
        raise ExpiredSignatureError(expiration)
    return SignatureInfo(_SIGNATURE_VERSION, expiration)


__all__ = [
    "ExpiredSignatureError",
    "IncorrectSignatureError",
    "SignatureError",
    "SignatureInfo",
    "UnreadableSignatureError",
    "VersionedSecretLike",
    "constant_time_compare",
    "make_signature",
    "validate_signature",
]
