"""Differential tests of the pure-Python library modules against reddit's own baseplate.

The same scenarios run on both sides: reddit's baseplate in its own process
(``reddit_peer_library.py``, one run per test) and ours in this one, through the very same
drivers. Answers (values, exception class names and, for configuration errors, the key
named) are compared whole. Where the two differ on purpose, each side's answer is asserted
explicitly, with the reason next to it.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import uuid
from pathlib import Path
from typing import Any

from . import reddit_peer_library as drivers
from .conftest import run_peer_script

PEER_SCRIPT = Path(__file__).with_name("reddit_peer_library.py")

OURS = drivers.library_modules()


def run_peer(area: str, request: Any) -> Any:
    """Run one driver with reddit's baseplate; return its JSON answer."""
    return run_peer_script(PEER_SCRIPT, area, request=request)


def both(area: str, request: Any) -> tuple[Any, Any]:
    """(our answer, reddit's answer) to the same request, both through JSON."""
    ours = json.loads(json.dumps(drivers.DRIVERS[area](OURS, request)))
    return ours, run_peer(area, request)


def summary(answer: dict[str, Any]) -> Any:
    """A case's outcome in short: the value, or ``"!"`` and the error (``"!ValueError"``
    for any ValueError, whatever its subclass)."""
    if "value" in answer:
        return answer["value"]
    return "!ValueError" if answer["value_error"] else f"!{answer['error']}"


# --- baseplate.config ----------------------------------------------------------------------

CARDS = {"OneOf": {"clubs": 1, "spades": 2, "diamonds": 3, "hearts": 4}}
TD = "timedelta"

# (value type, raw text) for which the two differ: (our outcome, reddit's outcome). The
# reference is silent on all of these unless said otherwise; where ours is the stricter,
# reddit silently accepts a value no configuration means.
VALUE_DIFFERENCES: dict[tuple[str, str], tuple[Any, Any]] = {
    # surrounding whitespace (INI files never have it: configparser strips values)
    ('"Boolean"', " true"): (True, "!ValueError"),
    ('"Boolean"', "true "): (True, "!ValueError"),
    ('"Percent"', "50% "): (0.5, "!ValueError"),
    # ports outside 0-65535 cannot be connected to or bound
    ('"Endpoint"', "host:65536"): ("!ValueError", {"family": 2, "address": ["host", 65536]}),
    ('"Endpoint"', "host:-1"): ("!ValueError", {"family": 2, "address": ["host", -1]}),
    # the port is after the LAST colon, so IPv6 hosts work (reddit splits at the first)
    ('"Endpoint"', "::1:80"): ({"family": 2, "address": ["::1", 80]}, "!ValueError"),
    ('"Endpoint"', "a:b:80"): ({"family": 2, "address": ["a:b", 80]}, "!ValueError"),
    # a timespan is a whole, non-negative number and a unit, in any case, space optional;
    # reddit's int() takes signs and its rstrip("s") any number of trailing s's
    ('"Timespan"', "-1 seconds"): ("!ValueError", {TD: -1.0}),
    ('"Timespan"', "+2 seconds"): ("!ValueError", {TD: 2.0}),
    ('"Timespan"', "1 secondss"): ("!ValueError", {TD: 1.0}),
    ('"Timespan"', "1 Second"): ({TD: 1.0}, "!ValueError"),
    ('"Timespan"', "1 SECONDS"): ({TD: 1.0}, "!ValueError"),
    ('"Timespan"', "1second"): ({TD: 1.0}, "!ValueError"),
    # reddit's b64decode drops characters outside the alphabet (and stops at padding):
    # garbage in, silently different bytes out; ours refuses it
    ('"Base64"', "!!!!"): ("!ValueError", {"bytes": ""}),
    ('"Base64"', "aGVsbG8=!"): ("!ValueError", {"bytes": "aGVsbG8="}),
    ('"Base64"', "YQ==YQ=="): ("!ValueError", {"bytes": "YQ=="}),
    ('"Base64"', "="): ("!ValueError", {"bytes": ""}),
    # the reference: "At least one value must be provided" (reddit gives [] for commas)
    (json.dumps({"TupleOf": CARDS}), ","): ("!ValueError", []),
    (json.dumps({"TupleOf": CARDS}), " , "): ("!ValueError", []),
}


