"""Authentication tokens in the edge request context: RS256 JWTs checked against every
version of ``secret/authentication/public-key`` in a real secrets file."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

import baseplate.core
from baseplate.edge_context import (
    AUTHENTICATION_PUBLIC_KEY_SECRET,
    AuthenticationTokenValidator,
    EdgeRequestContext,
    EdgeRequestContextFactory,
    InvalidAuthenticationToken,
    NoAuthenticationError,
    ValidatedAuthenticationToken,
)
from baseplate.secrets import SecretNotFoundError, SecretsStore, VersionedSecret

from .conftest import SigningKey, write_secrets

LOID = "t2_deadbeef"
LOID_CREATED_MS = 100000
SESSION = "beefdead"


def edge_context(factory: EdgeRequestContextFactory, token: str | None) -> EdgeRequestContext:
    """A context as a downstream service sees it: built at the edge, read from the header."""
    made = factory.new(
        authentication_token=token,
        loid_id=LOID,
        loid_created_ms=LOID_CREATED_MS,
        session_id=SESSION,
    )
    return factory.from_upstream(made.header)


def assert_not_authenticated(context: EdgeRequestContext) -> None:
    """Every authenticated accessor raises; the LoID and session still work."""
    with pytest.raises(NoAuthenticationError):
        context.user.id  # noqa: B018
    with pytest.raises(NoAuthenticationError):
        context.user.roles  # noqa: B018
    with pytest.raises(NoAuthenticationError):
        context.user.has_role("admin")
    with pytest.raises(NoAuthenticationError):
        context.oauth_client.id  # noqa: B018
    with pytest.raises(NoAuthenticationError):
        context.oauth_client.is_type("third_party")
    with pytest.raises(NoAuthenticationError):
        context.service.name  # noqa: B018
    assert isinstance(context.authentication_token, InvalidAuthenticationToken)
    assert context.user.is_logged_in is False
    assert context.user.loid == LOID
    assert context.user.cookie_created_ms == LOID_CREATED_MS
    assert context.session.id == SESSION
    assert context.event_fields() == {
        "user_id": LOID,
        "logged_in": False,
        "cookie_created_timestamp": LOID_CREATED_MS,
        "session_id": SESSION,
        "oauth_client_id": None,
    }


USER_CLAIMS = {
    "sub": "t2_example",
    "roles": ["Admin", "beta"],
    "client_id": "client-abc",
    "client_type": "Third_Party",
}


def test_valid_token_authenticates_the_user(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    context = edge_context(factory, sign(USER_CLAIMS))
    assert isinstance(context.authentication_token, ValidatedAuthenticationToken)
    assert context.authentication_token.subject == "t2_example"
    assert context.user.id == "t2_example"
    assert context.user.is_logged_in is True
    assert context.user.roles == {"Admin", "beta"}
    assert context.user.has_role("admin")  # case-insensitive, both ways
    assert context.user.has_role("BETA")
    assert not context.user.has_role("moderator")
    assert context.oauth_client.id == "client-abc"
    assert context.oauth_client.is_type("third_party")
    assert context.oauth_client.is_type("first_party", "THIRD_PARTY")
    assert not context.oauth_client.is_type("first_party")
    with pytest.raises(NoAuthenticationError):
        context.service.name  # noqa: B018 - a user, not a service
    assert context.event_fields() == {
        "user_id": "t2_example",
        "logged_in": True,
        "cookie_created_timestamp": LOID_CREATED_MS,
        "session_id": SESSION,
        "oauth_client_id": "client-abc",
    }
    assert context.user.event_fields() == {
        "user_id": "t2_example",
        "logged_in": True,
        "cookie_created_timestamp": LOID_CREATED_MS,
    }
    assert context.oauth_client.event_fields() == {"oauth_client_id": "client-abc"}


def test_token_given_to_new_is_usable_at_the_edge(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    context = factory.new(authentication_token=sign(USER_CLAIMS).encode(), loid_id=LOID)
    assert context.user.id == "t2_example"


def test_service_token_names_the_service(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    context = edge_context(factory, sign({"sub": "service/search-indexer"}))
    assert context.service.name == "search-indexer"
    with pytest.raises(NoAuthenticationError):
        context.user.id  # noqa: B018
    assert context.user.is_logged_in is False
    assert context.user.roles == set()
    assert context.oauth_client.id is None
    assert context.oauth_client.is_type("third_party") is False
    assert context.event_fields()["user_id"] == LOID


def test_anonymous_token_has_roles_but_no_user(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    context = edge_context(factory, sign({"sub": None, "roles": ["anonymous"]}))
    with pytest.raises(NoAuthenticationError):
        context.user.id  # noqa: B018
    assert context.user.is_logged_in is False
    assert context.user.has_role("anonymous")
    assert context.user.loid == LOID
    assert context.event_fields()["user_id"] == LOID
    assert context.event_fields()["logged_in"] is False


def test_no_token_means_no_authentication(factory: EdgeRequestContextFactory) -> None:
    assert_not_authenticated(edge_context(factory, None))


def test_expired_token_is_rejected(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    assert_not_authenticated(edge_context(factory, sign(USER_CLAIMS, expires_in=-60)))


def test_expired_token_signed_with_the_previous_key_is_rejected(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    token = sign(USER_CLAIMS, key="previous", expires_in=-60)
    assert_not_authenticated(edge_context(factory, token))


def test_token_signed_with_an_unknown_key_is_rejected(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    assert_not_authenticated(edge_context(factory, sign(USER_CLAIMS, key="stranger")))


def test_token_signed_with_the_previous_key_is_accepted(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    context = edge_context(factory, sign(USER_CLAIMS, key="previous"))
    assert context.user.id == "t2_example"


def test_rotation_to_a_new_current_key_is_picked_up(
    factory: EdgeRequestContextFactory,
    sign: Callable[..., str],
    secrets_path: Path,
    keys: dict[str, SigningKey],
) -> None:
    assert edge_context(factory, sign(USER_CLAIMS)).user.is_logged_in
    assert not edge_context(factory, sign(USER_CLAIMS, key="next")).user.is_logged_in

    # the authentication service announces its next key, then makes it current
    write_secrets(
        secrets_path,
        {
            "previous": keys["previous"].public_pem,
            "current": keys["current"].public_pem,
            "next": keys["next"].public_pem,
        },
    )
    assert edge_context(factory, sign(USER_CLAIMS, key="next")).user.is_logged_in
    write_secrets(
        secrets_path,
        {"previous": keys["current"].public_pem, "current": keys["next"].public_pem},
    )
    assert edge_context(factory, sign(USER_CLAIMS, key="next")).user.is_logged_in
    assert edge_context(factory, sign(USER_CLAIMS, key="current")).user.is_logged_in
    assert not edge_context(factory, sign(USER_CLAIMS, key="previous")).user.is_logged_in


def test_hs256_token_keyed_with_the_public_key_is_rejected(
    factory: EdgeRequestContextFactory, keys: dict[str, SigningKey]
) -> None:
    # the classic key-confusion attack: HMAC "signed" with the (public) RSA key
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {"sub": "t2_attacker", "exp": 4102444800}
    token = forge(header, payload, keys["current"].public_pem.encode(), "HS256")
    assert_not_authenticated(edge_context(factory, token))


def test_unsigned_token_is_rejected(factory: EdgeRequestContextFactory) -> None:
    header = {"alg": "none", "typ": "JWT"}
    token = f"{b64(json.dumps(header))}.{b64(json.dumps({'sub': 't2_attacker'}))}."
    assert_not_authenticated(edge_context(factory, token))


def test_token_signed_with_rs512_is_rejected(
    factory: EdgeRequestContextFactory, keys: dict[str, SigningKey]
) -> None:
    token = jwt.encode(
        {"sub": "t2_example", "exp": 4102444800}, keys["current"].private_key, algorithm="RS512"
    )
    assert_not_authenticated(edge_context(factory, token))


def test_tampered_token_is_rejected(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    header, payload, signature = sign(USER_CLAIMS).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "t2_someone_else"
    tampered = f"{header}.{b64(json.dumps(claims))}.{signature}"
    assert_not_authenticated(edge_context(factory, tampered))


@pytest.mark.parametrize("token", ["not a jwt", "a.b.c", "....", "eyJ9.eyJ9.eyJ9"])
def test_garbage_token_is_rejected(factory: EdgeRequestContextFactory, token: str) -> None:
    assert_not_authenticated(edge_context(factory, token))


def test_token_not_yet_valid_is_rejected(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    assert_not_authenticated(edge_context(factory, sign({**USER_CLAIMS, "nbf": 4102444800})))


def test_token_is_validated_once_per_request_and_only_when_asked(
    secrets_path: Path, sign: Callable[..., str]
) -> None:
    lookups: list[str] = []

    class CountingSecretsStore(SecretsStore):
        def get_versioned(self, path: str) -> VersionedSecret:
            lookups.append(path)
            return super().get_versioned(path)

    factory = EdgeRequestContextFactory(CountingSecretsStore(str(secrets_path)))
    context = edge_context(factory, sign(USER_CLAIMS))
    # reading the LoID and session does not look at the token
    assert context.user.loid == LOID
    assert context.session.id == SESSION
    assert lookups == []

    assert context.user.id == "t2_example"
    context.user.roles  # noqa: B018
    context.oauth_client.is_type("x")
    context.event_fields()
    with pytest.raises(NoAuthenticationError):
        context.service.name  # noqa: B018
    assert context.authentication_token is context.authentication_token
    assert lookups == [AUTHENTICATION_PUBLIC_KEY_SECRET]

    # the next request validates its own token
    assert edge_context(factory, sign(USER_CLAIMS)).user.is_logged_in
    assert len(lookups) == 2


def test_invalid_key_version_is_skipped_and_logged_once(
    secrets_path: Path,
    keys: dict[str, SigningKey],
    sign: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_secrets(
        secrets_path, {"current": "not a PEM key", "previous": keys["current"].public_pem}
    )
    factory = EdgeRequestContextFactory(SecretsStore(str(secrets_path)))
    with caplog.at_level(logging.WARNING, logger="baseplate.edge_context"):
        assert edge_context(factory, sign(USER_CLAIMS)).user.id == "t2_example"
        assert edge_context(factory, sign(USER_CLAIMS)).user.id == "t2_example"
    warnings = [r for r in caplog.records if AUTHENTICATION_PUBLIC_KEY_SECRET in r.getMessage()]
    assert len(warnings) == 1
    assert "the current version" in warnings[0].getMessage()


def test_private_key_put_in_the_secret_by_mistake_still_verifies(
    secrets_path: Path, keys: dict[str, SigningKey], sign: Callable[..., str]
) -> None:
    private_pem = (
        keys["current"]
        .private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    write_secrets(secrets_path, {"current": private_pem})
    factory = EdgeRequestContextFactory(SecretsStore(str(secrets_path)))
    assert edge_context(factory, sign(USER_CLAIMS)).user.id == "t2_example"
    assert not edge_context(factory, sign(USER_CLAIMS, key="stranger")).user.is_logged_in


def test_missing_public_key_secret_is_reported_not_hidden(
    tmp_path: Path, sign: Callable[..., str]
) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"secrets": {}, "vault": {"token": "t", "url": "http://x/"}}))
    factory = EdgeRequestContextFactory(SecretsStore(str(path)))
    context = edge_context(factory, sign(USER_CLAIMS))
    assert context.user.loid == LOID  # what needs no token still works
    with pytest.raises(SecretNotFoundError):
        context.user.id  # noqa: B018


def test_validator_can_be_used_directly(secrets: SecretsStore, sign: Callable[..., str]) -> None:
    validator = AuthenticationTokenValidator(secrets)
    token = validator.validate(sign(USER_CLAIMS))
    assert isinstance(token, ValidatedAuthenticationToken)
    assert token.subject == "t2_example"
    assert token.user_roles == {"Admin", "beta"}
    assert token.oauth_client_id == "client-abc"
    assert token.oauth_client_type == "Third_Party"
    assert isinstance(validator.validate(None), InvalidAuthenticationToken)
    assert isinstance(validator.validate(""), InvalidAuthenticationToken)


def test_claims_of_unexpected_types_are_ignored(
    factory: EdgeRequestContextFactory, sign: Callable[..., str]
) -> None:
    claims: dict[str, Any] = {"sub": 42, "roles": "admin", "client_id": 7, "client_type": []}
    context = edge_context(factory, sign(claims))
    assert context.user.is_logged_in is False
    assert context.user.roles == set()
    assert context.oauth_client.id is None
    assert context.oauth_client.is_type("third_party") is False


def test_documented_names_are_importable_from_baseplate_core() -> None:
    for name in (
        "EdgeRequestContextFactory",
        "EdgeRequestContext",
        "User",
        "OAuthClient",
        "Session",
        "Service",
        "AuthenticationToken",
        "NoAuthenticationError",
        "EdgeContextError",
    ):
        assert name in baseplate.core.__all__
    assert baseplate.core.EdgeRequestContextFactory is EdgeRequestContextFactory
    assert baseplate.core.Session(id="x").id == "x"


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes, algorithm: str) -> str:
    """A token signed with HMAC by hand (PyJWT refuses to use a PEM key as an HMAC secret)."""
    import hashlib
    import hmac

    assert algorithm == "HS256"
    signing_input = f"{b64(json.dumps(header))}.{b64(json.dumps(payload))}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"
