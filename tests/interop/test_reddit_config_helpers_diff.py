"""Differential tests of events and the documented ``*_from_config`` helpers against
reddit's own baseplate.

The same scenarios run on both sides: reddit's baseplate in its own process
(``reddit_peer_config_helpers.py``, one run per test) and ours in this one, through the very
same drivers. Answers (parsed values, the settings of the objects built, exception class
names and, for configuration errors, the key named) are compared case by case. Where the two
differ on purpose, each side's answer is asserted explicitly, with the reason next to it.
"""

from __future__ import annotations

import json
import math
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import posix_ipc
import pytest

from . import reddit_peer_config_helpers as drivers
from .conftest import run_peer_script

PEER_SCRIPT = Path(__file__).with_name("reddit_peer_config_helpers.py")

OURS = drivers.helper_modules()


def run_peer(area: str, request: Any) -> Any:
    """Run one driver with reddit's baseplate; return its JSON answer."""
    return run_peer_script(PEER_SCRIPT, area, request=request)


def ours(area: str, request: Any) -> Any:
    """Our answer to ``request``, through JSON like the peer's."""
    return json.loads(json.dumps(drivers.DRIVERS[area](OURS, request)))


def compare(
    labels: list[str],
    our_answers: list[Any],
    their_answers: list[Any],
    differences: dict[str, tuple[Any, Any]],
) -> None:
    """Each labelled case must get the same answer on both sides, except those listed in
    ``differences`` (label: (check of ours, check of reddit's)), which must differ so."""
    assert len(labels) == len(our_answers) == len(their_answers)
    seen = set()
    mismatches = []
    for label, our, their in zip(labels, our_answers, their_answers, strict=True):
        if label in differences:
            seen.add(label)
            expect_ours, expect_theirs = differences[label]
            if not (matches(our, expect_ours) and matches(their, expect_theirs)):
                mismatches.append((label, our, their))
        elif our != their:
            mismatches.append((label, our, their))
    assert not mismatches, "\n".join(
        f"{label}:\n  ours:    {json.dumps(our)}\n  reddit:  {json.dumps(their)}"
        for label, our, their in mismatches
    )
    assert seen == set(differences)


def matches(answer: Any, expected: Any) -> bool:
    """``expected`` is the whole answer, a check of it, or ``{"error": name, ...}``: the
    error's class and, when given, the key (and other listed properties)."""
    if callable(expected):
        return bool(expected(answer))
    if isinstance(expected, dict) and "error" in expected and "error" in answer:
        return all(answer.get(key) == value for key, value in expected.items())
    return bool(answer == expected)


def error(name: str, **more: Any) -> dict[str, Any]:
    return {"error": name, **more}


def config_error(key: str) -> dict[str, Any]:
    return {"error": "ConfigurationError", "key": key}


# --- baseplate.events: Event, set_field/get_field and the v1 serialization ----------------

FIXED_ID = {"uuid": "12345678-1234-5678-1234-567812345678"}
FIXED_TIME = {"datetime": [2016, 2, 23, 0, 3, 17]}


def field(key: str, value: Any, kind: str = "NORMAL", obfuscate: bool = False) -> list[Any]:
    return [key, value, kind, obfuscate]


def event_cases() -> dict[str, dict[str, Any]]:
    j = lambda value: {"json": value}  # noqa: E731
    fixed = {"timestamp": FIXED_TIME, "id": FIXED_ID}
    cases: dict[str, dict[str, Any]] = {
        "defaults": {"fields": [field("a", j(1))], "get": ["a", "missing"]},
        "every kind": {
            **fixed,
            "fields": [
                field("normal", j("value1")),
                field("ip", j("10.0.0.1"), "OBFUSCATED"),
                field("request_id", j("abc"), "HIGH_CARDINALITY"),
                field("count", j(0)),
                field("flag", j(False)),
                field("ratio", j(0.25)),
                field("items", j([1, "two", None])),
                field("nested", j({"a": {"b": [True]}})),
                field("empty_list", j([])),
                field("empty_dict", j({})),
                field("zero_hc", j(0), "HIGH_CARDINALITY"),
                field("false_obf", j(False), "OBFUSCATED"),
                field("tuple", {"tuple": [1, 2]}),
            ],
            "get": ["normal", "ip", "request_id", "count", "flag", "items", "tuple", "missing"],
        },
        "None and empty strings are dropped": {
            **fixed,
            "fields": [
                field("empty", j("")),
                field("null", j(None)),
                field("empty_obf", j(""), "OBFUSCATED"),
                field("null_hc", j(None), "HIGH_CARDINALITY"),
                field("space", j(" ")),
                field("kept", j("x")),
                field("kept", j(None)),
                field("kept2", j("y")),
                field("kept2", j("")),
            ],
            "get": ["empty", "null", "empty_obf", "space", "kept", "kept2"],
        },
        "obfuscate flag": {
            **fixed,
            "fields": [
                field("ip", j("10.0.0.1"), "NORMAL", True),
                field("hc", j("x"), "HIGH_CARDINALITY", True),
                field("not", j("y"), "NORMAL", False),
            ],
            "get": ["ip", "hc"],
        },
        "set again moves between sections": {
            **fixed,
            "fields": [
                field("foo", j("bar")),
                field("foo", j("bar"), "OBFUSCATED"),
                field("moved", j(1), "HIGH_CARDINALITY"),
                field("moved", j(2)),
            ],
            "get": ["foo", "moved"],
        },
        "section names as normal fields": {
            **fixed,
            "fields": [field("obfuscated_data", j({"ip": "10.0.0.1"})), field("x", j(1))],
            "get": ["obfuscated_data"],
        },
        "section name dict merging with a section": {
            **fixed,
            "fields": [field("obfuscated_data", j({"a": 1})), field("ip", j("1"), "OBFUSCATED")],
        },
        "section name colliding with a section": {
            **fixed,
            "fields": [field("obfuscated_data", j("x")), field("ip", j("1"), "OBFUSCATED")],
            "get": ["obfuscated_data", "ip"],
        },
        "values JSON cannot hold": {
            **fixed,
            "fields": [field("when", {"datetime": [2020, 1, 1]}), field("ok", j(1))],
            "get": ["when", "ok"],
        },
        "a set": {**fixed, "fields": [field("s", {"set": [1]})], "get": ["s"]},
        "an object": {**fixed, "fields": [field("o", {"object": True}, "OBFUSCATED")]},
        "bytes": {**fixed, "fields": [field("b", {"bytes": "abc"})], "get": ["b"]},
        "empty bytes": {**fixed, "fields": [field("b", {"bytes": ""})], "get": ["b"]},
        "not a number": {**fixed, "fields": [field("ratio", {"nan": True})]},
        "topic and type as given": {"topic": None, "type": 7, **fixed},
        # timestamps: datetimes in UTC, naive ones taken as UTC
        "naive timestamp": {"timestamp": FIXED_TIME, "id": FIXED_ID},
        "sub-second timestamp": {
            "timestamp": {"datetime": [2016, 2, 23, 0, 3, 17, 999999]},
            "id": FIXED_ID,
        },
        "UTC timestamp": {"timestamp": {**FIXED_TIME, "tz_minutes": 0}, "id": FIXED_ID},
        "non-UTC timestamp": {"timestamp": {**FIXED_TIME, "tz_minutes": 120}},
        "negative offset timestamp": {"timestamp": {**FIXED_TIME, "tz_minutes": -300}},
        "before the epoch": {"timestamp": {"datetime": [1969, 12, 31, 23, 59, 59]}, "id": FIXED_ID},
        "number timestamp": {"timestamp": j(1456185797.0)},
        "text timestamp": {"timestamp": j("2016-02-23")},
        "zero timestamp": {"timestamp": j(0), "id": FIXED_ID},
        # ids: anything, str() on the wire; a false one means a new UUID
        "text id": {"timestamp": FIXED_TIME, "id": j("abc")},
        "integer id": {"timestamp": FIXED_TIME, "id": j(5)},
        "zero id": {"timestamp": FIXED_TIME, "id": j(0)},
        "empty id": {"timestamp": FIXED_TIME, "id": j("")},
    }
    return cases


