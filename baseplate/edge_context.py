"""The edge request context: who the original request at the edge of the system came from.

An edge service (one that talks to clients directly) builds an :class:`EdgeRequestContext`
with :meth:`EdgeRequestContextFactory.new` from the client's authentication token, LoID and
session cookies, and attaches it to the request's context object. From then on every
outbound call forwards it: Thrift calls in the ``Edge-Request`` THeader header (the raw
bytes), HTTP calls in ``X-Edge-Request`` (base64 of the bytes). Internal services give an
:class:`EdgeRequestContextFactory` to their framework integration (Thrift, or Pyramid with
trusted headers), which turns the inbound header into ``context.request_context``::

    edge_context_factory = EdgeRequestContextFactory(secrets)
    configurator.include(BaseplateConfigurator(
        baseplate, trust_trace_headers=True, edge_context_factory=edge_context_factory,
    ).includeme)

    def my_view(request):
        if request.request_context.user.is_logged_in:
            ...

The header is the Thrift TBinaryProtocol serialisation of the ``Request`` struct of
``baseplate.thrift`` (LoID, session, authentication token; fields added by later peers are
read or skipped, never rejected). The authentication token is a JWT signed (RS256) by the
authentication service; it is checked against every version of the versioned secret
``secret/authentication/public-key`` the first time the request asks who is authenticated,
and the outcome is kept for the rest of the request. A missing, invalid or expired token
makes the authenticated accessors raise :class:`NoAuthenticationError`; the LoID and session
stay readable.

Reading the header needs the ``thrift`` extra; checking tokens needs the ``jwt`` extra
(PyJWT and cryptography). Both are imported only when first used.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from otel_bridge.context import set_edge_request

if TYPE_CHECKING:
    from baseplate.secrets import SecretsStore

logger = logging.getLogger(__name__)

#: The versioned secret holding the authentication service's public key (PEM).
AUTHENTICATION_PUBLIC_KEY_SECRET = "secret/authentication/public-key"

#: The only signature algorithm authentication tokens may use.
AUTHENTICATION_TOKEN_ALGORITHM = "RS256"

# Anonymous tokens carry "sub": null, which recent PyJWT rejects unless told not to check
# the subject's type; sub, roles and client claims are read defensively below instead.
_DECODE_OPTIONS: Any = {"verify_sub": False, "verify_jti": False}

_USER_SUBJECT_PREFIX = "t2_"
_SERVICE_SUBJECT_PREFIX = "service/"
_MIN_I64 = -(2**63)
_MAX_I64 = 2**63 - 1


class NoAuthenticationError(Exception):
    """Raised when trying to use an invalid or missing authentication token."""


class EdgeContextError(ValueError):
    """An ``Edge-Request`` header that cannot be read.

    :meth:`EdgeRequestContextFactory.from_upstream` raises it (and nothing else) for a
    malformed header; framework integrations catch it, log it and handle the request without
    an edge context.
    """


# -- authentication tokens ----------------------------------------------------------------


class AuthenticationToken:
    """Information about the authenticated user.

    :class:`EdgeRequestContext` provides high-level helpers for extracting data from
    authentication tokens. Use those instead of direct access through this class.
    """

    @property
    def subject(self) -> str | None:
        """The raw ``subject`` that is authenticated (``sub`` claim)."""
        raise NotImplementedError

    @property
    def user_roles(self) -> set[str]:
        """The roles of the authenticated subject (``roles`` claim)."""
        raise NotImplementedError

    @property
    def oauth_client_id(self) -> str | None:
        """The id of the OAuth2 client the token was issued to (``client_id`` claim)."""
        raise NotImplementedError

    @property
    def oauth_client_type(self) -> str | None:
        """The type of the OAuth2 client the token was issued to (``client_type`` claim)."""
        raise NotImplementedError


class ValidatedAuthenticationToken(AuthenticationToken):
    """A token whose signature and expiry were checked; ``payload`` holds its claims."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    @property
    def subject(self) -> str | None:
        subject = self.payload.get("sub")
        return subject if isinstance(subject, str) else None

    @functools.cached_property
    def user_roles(self) -> set[str]:
        roles = self.payload.get("roles")
        if not isinstance(roles, (list, tuple)):
            return set()
        return {role for role in roles if isinstance(role, str)}

    @property
    def oauth_client_id(self) -> str | None:
        client_id = self.payload.get("client_id")
        return client_id if isinstance(client_id, str) else None

    @property
    def oauth_client_type(self) -> str | None:
        client_type = self.payload.get("client_type")
        return client_type if isinstance(client_type, str) else None


