"""Building events and their wire formats: v1 JSON and v2 Thrift JSON."""

from __future__ import annotations

import datetime
import json
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate.events import (
    Event,
    FieldKind,
    serialize_v1_event,
    serialize_v2_event,
)
from baseplate.thrift.gen.baseplate.ttypes import Loid, Request, Session

FIXED_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
FIXED_TIME = datetime.datetime(2016, 2, 23, 0, 3, 17)


def make_event() -> Event:
    return Event("topic", "type", timestamp=FIXED_TIME, id=FIXED_ID)


def test_v1_serialization_exact_bytes() -> None:
    event = make_event()
    event.set_field("normal", "value1")
    event.set_field("ip", "10.0.0.1", kind=FieldKind.OBFUSCATED)
    event.set_field("request_id", "abc", kind=FieldKind.HIGH_CARDINALITY)
    event.set_field("count", 0)
    event.set_field("flag", False)

    assert serialize_v1_event(event) == (
        b'{"event_topic": "topic", "event_type": "type", "event_ts": 1456185797000, '
        b'"uuid": "12345678-1234-5678-1234-567812345678", "payload": {"normal": "value1", '
        b'"obfuscated_data": {"ip": "10.0.0.1"}, "interana_excluded": {"request_id": "abc"}, '
        b'"count": 0, "flag": false}}'
    )


def test_none_and_empty_string_are_dropped() -> None:
    event = make_event()
    event.set_field("empty", "")
    event.set_field("null", None)
    event.set_field("empty_obfuscated", "", kind=FieldKind.OBFUSCATED)

    assert json.loads(serialize_v1_event(event))["payload"] == {}
    assert event.get_field("empty") is None


def test_get_field_reads_any_kind() -> None:
    event = make_event()
    event.set_field("normal", "value1")
    event.set_field("obfuscated", "value2", kind=FieldKind.OBFUSCATED)

    assert event.get_field("normal") == "value1"
    assert event.get_field("obfuscated") == "value2"
    assert event.get_field("missing") is None


def test_setting_a_field_again_moves_it_between_sections() -> None:
    event = make_event()
    event.set_field("foo", "bar")
    event.set_field("foo", "bar", kind=FieldKind.OBFUSCATED)
    assert json.loads(event.serialize())["payload"] == {"obfuscated_data": {"foo": "bar"}}

    event.set_field("foo", "baz")
    assert json.loads(event.serialize())["payload"] == {"foo": "baz"}


def test_obfuscate_flag_is_deprecated_but_works() -> None:
    event = make_event()
    with pytest.warns(DeprecationWarning, match="deprecated"):
        event.set_field("ip", "10.0.0.1", obfuscate=True)
    assert json.loads(event.serialize())["payload"] == {"obfuscated_data": {"ip": "10.0.0.1"}}


def test_default_timestamp_and_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: 333.0)
    event = Event("topic", "type")

    assert event.timestamp == 333000
    assert isinstance(event.id, uuid.UUID)
    document = json.loads(event.serialize())
    assert document["event_ts"] == 333000
    assert uuid.UUID(document["uuid"]) == event.id


def test_timestamp_is_whole_seconds_and_accepts_utc() -> None:
    # baseplate has always sent a given timestamp in whole seconds (as milliseconds)
    utc = datetime.datetime(2016, 2, 23, 0, 3, 17, 250999, tzinfo=datetime.timezone.utc)
    assert Event("t", "e", timestamp=utc).timestamp == 1456185797000


def test_timestamp_not_utc_is_rejected() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    with pytest.raises(ValueError, match="UTC"):
        Event("topic", "type", timestamp=datetime.datetime(2016, 2, 23, tzinfo=plus_two))


def test_unserializable_field_fails_serialization_naming_the_key() -> None:
    event = make_event()
    event.set_field("when", datetime.datetime(2020, 1, 1))
    assert event.get_field("when") == datetime.datetime(2020, 1, 1)
    with pytest.raises(TypeError, match="'when'"):
        event.serialize()

    event = make_event()
    event.set_field("ratio", math.nan)
    with pytest.raises(TypeError, match="'ratio'"):
        event.serialize()


def test_normal_field_named_like_a_section() -> None:
    event = make_event()
    event.set_field("obfuscated_data", {"ip": "10.0.0.1"})
    assert json.loads(event.serialize())["payload"] == {"obfuscated_data": {"ip": "10.0.0.1"}}

    event.set_field("other_ip", "10.0.0.2", kind=FieldKind.OBFUSCATED)
    with pytest.raises(TypeError, match="'obfuscated_data'"):
        event.serialize()


def test_v2_serialization_is_thrift_json() -> None:
    request = Request(loid=Loid(id="t2_1", created_ms=5), session=Session(id="s"))

    assert serialize_v2_event(request) == (
        b'{"1":{"rec":{"1":{"str":"t2_1"},"2":{"i64":5}}},"2":{"rec":{"1":{"str":"s"}}}}'
    )


SECTION_NAMES = {"obfuscated_data", "interana_excluded"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=4,
)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(
        st.text(min_size=1, max_size=16).filter(lambda key: key not in SECTION_NAMES),
        st.tuples(json_values, st.sampled_from(list(FieldKind))),
        max_size=6,
    )
)
def test_v1_payload_sections_round_trip(fields: dict[str, tuple[object, FieldKind]]) -> None:
    event = make_event()
    for key, (value, kind) in fields.items():
        event.set_field(key, value, kind=kind)

    payload = json.loads(event.serialize())["payload"]

    expected: dict[str, object] = {}
    for key, (value, kind) in fields.items():
        if value is None or value == "":
            continue
        section = expected if kind.value is None else expected.setdefault(kind.value, {})
        assert isinstance(section, dict)
        section[key] = value
    assert payload == expected