def v1_fails(answer: dict[str, Any]) -> bool:
    return bool(answer["v1"].get("error") == "TypeError")


# The events whose answers differ: (ours, reddit's).
EVENT_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # NaN is not JSON: reddit's json.dumps writes a bare NaN, which the collector's JSON
    # parser refuses (with the rest of its batch); ours refuses to serialize the event
    "not a number": (
        v1_fails,
        lambda answer: math.isnan(answer["v1"]["value"]["payload"]["ratio"]),
    ),
    # a NORMAL field named like a section and fields of that kind: reddit's setdefault finds
    # the field's own dict and adds to it (changing the application's value); ours refuses
    # the ambiguity as it does when the field is not a dict (where reddit fails too)
    "section name dict merging with a section": (
        v1_fails,
        lambda answer: answer["v1"]["value"]["payload"] == {"obfuscated_data": {"a": 1, "ip": "1"}},
    ),
}


def test_events() -> None:
    cases = event_cases()
    request = {"events": list(cases.values())}
    our_answers, their_answers = ours("events", request), run_peer("events", request)
    compare(list(cases), our_answers["events"], their_answers["events"], EVENT_DIFFERENCES)


# --- baseplate.events: EventQueue.put ------------------------------------------------------

# Small queues: the production size (10000 events of 102400 bytes) is above what the
# kernel allows a queue here, and a queue that exists already is opened as it is.
QUEUE_MESSAGES = 10
QUEUE_MESSAGE_SIZE = 8192


@pytest.fixture
def event_queue_names() -> Iterator[tuple[str, str]]:
    """Two new, small ``/events-<name>`` queues (ours, reddit's); unlinked after."""
    names = (f"cfgdiff-{uuid.uuid4().hex[:12]}", f"cfgdiff-{uuid.uuid4().hex[:12]}")
    queues = [
        posix_ipc.MessageQueue(
            "/events-" + name,
            posix_ipc.O_CREX,
            max_messages=QUEUE_MESSAGES,
            max_message_size=QUEUE_MESSAGE_SIZE,
        )
        for name in names
    ]
    try:
        yield names
    finally:
        for queue in queues:
            queue.unlink()
            queue.close()


def queue_puts() -> dict[str, dict[str, Any]]:
    fixed = {"timestamp": FIXED_TIME, "id": FIXED_ID}

    def event(*fields: list[Any]) -> dict[str, Any]:
        return {**fixed, "fields": list(fields)}

    return {
        "v1": {
            "serializer": "v1",
            "event": event(field("a", {"json": 1}), field("ip", {"json": "::1"}, "OBFUSCATED")),
        },
        "v1 over the event size limit": {
            "serializer": "v1",
            "event": event(field("blob", {"repeat": ["x", 102400]})),
        },
        "v1 within the limit but over this queue's message size": {
            "serializer": "v1",
            "event": event(field("blob", {"repeat": ["x", 9000]})),
        },
        "v1 not JSON": {"serializer": "v1", "event": event(field("s", {"set": [1]}))},
        "v1 not an Event": {"serializer": "v1", "value": {"json": {"a": 1}}},
        "v2": {"serializer": "v2", "loid": {"id": "t2_1", "created_ms": 5}},
        "v2 not a Thrift struct": {"serializer": "v2", "value": {"json": "not a struct"}},
        "a failing serializer": {"serializer": "broken", "event": event()},
    }