class InvalidAuthenticationToken(AuthenticationToken):
    """No token, or one that failed validation: every claim raises NoAuthenticationError."""

    @property
    def subject(self) -> str | None:
        raise NoAuthenticationError

    @property
    def user_roles(self) -> set[str]:
        raise NoAuthenticationError

    @property
    def oauth_client_id(self) -> str | None:
        raise NoAuthenticationError

    @property
    def oauth_client_type(self) -> str | None:
        raise NoAuthenticationError


class AuthenticationTokenValidator:
    """Checks raw authentication tokens against the authentication service's public keys.

    :param secrets: The secrets store holding ``secret/authentication/public-key``.

    Every version of the secret (current, previous, next) is tried, so tokens keep
    validating while the key rotates. Only RS256 signatures are accepted (``none`` and HMAC
    algorithms included are rejected), and an expired token is invalid. Errors of the
    secrets store itself (missing secret, unreadable file) are raised: they are
    misconfiguration, not bad tokens.
    """

    def __init__(self, secrets: SecretsStore) -> None:
        self.secrets = secrets
        # (named key versions, their prepared keys): rebuilt only when the secret changes
        self._keys: tuple[tuple[tuple[str, bytes], ...], tuple[Any, ...]] = ((), ())

    def validate(self, token: str | bytes | None) -> AuthenticationToken:
        """Validate a raw authentication token and return an :class:`AuthenticationToken`.

        :param token: token value originating from the authentication service, either
            directly or from an upstream service.
        """
        if not token:
            return InvalidAuthenticationToken()

        import jwt

        for public_key in self._public_keys():
            try:
                payload = jwt.decode(
                    token,
                    public_key,
                    algorithms=[AUTHENTICATION_TOKEN_ALGORITHM],
                    options=_DECODE_OPTIONS,
                )
            except jwt.InvalidSignatureError:
                continue  # signed with another version of the key, perhaps
            except jwt.InvalidTokenError as exc:
                # expired, malformed or the wrong algorithm: no other key version changes that
                logger.debug("authentication token rejected: %s", exc)
                return InvalidAuthenticationToken()
            except Exception:
                # fail closed: an unreadable token authenticates nobody
                logger.warning("authentication token could not be checked", exc_info=True)
                return InvalidAuthenticationToken()
            return ValidatedAuthenticationToken(payload)
        return InvalidAuthenticationToken()

    def _public_keys(self) -> tuple[Any, ...]:
        secret = self.secrets.get_versioned(AUTHENTICATION_PUBLIC_KEY_SECRET)
        versions = tuple(
            (name, value)
            for name, value in (
                ("current", secret.current),
                ("previous", secret.previous),
                ("next", secret.next),
            )
            if value is not None
        )
        cached_versions, cached_keys = self._keys
        if versions == cached_versions:
            return cached_keys
        keys = tuple(_prepare_public_keys(versions))
        self._keys = (versions, keys)
        return keys


def _prepare_public_keys(versions: Iterable[tuple[str, bytes]]) -> Iterable[Any]:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
    from jwt.algorithms import RSAAlgorithm

    algorithm = RSAAlgorithm(RSAAlgorithm.SHA256)
    for name, version in versions:
        try:
            key = algorithm.prepare_key(version)
            if isinstance(key, RSAPrivateKey):  # a private key in the secret still verifies
                key = key.public_key()
            if not isinstance(key, RSAPublicKey):
                raise TypeError(f"{type(key).__name__} is not an RSA key")
        except Exception as exc:
            # logged once per change of the secret, since prepared keys are cached
            logger.warning(
                "ignoring the %s version of secret %r: not an RSA public key (%s)",
                name,
                AUTHENTICATION_PUBLIC_KEY_SECRET,
                exc,
            )
            continue
        yield key


