"""Tests for baseplate.config: value types, combinators, nesting and error messages."""

from __future__ import annotations

import configparser
import datetime
import grp
import os
import pwd
import socket
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate import config

EXAMPLE_INI = """\
[app:main]
simple = true
cards = clubs, spades, diamonds
nested.once = 1
nested.really.deep = 3 seconds
some_file = {some_file}
sample_rate = 37.1%
interval = 30 seconds
"""


def test_documented_example(tmp_path: Path) -> None:
    some_file = tmp_path / "whatever.txt"
    some_file.write_text("cool")
    config_parser = configparser.RawConfigParser()
    config_parser.read_string(EXAMPLE_INI.format(some_file=some_file))
    raw_config = dict(config_parser.items("app:main"))

    cards = config.OneOf(clubs=1, spades=2, diamonds=3, hearts=4)
    cfg = config.parse_config(
        raw_config,
        {
            "simple": config.Boolean,
            "cards": config.TupleOf(cards),
            "nested": {
                "once": config.Integer,
                "really": {
                    "deep": config.Timespan,
                },
            },
            "some_file": config.File(mode="r"),
            "optional": config.Optional(config.Integer, default=9001),
            "sample_rate": config.Percent,
            "interval": config.Fallback(config.Timespan, config.Integer),
        },
    )

    assert str(cfg.simple) == "True"
    assert cfg.cards == [1, 2, 3]
    assert str(cfg.nested.really.deep) == "0:00:03"
    assert cfg.nested.once == 1
    assert cfg.some_file.read() == "cool"
    cfg.some_file.close()
    assert cfg.optional == 9001
    assert cfg.sample_rate == 0.371
    assert str(cfg.interval) == "0:00:30"
    # the namespace is also a plain dict
    assert cfg["nested"]["really"]["deep"] == datetime.timedelta(seconds=3)


def test_dictof_simple() -> None:
    raw = {
        "population.cn": "1383890000",
        "population.in": "1317610000",
        "population.us": "325165000",
        "population.id": "263447000",
        "population.br": "207645000",
    }
    cfg = config.parse_config(raw, {"population": config.DictOf(config.Integer)})
    assert len(cfg.population) == 5
    assert cfg.population["br"] == 207645000


def test_dictof_spec() -> None:
    raw = {
        "countries.cn.population": "1383890000",
        "countries.cn.capital": "Beijing",
        "countries.in.population": "1317610000",
        "countries.in.capital": "New Delhi",
        "countries.us.population": "325165000",
        "countries.us.capital": "Washington D.C.",
        "countries.id.population": "263447000",
        "countries.id.capital": "Jakarta",
        "countries.br.population": "207645000",
        "countries.br.capital": "Brasília",
        "unrelated": "x",
        "countriesx.a.population": "1",
    }
    cfg = config.parse_config(
        raw,
        {"countries": config.DictOf({"population": config.Integer, "capital": config.String})},
    )
    assert len(cfg.countries) == 5
    assert cfg.countries["cn"].capital == "Beijing"
    assert cfg.countries["id"].population == 263447000
    assert cfg.countries.br.capital == "Brasília"


def test_dictof_error_names_full_key() -> None:
    raw = {"countries.cn.population": "lots", "countries.cn.capital": "Beijing"}
    with pytest.raises(config.ConfigurationError) as info:
        config.parse_config(
            raw, {"countries": config.DictOf({"population": config.Integer, "capital": str})}
        )
    assert info.value.key == "countries.cn.population"
    assert str(info.value).startswith("countries.cn.population: ")


def test_dictof_empty() -> None:
    cfg = config.parse_config({}, {"things": config.DictOf(config.Integer)})
    assert cfg.things == {}


def test_nested_error_message_names_dotted_key() -> None:
    with pytest.raises(config.ConfigurationError) as info:
        config.parse_config(
            {"nested.really.deep": "3 fortnights"},
            {"nested": {"really": {"deep": config.Timespan}}},
        )
    assert str(info.value).startswith("nested.really.deep: invalid timespan")
    assert info.value.key == "nested.really.deep"
    assert isinstance(info.value.error, ValueError)


def test_missing_required_key_named() -> None:
    with pytest.raises(config.ConfigurationError) as info:
        config.parse_config({}, {"db": {"port": config.Integer}})
    assert info.value.key == "db.port"
    assert "db.port" in str(info.value)
    assert "missing" in str(info.value)


def test_missing_string_is_an_error() -> None:
    with pytest.raises(config.ConfigurationError, match="^name: "):
        config.parse_config({}, {"name": config.String})