# The puts whose outcomes differ: (ours, reddit's).
PUT_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # a queue whose messages are smaller than the documented 102400 bytes (only ever made
    # outside production, as here): ours says the event is too large for it, reddit's lets
    # the queue library's ValueError through
    "v1 within the limit but over this queue's message size": (
        error("EventTooLargeError"),
        error("ValueError"),
    ),
    # not a Thrift struct: ours says so (TypeError), reddit's fails inside thrift
    "v2 not a Thrift struct": (error("TypeError"), error("AttributeError")),
}


def test_event_queue_put(event_queue_names: tuple[str, str]) -> None:
    puts = queue_puts()
    our_name, their_name = event_queue_names
    fill = QUEUE_MESSAGES
    our_answer = ours("event-queue", {"queue": our_name, "puts": list(puts.values()), "fill": fill})
    their_answer = run_peer(
        "event-queue", {"queue": their_name, "puts": list(puts.values()), "fill": fill}
    )

    compare(list(puts), our_answer["puts"], their_answer["puts"], PUT_DIFFERENCES)
    # two events were queued; the rest of the queue fills up, then puts fail at once
    assert our_answer["fill"] == their_answer["fill"]
    assert (
        our_answer["fill"]
        == [{"value": None}] * (QUEUE_MESSAGES - 2)
        + [error("EventQueueFullError", value_error=False, type_error=False, assertion=False)] * 2
    )
    # what the publisher reads is the same JSON (v1) and the same bytes (v2)
    assert our_answer["messages"] == their_answer["messages"]
    assert our_answer["messages"][:2] == [
        {
            "event_topic": "topic",
            "event_type": "type",
            "event_ts": 1456185797000,
            "uuid": FIXED_ID["uuid"],
            "payload": {"a": 1, "obfuscated_data": {"ip": "::1"}},
        },
        {"1": {"str": "t2_1"}, "2": {"i64": 5}},
    ]


# --- baseplate.metrics_client_from_config ---------------------------------------------------


