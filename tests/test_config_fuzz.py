"""Every numeric setting of the ``*_from_config`` helpers, and the bounded config types
themselves, fed NaN, infinities, negatives, absurd sizes, empty strings and garbage.

Each bad value must end in a :class:`~baseplate.config.ConfigurationError` naming the full
key, and nothing else: no ``ValueError`` or ``OverflowError`` traceback, no start-up that
hangs setting aside 10**30 pool slots. An empty string means "not configured" for an optional
key (as in baseplate 0.28), so it must behave exactly like the key being absent.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from baseplate import config
from baseplate.config import ConfigurationError

#: The bad values, as a file would have them and as code would build them.
BAD_VALUES: list[Any] = [
    "nan",
    math.nan,
    "inf",
    math.inf,
    "-inf",
    -math.inf,
    "-1",
    -1,
    str(10**30),
    10**30,
    "1e30",
    1e30,
    "garbage",
    "12 parsecs",
    "",
]


@dataclass
class Helper:
    """A helper, a configuration it accepts, and the numeric keys in it to spoil."""

    name: str
    call: Callable[[Mapping[str, Any]], Any]
    good: dict[str, Any]
    keys: list[str]
    #: Bad values a key takes on purpose (e.g. ``max_overflow = -1``: no limit).
    meaningful: dict[str, list[Any]] = field(default_factory=dict)
    #: Keys that are required: an empty string is an error there too.
    required: tuple[str, ...] = ()


def tracing_client(raw: Mapping[str, Any]) -> Any:
    from baseplate.diagnostics.tracing import tracing_client_from_config

    return tracing_client_from_config(raw, environ={})


def trace_publisher(raw: Mapping[str, Any]) -> Any:
    from baseplate.diagnostics.tracing.publisher import parse_publisher_config

    return parse_publisher_config(dict(raw))


def redis_pool(raw: Mapping[str, Any]) -> Any:
    from baseplate.context.redis import pool_from_config

    return pool_from_config(raw)


def memcache_pool(raw: Mapping[str, Any]) -> Any:
    from baseplate.context.memcache import pool_from_config

    return pool_from_config(raw)


def sqlalchemy_engine(raw: Mapping[str, Any]) -> Any:
    from baseplate.context.sqlalchemy import engine_from_config

    return engine_from_config(raw, "sqlalchemy.")


def cassandra_cluster(raw: Mapping[str, Any]) -> Any:
    from baseplate.context.cassandra import cluster_from_config

    return cluster_from_config(raw)


def hvac_factory(raw: Mapping[str, Any]) -> Any:
    from baseplate.context.hvac import hvac_factory_from_config

    return hvac_factory_from_config(raw, secrets_store=None)


def thrift_pool(raw: Mapping[str, Any]) -> Any:
    from baseplate.thrift_pool import thrift_pool_from_config

    return thrift_pool_from_config(dict(raw))


def metrics_client(raw: Mapping[str, Any]) -> Any:
    from baseplate.metrics import metrics_client_from_config

    return metrics_client_from_config(raw)


def fetcher_config(raw: Mapping[str, Any]) -> Any:
    from baseplate.secrets.fetcher import parse_fetcher_config

    return parse_fetcher_config(raw)


def publisher_config(raw: Mapping[str, Any]) -> Any:
    from baseplate.events.publisher import parse_publisher_config

    return parse_publisher_config(dict(raw))


def server_options(raw: Mapping[str, Any]) -> Any:
    from baseplate.server._lifecycle import parse_server_options

    return parse_server_options(dict(raw))


def spec_of(value_type: Callable[[str], Any]) -> Callable[[Mapping[str, Any]], Any]:
    return lambda raw: config.parse_config(raw, {"section": {"value": value_type}})


def parser_helper(name: str, value_type: Callable[[str], Any], good: str) -> Helper:
    return Helper(
        name,
        spec_of(value_type),
        {"section.value": good},
        ["section.value"],
        required=("section.value",),
    )


HELPERS = [
    Helper(
        "redis",
        redis_pool,
        {
            "redis.url": "redis://localhost:6379/0",
            "redis.max_connections": "5",
            "redis.socket_timeout": "200 milliseconds",
            "redis.socket_connect_timeout": "1 second",
        },
        ["redis.max_connections", "redis.socket_timeout", "redis.socket_connect_timeout"],
    ),
    Helper(
        "memcache",
        memcache_pool,
        {
            "memcache.endpoint": "localhost:11211",
            "memcache.max_pool_size": "5",
            "memcache.connect_timeout": "0.5",
            "memcache.timeout": "1.5",
        },
        ["memcache.max_pool_size", "memcache.connect_timeout", "memcache.timeout"],
    ),
    Helper(
        "sqlalchemy",
        sqlalchemy_engine,
        {
            "sqlalchemy.url": "postgresql://user:pw@localhost:5432/app",
            "sqlalchemy.pool_size": "5",
            "sqlalchemy.max_overflow": "2",
            "sqlalchemy.pool_timeout": "30",
            "sqlalchemy.pool_recycle": "300",
        },
        [
            "sqlalchemy.pool_size",
            "sqlalchemy.max_overflow",
            "sqlalchemy.pool_timeout",
            "sqlalchemy.pool_recycle",
        ],
        # SQLAlchemy's own meaning: no overflow limit, never recycle
        meaningful={"sqlalchemy.max_overflow": ["-1", -1], "sqlalchemy.pool_recycle": ["-1", -1]},
    ),
    Helper(
        "cassandra",
        cassandra_cluster,
        {"cassandra.contact_points": "127.0.0.1", "cassandra.port": "9042"},
        ["cassandra.port"],
    ),
    Helper("hvac", hvac_factory, {"vault.timeout": "300 milliseconds"}, ["vault.timeout"]),
    Helper(
        "thrift pool",
        thrift_pool,
        {
            "thrift.endpoint": "localhost:9090",
            "thrift.size": "5",
            "thrift.max_age": "30 seconds",
            "thrift.timeout": "500 milliseconds",
            "thrift.max_retries": "3",
        },
        ["thrift.size", "thrift.max_age", "thrift.timeout", "thrift.max_retries"],
    ),
    Helper(
        "metrics",
        metrics_client,
        {"metrics.namespace": "ns", "metrics.endpoint": "", "metrics.max_datagram_size": "1400"},
        ["metrics.max_datagram_size"],
    ),
    Helper(
        "secret fetcher",
        fetcher_config,
        {
            "vault.url": "http://127.0.0.1:8200",
            "vault.role": "role",
            "vault.timeout": "3 seconds",
            "output.mode": "0440",
            "refresh.max_interval": "5 minutes",
        },
        ["vault.timeout", "output.mode", "refresh.max_interval"],
    ),
    Helper(
        "event publisher",
        publisher_config,
        {
            "collector.hostname": "collector.example.com",
            "key.name": "TestKey",
            "key.secret": "aHVudGVyMg==",
            "post_timeout": "3 seconds",
            "retry_backoff": "2",
            "max_retry_time": "5 minutes",
            "max_queue_size": "100",
        },
        ["post_timeout", "retry_backoff", "max_retry_time", "max_queue_size"],
    ),
    Helper(
        "server",
        server_options,
        {"factory": "baseplate.server.wsgi", "max_concurrency": "100", "stop_timeout": "30"},
        ["max_concurrency", "stop_timeout"],
    ),
    Helper(
        "tracing",
        tracing_client,
        {
            "tracing.service_name": "svc",
            "tracing.sample_rate": "10%",
            "tracing.max_span_queue_size": "100",
            "tracing.num_span_workers": "5",
            "tracing.span_batch_interval": "500 milliseconds",
            "tracing.num_conns": "10",
            "tracing.exporter": "none",
            "tracing.exporter.timeout": "2 seconds",
        },
        [
            "tracing.sample_rate",
            "tracing.max_span_queue_size",
            "tracing.num_span_workers",
            "tracing.span_batch_interval",
            "tracing.num_conns",
            "tracing.exporter.timeout",
        ],
    ),
    Helper(
        "trace publisher",
        trace_publisher,
        {
            "zipkin_api_url": "http://127.0.0.1:9411/api/v2",
            "post_timeout": "3",
            "max_batch_size": "100",
            "retry_limit": "3",
        },
        ["post_timeout", "max_batch_size", "retry_limit"],
    ),
    parser_helper("IntegerRange", config.IntegerRange(1, 100), "10"),
    parser_helper("PositiveInteger", config.PositiveInteger, "10"),
    parser_helper("NonNegativeInteger", config.NonNegativeInteger, "0"),
    parser_helper("Duration", config.Duration(), "30 seconds"),
    parser_helper("Seconds", config.Seconds(allow_zero=False), "0.5"),
    parser_helper("Fraction", config.Fraction, "37%"),
]


def cases() -> list[Any]:
    params = []
    for helper in HELPERS:
        for key in helper.keys:
            for value in BAD_VALUES:
                if value in helper.meaningful.get(key, []):
                    continue
                params.append(pytest.param(helper, key, value, id=f"{helper.name}-{key}-{value!r}"))
    return params


@pytest.mark.parametrize("helper", HELPERS, ids=lambda helper: helper.name)
def test_the_good_configuration_is_accepted(helper: Helper) -> None:
    helper.call(helper.good)


@pytest.mark.parametrize(("helper", "key", "value"), cases())
def test_a_bad_number_names_its_key(helper: Helper, key: str, value: Any) -> None:
    raw = {**helper.good, key: value}
    if value == "" and key not in helper.required:
        # not configured: the same as the key being absent
        absent = {name: text for name, text in helper.good.items() if name != key}
        helper.call(raw)
        helper.call(absent)
        return
    with pytest.raises(ConfigurationError) as info:
        helper.call(raw)
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"{key}: ")
    assert "\n" not in message and len(message) < 200


# -- the parsers, one by one ---------------------------------------------------------------


def test_integer_range() -> None:
    pool_size = config.IntegerRange(1, config.MAX_POOL_SIZE)
    assert pool_size("10") == 10
    assert pool_size(" 10000 ") == 10_000
    with pytest.raises(ValueError, match="'10001' is out of range: expected 1 to 10000"):
        pool_size("10001")
    with pytest.raises(ValueError, match="invalid integer"):
        pool_size("2.5")
    assert config.IntegerRange(0, 0o7777, base=8)("0755") == 0o755
    with pytest.raises(ValueError, match="expected 0o0 to 0o7777"):
        config.IntegerRange(0, 0o7777, base=8)("17777")
    with pytest.raises(config.SpecError):
        config.IntegerRange(5, 1)


def test_positive_and_non_negative_integers() -> None:
    assert config.PositiveInteger("1") == 1
    assert config.NonNegativeInteger("0") == 0
    with pytest.raises(ValueError, match="out of range"):
        config.PositiveInteger("0")
    with pytest.raises(ValueError, match="out of range"):
        config.NonNegativeInteger(str(config.MAX_INTEGER + 1))


def test_duration_takes_a_timespan_or_seconds() -> None:
    duration = config.Duration()
    assert duration("500 milliseconds") == datetime.timedelta(milliseconds=500)
    assert duration("0.5") == datetime.timedelta(milliseconds=500)
    assert duration("1 day") == datetime.timedelta(days=1)
    assert duration("0") == datetime.timedelta(0)
    with pytest.raises(ValueError, match="expected at most 1 day"):
        duration("25 hours")
    with pytest.raises(ValueError, match="must not be negative"):
        duration("-0.5")
    with pytest.raises(ValueError, match="not a number"):
        duration("nan")
    with pytest.raises(ValueError, match="invalid duration 'soon'"):
        duration("soon")


def test_duration_bounds() -> None:
    timeout = config.Seconds(max=datetime.timedelta(minutes=1), allow_zero=False)
    assert timeout("60") == 60.0
    assert timeout("250 milliseconds") == 0.25
    with pytest.raises(ValueError, match="expected at most 1 minute"):
        timeout("61")
    with pytest.raises(ValueError, match="must be more than zero"):
        timeout("0")
    # below a microsecond is zero to every socket timeout
    with pytest.raises(ValueError, match="must be more than zero"):
        timeout("1e-9")
    assert config.Seconds(90)("90") == 90.0


def test_fraction() -> None:
    assert config.Fraction("37%") == pytest.approx(0.37)
    assert config.Fraction("0.37") == 0.37
    assert config.Fraction("0") == 0.0
    assert config.Fraction("100%") == 1.0
    with pytest.raises(ValueError, match="out of the range 0% to 100%"):
        config.Fraction("150%")
    with pytest.raises(ValueError, match="out of range: expected 0 to 1"):
        config.Fraction("1.5")
    with pytest.raises(ValueError, match="invalid fraction"):
        config.Fraction("most")


def test_percent_out_of_range_says_so() -> None:
    with pytest.raises(ConfigurationError, match=r"^rate: percentage '150%' is out of the range"):
        config.parse_config({"rate": "150%"}, {"rate": config.Percent})


def test_timespan_too_long_for_a_timedelta_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="too long"):
        config.Timespan("99999999999999999999 days")
    with pytest.raises(ValueError, match="too long"):
        config.Timespan("9" * 5000 + " seconds")


def test_long_garbage_is_cut_short_in_the_message() -> None:
    with pytest.raises(ConfigurationError) as info:
        config.parse_config({"n": "x" * 10_000}, {"n": config.PositiveInteger})
    assert len(str(info.value)) < 100


def test_values_built_in_code_are_read_as_text() -> None:
    cfg = config.parse_config(
        {"size": 10, "rate": 0.5, "debug": True, "off": False, "unset": None},
        {
            "size": config.PositiveInteger,
            "rate": config.Fraction,
            "debug": config.Boolean,
            "off": config.Boolean,
            "unset": config.Optional(config.Integer, default=7),
        },
    )
    assert (cfg.size, cfg.rate, cfg.debug, cfg.off, cfg.unset) == (10, 0.5, True, False, 7)
    # an integer 0 is configured, not missing
    assert config.parse_config({"n": 0}, {"n": config.Optional(config.Integer, 5)}).n == 0