class _RequestAuthenticationToken(AuthenticationToken):
    """One request's token, validated when a claim is first read and never again.

    It lets :class:`User` give the LoID without the token being checked.
    """

    def __init__(self, validator: AuthenticationTokenValidator, token: str | None) -> None:
        self._validator = validator
        self._token = token

    @functools.cached_property
    def validated(self) -> AuthenticationToken:
        return self._validator.validate(self._token)

    @property
    def subject(self) -> str | None:
        return self.validated.subject

    @property
    def user_roles(self) -> set[str]:
        return self.validated.user_roles

    @property
    def oauth_client_id(self) -> str | None:
        return self.validated.oauth_client_id

    @property
    def oauth_client_type(self) -> str | None:
        return self.validated.oauth_client_type


# -- what applications read -----------------------------------------------------------------


class Session(NamedTuple):
    """Wrapper for the session values in the edge request context."""

    id: str | None


class User(NamedTuple):
    """Wrapper for the user values in AuthenticationToken and the LoId cookie."""

    authentication_token: AuthenticationToken
    loid: str | None
    cookie_created_ms: int | None

    @property
    def id(self) -> str:
        """Authenticated account_id for the current User.

        :raises NoAuthenticationError: if there was no authentication token, it was
            invalid, or the subject is not an account.
        """
        subject = self.authentication_token.subject
        if not (subject and subject.startswith(_USER_SUBJECT_PREFIX)):
            raise NoAuthenticationError
        return subject

    @property
    def is_logged_in(self) -> bool:
        """Does the User have a valid, authenticated id?"""
        try:
            self.id  # noqa: B018 - raises when not logged in
        except NoAuthenticationError:
            return False
        return True

    @property
    def roles(self) -> set[str]:
        """Authenticated roles for the current User.

        :raises NoAuthenticationError: if there was no authentication token or it was
            invalid.
        """
        return self.authentication_token.user_roles

    def has_role(self, role: str) -> bool:
        """Does the authenticated user have the specified role? (case-insensitive)

        :raises NoAuthenticationError: if there was no valid authentication token.
        """
        wanted = role.lower()
        return any(held.lower() == wanted for held in self.roles)

    def event_fields(self) -> dict[str, Any]:
        """Return fields to be added to events: the user id (the LoID when logged out),
        whether the user is logged in and when the LoID cookie was created."""
        logged_in = self.is_logged_in
        return {
            "user_id": self.id if logged_in else self.loid,
            "logged_in": logged_in,
            "cookie_created_timestamp": self.cookie_created_ms,
        }


class OAuthClient(NamedTuple):
    """Wrapper for the OAuth2 client values in AuthenticationToken."""

    authentication_token: AuthenticationToken

    @property
    def id(self) -> str | None:
        """Authenticated id for the current client (None if the token names none).

        :raises NoAuthenticationError: if there was no valid authentication token.
        """
        return self.authentication_token.oauth_client_id

    def is_type(self, *client_types: str) -> bool:
        """Is the authenticated client type one of the given types? (case-insensitive)

        Check that the type "is" one of the allowed types rather than that it "is not" a
        disallowed type::

            if oauth_client.is_type("third_party"):
                ...

        :raises NoAuthenticationError: if there was no valid authentication token.
        """
        client_type = self.authentication_token.oauth_client_type
        if not client_type:
            return False
        return client_type.lower() in {wanted.lower() for wanted in client_types}

    def event_fields(self) -> dict[str, Any]:
        """Return fields to be added to events: the OAuth client id, or None."""
        try:
            client_id = self.id
        except NoAuthenticationError:
            client_id = None
        return {"oauth_client_id": client_id}


class Service(NamedTuple):
    """Wrapper for the service values in AuthenticationToken (``service/<name>`` subjects)."""

    authentication_token: AuthenticationToken

    @property
    def name(self) -> str:
        """Authenticated service name.

        :raises NoAuthenticationError: if there was no authentication token, it was
            invalid, or the subject is not a service.
        """
        subject = self.authentication_token.subject
        if not (subject and subject.startswith(_SERVICE_SUBJECT_PREFIX)):
            raise NoAuthenticationError
        return subject[len(_SERVICE_SUBJECT_PREFIX) :]