@pytest.fixture
def statsd() -> Iterator[socket.socket]:
    """A UDP socket on loopback standing in for statsd."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    yield receiver
    receiver.close()


def received(receiver: socket.socket) -> list[str]:
    """Every datagram that reaches ``receiver`` until none has come for a moment (our
    transport sends from a background thread)."""
    datagrams = []
    receiver.settimeout(0.5)
    while True:
        try:
            datagrams.append(receiver.recv(65536).decode())
        except TimeoutError:
            return datagrams


def metrics_cases(port: int) -> dict[str, dict[str, Any]]:
    endpoint = f"127.0.0.1:{port}"
    return {
        "sends": {
            "raw": {"metrics.namespace": "myapp", "metrics.endpoint": endpoint},
            "send": True,
        },
        "dotted namespace": {
            "raw": {"metrics.namespace": "my.app.", "metrics.endpoint": endpoint},
            "send": True,
        },
        "empty endpoint discards": {
            "raw": {"metrics.namespace": "myapp", "metrics.endpoint": ""},
            "send": True,
        },
        "no endpoint discards": {"raw": {"metrics.namespace": "myapp"}, "send": True},
        "empty namespace": {"raw": {"metrics.namespace": "", "metrics.endpoint": ""}},
        "no namespace": {"raw": {"metrics.endpoint": endpoint}},
        "nothing": {"raw": {}},
        "endpoint without port": {"raw": {"metrics.namespace": "a", "metrics.endpoint": "host"}},
        "endpoint bad port": {"raw": {"metrics.namespace": "a", "metrics.endpoint": "h:port"}},
        "non-ASCII namespace": {"raw": {"metrics.namespace": "caf\u00e9", "metrics.endpoint": ""}},
    }


# (ours, reddit's)
METRICS_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # statsd names are ASCII: both refuse, ours naming the key, reddit's with the codec's
    # UnicodeEncodeError
    "non-ASCII namespace": (
        config_error("metrics.namespace"),
        error("UnicodeEncodeError", value_error=True),
    ),
}


def test_metrics_client_from_config(statsd: socket.socket) -> None:
    cases = metrics_cases(statsd.getsockname()[1])
    request = {"cases": list(cases.values())}

    our_answer = ours("metrics", request)
    our_datagrams = received(statsd)
    their_answer = run_peer("metrics", request)
    their_datagrams = received(statsd)

    compare(list(cases), our_answer["cases"], their_answer["cases"], METRICS_DIFFERENCES)
    assert our_answer["cases"][0] == {"value": {"namespace": "myapp", "discards": False}}
    assert our_answer["cases"][2] == {"value": {"namespace": "myapp", "discards": True}}
    # each client sends from its own background sender: order is kept per client only
    assert sorted(our_datagrams) == sorted(their_datagrams)
    assert [d for d in our_datagrams if d.startswith("myapp.")][:5] == [
        "myapp.requests:1|c",
        "myapp.errors:2|c|@0.5",
        "myapp.latency:1500|ms",
        "myapp.workers:4|g",
        "myapp.sizes:320|h",
    ]


# --- baseplate.tracing_client_from_config ---------------------------------------------------


@pytest.fixture
def trace_queue_name() -> Iterator[str]:
    """A new, small ``/traces-<name>`` queue (reddit's recorder opens it when configured)."""
    name = f"cfgdiff-{uuid.uuid4().hex[:12]}"
    queue = posix_ipc.MessageQueue(
        "/traces-" + name, posix_ipc.O_CREX, max_messages=QUEUE_MESSAGES, max_message_size=1024
    )
    yield name
    queue.unlink()
    queue.close()


def tracing_cases(queue_name: str) -> dict[str, dict[str, Any]]:
    def svc(**keys: str) -> dict[str, str]:
        return {"tracing.service_name": "svc", **{f"tracing.{k}": v for k, v in keys.items()}}

    cases: dict[str, dict[str, Any]] = {
        "unconfigured logs": {"raw": svc()},
        "unconfigured discards": {"raw": svc(), "kwargs": {"log_if_unconfigured": False}},
        "unconfigured logs when asked": {"raw": svc(), "kwargs": {"log_if_unconfigured": True}},
        "no service name": {"raw": {}},
        "empty service name": {"raw": {"tracing.service_name": ""}},
        "endpoint": {"raw": svc(endpoint="127.0.0.1:9411")},
        "endpoint and every setting": {
            "raw": svc(
                endpoint="zipkin.example.com:9411",
                max_span_queue_size="1000",
                num_span_workers="2",
                span_batch_interval="2 seconds",
                num_conns="7",
                sample_rate="50%",
            )
        },
        "queue": {"raw": svc(queue_name=queue_name)},
        "queue wins over endpoint": {"raw": svc(queue_name=queue_name, endpoint="127.0.0.1:1")},
        "settings without exporter": {
            "raw": svc(
                max_span_queue_size="10", num_span_workers="1", span_batch_interval="1 second"
            )
        },
        "bad endpoint": {"raw": svc(endpoint="zipkin")},
        "bad max_span_queue_size": {"raw": svc(max_span_queue_size="many")},
        "bad num_span_workers": {"raw": svc(num_span_workers="1.5")},
        "bad span_batch_interval": {"raw": svc(span_batch_interval="soon")},
        "bad num_conns": {"raw": svc(num_conns="x")},
    }
    for rate in ("37%", "0.37", "0%", "100%", "0", "1", "1.0", "", "12.5%"):
        cases[f"sample_rate {rate!r}"] = {"raw": svc(sample_rate=rate)}
    for rate in ("150%", "-1%", "abc", "37 %", "%"):
        cases[f"sample_rate {rate!r}"] = {"raw": svc(sample_rate=rate)}
    # where the two differ (see TRACING_DIFFERENCES)
    for rate in ("1.5", "-0.1"):
        cases[f"sample_rate {rate!r}"] = {"raw": svc(sample_rate=rate)}
    cases["span_batch_interval in seconds"] = {"raw": svc(span_batch_interval="0.25")}
    cases["zero max_span_queue_size"] = {"raw": svc(max_span_queue_size="0")}
    cases["zero num_span_workers"] = {"raw": svc(num_span_workers="0")}
    return cases


def described_tracing(**settings: Any) -> dict[str, Any]:
    described = {
        "service_name": "svc",
        "sample_rate": 0.1,
        "kind": "console",
        "max_span_queue_size": 50000,
        "span_batch_interval": 0.5,
        "num_span_workers": 5,
    }
    described.update(settings)
    return {"value": described}


TRACING_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # a rate is a fraction between 0 and 1 (the reference: "percentage ... e.g. 37%");
    # reddit's Float fallback takes any number and its sampler then samples all or nothing
    "sample_rate '1.5'": (config_error("tracing.sample_rate"), described_tracing(sample_rate=1.5)),
    "sample_rate '-0.1'": (
        config_error("tracing.sample_rate"),
        described_tracing(sample_rate=-0.1),
    ),
    # the reference: "Wait time for span processing in seconds"; ours also takes a number
    # of seconds, reddit's only a timespan
    "span_batch_interval in seconds": (
        described_tracing(span_batch_interval=0.25),
        config_error("tracing.span_batch_interval"),
    ),
    # a zero-sized queue or no workers cannot work: reddit's queue.Queue(0) is unbounded
    # and with no worker nothing is ever recorded; ours refuses both
    "zero max_span_queue_size": (
        config_error("tracing.max_span_queue_size"),
        described_tracing(max_span_queue_size=0),
    ),
    "zero num_span_workers": (
        config_error("tracing.num_span_workers"),
        described_tracing(num_span_workers=0),
    ),
}


def test_tracing_client_from_config(trace_queue_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    cases = tracing_cases(trace_queue_name)
    request = {"cases": list(cases.values())}
    our_answer, their_answer = ours("tracing", request), run_peer("tracing", request)

    compare(list(cases), our_answer["cases"], their_answer["cases"], TRACING_DIFFERENCES)
    answers = dict(zip(cases, our_answer["cases"], strict=True))
    assert answers["unconfigured logs"] == described_tracing()
    assert answers["unconfigured discards"] == described_tracing(kind="none")
    assert answers["endpoint and every setting"] == described_tracing(
        kind="zipkin",
        endpoint="zipkin.example.com:9411",
        num_conns=7,
        max_span_queue_size=1000,
        num_span_workers=2,
        span_batch_interval=2.0,
        sample_rate=0.5,
    )
    assert answers["queue"] == {
        "value": {
            "service_name": "svc",
            "sample_rate": 0.1,
            "kind": "sidecar",
            "queue": "/traces-" + trace_queue_name,
        }
    }
    assert answers["sample_rate '37%'"] == answers["sample_rate '0.37'"]
    assert answers["sample_rate '37%'"] == described_tracing(sample_rate=0.37)


# --- baseplate.error_reporter_from_config ---------------------------------------------------

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
DSN = "https://public:secret@sentry.example.com/42"


def application_modules(root: Path) -> tuple[list[str], dict[str, str]]:
    """Application modules for the reporter's ``module_name``: one in a git checkout (its
    release is the checkout's commit), one in a package there, one outside any checkout.
    Return the directories to import them from and their names."""
    tag = uuid.uuid4().hex[:8]
    checkout = root / "checkout"
    (checkout / ".git" / "refs" / "heads").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / ".git" / "refs" / "heads" / "main").write_text(GIT_SHA + "\n")
    names = {
        "app": f"cfgdiff_app_{tag}",
        "pkg": f"cfgdiff_pkg_{tag}",
        "plain": f"cfgdiff_plain_{tag}",
    }
    (checkout / f"{names['app']}.py").write_text("")
    (checkout / names["pkg"]).mkdir()
    (checkout / names["pkg"] / "__init__.py").write_text("")
    (checkout / names["pkg"] / "sub.py").write_text("")
    names["sub"] = names["pkg"] + ".sub"
    plain = root / "plain"
    plain.mkdir()
    (plain / f"{names['plain']}.py").write_text("")
    return [str(checkout), str(plain)], names