def value_cases(scratch: Path) -> list[dict[str, Any]]:
    me = pwd.getpwuid(os.getuid()).pw_name
    my_group = grp.getgrgid(os.getgid()).gr_name
    (scratch / "f.txt").write_text("cool")
    cases: list[dict[str, Any]] = []

    def add(value_type: Any, *texts: str) -> None:
        cases.extend({"type": value_type, "text": text} for text in texts)

    add("String", "", "x", " ", "a b")
    add("Integer", "1", "-3", " 12 ", "+4", "1.0", "0x10", "1e3", "", "abc", "1_000", "٣")
    add({"Integer": {"base": 16}}, "ff", "0xff", "FF", "g", "", "10")
    add({"Integer": {"base": 2}}, "101", "0b101", "2")
    add({"Integer": {"base": 0}}, "0x10", "010", "10")
    add("Float", "1.5", "-2", "1e3", "inf", "", "abc", " 3.5 ", "1,5")
    add("Boolean", "true", "false", "True", "FALSE", "tRuE", "", " true", "true ")
    add("Boolean", "yes", "no", "1", "0", "on", "off", "t", "f", "y")
    add("Endpoint", "localhost:9090", "127.0.0.1:80", "host:0", "host:65535", "host:65536")
    add("Endpoint", "host:-1", ":80", "host:", ":", "host", "", "host:port", "host: 80")
    add("Endpoint", "/tmp/sock", "./rel/sock", "unix:/tmp/x", "::1:80", "a:b:80")
    for unit in ("millisecond", "second", "minute", "hour", "day"):
        add("Timespan", f"1 {unit}", f"3 {unit}s", f"1 {unit}s", f"0 {unit}s", f"2.5 {unit}s")
    add("Timespan", "", "1", "seconds", "-1 seconds", "+2 seconds", "1 week", "1 Second")
    add("Timespan", "1 SECONDS", "1second", "  1   second  ", "1 secondss", "1 sec", "1 ms")
    add("Timespan", "1 seconds extra", "1 second 2 seconds")
    add("Base64", "aGVsbG8=", "aGVsbG8", "", "!!!!", "aGVs\nbG8=", "aGVs bG8=", "aGVsbG8=!")
    add("Base64", "a-_b", "YQ==YQ==", "=", "AAECAwQF")
    add({"File": {}}, str(scratch / "f.txt"), str(scratch / "nope.txt"), "", str(scratch))
    add({"File": {"mode": "rb"}}, str(scratch / "f.txt"))
    add({"File": {"mode": "w"}}, str(scratch / "new.txt"), str(scratch / "nodir" / "new.txt"))
    add("Percent", "37.1%", "44%", "0%", "100%", "100.1%", "-1%", "50", "", "%", "abc%")
    add("Percent", " 50%", "50% ", "50 %", "1e1%")
    add("UnixUser", me, "root", "no-such-user-xyz", "", "0")
    add("UnixGroup", my_group, "root", "no-such-group-xyz", "", "0")
    add(CARDS, "clubs", "hearts", "Clubs", "", " clubs", "joker")
    add({"TupleOf": CARDS}, "clubs, spades, diamonds", "clubs", "clubs,", ",", " , ", "")
    add({"TupleOf": CARDS}, "clubs,,spades", "clubs, joker")
    add({"TupleOf": "Integer"}, "1,2,3", "1, x", "1 2")
    add({"TupleOf": "String"}, "a,b", "a, ,b")
    add({"Optional": ["Integer", 9001]}, "", "5", "x")
    add({"Optional": ["Integer", None]}, "")
    add({"Optional": [{"TupleOf": "String"}, []]}, "", "a,b")
    add({"Optional": ["Endpoint", None]}, "", "localhost:1", "bad")
    add({"Fallback": ["Timespan", "Integer"]}, "30 seconds", "30", "x", "")
    add({"Fallback": ["Integer", "Boolean"]}, "1", "true", "x")
    add({"Fallback": ["Percent", "Float"]}, "50%", "0.5", "x%")
    return cases


def test_config_value_types(tmp_path: Path) -> None:
    cases = value_cases(tmp_path)
    ours, theirs = both("config", {"parse": [], "values": cases})

    seen = set()
    for case, our, their in zip(cases, ours["values"], theirs["values"], strict=True):
        key = (json.dumps(case["type"]), case["text"])
        if key in VALUE_DIFFERENCES:
            seen.add(key)
            assert (summary(our), summary(their)) == VALUE_DIFFERENCES[key], key
        else:
            assert summary(our) == summary(their), key
    assert seen == set(VALUE_DIFFERENCES)