# -- the header -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _protocol_factory() -> Any:
    """TBinaryProtocol (pure Python: the header is a few hundred bytes) that can skip
    unknown ``binary`` fields: Thrift's own skip decodes every string as UTF-8."""
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolFactory
    from thrift.Thrift import TType

    class Protocol(TBinaryProtocol):
        def skip(self, ttype: int, *args: Any, **kwargs: Any) -> None:
            if ttype == TType.STRING:
                self.readBinary()
            else:
                super().skip(ttype, *args, **kwargs)

    class Factory(TBinaryProtocolFactory):
        def getProtocol(self, trans: Any) -> Any:
            return Protocol(trans, self.strictRead, self.strictWrite)

    return Factory()


def _serialize(request: Any) -> bytes:
    from thrift import TSerialization

    return bytes(TSerialization.serialize(request, _protocol_factory()))


def _deserialize(header: bytes) -> Any:
    """The ``Request`` struct in ``header``, with ``loid`` and ``session`` always present."""
    from thrift import TSerialization

    from baseplate.thrift.gen.baseplate import ttypes

    request = ttypes.Request()
    if header:
        try:
            TSerialization.deserialize(request, header, _protocol_factory())
        except Exception as exc:
            raise EdgeContextError(
                f"malformed Edge-Request header ({len(header)} bytes): {type(exc).__name__}: {exc}"
            ) from exc
    if request.loid is None:
        request.loid = ttypes.Loid()
    if request.session is None:
        request.session = ttypes.Session()
    return request


class EdgeRequestContext:
    """Contextual information about the initial request to an edge service.

    Construct this using an :class:`EdgeRequestContextFactory`.

    :param authn_token_validator: Checks the authentication token when it is first needed.
    :param header: The serialised ``Edge-Request`` header.
    :raises EdgeContextError: if ``header`` cannot be read.
    """

    def __init__(
        self, authn_token_validator: AuthenticationTokenValidator, header: bytes | None
    ) -> None:
        if header is None:
            header = b""
        if not isinstance(header, (bytes, bytearray, memoryview)):
            raise EdgeContextError(
                f"Edge-Request header must be bytes, not {type(header).__name__}"
            )
        self._authn_token_validator = authn_token_validator
        self._header = bytes(header)
        self._t_request = _deserialize(self._header)

    @property
    def header(self) -> bytes:
        """The serialised context: the raw ``Edge-Request`` header bytes (empty if none)."""
        return self._header

    def attach_context(self, context: Any) -> None:
        """Attach this to the provided context object.

        It becomes ``context.request_context`` (its raw bytes ``context.raw_request_context``)
        and the header every outbound call of the current request forwards.

        :param context: request context to attach this to
        """
        context.request_context = self
        context.raw_request_context = self._header
        set_edge_request(self._header)

    def event_fields(self) -> dict[str, Any]:
        """Return fields to be added to events: ``user_id``, ``logged_in``,
        ``cookie_created_timestamp``, ``session_id`` and ``oauth_client_id``."""
        fields: dict[str, Any] = {"session_id": self.session.id}
        fields.update(self.user.event_fields())
        fields.update(self.oauth_client.event_fields())
        return fields

    @property
    def authentication_token(self) -> AuthenticationToken:
        """The request's authentication token, validated once, on first use."""
        return self._deferred_token.validated

    @functools.cached_property
    def _deferred_token(self) -> _RequestAuthenticationToken:
        return _RequestAuthenticationToken(
            self._authn_token_validator, self._t_request.authentication_token
        )

    @functools.cached_property
    def user(self) -> User:
        """:class:`User` object for the current context."""
        return User(
            authentication_token=self._deferred_token,
            loid=self._t_request.loid.id,
            cookie_created_ms=self._t_request.loid.created_ms,
        )

    @functools.cached_property
    def oauth_client(self) -> OAuthClient:
        """:class:`OAuthClient` object for the current context."""
        return OAuthClient(self._deferred_token)

    @functools.cached_property
    def session(self) -> Session:
        """:class:`Session` object for the current context."""
        return Session(id=self._t_request.session.id)

    @functools.cached_property
    def service(self) -> Service:
        """:class:`Service` object for the current context."""
        return Service(self._deferred_token)