def test_custom_callable_and_exceptions_are_wrapped() -> None:
    def even(text: str) -> int:
        value = int(text)
        if value % 2:
            raise ValueError("must be even")
        return value

    assert config.parse_config({"n": "4"}, {"n": even}).n == 4
    with pytest.raises(config.ConfigurationError, match="^n: must be even$"):
        config.parse_config({"n": "3"}, {"n": even})


def test_namespace_attribute_access() -> None:
    cfg = config.parse_config({"a.b": "x"}, {"a": {"b": config.String}})
    assert isinstance(cfg, config.ConfigNamespace)
    assert cfg.a.b == "x"
    with pytest.raises(AttributeError):
        _ = cfg.nope


def test_invalid_spec_rejected() -> None:
    with pytest.raises(config.SpecError, match="'a.b'"):
        config.parse_config({}, {"a.b": config.String})
    with pytest.raises(AssertionError):
        config.parse_config({}, {"a": 5})
    with pytest.raises(TypeError):
        config.parse_config({}, {"a": {"b": 5}})


def test_string() -> None:
    assert config.String("hi there") == "hi there"
    with pytest.raises(ValueError):
        config.String("")


def test_float() -> None:
    assert config.Float("1.5") == 1.5
    assert config.Float("3") == 3.0
    with pytest.raises(ValueError, match="invalid float"):
        config.Float("abc")


def test_integer() -> None:
    assert config.Integer("42") == 42
    assert config.Integer("-7") == -7
    with pytest.raises(ValueError):
        config.Integer("3.5")
    with pytest.raises(ValueError):
        config.Integer("")


def test_integer_with_base() -> None:
    hexadecimal = config.Integer(base=16)
    assert hexadecimal("ff") == 255
    assert hexadecimal("0x10") == 16
    assert config.Integer("0o17", base=8) == 15
    with pytest.raises(ValueError):
        hexadecimal("zz")
    cfg = config.parse_config({"mode": "1f"}, {"mode": config.Integer(base=16)})
    assert cfg.mode == 31


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("FaLsE", False)],
)
def test_boolean(text: str, expected: bool) -> None:
    assert config.Boolean(text) is expected


@pytest.mark.parametrize("text", ["", "yes", "1", "0", "t"])
def test_boolean_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        config.Boolean(text)


def test_endpoint_inet() -> None:
    endpoint = config.Endpoint("localhost:9090")
    assert endpoint.family == socket.AF_INET
    assert endpoint.address == ("localhost", 9090)
    assert endpoint.address.host == "localhost"
    assert endpoint.address.port == 9090
    assert endpoint == (socket.AF_INET, ("localhost", 9090))
    assert isinstance(endpoint, config.EndpointConfiguration)


def test_endpoint_empty_host_means_every_interface() -> None:
    endpoint = config.Endpoint(":9090")
    assert endpoint == (socket.AF_INET, ("", 9090))


def test_endpoint_unix() -> None:
    endpoint = config.Endpoint("/var/run/foo.sock")
    assert endpoint.family == socket.AF_UNIX
    assert endpoint.address == "/var/run/foo.sock"


@pytest.mark.parametrize("text", ["", "localhost", "localhost:", "localhost:http", ":", "h:70000"])
def test_endpoint_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        config.Endpoint(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 millisecond", datetime.timedelta(milliseconds=1)),
        ("250 milliseconds", datetime.timedelta(milliseconds=250)),
        ("1 second", datetime.timedelta(seconds=1)),
        ("30 seconds", datetime.timedelta(seconds=30)),
        ("1 minute", datetime.timedelta(minutes=1)),
        ("5 minutes", datetime.timedelta(minutes=5)),
        ("1 hour", datetime.timedelta(hours=1)),
        ("2 hours", datetime.timedelta(hours=2)),
        ("1 day", datetime.timedelta(days=1)),
        ("3 days", datetime.timedelta(days=3)),
        ("3 Days", datetime.timedelta(days=3)),
    ],
)
def test_timespan(text: str, expected: datetime.timedelta) -> None:
    assert config.Timespan(text) == expected


@pytest.mark.parametrize(
    "text", ["", "3", "seconds", "3 fortnights", "three seconds", "-1 days", "3.2 hours", "a b c"]
)
def test_timespan_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid timespan"):
        config.Timespan(text)