def test_config_parse_config(tmp_path: Path) -> None:
    some_file = tmp_path / "whatever.txt"
    some_file.write_text("cool")
    # the reference's INI example, as dict(config_parser.items("app:main")) gives it
    example_raw = {
        "simple": "true",
        "cards": "clubs, spades, diamonds",
        "nested.once": "1",
        "nested.really.deep": "3 seconds",
        "some_file": str(some_file),
        "sample_rate": "37.1%",
        "interval": "30 seconds",
    }
    example_spec = {
        "simple": "Boolean",
        "cards": {"TupleOf": CARDS},
        "nested": {"spec": {"once": "Integer", "really": {"spec": {"deep": "Timespan"}}}},
        "some_file": {"File": {"mode": "r"}},
        "optional": {"Optional": ["Integer", 9001]},
        "sample_rate": "Percent",
        "interval": {"Fallback": ["Timespan", "Integer"]},
    }
    population = {
        "population.cn": "1383890000",
        "population.in": "1317610000",
        "population.us": "325165000",
        "population.id": "263447000",
        "population.br": "207645000",
    }
    countries = {}
    for code, people, capital in [
        ("cn", "1383890000", "Beijing"),
        ("in", "1317610000", "New Delhi"),
        ("us", "325165000", "Washington D.C."),
        ("id", "263447000", "Jakarta"),
        ("br", "207645000", "Brasília"),
    ]:
        countries[f"countries.{code}.population"] = people
        countries[f"countries.{code}.capital"] = capital
    country_spec = {
        "countries": {"DictOf": {"spec": {"population": "Integer", "capital": "String"}}}
    }
    per_country = {"population": {"DictOf": "Integer"}}

    parse = [
        {"spec": example_spec, "raw": example_raw},
        {"spec": per_country, "raw": population},
        {"spec": country_spec, "raw": countries},
        # DictOf: errors name the full key; prefixes match whole components only
        {"spec": country_spec, "raw": {"countries.us.population": "1"}},
        {
            "spec": country_spec,
            "raw": {"countries.us.population": "x", "countries.us.capital": "c"},
        },
        {"spec": per_country, "raw": {"population.us": "x"}},
        {"spec": per_country, "raw": {}},
        {"spec": per_country, "raw": {"population": "5"}},
        {"spec": per_country, "raw": {"populationx.us": "5", "population.us": "6"}},
        {"spec": per_country, "raw": {"population.us.ca": "5"}},
        {"spec": per_country, "raw": {"population.": "5", "population..x": "5"}},
        {"spec": {"a": {"spec": {"b": {"DictOf": "Integer"}}}}, "raw": {"a.b.x": "1", "a.c": "3"}},
        {"spec": {"a": {"DictOf": {"DictOf": "Integer"}}}, "raw": {"a.x.y": "1", "a.w.v": "3"}},
        {"spec": {"a": {"DictOf": {"Optional": ["Integer", 7]}}}, "raw": {"a.x": "", "a.y": "2"}},
        {"spec": {"a": {"DictOf": "Endpoint"}}, "raw": {"a.one": "h:1", "a.two": "/s"}},
        # missing, empty, bad and extra keys; which key the error names
        {"spec": {"a": "Integer"}, "raw": {}},
        {"spec": {"a": "Integer"}, "raw": {"a": ""}},
        {"spec": {"a": "Integer"}, "raw": {"a": "x"}},
        {"spec": {"a": "String"}, "raw": {}},
        {"spec": {"a": "Integer", "b": "Integer"}, "raw": {"a": "1", "b": "x", "c": "extra"}},
        {"spec": {"a": {"spec": {"b": {"spec": {"c": "Integer"}}}}}, "raw": {"a.b.c": "zz"}},
        {"spec": {"a": {"spec": {"b": {"spec": {"c": "Integer"}}}}}, "raw": {}},
        {"spec": {"a": {"spec": {"b": "String"}}}, "raw": {"a": "x", "a.b": "y"}},
        {"spec": {"a": {"Optional": ["String", "d"]}}, "raw": {"b": "1"}},
        {"spec": {"a": {"Optional": ["Integer", None]}}, "raw": {"a": "x"}},
        {"spec": {"a": "Endpoint"}, "raw": {"a": "localhost:9090"}},
        {"spec": {"a": "Endpoint"}, "raw": {"a": "bad"}},
        {"spec": {"t": {"TupleOf": "Integer"}}, "raw": {"t": "1, x"}},
        {"spec": {"o": CARDS}, "raw": {"o": "joker"}},
        {"spec": {"f": {"File": {}}}, "raw": {"f": str(tmp_path / "missing")}},
        {"spec": {}, "raw": {"x": "1"}},
        # endpoint fields, as a client's config would use them
        {"spec": {"e": "Endpoint"}, "raw": {"e": "/run/svc.sock"}},
        {"spec": {"e": "Endpoint"}, "raw": {"e": ":9090"}},
    ]
    attributes = [
        {"spec": example_spec, "raw": example_raw, "path": path}
        for path in (["simple"], ["cards"], ["nested", "once"], ["nested", "really", "deep"])
        + (["optional"], ["sample_rate"], ["interval"], ["some_file"], ["missing"])
    ] + [
        {"spec": country_spec, "raw": countries, "path": ["countries"]},
        {"spec": {"e": "Endpoint"}, "raw": {"e": "h:1"}, "path": ["e", "address", "port"]},
        {"spec": {"e": "Endpoint"}, "raw": {"e": "h:1"}, "path": ["e", "family"]},
    ]
    malformed = [
        {"spec": {"a.b": "Integer"}, "raw": {"a.b": "1"}},
        {"spec": {"x": 5}, "raw": {"x": "1"}},
    ]
    request = {"parse": parse + malformed, "values": [], "attributes": attributes}
    ours, theirs = both("config", request)

    assert ours["parse"][: len(parse)] == theirs["parse"][: len(parse)]
    assert ours["attributes"] == theirs["attributes"]
    # the reference's printed results
    assert ours["parse"][0]["value"]["dict"]["cards"] == [1, 2, 3]
    assert ours["parse"][0]["value"]["dict"]["sample_rate"] == 0.371
    assert [summary(a) for a in ours["attributes"][:9]] == [
        True,
        [1, 2, 3],
        1,
        {TD: 3.0},
        9001,
        0.371,
        {TD: 30.0},
        {"file": "cool", "mode": "r"},
        "!AttributeError",
    ]
    assert len(ours["attributes"][9]["value"]["dict"]) == 5
    assert ours["parse"][2]["value"]["dict"]["countries"]["dict"]["cn"]["dict"]["capital"] == (
        "Beijing"
    )
    # every configuration error names the full dotted key, as its ``key`` and in its message
    for answer in ours["parse"]:
        if answer.get("error") == "ConfigurationError":
            assert answer["key"] == answer["message_key"]
    assert [a.get("key") for a in ours["parse"][3:6]] == [
        "countries.us.capital",
        "countries.us.population",
        "population.us",
    ]
    # a malformed spec is an AssertionError on both sides (ours: SpecError, a subclass)
    for our, their in zip(ours["parse"][len(parse) :], theirs["parse"][len(parse) :], strict=True):
        assert (our["error"], our["assertion"]) == ("SpecError", True)
        assert (their["error"], their["assertion"]) == ("AssertionError", True)