def sentry_cases(names: dict[str, str]) -> dict[str, dict[str, Any]]:
    app = names["app"]

    def case(module: str = app, **keys: str) -> dict[str, Any]:
        return {"raw": {f"sentry.{key}": value for key, value in keys.items()}, "module": module}

    return {
        "nothing configured": case(),
        "blank dsn": case(dsn=""),
        "dsn": case(dsn=DSN),
        "dsn without secret": case(dsn="https://public@sentry.example.com/42"),
        "every key": case(
            dsn=DSN,
            site="site-1",
            environment="staging",
            ignore_exceptions="KeyError, myapp.errors.*",
            sample_rate="37%",
            processors="raven.processors.SanitizePasswordsProcessor, "
            "raven.processors.RemovePostDataProcessor",
        ),
        "one processor": case(processors="raven.processors.RemoveStackLocalsProcessor"),
        "sample_rate 0%": case(sample_rate="0%"),
        "sample_rate 100%": case(sample_rate="100%"),
        "sample_rate without %": case(sample_rate="0.5"),
        "sample_rate over 100%": case(sample_rate="101%"),
        "bad dsn": case(dsn="not a dsn"),
        "dsn of an unknown scheme": case(dsn="ftp://public:secret@sentry.example.com/42"),
        "module in a package": case(names["sub"]),
        "module outside a checkout": case(names["plain"]),
        # where the two differ (see SENTRY_DIFFERENCES)
        "include and exclude paths": case(include_paths="myapp, lib", exclude_paths="myapp.vendor"),
        "module never imported": case("cfgdiff_not_a_module"),
    }


def reporter(**settings: Any) -> dict[str, Any]:
    inactive = {"active": False, "base_url": None, "project": None}
    described = {
        "dsn": inactive | {"public_key": None, "secret_key": None},
        "enabled": False,
        "site": None,
        "environment": None,
        "include_paths": [],
        "exclude_paths": [],
        "ignore_exceptions": [],
        "sample_rate": 1,
        "processors": ["raven.processors.SanitizePasswordsProcessor"],
        "release": GIT_SHA,
    }
    described.update(settings)
    return {"value": described}


SENTRY_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # the reference: "Comma-delimited list of paths"; reddit's passes the text itself, which
    # raven turns into a set of its characters
    "include and exclude paths": (
        reporter(include_paths=["lib", "myapp"], exclude_paths=["myapp.vendor"]),
        reporter(
            include_paths=sorted(set("myapp, lib")), exclude_paths=sorted(set("myapp.vendor"))
        ),
    ),
    # a module that was never imported has no checkout to take a release from; reddit's
    # fails with a KeyError from sys.modules
    "module never imported": (reporter(release=None), error("KeyError")),
}


@pytest.mark.filterwarnings("ignore:Transport selection via DSN:UserWarning")
def test_error_reporter_from_config(tmp_path: Path) -> None:
    paths, names = application_modules(tmp_path)
    cases = sentry_cases(names)
    request = {"paths": paths, "import": [names["app"], names["sub"], names["plain"]]}
    request["cases"] = list(cases.values())
    our_answer, their_answer = ours("sentry", request), run_peer("sentry", request)

    # ours always counts the application's root package as its own code (include_paths),
    # as the operations guide says; reddit's only uses module_name for the release
    for case, answer in zip(cases.values(), our_answer["cases"], strict=True):
        if "value" in answer:
            answer["value"]["include_paths"].remove(case["module"].split(".")[0])

    compare(list(cases), our_answer["cases"], their_answer["cases"], SENTRY_DIFFERENCES)
    answers = dict(zip(cases, our_answer["cases"], strict=True))
    assert answers["nothing configured"] == reporter()
    assert answers["every key"] == reporter(
        dsn={
            "active": True,
            "base_url": "https://sentry.example.com",
            "project": "42",
            "public_key": "public",
            "secret_key": "secret",
        },
        enabled=True,
        site="site-1",
        environment="staging",
        ignore_exceptions=["KeyError", "myapp.errors.*"],
        sample_rate=0.37,
        processors=[
            "raven.processors.SanitizePasswordsProcessor",
            "raven.processors.RemovePostDataProcessor",
        ],
    )
    assert answers["module outside a checkout"] == reporter(release=None)
    assert answers["sample_rate without %"] == config_error("sentry.sample_rate") | {
        "value_error": False,
        "type_error": False,
        "assertion": False,
    }
    # reddit's client replaces sys.excepthook (raven's default); ours reports through
    # baseplate's server spans only and leaves the process's hooks alone
    assert (our_answer["installs_sys_hook"], their_answer["installs_sys_hook"]) == (False, True)


# --- the instrumented clients' and the library's other helpers ------------------------------


def write_secrets(path: Path) -> Path:
    document = {
        "secrets": {
            "secret/zk": {"type": "simple", "value": "user:pass"},
            "secret/zk2": {"type": "simple", "value": "dXNlcjI6cGFzczI=", "encoding": "base64"},
            "secret/db": {"type": "credential", "username": "dbuser", "password": "dbpass"},
        },
        "vault": {"url": "http://127.0.0.1:8200/", "token": "t"},
    }
    path.write_text(json.dumps(document))
    return path


