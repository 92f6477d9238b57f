"""The Edge-Request header: exact TBinaryProtocol bytes both ways, tolerance, bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baseplate.edge_context import (
    EdgeContextError,
    EdgeRequestContext,
    EdgeRequestContextFactory,
)

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# TBinaryProtocol type codes (thrift TType)
STOP, I32, I64, STRING = b"\x00", b"\x08", b"\x0a", b"\x0b"
STRUCT, MAP, LIST = b"\x0c", b"\x0d", b"\x0f"


def field(type_code: bytes, field_id: int) -> bytes:
    return type_code + struct.pack(">h", field_id)


def string(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


TOKEN = b"eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"

#: Request{loid: Loid{id: "t2_deadbeef", created_ms: 100000}, session: Session{id: "beefdead"},
#: authentication_token: TOKEN}, as 0.28 services write it.
FULL_HEADER = (
    b"\x0c\x00\x01"  # field 1 (loid): struct
    b"\x0b\x00\x01" b"\x00\x00\x00\x0b" b"t2_deadbeef"  # loid.id: string
    b"\x0a\x00\x02" b"\x00\x00\x00\x00\x00\x01\x86\xa0"  # loid.created_ms: i64 100000
    b"\x00"  # end of Loid
    b"\x0c\x00\x02"  # field 2 (session): struct
    b"\x0b\x00\x01" b"\x00\x00\x00\x08" b"beefdead"  # session.id
    b"\x00"  # end of Session
    b"\x0b\x00\x03" + struct.pack(">i", len(TOKEN)) + TOKEN  # field 3: authentication_token
    + b"\x00"  # end of Request
)

#: new() without arguments: an empty Loid and an empty Session, no token.
EMPTY_HEADER = b"\x0c\x00\x01\x00" b"\x0c\x00\x02\x00" b"\x00"


def test_new_writes_the_exact_bytes_of_0_28_services(factory: EdgeRequestContextFactory) -> None:
    context = factory.new(
        authentication_token=TOKEN.decode(),
        loid_id="t2_deadbeef",
        loid_created_ms=100000,
        session_id="beefdead",
    )
    assert context.header == FULL_HEADER


def test_new_accepts_the_token_as_bytes(factory: EdgeRequestContextFactory) -> None:
    context = factory.new(
        authentication_token=TOKEN,
        loid_id="t2_deadbeef",
        loid_created_ms=100000,
        session_id="beefdead",
    )
    assert context.header == FULL_HEADER


def test_new_without_arguments_writes_empty_structs(factory: EdgeRequestContextFactory) -> None:
    context = factory.new()
    assert context.header == EMPTY_HEADER
    assert context.user.loid is None
    assert context.user.cookie_created_ms is None
    assert context.session.id is None


def test_new_leaves_out_what_it_was_not_given(factory: EdgeRequestContextFactory) -> None:
    context = factory.new(session_id="s1")
    assert context.header == (
        b"\x0c\x00\x01\x00" b"\x0c\x00\x02" b"\x0b\x00\x01\x00\x00\x00\x02s1" b"\x00" b"\x00"
    )


def test_from_upstream_reads_the_exact_bytes(factory: EdgeRequestContextFactory) -> None:
    context = factory.from_upstream(FULL_HEADER)
    assert context.header == FULL_HEADER
    assert context.user.loid == "t2_deadbeef"
    assert context.user.cookie_created_ms == 100000
    assert context.session.id == "beefdead"
    assert context._t_request.authentication_token == TOKEN.decode()


def test_round_trip_keeps_the_header_unchanged(factory: EdgeRequestContextFactory) -> None:
    made = factory.new(loid_id="t2_x", loid_created_ms=-1, session_id="é")
    assert factory.from_upstream(made.header).header == made.header
    again = factory.from_upstream(made.header)
    assert (again.user.loid, again.user.cookie_created_ms, again.session.id) == ("t2_x", -1, "é")


def test_edge_request_context_constructor_takes_validator_and_header(
    factory: EdgeRequestContextFactory,
) -> None:
    context = EdgeRequestContext(factory.authn_token_validator, FULL_HEADER)
    assert context.session.id == "beefdead"


def test_fields_of_later_peers_are_read_past(factory: EdgeRequestContextFactory) -> None:
    # a 1.x/2.x peer adds Device (4), OriginService (5), Geolocation (6), RequestId (7)
    later = (
        FULL_HEADER[:-1]
        + field(STRUCT, 4) + field(STRING, 1) + string(b"becc50f6-ff3d") + STOP
        + field(STRUCT, 5) + field(STRING, 1) + string(b"baseplate") + STOP
        + field(STRUCT, 6) + field(STRING, 1) + string(b"OK") + STOP
        + field(STRUCT, 7) + field(STRING, 1) + string(b"2adaff94") + STOP
        + STOP
    )
    context = factory.from_upstream(later)
    assert context.header == later  # forwarded unchanged, later fields included
    assert context.user.loid == "t2_deadbeef"
    assert context.session.id == "beefdead"


def test_unknown_fields_of_every_kind_are_skipped(factory: EdgeRequestContextFactory) -> None:
    unknown = (
        field(I32, 40) + b"\x00\x00\x00\x07"
        + field(STRING, 41) + string(b"\xff\xfe not even utf-8")
        + field(LIST, 42) + STRING + b"\x00\x00\x00\x02" + string(b"a") + string(b"b")
        + field(MAP, 43) + I32 + STRUCT + b"\x00\x00\x00\x01"
        + b"\x00\x00\x00\x01" + field(I64, 1) + b"\x00" * 8 + STOP
        + field(STRUCT, 44) + field(STRUCT, 1) + field(STRING, 9) + string(b"deep") + STOP + STOP
    )
    header = (
        b"\x0c\x00\x01"
        + field(STRING, 99) + string(b"unknown inside Loid")
        + field(STRING, 1) + string(b"t2_abc")
        + STOP
        + unknown
        + field(STRUCT, 2) + field(STRING, 1) + string(b"sess") + STOP
        + STOP
    )
    context = factory.from_upstream(header)
    assert context.user.loid == "t2_abc"
    assert context.session.id == "sess"


def test_known_field_with_another_type_is_skipped(factory: EdgeRequestContextFactory) -> None:
    header = field(I32, 3) + b"\x00\x00\x00\x01" + field(STRING, 1) + string(b"x") + STOP
    context = factory.from_upstream(header)
    assert context._t_request.authentication_token is None
    assert context.user.loid is None
    assert not context.user.is_logged_in


@pytest.mark.parametrize("empty", [None, b""])
def test_no_header_gives_an_empty_context(
    factory: EdgeRequestContextFactory, empty: bytes | None
) -> None:
    context = factory.from_upstream(empty)
    assert context.header == b""
    assert context.user.loid is None
    assert context.session.id is None
    assert not context.user.is_logged_in


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (b"garbage", "not a Thrift struct"),
        (FULL_HEADER[:20], "truncated"),
        (b"\x0c\x00\x01\x0b\x00\x01\x00\x00\x00\x02\xff\xfe\x00\x00", "loid.id not UTF-8"),
        (b"\x01\x00\x05\x00", "field of type VOID"),
        (b"\x0c\x00\x09" * 200, "nested deeper than any real header"),
        (b"\x0f\x00\x09\x02\x7f\xff\xff\xff\x01", "a list claiming more items than it has"),
    ],
)
def test_malformed_header_raises_only_edge_context_error(
    factory: EdgeRequestContextFactory, header: bytes, why: str
) -> None:
    with pytest.raises(EdgeContextError) as caught:
        factory.from_upstream(header)
    assert isinstance(caught.value, ValueError)  # what the integrations catch
    assert "Edge-Request" in str(caught.value)


def test_header_that_is_not_bytes_raises_edge_context_error(
    factory: EdgeRequestContextFactory,
) -> None:
    with pytest.raises(EdgeContextError, match="bytes, not str"):
        factory.from_upstream(FULL_HEADER.decode("latin-1"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loid_id": "abc123"}, "loid_id 'abc123'"),
        ({"loid_id": "t3_deadbeef"}, "t2_"),
        ({"loid_id": ""}, "loid_id"),
        ({"loid_id": b"t2_x"}, "loid_id"),
        ({"loid_created_ms": "100000"}, "loid_created_ms"),
        ({"loid_created_ms": 2**63}, "loid_created_ms"),
        ({"loid_created_ms": True}, "loid_created_ms"),
        ({"session_id": 5}, "session_id"),
        ({"authentication_token": b"\xff\xfe"}, "authentication_token"),
        ({"authentication_token": 5}, "authentication_token"),
    ],
)
def test_new_rejects_bad_values_naming_them(
    factory: EdgeRequestContextFactory, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        factory.new(**kwargs)  # type: ignore[arg-type]


@FUZZ
@given(header=st.binary(max_size=400))
def test_from_upstream_of_arbitrary_bytes_raises_nothing_else(
    factory: EdgeRequestContextFactory, header: bytes
) -> None:
    try:
        context = factory.from_upstream(header)
    except EdgeContextError:
        return
    assert context.header == header
    assert context.user.loid is None or isinstance(context.user.loid, str)
    assert context.session.id is None or isinstance(context.session.id, str)
    context.event_fields()


@FUZZ
@given(data=st.data())
def test_from_upstream_of_damaged_headers_raises_nothing_else(
    factory: EdgeRequestContextFactory, data: st.DataObject
) -> None:
    header = bytearray(FULL_HEADER)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(header) - 1))
        header[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(header)))
    try:
        context = factory.from_upstream(bytes(header[:cut]))
    except EdgeContextError:
        return
    context.event_fields()


@FUZZ
@given(
    loid_id=st.none() | st.text(max_size=30).map(lambda s: "t2_" + s),
    loid_created_ms=st.none() | st.integers(-(2**63), 2**63 - 1),
    session_id=st.none() | st.text(max_size=30),
)
def test_what_new_writes_from_upstream_reads(
    factory: EdgeRequestContextFactory,
    loid_id: str | None,
    loid_created_ms: int | None,
    session_id: str | None,
) -> None:
    made = factory.new(loid_id=loid_id, loid_created_ms=loid_created_ms, session_id=session_id)
    read = factory.from_upstream(made.header)
    assert read.user.loid == loid_id
    assert read.user.cookie_created_ms == loid_created_ms
    assert read.session.id == session_id