# --- baseplate.retry -----------------------------------------------------------------------


def test_retry_policy_attempts_and_sleeps() -> None:
    cases = [
        {
            "new": {"attempts": attempts, "budget": budget, "backoff": backoff},
            "step": step,
            "cap": 8,
        }
        for attempts in (None, 0, 1, 3)
        for budget in (None, 0, 0.5, 10)
        for backoff in (None, 0.1, 1)
        for step in (0, 0.3)
    ]
    invalid = [
        {"new": {"attempts": -1}, "step": 0, "cap": 5},
        {"new": {"budget": -1}, "step": 0, "cap": 5},
        {"new": {"backoff": -1}, "step": 0, "cap": 5},
    ]
    ours, theirs = both("retry", {"cases": cases + invalid})

    for case, our, their in zip(cases, ours[: len(cases)], theirs[: len(cases)], strict=True):
        attempts, budget = case["new"]["attempts"], case["new"]["budget"]
        if attempts is None or budget is None:
            assert our == their, case
            continue
        # The reference: ``attempts`` is "the maximum number of times the operation can be
        # attempted". Reddit's time budget yields its first attempt before consulting the
        # attempt limit, so with both it allows one attempt more than asked for.
        assert len(our["yielded"]) <= attempts, case
        assert their["yielded"][: len(our["yielded"])] == our["yielded"], case
        assert their["sleeps"][: len(our["sleeps"])] == our["sleeps"], case
        if case["new"]["backoff"] is None and case["step"] * attempts < budget:
            assert len(our["yielded"]) == attempts
            assert len(their["yielded"]) == attempts + 1

    # the documented shape: None without a budget, the whole budget first, then what is left
    assert ours[
        cases.index({"new": {"attempts": 3, "budget": None, "backoff": 1}, "step": 0, "cap": 8})
    ] == {
        "yielded": [None, None, None],
        "sleeps": [1, 2],
    }
    # Negative limits are programming errors: ours refuses them (ValueError); reddit asserts
    # on a negative budget and silently loops forever / asks to sleep negative times otherwise.
    assert [summary(answer) for answer in ours[len(cases) :]] == ["!ValueError"] * 3
    attempts_answer, budget_answer, backoff_answer = theirs[len(cases) :]
    assert attempts_answer["yielded"] == [None] * 5
    assert summary(budget_answer) == "!AssertionError"
    assert backoff_answer["sleeps"] == [-1, -2, -4, -8]


# --- baseplate.random ----------------------------------------------------------------------