class EdgeRequestContextFactory:
    """Factory for creating :class:`EdgeRequestContext` objects.

    Every application should set one of these up. Edge services that talk directly with
    clients should use :meth:`new` directly. For internal services, pass the object off to
    Baseplate's framework integration (Thrift/Pyramid) for automatic use.

    :param secrets: A configured secrets store
        (:class:`baseplate.secrets.SecretsStore`).
    """

    def __init__(self, secrets: SecretsStore) -> None:
        self.authn_token_validator = AuthenticationTokenValidator(secrets)

    def new(
        self,
        authentication_token: str | bytes | None = None,
        loid_id: str | None = None,
        loid_created_ms: int | None = None,
        session_id: str | None = None,
    ) -> EdgeRequestContext:
        """Return a new EdgeRequestContext object made from scratch.

        Services at the edge that communicate directly with clients should use this to pass
        on the information they get to downstream services. Create and attach the context
        early in your request flow::

            edge_context = self.edgecontext_factory.new(
                authentication_token=token,
                loid_id=loid.id,
                loid_created_ms=loid.created,
                session_id=session.id,
            )
            edge_context.attach_context(request)

        :param authentication_token: (Optional) A raw authentication token as returned by
            the authentication service.
        :param loid_id: (Optional) ID for the current LoID in fullname format (``t2_...``).
        :param loid_created_ms: (Optional) Epoch milliseconds when the current LoID cookie
            was created.
        :param session_id: (Optional) ID for the current session cookie.
        :raises ValueError: if ``loid_id`` is not in fullname format, or a value is not of
            the type above.
        """
        from baseplate.thrift.gen.baseplate import ttypes

        if loid_id is not None and not (
            isinstance(loid_id, str) and loid_id.startswith(_USER_SUBJECT_PREFIX)
        ):
            raise ValueError(
                f"loid_id {loid_id!r} is not in a valid format: it should be in the fullname "
                "format with the '0' padding removed, 't2_loid_id'"
            )
        if loid_created_ms is not None and (
            isinstance(loid_created_ms, bool)
            or not isinstance(loid_created_ms, int)
            or not _MIN_I64 <= loid_created_ms <= _MAX_I64
        ):
            raise ValueError(
                f"loid_created_ms {loid_created_ms!r} is not a 64-bit integer of epoch milliseconds"
            )
        if session_id is not None and not isinstance(session_id, str):
            raise ValueError(f"session_id {session_id!r} is not a string")

        request = ttypes.Request(
            loid=ttypes.Loid(id=loid_id, created_ms=loid_created_ms),
            session=ttypes.Session(id=session_id),
            authentication_token=_token_text(authentication_token),
        )
        return EdgeRequestContext(self.authn_token_validator, _serialize(request))

    def from_upstream(self, edge_header: bytes | None) -> EdgeRequestContext:
        """Create and return an EdgeRequestContext from an upstream header.

        This is generally used internally to Baseplate by framework integrations that
        automatically pick up context from inbound requests.

        :param edge_header: Raw payload of Edge-Request header from upstream service
            (``None`` or empty: a context with nothing in it).
        :raises EdgeContextError: if the header is malformed; nothing else is raised for
            any input.
        """
        return EdgeRequestContext(self.authn_token_validator, edge_header)


def _token_text(token: str | bytes | None) -> str | None:
    if token is None or isinstance(token, str):
        return token
    if isinstance(token, (bytes, bytearray)):
        try:
            return bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("authentication_token is not valid UTF-8") from None
    raise ValueError(f"authentication_token must be str or bytes, not {type(token).__name__}")


__all__ = [
    "AuthenticationToken",
    "AuthenticationTokenValidator",
    "EdgeContextError",
    "EdgeRequestContext",
    "EdgeRequestContextFactory",
    "InvalidAuthenticationToken",
    "NoAuthenticationError",
    "OAuthClient",
    "Service",
    "Session",
    "User",
    "ValidatedAuthenticationToken",
]
