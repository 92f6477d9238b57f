"""Edge-Request headers and statsd lines, made and read by this project and by reddit's own
baseplate (``reddit_peer.py`` in its own virtualenv)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from baseplate.core import Baseplate, RequestContext
from baseplate.edge_context import EdgeRequestContextFactory
from baseplate.metrics import make_client
from baseplate.secrets import SecretsStore
from tests.statsd_helpers import UDPReceiver

from .conftest import AuthService, write_auth_secrets
from .reddit_peer import describe_edge_context, handle_request, send_metrics

# Reddit's later releases write four more, empty, structs (device, origin service,
# geolocation, request id: fields 4 to 7) before the final stop byte.
LATER_EMPTY_FIELDS = b"\x0c\x00\x04\x00\x0c\x00\x05\x00\x0c\x00\x06\x00\x0c\x00\x07\x00"


@pytest.fixture(scope="module")
def auth() -> AuthService:
    return AuthService()


@pytest.fixture
def secrets_file(tmp_path: Path, auth: AuthService) -> Path:
    return write_auth_secrets(tmp_path / "secrets.json", auth)


@pytest.fixture
def factory(secrets_file: Path) -> EdgeRequestContextFactory:
    return EdgeRequestContextFactory(SecretsStore(str(secrets_file)))


def our_view(factory: EdgeRequestContextFactory, header: bytes) -> dict[str, Any]:
    """What our factory reads from ``header``, in the shape ``edge-read`` prints."""
    return describe_edge_context(factory.from_upstream(header))


CLAIMS = {
    "sub": "t2_user",
    "roles": ["admin", "employee"],
    "client_id": "client-1",
    "client_type": "third_party",
}


def test_edge_request_bytes_match_reddit_s(
    factory: EdgeRequestContextFactory,
    secrets_file: Path,
    auth: AuthService,
    run_peer: Callable[..., dict[str, Any]],
) -> None:
    token = auth.token(**CLAIMS)
    ours = factory.new(
        authentication_token=token,
        loid_id="t2_deadbeef",
        loid_created_ms=1_500_000_000_000,
        session_id="session-1",
    ).header
    theirs = run_peer(
        "edge-new",
        "--secrets", str(secrets_file),
        "--token", token,
        "--loid-id", "t2_deadbeef",
        "--loid-created-ms", "1500000000000",
        "--session-id", "session-1",
    )  # fmt: skip
    assert base64.b64decode(theirs["header"]) == ours[:-1] + LATER_EMPTY_FIELDS + b"\x00"


@pytest.mark.parametrize("version", ["current", "previous"])
def test_each_side_reads_the_other_s_edge_request(
    factory: EdgeRequestContextFactory,
    secrets_file: Path,
    auth: AuthService,
    run_peer: Callable[..., dict[str, Any]],
    version: str,
) -> None:
    token = auth.token(version, **CLAIMS)
    ours = factory.new(
        authentication_token=token, loid_id="t2_abc", loid_created_ms=42, session_id="s"
    ).header
    read_by_reddit = run_peer(
        "edge-read", "--secrets", str(secrets_file), "--header", base64.b64encode(ours).decode()
    )
    assert read_by_reddit == our_view(factory, ours)
    assert read_by_reddit["user_id"] == "t2_user"
    assert read_by_reddit["event_fields"] == {
        "user_id": "t2_user",
        "logged_in": True,
        "cookie_created_timestamp": 42,
        "session_id": "s",
        "oauth_client_id": "client-1",
    }

    theirs = run_peer(
        "edge-new", "--secrets", str(secrets_file), "--token", token,
        "--loid-id", "t2_abc", "--loid-created-ms", "42", "--session-id", "s",
    )  # fmt: skip
    assert our_view(factory, base64.b64decode(theirs["header"])) == read_by_reddit


def test_expired_token_is_rejected_by_both_and_loid_still_reads(
    factory: EdgeRequestContextFactory,
    secrets_file: Path,
    auth: AuthService,
    run_peer: Callable[..., dict[str, Any]],
) -> None:
    token = auth.token(expires_in=-60, **CLAIMS)
    ours = factory.new(
        authentication_token=token, loid_id="t2_abc", loid_created_ms=7, session_id="s"
    ).header
    expected = {"loid": "t2_abc", "cookie_created_ms": 7, "session_id": "s", "authenticated": False}
    assert our_view(factory, ours) == expected
    read_by_reddit = run_peer(
        "edge-read", "--secrets", str(secrets_file), "--header", base64.b64encode(ours).decode()
    )
    assert read_by_reddit == expected


# -- statsd ------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[UDPReceiver]:
    udp = UDPReceiver()
    yield udp
    udp.close()


def lines_of(datagrams: list[bytes]) -> list[bytes]:
    return [line for datagram in datagrams for line in datagram.split(b"\n")]


def test_metrics_lines_match_reddit_s(
    receiver: UDPReceiver, run_peer: Callable[..., dict[str, Any]]
) -> None:
    run_peer("metrics", "--port", str(receiver.port))
    theirs = receiver.receive_all()

    send_metrics(make_client("peer", receiver.endpoint))  # the same calls, our client
    ours = receiver.receive_all()

    assert len(theirs) == len(ours) == 6  # five single metrics, then the batch
    # one datagram per unbatched metric, line for line
    assert ours[:5] == theirs[:5]
    # the batch: the same lines (a batch's line order is not part of the format)
    assert sorted(lines_of(ours[5:])) == sorted(lines_of(theirs[5:]))


def without_timings(lines: list[bytes]) -> list[bytes]:
    """Timer lines with their value dropped (durations differ); other lines as they are."""
    return sorted(
        line.split(b":")[0] + b":|ms" if line.endswith(b"|ms") else line for line in lines
    )


def test_request_metrics_match_reddit_s_observer(
    receiver: UDPReceiver, run_peer: Callable[..., dict[str, Any]]
) -> None:
    run_peer("request-metrics", "--port", str(receiver.port))
    theirs = receiver.receive_all()

    # the same request as the peer's ``request-metrics`` command, on our processor
    baseplate = Baseplate(tracer_provider=TracerProvider())
    baseplate.configure_metrics(make_client("peer", receiver.endpoint))
    handle_request(baseplate, RequestContext())
    ours = receiver.receive_all()

    assert len(theirs) == len(ours) == 1  # the whole request in one datagram
    assert without_timings(lines_of(ours)) == without_timings(lines_of(theirs))
    assert without_timings(lines_of(theirs)) == [
        b"peer.app.custom:1|c",
        b"peer.clients.db.execute.failure:1|c",
        b"peer.clients.db.execute:|ms",
        b"peer.clients.redis.GET.success:1|c",
        b"peer.clients.redis.GET:|ms",
        b"peer.server.endpoint.success:1|c",
        b"peer.server.endpoint:|ms",
        b"peer.templates.render:|ms",
    ]