def test_weighted_lottery() -> None:
    cases = [
        {"weights": {}, "seed": 1, "picks": 5, "sample_sizes": []},
        {"weights": {"a": -1, "b": 2}, "seed": 1, "picks": 5, "sample_sizes": []},
        {"weights": {"a": 0, "b": 0}, "seed": 1, "picks": 5, "sample_sizes": []},
        {"weights": {"a": 0}, "seed": 1, "picks": 5, "sample_sizes": []},
        {
            "weights": {"apple": 5, "banana": 6, "cantelope": 9},
            "seed": 12345,
            "picks": 40,
            "sample_sizes": [-1, 0, 1, 2, 3, 4],
        },
        {"weights": {"a": 1, "b": 0, "c": 3}, "seed": 7, "picks": 60, "sample_sizes": [0, 1, 2]},
        {"weights": {"a": 0.5, "b": 1.5}, "seed": 3, "picks": 30, "sample_sizes": [1]},
        {"weights": {"only": 1}, "seed": 3, "picks": 3, "sample_sizes": [0, 1]},
    ]
    weights = {"a": 1, "b": 2, "c": 3, "d": 4}
    rounds = 4000
    stats = {"weights": weights, "seed": 99, "rounds": rounds, "size": 2}
    ours, theirs = both("lottery", {"cases": cases, "stats": stats})

    # constructor errors alike (ValueError for no items, a negative weight, no weight at all)
    assert [summary(a) for a in ours["cases"][:4]] == ["!ValueError"] * 4
    assert ours["cases"][:4] == theirs["cases"][:4]
    for our, their in zip(ours["cases"][4:], theirs["cases"][4:], strict=True):
        # the same random source picks the very same items
        assert our["picks"] == their["picks"]
    assert ours["cases"][4]["picks"][0] == "banana"  # the reference's example, seed 12345
    assert ours["cases"][5]["picks"].count("b") == 0  # weight 0 is never picked

    # Sampling the whole population: reddit's range check (0 <= size < len) refuses it,
    # although its own message only mentions sizes "larger than the population".
    whole_population = {(4, 4): 3, (7, 1): 1}  # (case, sample) -> the population's size
    for i, (our, their) in enumerate(
        zip(ours["cases"][4:], theirs["cases"][4:], strict=True), start=4
    ):
        for j, (our_sample, their_sample) in enumerate(
            zip(our["samples"], their["samples"], strict=True)
        ):
            if (i, j) in whole_population:
                size = whole_population[i, j]
                assert our_sample == {"size": size, "distinct": size}
                assert summary(their_sample) == "!ValueError"
            else:
                assert our_sample == their_sample, (i, j)

    # sample() draws are not the same sequence on both sides; their distribution is:
    # the first item with chance w/W, and inclusion as by successive weighted draws
    total = sum(weights.values())
    p = {item: weight / total for item, weight in weights.items()}
    included = {
        item: p[item] + sum(p[other] * p[item] / (1 - p[other]) for other in p if other != item)
        for item in p
    }
    for side in (ours, theirs):
        for item in weights:
            assert abs(side["first"][item] - rounds * p[item]) < 0.03 * rounds, (side, item)
            assert abs(side["included"][item] - rounds * included[item]) < 0.03 * rounds


# --- baseplate.service_discovery -----------------------------------------------------------


def backend(id: int, host: str, port: Any, weight: Any = 1) -> dict[str, Any]:
    return {"id": id, "name": f"backend-{id}", "host": host, "port": port, "weight": weight}


THREE = json.dumps(
    [backend(1, "10.0.0.1", 9090, 1), backend(2, "10.0.0.2", 9091, 3), backend(3, "c", 80, None)]
)


def test_service_inventory() -> None:
    scenarios: list[list[dict[str, Any]]] = [
        [{"backends": True}, {"backend": 1}],  # no inventory file (yet)
        [{"write": "[]"}, {"backends": True}, {"backend": 1}],
        [{"write": THREE}, {"backends": True}, {"backend": 5, "n": 40}],
        [{"write": "{not json"}, {"backends": True}, {"backend": 1}],
        [{"write": ""}, {"backends": True}, {"backend": 1}],
        [{"write": json.dumps({"host": "a"})}, {"backends": True}],
        # the last good inventory survives a corrupt rewrite and the file's removal
        [
            {"write": THREE},
            {"backends": True},
            {"write": "{not json"},
            {"backends": True},
            {"remove": True},
            {"backends": True},
            {"backend": 2, "n": 5},
        ],
        [{"write": "[]"}, {"backends": True}, {"write": THREE}, {"backends": True}],
        [
            {"write": json.dumps([backend(1, "a", 1, 0), backend(2, "b", 2, 5)])},
            {"backends": True},
            {"backend": 1, "n": 10},
        ],
        [{"write": json.dumps([backend(1, "a", "80")])}, {"backends": True}],
        [{"write": json.dumps([backend(1, "a", 80, -1)])}, {"backends": True}],
    ]
    differing: list[list[dict[str, Any]]] = [
        [
            {"write": json.dumps([backend(1, "a", 1, 0), backend(2, "b", 2, 0)])},
            {"backends": True},
            {"backend": 1},
        ],
        [{"write": json.dumps([{"host": "a", "port": 1, "weight": 2}])}, {"backends": True}],
        [{"write": json.dumps([backend(1, "::1", 80)])}, {"backends": True}],
    ]
    ours, theirs = both("inventory", {"scenarios": scenarios + differing})

    assert ours[: len(scenarios)] == theirs[: len(scenarios)]
    assert summary(ours[0][0]) == [] and summary(ours[0][1][0]) == "!NoBackendsAvailableError"
    assert [b["weight"] for b in ours[2][0]["value"]] == [1, 3, 1]  # weight null means 1
    picks = [summary(pick)["id"] for pick in ours[2][1]]
    assert set(picks) == {1, 2, 3} and picks.count(2) > picks.count(1)
    assert summary(ours[3][0]) == [] and summary(ours[3][1][0]) == "!NoBackendsAvailableError"

    zero_weights, sparse, ipv6 = zip(ours[len(scenarios) :], theirs[len(scenarios) :], strict=True)
    # Every backend at weight 0: we list them (they are in the inventory) and pick none;
    # reddit's lottery refuses to be built, so it drops the whole inventory.
    assert [b["id"] for b in summary(zero_weights[0][0])] == [1, 2]
    assert summary(zero_weights[1][0]) == []
    assert summary(zero_weights[0][1][0]) == summary(zero_weights[1][1][0])
    assert summary(zero_weights[0][1][0]) == "!NoBackendsAvailableError"
    # An entry without id/name (weight given): ours reads it; reddit drops the inventory.
    assert summary(sparse[0][0]) == [
        {"id": None, "name": "", "endpoint": {"family": 2, "address": ["a", 1]}, "weight": 2}
    ]
    assert summary(sparse[1][0]) == []
    # An IPv6 host: reddit's Endpoint("::1:80") splits at the first colon and fails.
    assert summary(ipv6[0][0])[0]["endpoint"] == {"family": 2, "address": ["::1", 80]}
    assert summary(ipv6[1][0]) == []


