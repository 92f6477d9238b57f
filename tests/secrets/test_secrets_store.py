"""Tests for baseplate.secrets.SecretsStore and its decoding of the secrets file."""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate.file_watcher import WatchedFileNotAvailableError
from baseplate.secrets import (
    CorruptSecretError,
    SecretNotFoundError,
    SecretsNotAvailableError,
    SecretsStore,
    VersionedSecret,
    secrets_store_from_config,
)

WriteSecrets = Callable[[Any], str]

VAULT = {"token": "s.abcdef", "url": "http://vault.example.com:8200/"}


def secrets_file(**secrets: Any) -> dict[str, Any]:
    return {"secrets": {f"secret/{name}": value for name, value in secrets.items()}, "vault": VAULT}


@pytest.fixture
def store(write_secrets: WriteSecrets) -> SecretsStore:
    path = write_secrets(
        secrets_file(
            plain={"type": "simple", "value": "hunter2"},
            identity={"type": "simple", "value": "sn\u00f8wman", "encoding": "identity"},
            b64={"type": "simple", "value": "aGVsbG8=", "encoding": "base64"},
            rotating={
                "type": "versioned",
                "current": "Y3VycmVudA==",
                "previous": "cHJldmlvdXM=",
                "next": "bmV4dA==",
                "encoding": "base64",
            },
            only_current={"type": "versioned", "current": "now"},
            bad_padding={"type": "simple", "value": "aGVsbG8", "encoding": "base64"},
            bad_alphabet={"type": "simple", "value": "aGVs*G8=", "encoding": "base64"},
            rot13={"type": "simple", "value": "uryyb", "encoding": "rot13"},
            numeric={"type": "simple", "value": 42},
            no_value={"type": "simple"},
            no_current={"type": "versioned", "previous": "old"},
            bad_versioned={"type": "versioned", "current": "x", "next": "!!", "encoding": "base64"},
            not_an_object=["type", "simple"],
            untyped={"value": "x"},
        )
    )
    return SecretsStore(path)


def test_get_raw_returns_the_stored_object(store: SecretsStore) -> None:
    assert store.get_raw("secret/b64") == {
        "type": "simple",
        "value": "aGVsbG8=",
        "encoding": "base64",
    }


def test_simple_secret_defaults_to_identity(store: SecretsStore) -> None:
    assert store.get_simple("secret/plain") == b"hunter2"


def test_identity_secret_is_utf8_bytes(store: SecretsStore) -> None:
    assert store.get_simple("secret/identity") == "sn\u00f8wman".encode()


def test_base64_simple_secret(store: SecretsStore) -> None:
    assert store.get_simple("secret/b64") == b"hello"


def test_versioned_secret(store: SecretsStore) -> None:
    secret = store.get_versioned("secret/rotating")
    assert secret == VersionedSecret(previous=b"previous", current=b"current", next=b"next")
    assert list(secret.all_versions) == [b"current", b"previous", b"next"]


def test_versioned_secret_with_only_current(store: SecretsStore) -> None:
    secret = store.get_versioned("secret/only_current")
    assert (secret.current, secret.previous, secret.next) == (b"now", None, None)
    assert list(secret.all_versions) == [b"now"]


def test_versioned_secret_from_simple_secret() -> None:
    secret = VersionedSecret.from_simple_secret(b"value")
    assert secret == VersionedSecret(previous=None, current=b"value", next=None)
    assert list(secret.all_versions) == [b"value"]


def test_vault_url_and_token(store: SecretsStore) -> None:
    assert store.get_vault_url() == VAULT["url"]
    assert store.get_vault_token() == VAULT["token"]


def test_missing_vault_section_is_explained(write_secrets: WriteSecrets) -> None:
    store = SecretsStore(write_secrets({"secrets": {}}))
    with pytest.raises(SecretsNotAvailableError, match="vault.token"):
        store.get_vault_token()


def test_make_object_for_context_returns_the_store(store: SecretsStore) -> None:
    assert store.make_object_for_context("secrets", None) is store