def helper_cases(tmp_path: Path) -> dict[str, dict[str, Any]]:
    secrets = str(write_secrets(tmp_path / "secrets.json"))
    experiments = tmp_path / "experiments.json"
    experiments.write_text(json.dumps({"exp": {"id": 1, "type": "r2"}}))
    missing = str(tmp_path / "missing.json")
    cases: dict[str, dict[str, Any]] = {}

    def add(helper: str, label: str, raw: dict[str, str], **more: Any) -> None:
        cases[f"{helper}: {label}"] = {"helper": helper, "raw": raw, **more}

    # baseplate.context.redis.pool_from_config
    add("redis", "url", {"redis.url": "redis://localhost:6379/3"})
    add("redis", "password", {"redis.url": "redis://:hunter2@127.0.0.1:6380/0"})
    add("redis", "unix socket", {"redis.url": "unix:///tmp/redis.sock?db=2"})
    add(
        "redis",
        "every key",
        {
            "redis.url": "redis://localhost/0",
            "redis.max_connections": "7",
            "redis.socket_timeout": "200 milliseconds",
            "redis.socket_connect_timeout": "1 second",
        },
    )
    add("redis", "other prefix", {"cache.url": "redis://h/1"}, args={"prefix": "cache."})
    add(
        "redis",
        "keyword arguments win",
        {"redis.url": "redis://h/1", "redis.max_connections": "7"},
        args={"max_connections": 3},
    )
    add("redis", "no url", {"redis.max_connections": "7"})
    add("redis", "bad max_connections", {"redis.url": "redis://h", "redis.max_connections": "x"})
    add("redis", "timeout without unit", {"redis.url": "redis://h", "redis.socket_timeout": "5"})
    add("redis", "prefix without a dot", {"redis.url": "redis://h"}, args={"prefix": "redis"})
    add("redis", "url without a scheme", {"redis.url": "localhost:6379"})

    # baseplate.context.memcache.pool_from_config
    add("memcache", "endpoint", {"memcache.endpoint": "127.0.0.1:11211"})
    add(
        "memcache",
        "every key",
        {
            "memcache.endpoint": "localhost:11212",
            "memcache.max_pool_size": "5",
            "memcache.connect_timeout": "0.5",
            "memcache.timeout": "1.5",
            "memcache.no_delay": "false",
        },
    )
    add("memcache", "unix socket", {"memcache.endpoint": "/tmp/memcached.sock"})
    add("memcache", "other prefix", {"mc.endpoint": "h:1"}, args={"prefix": "mc."})
    add("memcache", "no endpoint", {})
    add("memcache", "endpoint without port", {"memcache.endpoint": "localhost"})
    add(
        "memcache",
        "timeout as timespan",
        {"memcache.endpoint": "h:1", "memcache.timeout": "1 second"},
    )
    add(
        "memcache", "bad max_pool_size", {"memcache.endpoint": "h:1", "memcache.max_pool_size": "x"}
    )
    add("memcache", "bad no_delay", {"memcache.endpoint": "h:1", "memcache.no_delay": "maybe"})

    # baseplate.context.sqlalchemy.engine_from_config
    pg = "postgresql://user:pw@db.example.com:5433/app?sslmode=require"
    add("sqlalchemy", "url", {"database.url": pg}, args={"prefix": "database."})
    add("sqlalchemy", "documented prefix", {"sqlalchemy.url": pg}, args={"prefix": "sqlalchemy."})
    add("sqlalchemy", "sqlite", {"database.url": "sqlite://"}, args={"prefix": "database."})
    add("sqlalchemy", "default prefix reads database.", {"database.url": pg})
    add(
        "sqlalchemy",
        "credentials from the secrets store",
        {"database.url": pg, "database.credentials_secret": "secret/db"},
        args={"prefix": "database."},
        secrets=secrets,
    )
    add(
        "sqlalchemy",
        "credentials without a secrets store",
        {"database.url": pg, "database.credentials_secret": "secret/db"},
        args={"prefix": "database."},
    )
    add("sqlalchemy", "no url", {"database.echo": "true"}, args={"prefix": "database."})
    # where the two differ (see HELPER_DIFFERENCES)
    add(
        "sqlalchemy",
        "engine settings",
        {
            "sqlalchemy.url": pg,
            "sqlalchemy.pool_size": "7",
            "sqlalchemy.max_overflow": "2",
            "sqlalchemy.pool_recycle": "300",
            "sqlalchemy.echo": "true",
        },
        args={"prefix": "sqlalchemy."},
    )
    add("sqlalchemy", "default prefix reads sqlalchemy.", {"sqlalchemy.url": pg})
    add("sqlalchemy", "not a URL", {"database.url": "not a url"}, args={"prefix": "database."})

    # baseplate.context.kombu
    amqp = "amqp://guest:guest@127.0.0.1:5672/"
    add("kombu-connection", "url", {"amqp.hostname": amqp}, args={"prefix": "amqp."})
    add(
        "kombu-connection",
        "host and virtual host",
        {"amqp.hostname": "rabbit.example.com", "amqp.virtual_host": "vh"},
        args={"prefix": "amqp."},
    )
    add(
        "kombu-connection",
        "keyword arguments pass through",
        {"amqp.hostname": amqp},
        args={"prefix": "amqp.", "heartbeat": 30},
    )
    add("kombu-connection", "no hostname", {"amqp.virtual_host": "vh"}, args={"prefix": "amqp."})
    add(
        "kombu-connection",
        "keyword arguments win",
        {"amqp.hostname": amqp, "amqp.virtual_host": "vh"},
        args={"prefix": "amqp.", "virtual_host": "other"},
    )
    add(
        "kombu-exchange",
        "name and type",
        {"amqp.exchange_name": "events", "amqp.exchange_type": "topic"},
        args={"prefix": "amqp."},
    )
    add("kombu-exchange", "no name", {"amqp.exchange_type": "direct"}, args={"prefix": "amqp."})
    add(
        "kombu-exchange",
        "keyword arguments pass through",
        {"amqp.exchange_type": "fanout"},
        args={"prefix": "amqp.", "durable": False},
    )
    add("kombu-exchange", "no type", {"amqp.exchange_name": "x"}, args={"prefix": "amqp."})
    add(
        "kombu-exchange",
        "keyword arguments win",
        {"amqp.exchange_type": "topic"},
        args={"prefix": "amqp.", "type": "fanout"},
    )

    # baseplate.context.hvac.hvac_factory_from_config
    add("hvac", "defaults", {}, secrets=secrets)
    add("hvac", "timeout", {"vault.timeout": "300 milliseconds"}, secrets=secrets)
    add("hvac", "other prefix", {"v.timeout": "2 seconds"}, secrets=secrets, args={"prefix": "v."})
    add("hvac", "timeout without unit", {"vault.timeout": "3"}, secrets=secrets)

    # baseplate.context.cassandra.cluster_from_config
    add("cassandra", "contact points", {"cassandra.contact_points": "127.0.0.1, 127.0.0.2"})
    add("cassandra", "port", {"cassandra.contact_points": "127.0.0.1", "cassandra.port": "9043"})
    add(
        "cassandra",
        "keyword arguments win",
        {"cassandra.contact_points": "127.0.0.1", "cassandra.port": "9043"},
        args={"port": 9999},
    )
    add("cassandra", "other prefix", {"c.contact_points": "127.0.0.1"}, args={"prefix": "c."})
    add("cassandra", "no contact points", {"cassandra.port": "9042"})
    add("cassandra", "bad port", {"cassandra.contact_points": "h", "cassandra.port": "x"})

    # baseplate.thrift_pool_from_config
    svc = {"prefix": "svc."}
    add("thrift-pool", "endpoint", {"svc.endpoint": "127.0.0.1:9090"}, args=svc)
    add(
        "thrift-pool",
        "every key",
        {
            "svc.endpoint": "localhost:9091",
            "svc.size": "5",
            "svc.max_age": "30 seconds",
            "svc.timeout": "500 milliseconds",
            "svc.max_retries": "7",
        },
        args=svc,
    )
    add("thrift-pool", "unix socket", {"svc.endpoint": "/tmp/thrift.sock"}, args=svc)
    add(
        "thrift-pool",
        "keyword arguments win",
        {"svc.endpoint": "h:1", "svc.size": "5"},
        args={**svc, "size": 2, "protocol_factory": "binary"},
    )
    add("thrift-pool", "no endpoint", {"svc.size": "5"}, args=svc)
    add(
        "thrift-pool", "timeout without unit", {"svc.endpoint": "h:1", "svc.timeout": "1"}, args=svc
    )
    add("thrift-pool", "bad size", {"svc.endpoint": "h:1", "svc.size": "x"}, args=svc)
    add("thrift-pool", "no connections", {"svc.endpoint": "h:1", "svc.size": "0"}, args=svc)

    # baseplate.experiments.experiments_client_from_config
    add("experiments", "path", {"experiments.path": str(experiments)})
    add("experiments", "default path", {})
    add("experiments", "missing file", {"experiments.path": missing})
    add(
        "experiments",
        "missing file with a timeout",
        {"experiments.path": missing, "experiments.timeout": "50 milliseconds"},
    )
    add("experiments", "timeout without unit", {"experiments.timeout": "5"})
    add("experiments", "other prefix", {"e.path": str(experiments)}, args={"prefix": "e."})

    # baseplate.secrets.secrets_store_from_config
    add("secrets", "path", {"secrets.path": secrets})
    add("secrets", "default path", {})
    add("secrets", "missing file", {"secrets.path": missing})
    add("secrets", "missing file with a timeout", {"secrets.path": missing}, args={"timeout": 0.05})

    # baseplate.live_data.zookeeper_client_from_config
    add("zookeeper", "hosts", {"zookeeper.hosts": "zk01:2181,zk02:2182"}, secrets=secrets)
    add(
        "zookeeper",
        "every key",
        {
            "zookeeper.hosts": "zk01:2181,zk02:2181/some/root",
            "zookeeper.credentials": "secret/zk, secret/zk2",
            "zookeeper.timeout": "2 seconds",
        },
        secrets=secrets,
        args={"read_only": True},
    )
    add("zookeeper", "no hosts", {"zookeeper.timeout": "2 seconds"}, secrets=secrets)
    add(
        "zookeeper",
        "timeout without unit",
        {"zookeeper.hosts": "zk01:2181", "zookeeper.timeout": "2"},
        secrets=secrets,
    )
    add(
        "zookeeper",
        "unknown credentials",
        {"zookeeper.hosts": "zk01:2181", "zookeeper.credentials": "secret/nope"},
        secrets=secrets,
    )
    add(
        "zookeeper",
        "credentials without a secrets store",
        {"zookeeper.hosts": "zk01:2181", "zookeeper.credentials": "secret/zk"},
    )
    return cases