# --- baseplate.file_watcher ----------------------------------------------------------------


def test_file_watcher() -> None:
    text = "héllo\r\nx"
    raw = base64.b64encode(text.encode()).decode()
    scenarios = [
        {
            "parser": "json",
            "steps": [
                {"watch": {}},
                {"get": True},  # not there yet
                {"write": '{"one": 1, "two": 2}'},
                {"get": True},
                {"write": '{"one": 3}'},
                {"get": True},
                {"write": "{bad"},
                {"get": True},  # the last good data
                {"remove": True},
                {"get": True},  # still the last good data
                {"write": "[1]"},
                {"get": True},
            ],
        },
        {
            "parser": "json",
            "steps": [
                {"write": "{bad"},
                {"watch": {}},
                {"get": True},
                {"get": True},
                {"write": "[2]"},
                {"get": True},
            ],
        },
        {"parser": "json", "steps": [{"watch": {"timeout": 0.05}}]},
        {"parser": "json", "steps": [{"watch": {"timeout": 0}}]},
        {"parser": "json", "steps": [{"write": "{bad"}, {"watch": {"timeout": 0.05}}]},
        {
            "parser": "json",
            "steps": [{"write": "[3]"}, {"watch": {"timeout": 0.05}}, {"get": True}],
        },
        {
            "parser": "json",
            "steps": [
                {"write_later": "[4]", "after": 0.2},
                {"watch": {"timeout": 5}},
                {"get": True},
            ],
        },
        {"parser": "text", "steps": [{"write_bytes": raw}, {"watch": {}}, {"get": True}]},
        {
            "parser": "text",
            "steps": [{"write_bytes": raw}, {"watch": {"binary": True}}, {"get": True}],
        },
        {
            "parser": "text",
            "steps": [{"write_bytes": raw}, {"watch": {"newline": ""}}, {"get": True}],
        },
        {
            "parser": "text",
            "steps": [
                {"write_bytes": base64.b64encode("héllo".encode("latin-1")).decode()},
                {"watch": {"encoding": "latin-1"}},
                {"get": True},
            ],
        },
        {"parser": "text", "steps": [{"watch": {"binary": True, "encoding": "utf-8"}}]},
        {"parser": "text", "steps": [{"watch": {"binary": True, "newline": ""}}]},
        # parsing happens only when the file changed
        {
            "parser": "calls",
            "steps": [
                {"write": "a"},
                {"watch": {}},
                {"get": True},
                {"get": True},
                {"write": "b"},
                {"get": True},
                {"get": True},
            ],
        },
    ]
    ours, theirs = both("file-watcher", {"scenarios": scenarios})

    assert ours == theirs
    first = [summary(answer) for answer in ours[0]]
    assert first == [
        "created",
        "!WatchedFileNotAvailableError",
        {"dict": {"one": 1, "two": 2}},
        {"dict": {"one": 3}},
        {"dict": {"one": 3}},
        {"dict": {"one": 3}},
        [1],
    ]
    assert [summary(answer) for answer in ours[2] + ours[3] + ours[4]] == [
        "!WatchedFileNotAvailableError"
    ] * 3
    assert summary(ours[6][1]) == [4]
    assert summary(ours[8][1]) == {"bytes": raw}
    assert summary(ours[9][1]) == text
    assert [summary(answer) for answer in ours[11] + ours[12]] == ["!TypeError"] * 2
    assert [summary(answer) for answer in ours[13][1:]] == [["a", 1], ["a", 1], ["b", 2], ["b", 2]]


# --- baseplate.message_queue ---------------------------------------------------------------