def test_base64() -> None:
    assert config.Base64("aGVsbG8=") == b"hello"
    assert config.Base64("aGVs\nbG8=") == b"hello"
    for bad in ["", "not base64!", "aGVsbG8"]:
        with pytest.raises(ValueError):
            config.Base64(bad)


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x00\x01")
    with config.File(mode="rb")(str(path)) as f:
        assert f.read() == b"\x00\x01"
    with config.File()(str(path)) as f:
        assert f.mode == "r"
    with pytest.raises(ValueError, match="could not open file"):
        config.File()(str(tmp_path / "missing"))
    with pytest.raises(config.ConfigurationError, match="^f: could not open file"):
        config.parse_config({"f": str(tmp_path / "missing")}, {"f": config.File()})


@pytest.mark.parametrize(
    ("text", "expected"), [("37.1%", 0.371), ("44%", 0.44), ("0%", 0.0), ("100%", 1.0)]
)
def test_percent(text: str, expected: float) -> None:
    assert config.Percent(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "37", "abc%", "101%", "-1%"])
def test_percent_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        config.Percent(text)


def test_unix_user_and_group() -> None:
    me = pwd.getpwuid(os.getuid())
    assert config.UnixUser(me.pw_name) == me.pw_uid
    assert config.UnixUser("root") == 0
    group = grp.getgrgid(os.getgid())
    assert config.UnixGroup(group.gr_name) == group.gr_gid
    with pytest.raises(ValueError, match="no such user"):
        config.UnixUser("no-such-user-here")
    with pytest.raises(ValueError, match="no such group"):
        config.UnixGroup("no-such-group-here")


def test_one_of() -> None:
    parser = config.OneOf(hearts="H", spades="S")
    assert parser("hearts") == "H"
    with pytest.raises(ValueError, match="expected one of 'hearts', 'spades'"):
        parser("clubs")


def test_tuple_of() -> None:
    parser = config.TupleOf(config.Integer)
    assert parser("1, 2,3") == [1, 2, 3]
    assert parser("1,") == [1]
    for bad in ["", " , ", "1, x"]:
        with pytest.raises(ValueError):
            parser(bad)
    assert config.Optional(parser, default=[])("") == []


def test_optional() -> None:
    spec = {"a": config.Optional(config.Integer), "b": config.Optional(config.Integer, default=3)}
    cfg = config.parse_config({"a": "5"}, spec)
    assert cfg.a == 5
    assert cfg.b == 3
    cfg = config.parse_config({"a": ""}, spec)
    assert cfg.a is None
    with pytest.raises(config.ConfigurationError, match="^a: "):
        config.parse_config({"a": "x"}, spec)


def test_fallback() -> None:
    parser = config.Fallback(config.Timespan, config.Integer)
    assert parser("30 seconds") == datetime.timedelta(seconds=30)
    assert parser("30") == 30
    with pytest.raises(ValueError):
        parser("thirty")


def test_configuration_error_attributes() -> None:
    err = config.ConfigurationError("a.b", "broken")
    assert err.key == "a.b"
    assert err.error == "broken"
    assert str(err) == "a.b: broken"


# Property-based tests: whatever strings come in, parsing either succeeds or raises
# ConfigurationError naming the key; nothing else escapes.

_VALUE_TYPES = [
    config.String,
    config.Float,
    config.Integer,
    config.Integer(base=16),
    config.Boolean,
    config.Endpoint,
    config.Timespan,
    config.Base64,
    config.Percent,
    config.OneOf(a=1, b=2),
    config.TupleOf(config.Integer),
    config.Optional(config.Percent),
    config.Fallback(config.Timespan, config.Integer),
]


@settings(max_examples=200, deadline=None)
@given(value=st.text(), type_index=st.integers(min_value=0, max_value=len(_VALUE_TYPES) - 1))
def test_any_text_parses_or_raises_configuration_error(value: str, type_index: int) -> None:
    spec = {"outer": {"inner": _VALUE_TYPES[type_index]}}
    try:
        config.parse_config({"outer.inner": value}, spec)
    except config.ConfigurationError as exc:
        assert exc.key == "outer.inner"
        assert str(exc).startswith("outer.inner: ")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5),
        st.integers(min_value=-(10**12), max_value=10**12),
        max_size=8,
    )
)
def test_dictof_round_trip(values: dict[str, int]) -> None:
    raw = {f"group.{key}": str(value) for key, value in values.items()}
    cfg = config.parse_config(raw, {"group": config.DictOf(config.Integer)})
    assert cfg.group == values


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=10**6),
    unit=st.sampled_from(["millisecond", "second", "minute", "hour", "day"]),
    plural=st.booleans(),
)
def test_timespan_round_trip(count: int, unit: str, plural: bool) -> None:
    text = f"{count} {unit}{'s' if plural else ''}"
    assert config.Timespan(text) == datetime.timedelta(**{unit + "s": count})
