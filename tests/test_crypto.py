"""Tests for baseplate.crypto message signatures, with the wire layout checked byte by byte."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate import crypto

MESSAGE = "test message"


@dataclass(frozen=True)
class Secret:
    """Stands in for baseplate.secrets.VersionedSecret: the same current/all_versions shape."""

    current: bytes
    previous: bytes | None = None
    next: bytes | None = None

    @property
    def all_versions(self) -> Iterator[bytes]:
        for version in (self.current, self.previous, self.next):
            if version is not None:
                yield version


SECRET = Secret(previous=b"one", current=b"two", next=b"three")

# Produced by reddit's baseplate for SECRET.current, MESSAGE, time 1000 and max_age 30 s:
# signatures must stay interchangeable with it.
INTEROP_SIGNATURE = b"AQAABgQAAOMD6M5zvQU0-GK_uKvPdKH7NOeRAq5Jdlkjwq67BzLt"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Pin time.time() to a value the test can move."""
    clock = [1000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    return clock


def expected_signature(secret: bytes, message: str, expiration: int) -> bytes:
    header = b"\x01" + b"\x00\x00" + expiration.to_bytes(4, "little")
    digest = hmac.new(secret, header + message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(header + digest)


def test_make_signature_exact_bytes(now: list[float]) -> None:
    signature = crypto.make_signature(SECRET, MESSAGE, max_age=datetime.timedelta(seconds=30))
    assert signature == expected_signature(b"two", MESSAGE, 1030)
    assert signature == INTEROP_SIGNATURE
    raw = base64.urlsafe_b64decode(signature)
    assert raw[:7] == bytes([1, 0, 0, 0x06, 0x04, 0, 0])  # 1030 == 0x0406
    assert len(raw) == 7 + 32


def test_make_signature_non_ascii_message(now: list[float]) -> None:
    signature = crypto.make_signature(SECRET, "héllo ☃", max_age=datetime.timedelta(days=1))
    assert signature == expected_signature(b"two", "héllo ☃", 1000 + 86400)


def test_validate_interop_signature(now: list[float]) -> None:
    info = crypto.validate_signature(SECRET, MESSAGE, INTEROP_SIGNATURE)
    assert info == crypto.SignatureInfo(version=1, expiration=1030)
    assert info.version == 1
    assert info.expiration == 1030
    # str signatures are accepted too
    assert crypto.validate_signature(SECRET, MESSAGE, INTEROP_SIGNATURE.decode()) == info


def test_round_trip_with_default_clock() -> None:
    signature = crypto.make_signature(SECRET, "hi", max_age=datetime.timedelta(minutes=5))
    assert crypto.validate_signature(SECRET, "hi", signature).version == 1


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"totally bogus",
        b"Ym9ndXM=",  # base64 of "bogus": too short
        base64.urlsafe_b64encode(b"\x02\x00\x00\xd2\x04\x00\x00" + b"x" * 32),  # version 2
        INTEROP_SIGNATURE[:20],  # digest cut short
        INTEROP_SIGNATURE + b"AAAA",  # digest too long
        "sïgnature",
        INTEROP_SIGNATURE[:-1],  # bad padding
    ],
)
def test_unreadable_signature(now: list[float], signature: bytes | str) -> None:
    with pytest.raises(crypto.UnreadableSignatureError):
        crypto.validate_signature(SECRET, MESSAGE, signature)


def test_expired(now: list[float]) -> None:
    now[0] = 1030
    assert crypto.validate_signature(SECRET, MESSAGE, INTEROP_SIGNATURE).expiration == 1030
    now[0] = 2000
    with pytest.raises(crypto.ExpiredSignatureError) as info:
        crypto.validate_signature(SECRET, MESSAGE, INTEROP_SIGNATURE)
    assert info.value.expiration == 1030
    assert "1030" in str(info.value)


@pytest.mark.parametrize(
    "rotated",
    [
        Secret(previous=b"two", current=b"new", next=b"new"),
        Secret(previous=b"old", current=b"two", next=b"new"),
        Secret(previous=b"old", current=b"old", next=b"two"),
        Secret(current=b"two"),
    ],
)
def test_secret_rotation(now: list[float], rotated: Secret) -> None:
    info = crypto.validate_signature(rotated, MESSAGE, INTEROP_SIGNATURE)
    assert info == (1, 1030)


def test_incorrect_signature(now: list[float]) -> None:
    with pytest.raises(crypto.IncorrectSignatureError):
        crypto.validate_signature(SECRET, "SNEAKY DIFFERENT MESSAGE", INTEROP_SIGNATURE)
    with pytest.raises(crypto.IncorrectSignatureError):
        crypto.validate_signature(Secret(current=b"other"), MESSAGE, INTEROP_SIGNATURE)


def test_incorrect_checked_before_expiry(now: list[float]) -> None:
    now[0] = 5000
    with pytest.raises(crypto.IncorrectSignatureError):
        crypto.validate_signature(SECRET, "different", INTEROP_SIGNATURE)


def test_exception_hierarchy() -> None:
    for exc in (
        crypto.UnreadableSignatureError,
        crypto.IncorrectSignatureError,
        crypto.ExpiredSignatureError,
    ):
        assert issubclass(exc, crypto.SignatureError)


def test_max_age_out_of_range(now: list[float]) -> None:
    with pytest.raises(ValueError, match="max_age"):
        crypto.make_signature(SECRET, MESSAGE, max_age=datetime.timedelta(days=365 * 200))


def test_constant_time_compare() -> None:
    assert crypto.constant_time_compare(b"abc", b"abc")
    assert not crypto.constant_time_compare(b"abc", b"abd")
    assert crypto.constant_time_compare("abc", "abc")


@settings(max_examples=200, deadline=None)
@given(signature=st.one_of(st.binary(max_size=80), st.text(max_size=80)))
def test_arbitrary_signature_raises_only_signature_errors(signature: bytes | str) -> None:
    try:
        crypto.validate_signature(SECRET, MESSAGE, signature)
    except crypto.SignatureError:
        pass


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(min_size=0, max_size=60))
def test_arbitrary_decoded_payload_raises_only_signature_errors(payload: bytes) -> None:
    # well-formed base64 of random bytes reaches the header and digest checks
    signature = base64.urlsafe_b64encode(b"\x01" + payload)
    try:
        crypto.validate_signature(SECRET, MESSAGE, signature)
    except crypto.SignatureError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=64),
    message=st.text(max_size=200),
    max_age=st.integers(min_value=1, max_value=10**7),
    other=st.text(max_size=200),
)
def test_round_trip_and_tampering(secret: bytes, message: str, max_age: int, other: str) -> None:
    versioned = Secret(current=secret)
    signature = crypto.make_signature(
        versioned, message, max_age=datetime.timedelta(seconds=max_age)
    )
    info = crypto.validate_signature(versioned, message, signature)
    assert info.version == 1
    if other != message:
        with pytest.raises(crypto.IncorrectSignatureError):
            crypto.validate_signature(versioned, other, signature)