def test_message_queue() -> None:
    same_steps: list[dict[str, Any]] = [
        {"open": "a", "max_messages": 2, "max_message_size": 8},
        {"get": "a", "timeout": 0},
        {"get": "a", "timeout": 0.05},
        {"put": "one", "q": "a"},
        {"put": "two", "q": "a", "timeout": 0.05},
        {"put": "three", "q": "a", "timeout": 0.05},  # full
        {"put": "three", "q": "a", "timeout": 0},
        {"get": "a"},
        {"get": "a", "timeout": 0.05},
        {"put": "123456789", "q": "a", "timeout": 0.05},  # too large
        {"put": "12345678", "q": "a", "timeout": 0.05},
        {"get": "a", "timeout": 0.05},
        {"put": "", "q": "a", "timeout": 0.05},
        {"get": "a", "timeout": 0.05},
        {"put": "é", "q": "a", "timeout": 0.05},
        {"get": "a", "timeout": 0.05},
        # reopening an existing queue with other limits
        {"open": "a", "max_messages": 5, "max_message_size": 100},
        {"open": "big", "max_messages": 11, "max_message_size": 8},  # above fs.mqueue.msg_max
        {"open": "huge", "max_messages": 1, "max_message_size": 10**7},
        {"open": "zero", "max_messages": 0, "max_message_size": 8},
        {"raw_name": "no-slash", "max_messages": 1, "max_message_size": 8},
        {"raw_name": "/" + "x" * 300, "max_messages": 1, "max_message_size": 8},
        {"unlink": "a"},
        {"unlink": "a"},
        {"close": "a"},
        {"close": "a"},
    ]
    bad_names = [
        {"raw_name": "/a/b", "max_messages": 1, "max_message_size": 8},
        {"raw_name": "/", "max_messages": 1, "max_message_size": 8},
    ]
    steps = same_steps + bad_names
    prefix = f"/bp-diff-{uuid.uuid4().hex[:8]}"
    ours = json.loads(
        json.dumps(drivers.run_message_queue(OURS, {"prefix": f"{prefix}-ours-", "steps": steps}))
    )
    theirs = run_peer("message-queue", {"prefix": f"{prefix}-reddit-", "steps": steps})

    n = len(same_steps)
    # A too-large message is a ValueError on both sides (ours: InvalidParametersError).
    assert [summary(a) for a in ours[:n]] == [summary(a) for a in theirs[:n]]
    assert [summary(a) for a in ours[:n]] == [
        "opened",
        "!TimedOutError",
        "!TimedOutError",
        None,
        None,
        "!TimedOutError",
        "!TimedOutError",
        {"bytes": "b25l"},
        {"bytes": "dHdv"},
        "!ValueError",
        None,
        {"bytes": "MTIzNDU2Nzg="},
        None,
        {"bytes": ""},
        None,
        {"bytes": "w6k="},
        "opened",
        "!ValueError",
        "!ValueError",
        "!ValueError",
        "!ValueError",
        "!ValueError",
        None,
        "!ExistentialError",
        None,
        "!ExistentialError",
    ]
    # Names with a slash after the first character: the reference says a name is "an
    # initial slash, followed by one or more characters, none of which are slashes"; we
    # refuse others up front (InvalidParametersError, a ValueError), reddit hands them to
    # posix_ipc, which fails with whatever the kernel answers.
    assert [summary(a) for a in ours[n:]] == ["!ValueError", "!ValueError"]
    assert [summary(a) for a in theirs[n:]] == ["!PermissionsError", "!ExistentialError"]


# --- baseplate.secrets ---------------------------------------------------------------------

# Secrets beyond what test_reddit_batteries.py already asks (simple/versioned, identity and
# base64, bad padding, unknown encoding, missing type/current, wrong type).
SAME_SECRETS: dict[str, Any] = {
    "wrapped-base64": {"type": "simple", "value": "aGVs\nbG8=\n", "encoding": "base64"},
    "spaced-base64": {"type": "simple", "value": "aGVs bG8=", "encoding": "base64"},
    "empty-value": {"type": "simple", "value": ""},
    "empty-base64": {"type": "simple", "value": "", "encoding": "base64"},
    "no-value": {"type": "simple"},
    "capital-type": {"type": "Simple", "value": "x"},
    "null-encoding": {"type": "simple", "value": "x", "encoding": None},
    "extra-keys": {"type": "simple", "value": "x", "other": 1},
    "null-previous": {"type": "versioned", "current": "c", "previous": None},
    "bad-previous": {
        "type": "versioned",
        "current": "YQ==",
        "previous": "YQ",
        "encoding": "base64",
    },
    "wrapped-versions": {
        "type": "versioned",
        "current": "Y3Vy\ncmVudA==",
        "next": "bmV4\ndA==",
        "encoding": "base64",
    },
    "credential": {"type": "credential", "username": "u", "password": "p"},
}
# Secrets on which the two differ; the reason is next to the assertions.
DIFFERENT_SECRETS: dict[str, Any] = {
    "list": ["a"],
    "string": "x",
    "null": None,
    "junk-base64": {"type": "simple", "value": "aGVsbG8=!", "encoding": "base64"},
    "urlsafe-base64": {"type": "simple", "value": "-_-_", "encoding": "base64"},
    "number-value": {"type": "simple", "value": 5},
    "null-value": {"type": "simple", "value": None},
    "null-current": {"type": "versioned", "current": None},
    "empty-previous": {"type": "versioned", "current": "c", "previous": "", "next": ""},
}
METHODS = ("get_raw", "get_simple", "get_versioned")