HELPER_DIFFERENCES: dict[str, tuple[Any, Any]] = {
    # the reference does not say what a prefix without its dot does: reddit's asserts,
    # ours raises a ValueError saying what is wrong
    "redis: prefix without a dot": (error("ValueError"), error("AssertionError")),
    # ours is a SecretsNotAvailableError too, and the WatchedFileNotAvailableError that
    # reddit's lets through
    "secrets: missing file with a timeout": (
        error("_SecretsFileTimedOutError", watched_file_unavailable=True),
        error("WatchedFileNotAvailableError", watched_file_unavailable=True),
    ),
    # redis-py 2's from_url takes "localhost" for the scheme and the port for the database;
    # ours refuses a URL without a scheme (as every later redis-py does), naming the key
    "redis: url without a scheme": (
        config_error("redis.url"),
        lambda answer: answer["value"]["settings"]["db"] == 6379,
    ),
    # the reference: "Each key is mapped to a corresponding keyword argument on
    # create_engine()"; reddit's 0.30 reads only url and credentials_secret
    "sqlalchemy: engine settings": (
        lambda answer: (
            (
                answer["value"]["pool_size"],
                answer["value"]["max_overflow"],
                answer["value"]["pool_recycle"],
                answer["value"]["echo"],
            )
            == (7, 2, 300, True)
        ),
        lambda answer: (answer["value"]["pool_size"], answer["value"]["echo"]) == (5, False),
    ),
    # the reference's default prefix is sqlalchemy.; reddit's 0.30 changed it to database.
    # (which ours also reads when there is no sqlalchemy.url, see above)
    "sqlalchemy: default prefix reads sqlalchemy.": (
        lambda answer: answer["value"]["host"] == "db.example.com",
        config_error("database.url"),
    ),
    # a malformed URL: ours names the key, reddit's lets SQLAlchemy's ArgumentError through
    "sqlalchemy: not a URL": (config_error("database.url"), error("ArgumentError")),
    # the reference: "Keyword arguments take precedence over the configuration file";
    # reddit's passes both and fails with "got multiple values"
    "kombu-connection: keyword arguments win": (
        lambda answer: answer["value"]["virtual_host"] == "other",
        error("TypeError"),
    ),
    "kombu-exchange: keyword arguments win": (
        lambda answer: answer["value"]["type"] == "fanout",
        error("TypeError"),
    ),
    # a pool without connections can only time out; ours refuses to make one, naming the key
    "thrift-pool: no connections": (
        config_error("svc.size"),
        lambda answer: answer["value"]["size"] == 0,
    ),
    # every duration of ours is a timespan or a number of seconds (baseplate.config.Duration,
    # as tracing.span_batch_interval has it); reddit's timespan keys refuse a bare number and
    # its memcache timeouts a timespan
    "redis: timeout without unit": (
        lambda answer: answer["value"]["settings"]["socket_timeout"] == 5.0,
        config_error("redis.socket_timeout"),
    ),
    "memcache: timeout as timespan": (
        lambda answer: answer["value"]["timeout"] == 1.0,
        config_error("memcache.timeout"),
    ),
    "hvac: timeout without unit": (
        lambda answer: answer["value"]["timeout"] == {"timedelta": 3.0},
        config_error("vault.timeout"),
    ),
    "thrift-pool: timeout without unit": (
        lambda answer: answer["value"]["timeout"] == 1.0,
        config_error("svc.timeout"),
    ),
    # credentials need a secrets store to read them from: ours says so naming the key,
    # reddit's fails calling None.get_simple
    "zookeeper: credentials without a secrets store": (
        config_error("zookeeper.credentials"),
        error("AttributeError"),
    ),
}