def test_missing_secret(store: SecretsStore) -> None:
    with pytest.raises(SecretNotFoundError) as info:
        store.get_simple("secret/nope")
    assert info.value.name == "secret/nope"
    assert "secret/nope" in str(info.value)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("get_versioned", "secret/plain", "type=versioned"),
        ("get_simple", "secret/rotating", "type=simple"),
        ("get_simple", "secret/untyped", "type=simple"),
        ("get_simple", "secret/bad_padding", "base64"),
        ("get_simple", "secret/bad_alphabet", "base64"),
        ("get_simple", "secret/rot13", "unknown encoding: 'rot13'"),
        ("get_simple", "secret/numeric", "must be a string"),
        ("get_simple", "secret/no_value", "does not have value"),
        ("get_versioned", "secret/no_current", "'current'"),
        ("get_versioned", "secret/bad_versioned", "base64"),
        ("get_raw", "secret/not_an_object", "JSON object"),
    ],
)
def test_corrupt_secrets_name_the_secret_path(
    store: SecretsStore, method: str, path: str, expected: str
) -> None:
    with pytest.raises(CorruptSecretError) as info:
        getattr(store, method)(path)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    assert expected in info.value.message


def test_wrong_type_says_what_was_found(store: SecretsStore) -> None:
    with pytest.raises(CorruptSecretError, match="type='versioned'"):
        store.get_simple("secret/rotating")


def test_missing_file_is_not_available(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.json")
    store = SecretsStore(path)
    with pytest.raises(SecretsNotAvailableError) as info:
        store.get_simple("secret/x")
    assert path in str(info.value)


def test_missing_file_with_timeout_raises_at_construction(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.json")
    with pytest.raises(SecretsNotAvailableError) as info:
        SecretsStore(path, timeout=0.05)
    assert path in str(info.value)
    # what earlier releases raised here, so code catching that still does
    assert isinstance(info.value, WatchedFileNotAvailableError)
    assert info.value.path == path


def test_wrapped_base64_decodes() -> None:
    value = "aGVs\nbG8g\r\nd29y bGQ=\n"
    secret = {"type": "simple", "value": value, "encoding": "base64"}
    assert read_prop(secret) == b"hello world"


def test_timeout_waits_for_the_file(tmp_path: Path, write_secrets: WriteSecrets) -> None:
    content = secrets_file(plain={"type": "simple", "value": "late"})
    path = str(tmp_path / "secrets.json")
    threading.Timer(0.1, write_secrets, args=(content,)).start()
    store = SecretsStore(path, timeout=30)
    assert store.get_simple("secret/plain") == b"late"


@pytest.mark.parametrize(
    "content",
    ['{"secrets": {', "[1, 2]", '{"secrets": ["not", "an", "object"]}', ""],
)
def test_corrupt_secrets_file_is_not_available(write_secrets: WriteSecrets, content: str) -> None:
    path = write_secrets(content)
    store = SecretsStore(path)
    with pytest.raises(SecretsNotAvailableError) as info:
        store.get_raw("secret/plain")
    assert path in str(info.value)


def test_reloads_when_the_file_changes(write_secrets: WriteSecrets) -> None:
    path = write_secrets(secrets_file(key={"type": "simple", "value": "one"}))
    store = SecretsStore(path)
    assert store.get_simple("secret/key") == b"one"

    write_secrets(secrets_file(key={"type": "simple", "value": "two"}))
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000))
    assert store.get_simple("secret/key") == b"two"


def test_keeps_last_good_data_when_the_file_turns_corrupt(write_secrets: WriteSecrets) -> None:
    path = write_secrets(secrets_file(key={"type": "simple", "value": "good"}))
    store = SecretsStore(path)
    assert store.get_simple("secret/key") == b"good"

    write_secrets("{not json")
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000))
    assert store.get_simple("secret/key") == b"good"