def test_secrets_store_edge_cases() -> None:
    secrets_file = json.dumps(
        {"secrets": {**SAME_SECRETS, **DIFFERENT_SECRETS}, "vault": {"url": "u", "token": "t"}}
    )
    same_queries = [[m, name] for m in METHODS for name in SAME_SECRETS] + [
        ["get_raw", "not-there"],
        ["get_vault_url", ""],
        ["get_vault_token", ""],
    ]
    different_queries = [[m, name] for m in METHODS for name in DIFFERENT_SECRETS]
    vault_queries = [["get_vault_url", ""], ["get_vault_token", ""]]
    cases = [
        {"file": secrets_file, "queries": same_queries + different_queries},
        {"file": None, "queries": [["get_raw", "x"], ["get_simple", "x"], ["get_vault_url", ""]]},
        {"file": "{bad", "queries": [["get_raw", "x"], ["get_vault_token", ""]]},
        {"file": None, "queries": [], "timeout": 0.05},
        {"file": "[]", "queries": [["get_raw", "x"]]},
        {"file": json.dumps({"secrets": []}), "queries": [["get_raw", "x"]]},
        {"file": json.dumps({"secrets": {}}), "queries": vault_queries},
        {
            "file": json.dumps({"secrets": {}, "vault": {"url": 5, "token": None}}),
            "queries": vault_queries,
        },
    ]
    ours, theirs = both("secrets", {"cases": cases})

    n = len(same_queries)
    assert ours[0][:n] == theirs[0][:n]
    assert ours[1:3] == theirs[1:3]
    answers = dict(zip([f"{m} {name}" for m, name in same_queries], ours[0][:n], strict=True))
    # base64 split over lines (as `base64` wraps it) decodes on both sides
    assert summary(answers["get_simple wrapped-base64"]) == {"bytes": "aGVsbG8="}
    assert summary(answers["get_versioned wrapped-versions"])["dict"]["next"] == {
        "bytes": "bmV4dA=="
    }
    assert summary(answers["get_simple capital-type"]) == "!CorruptSecretError"
    assert summary(answers["get_versioned bad-previous"]) == "!CorruptSecretError"
    assert summary(answers["get_raw not-there"]) == "!SecretNotFoundError"
    assert [summary(a) for a in ours[1] + ours[2]] == ["!SecretsNotAvailableError"] * 5

    different = {
        f"{m} {name}": (summary(our), summary(their))
        for (m, name), our, their in zip(different_queries, ours[0][n:], theirs[0][n:], strict=True)
    }
    # A secret that is not a JSON object: the reference says get_raw returns a dict, so we
    # call it corrupt; reddit hands back whatever is there (and its get_simple/get_versioned
    # then fail with AttributeError).
    for name in ("list", "string", "null"):
        assert different[f"get_raw {name}"] == ("!CorruptSecretError", DIFFERENT_SECRETS[name])
        for method in ("get_simple", "get_versioned"):
            assert different[f"{method} {name}"] == ("!CorruptSecretError", "!AttributeError")
    # Values that are not strings: reddit crashes on them (AttributeError).
    for key in ("get_simple number-value", "get_simple null-value", "get_versioned null-current"):
        assert different[key] == ("!CorruptSecretError", "!AttributeError")
    # Characters outside the base64 alphabet: reddit's decoder silently drops them and
    # returns different bytes than were stored; ours says the secret is corrupt.
    assert different["get_simple junk-base64"] == ("!CorruptSecretError", {"bytes": "aGVsbG8="})
    assert different["get_simple urlsafe-base64"] == ("!CorruptSecretError", {"bytes": ""})
    # Empty previous/next: reddit's ``value and decode(value)`` leaves the str "" where every
    # other version is bytes; ours decodes it to b"" like any other value.
    our_versions, their_versions = different["get_versioned empty-previous"]
    assert our_versions["dict"]["previous"] == our_versions["dict"]["next"] == {"bytes": ""}
    assert their_versions["dict"]["previous"] == their_versions["dict"]["next"] == ""

    # Waiting for a file that never comes: reddit lets the FileWatcher's error through;
    # ours raises an error that is both that and the store's SecretsNotAvailableError.
    assert (ours[3]["secrets_error"], ours[3]["watcher_error"]) == (True, True)
    assert theirs[3]["watcher_error"] is True

    # A secrets file of the wrong shape, or without its vault section: reddit fails with
    # TypeError/KeyError (or returns a non-string), ours says the secrets are not available.
    assert [summary(a) for case in ours[4:] for a in case] == ["!SecretsNotAvailableError"] * 6
    assert [summary(a) for case in theirs[4:] for a in case] == [
        "!TypeError",
        "!TypeError",
        "!KeyError",
        "!KeyError",
        5,
        None,
    ]