def test_config_helpers(tmp_path: Path) -> None:
    cases = helper_cases(tmp_path)
    request = {"cases": list(cases.values())}
    our_answer, their_answer = ours("helpers", request), run_peer("helpers", request)

    compare(list(cases), our_answer["cases"], their_answer["cases"], HELPER_DIFFERENCES)
    # the cases that agree say what the keys mean
    answers = {
        label: answer.get("value") for label, answer in zip(cases, our_answer["cases"], strict=True)
    }
    assert answers["redis: every key"]["max_connections"] == 7
    assert answers["redis: every key"]["settings"] == {
        "host": "localhost",
        "port": 6379,
        "db": 0,
        "password": None,
        "path": None,
        "socket_timeout": 0.2,
        "socket_connect_timeout": 1.0,
    }
    assert answers["memcache: every key"] == {
        "class": "PooledClient",
        "server": ["localhost", 11212],
        "connect_timeout": 0.5,
        "timeout": 1.5,
        "no_delay": False,
        "max_pool_size": 5,
    }
    assert answers["sqlalchemy: credentials from the secrets store"]["username"] == "dbuser"
    assert answers["sqlalchemy: credentials from the secrets store"]["password"] == "dbpass"
    assert answers["kombu-connection: host and virtual host"]["virtual_host"] == "vh"
    assert answers["kombu-exchange: name and type"]["type"] == "topic"
    assert answers["hvac: defaults"] == {"timeout": {"timedelta": 1.0}, "has_secrets": True}
    assert answers["cassandra: keyword arguments win"]["port"] == 9999
    assert answers["thrift-pool: endpoint"] == {
        "endpoint": {"family": socket.AF_INET, "address": ["127.0.0.1", 9090]},
        "size": 10,
        "max_age": 60.0,
        "timeout": 1.0,
        "max_retries": 3,
        "protocol_factory": "THeaderProtocolFactory",
    }
    assert answers["thrift-pool: every key"]["max_age"] == 30.0
    assert answers["experiments: path"]["data"] == {
        "value": {"dict": {"exp": {"dict": {"id": 1, "type": "r2"}}}}
    }
    assert answers["zookeeper: every key"] == {
        "hosts": [["zk01", 2181], ["zk02", 2181]],
        "chroot": "/some/root",
        "session_timeout": 2000,
        "auth_data": [["digest", "user2:pass2"], ["digest", "user:pass"]],
        "read_only": True,
        "retry": {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_jitter": 1, "max_delay": 60.0},
    }