def test_secrets_store_from_config(write_secrets: WriteSecrets) -> None:
    path = write_secrets(secrets_file(plain={"type": "simple", "value": "configured"}))
    store = secrets_store_from_config({"secrets.path": path})
    assert store.get_simple("secret/plain") == b"configured"


def test_secrets_store_from_config_default_path() -> None:
    store = secrets_store_from_config({})
    assert store.path == "/var/local/secrets.json"


def test_secrets_store_from_config_passes_timeout(tmp_path: Path) -> None:
    with pytest.raises(SecretsNotAvailableError):
        secrets_store_from_config({"secrets.path": str(tmp_path / "none.json")}, timeout=0.01)


def test_old_import_path_still_works() -> None:
    from baseplate.secrets import store

    assert store.SecretsStore is SecretsStore


# Property-based tests: decoding through a real file for arbitrary values.

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def read_prop(secret: dict[str, Any], method: str = "get_simple") -> Any:
    """Store ``secret`` at secret/prop in a fresh secrets file and read it with ``method``."""
    handle, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump({"secrets": {"secret/prop": secret}, "vault": VAULT}, out)
        return getattr(SecretsStore(path), method)("secret/prop")
    finally:
        os.unlink(path)


@PROPERTY_SETTINGS
@given(st.binary())
def test_base64_round_trips_any_bytes(value: bytes) -> None:
    encoded = base64.b64encode(value).decode()
    assert read_prop({"type": "simple", "value": encoded, "encoding": "base64"}) == value


@PROPERTY_SETTINGS
@given(st.text())
def test_identity_round_trips_any_text(value: str) -> None:
    # Lone surrogates cannot be stored as UTF-8 JSON text; the fetcher never produces them.
    value = value.encode("utf-8", "replace").decode("utf-8")
    assert read_prop({"type": "simple", "value": value}) == value.encode("utf-8")


def is_strict_base64(text: str) -> bool:
    """Whether ``text`` is base64 once whitespace (line breaks of wrapped text) is dropped."""
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@PROPERTY_SETTINGS
@given(
    st.text(alphabet="ABCDEFabcdef0123456789+/=*-_ \n").filter(lambda t: not is_strict_base64(t))
)
def test_invalid_base64_is_corrupt_and_names_the_path(value: str) -> None:
    with pytest.raises(CorruptSecretError) as info:
        read_prop({"type": "simple", "value": value, "encoding": "base64"})
    assert info.value.path == "secret/prop"


@PROPERTY_SETTINGS
@given(st.binary(min_size=1), st.one_of(st.none(), st.binary()), st.one_of(st.none(), st.binary()))
def test_versioned_round_trips(current: bytes, previous: bytes | None, nxt: bytes | None) -> None:
    raw: dict[str, Any] = {
        "type": "versioned",
        "encoding": "base64",
        "current": base64.b64encode(current).decode(),
    }
    if previous is not None:
        raw["previous"] = base64.b64encode(previous).decode()
    if nxt is not None:
        raw["next"] = base64.b64encode(nxt).decode()
    secret = read_prop(raw, "get_versioned")
    assert secret == VersionedSecret(previous=previous, current=current, next=nxt)
    expected = [current] + [v for v in (previous, nxt) if v is not None]
    assert list(secret.all_versions) == expected


@PROPERTY_SETTINGS
@given(st.text().filter(lambda e: e not in ("identity", "base64")))
def test_unknown_encodings_are_corrupt(encoding: str) -> None:
    with pytest.raises(CorruptSecretError, match="unknown encoding"):
        read_prop({"type": "simple", "value": "x", "encoding": encoding})


def test_store_on_the_request_context(store: SecretsStore) -> None:
    from baseplate.core import Baseplate

    baseplate = Baseplate()
    baseplate.add_to_context("secrets", store)
    context = type("Context", (), {})()
    span = baseplate.make_server_span(context, "request")
    span.start()
    try:
        assert context.secrets.get_simple("secret/b64") == b"hello"
    finally:
        span.finish()
