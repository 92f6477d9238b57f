"""The framework integrations against reddit's own baseplate, scenario by scenario.

The peer is reddit's baseplate run by ``reddit_peer_integrations.py`` in its own process (one
per group of scenarios, all asked in one request). Its drivers are also imported here and run
with OUR pieces, so both sides run exactly the same scenarios: a Pyramid app called in-process
as a WSGI server would; a Thrift server (reddit's ``baseplateify_processor``, our
``ContextProcessor`` with ``BaseplateProcessorEventHandler``) called on loopback by a plain
THeader client; and ``ThriftContextFactory`` clients on ``ThriftConnectionPool``. Every
observer callback (span names, ids as symbols, tags, exc_info types) is recorded in order,
interleaved with what the application saw.

Where the two differ on purpose, each side's behaviour is asserted explicitly, with the
reason in a comment. (Trace and edge HEADERS on the wire are compared by
``test_reddit_http.py`` and ``test_reddit_thrift.py``.)
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import baseplate.config as config
import baseplate.context as context
import baseplate.context.thrift as context_thrift
import baseplate.core as core
import baseplate.integration.pyramid as pyramid
import baseplate.thrift_pool as thrift_pool
from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor

from . import reddit_peer_integrations as drivers
from .conftest import run_peer_script

PEER_SCRIPT = Path(__file__).with_name("reddit_peer_integrations.py")

IDL = """
namespace py integration_diff

exception Declared {
    1: string message;
}

service DiffService {
    // returns, raises the declared exception or fails as the text says
    string example(1: string text) throws (1: Declared error),
    // raises an exception the IDL does not declare
    void fail(),
}
"""


def make_processor(module: Any, handler: Any, baseplate: Any, edge_factory: Any) -> Any:
    """Our Thrift server integration, as our docs show it."""
    processor = ContextProcessor(module.Processor(handler))
    processor.setEventHandler(
        BaseplateProcessorEventHandler(logging.getLogger("ours"), baseplate, edge_factory)
    )
    return processor


OURS = SimpleNamespace(
    core=core,
    context=context,
    pyramid=pyramid,
    config=config,
    thrift_pool=thrift_pool,
    context_thrift=context_thrift,
    make_processor=make_processor,
)


def as_json(value: Any) -> Any:
    """Our answer as the peer's went through JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``DiffService`` compiled by the Thrift compiler; both sides import it from here."""
    out = tmp_path_factory.mktemp("integration-diff-gen")
    idl = out / "integration_diff.thrift"
    idl.write_text(IDL)
    subprocess.run(["thrift", "--gen", "py", "-out", str(out), str(idl)], check=True)
    return {"gen": str(out), "module": "integration_diff.DiffService"}


def both(command: str, runner: Any, cases: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    theirs = run_peer_script(PEER_SCRIPT, command, request={**extra, "cases": cases})
    return {"theirs": theirs, "ours": as_json(runner(cases))}


# --- Pyramid -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyramid_answers() -> dict[str, Any]:
    cases = list(drivers.PYRAMID_CASES)
    return both("pyramid", lambda names: drivers.run_pyramid(OURS, names), cases, {})


PYRAMID_SAME = [
    "home",
    "item_with_query",
    "post",
    "no_remote_addr",
    "unmatched_route",
    "predicate_mismatch",
    "crash",
    "no_exception_view",
    "raised_redirect",
    "returned_redirect",
    "raised_not_found",
    "stream",
    "callbacks",
    "inspect_default",
    "untrusted_headers",
    "trusted_headers",
    "trusted_debug_flag",
    "trusted_no_headers",
    "trusted_bad_headers",
    "trusted_no_edge_without_factory",
    "untrusted_edge_with_factory",
]


@pytest.mark.parametrize("name", PYRAMID_SAME)
def test_pyramid_events_match_reddit_s(pyramid_answers: dict[str, Any], name: str) -> None:
    assert pyramid_answers["ours"][name] == pyramid_answers["theirs"][name]


def test_pyramid_shared_answers_spelled_out(pyramid_answers: dict[str, Any]) -> None:
    """What both sides agree on, spelled out so a regression on both shows."""
    ours = pyramid_answers["ours"]
    home = ours["home"]["events"]
    assert home[0][0] == "server_span_created" and home[0][1]["label"] == "home"
    # the span starts, ServerSpanInitialized fires (span and context objects in place), then
    # the request's tags are set; the span ends, with the status, when the response is made
    assert [event[0] for event in home[1:]] == [
        "factory",
        "start",
        "ServerSpanInitialized",
        "set_tag",
        "set_tag",
        "set_tag",
        "view",
        "set_tag",
        "finish",
        "start_response",
        "app_returned",
        "chunk",
    ]
    assert home[3] == [
        "ServerSpanInitialized",
        "ServerSpanInitialized",
        "home",
        {"made_for": "home"},
    ]
    tags = [event[2:] for event in home if event[0] == "set_tag"]
    assert tags == [
        ["http.url", "http://localhost/"],
        ["http.method", "GET"],
        ["peer.ipv4", "10.1.2.3"],
        ["http.status_code", 200],
    ]
    assert ["set_tag", "home", "peer.ipv4", None] in ours["no_remote_addr"]["events"]
    assert ours["item_with_query"]["events"][0][1]["label"] == "item"  # the route's name
    assert [e[0] for e in ours["unmatched_route"]["events"]][0] == "start_response"
    assert ["finish", "crash", "ValueError"] in ours["crash"]["events"]
    assert ours["crash"]["events"][-1] == ["app_raised", "ValueError"]
    assert ["set_tag", "redirect", "http.status_code", 302] in ours["raised_redirect"]["events"]
    assert ["finish", "missing", None] in ours["raised_not_found"]["events"]
    # a streamed body is sent after the span has ended; response callbacks run after it too
    stream = [e[0] for e in ours["stream"]["events"]]
    assert stream.index("finish") < stream.index("body")
    callbacks = [e[0] for e in ours["callbacks"]["events"]]
    assert callbacks.index("finish") < callbacks.index("response_callback")
    # trusted headers continue the caller's trace; untrusted ones start a new one
    trusted = ours["trusted_headers"]["events"][0][1]
    assert (trusted["trace_id"], trusted["parent_id"], trusted["id"]) == (
        "up.trace",
        "up.parent",
        "up.span",
    )
    assert ours["untrusted_headers"]["events"][0][1]["trace_id"] == "inspect.trace"
    # trusting headers without an edge factory keeps the (absent) header as raw context
    (seen,) = [e[1] for e in ours["trusted_no_edge_without_factory"]["events"] if e[0] == "inspect"]
    assert seen["has_raw_request_context"] is True and seen["raw_request_context"] is None
    # the application object carries the Baseplate (found by tools such as the shells)
    assert all(answer["app_baseplate"] for answer in ours.values())


@pytest.mark.parametrize(
    ("name", "error"),
    [("exception_view", "KeyError"), ("raised_server_error", "HTTPInternalServerError")],
)
def test_pyramid_errors_behind_exception_views(
    pyramid_answers: dict[str, Any], name: str, error: str
) -> None:
    theirs = pyramid_answers["theirs"][name]["events"]
    ours = pyramid_answers["ours"][name]["events"]
    label = ours[0][1]["label"]
    # Reddit's tween sits above the exception views, so an error rendered by one (the
    # reference warns about it) or a raised 5xx HTTPException ends its span as a success;
    # ours records the view's exception first, so the failure is reported (DESIGN choice).
    assert ["finish", label, None] in theirs
    assert ["finish", label, error] in ours
    assert [e for e in ours if e[0] != "finish"] == [e for e in theirs if e[0] != "finish"]


def without_edge(events: list[list[Any]]) -> list[list[Any]]:
    return [event for event in events if not event[0].startswith("edge.")]


def inspected(events: list[list[Any]]) -> dict[str, Any]:
    (seen,) = [event[1] for event in events if event[0] == "inspect"]
    return dict(seen)


def test_pyramid_edge_request_header(pyramid_answers: dict[str, Any]) -> None:
    theirs, ours = pyramid_answers["theirs"], pyramid_answers["ours"]
    # Without a factory both keep the header on the request to pass it on; reddit 0.30 keeps
    # the base64 text as it arrived, ours its bytes (WIRE.md: X-Edge-Request is base64 of the
    # bytes that Thrift's Edge-Request carries raw).
    name = "trusted_edge_without_factory"
    assert inspected(theirs[name]["events"])["raw_request_context"] == "AAEC"
    assert inspected(ours[name]["events"])["raw_request_context"] == {"bytes": "\x00\x01\x02"}
    strip = [e for e in ours[name]["events"] if e[0] != "inspect"]
    assert strip == [e for e in theirs[name]["events"] if e[0] != "inspect"]

    for name, payload in (
        ("trusted_edge_with_factory", ("AAEC", {"bytes": "\x00\x01\x02"})),
        ("trusted_no_edge_with_factory", (None, None)),
    ):
        their_events, our_events = theirs[name]["events"], ours[name]["events"]
        # with a factory, both make an edge context, even an empty one without the header
        assert ["edge.from_upstream", payload[0]] in their_events
        assert ["edge.from_upstream", payload[1]] in our_events
        assert inspected(our_events)["has_request_context"] is True
        # Reddit reads it before making the span; ours once the span has started, so the
        # context it sets for outbound calls lives exactly as long as the span.
        assert their_events[:2] == [["edge.from_upstream", payload[0]], ["edge.attach_context"]]
        started = [e[0] for e in our_events].index("start")
        assert our_events[started + 1 : started + 3] == [
            ["edge.from_upstream", payload[1]],
            ["edge.attach_context"],
        ]
        if payload[0] is None:
            assert without_edge(our_events) == without_edge(their_events)
        else:
            assert [e for e in without_edge(our_events) if e[0] != "inspect"] == [
                e for e in without_edge(their_events) if e[0] != "inspect"
            ]


# --- Thrift server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_answers(generated: dict[str, str]) -> dict[str, Any]:
    module = drivers.generated_module(generated)
    cases = list(drivers.THRIFT_SERVER_CASES)
    return both(
        "thrift-server",
        lambda names: drivers.run_thrift_server(OURS, module, names),
        cases,
        generated,
    )


SERVER_SAME = [
    "ok_with_trace",
    "ok_new_trace",
    "crash",
    "application_error",
    "void_method_fails",
    "lowercase_headers",
    "edge_without_factory",
]


@pytest.mark.parametrize("name", SERVER_SAME)
def test_thrift_server_events_match_reddit_s(server_answers: dict[str, Any], name: str) -> None:
    assert server_answers["ours"][name] == server_answers["theirs"][name]


def test_thrift_server_shared_answers_spelled_out(server_answers: dict[str, Any]) -> None:
    ours = server_answers["ours"]
    events = ours["ok_with_trace"]["events"]
    assert events[0][1] == {
        "label": "example",  # the method's name
        "type": "ServerSpan",
        "trace_id": "up.trace",
        "parent_id": "up.parent",
        "id": "up.span",
        "flags": None,
        "component_name": None,
    }
    handler = events[2][1]
    assert events[1] == ["start", "example"] and events[3] == ["finish", "example", None]
    # the handler's context: the server span as ``trace``, case-insensitive headers, the raw
    # Edge-Request (None without one) and the context factories' objects
    assert handler["trace"] == "example" and handler["headers_is_mapping"] is True
    assert handler["header_Trace"] == handler["header_trace"] == {"bytes": "1001"}
    assert handler["has_raw_request_context"] is True and handler["raw_request_context"] is None
    assert handler["thing"] == {"made_for": "example"}
    assert ["finish", "example", "ValueError"] in ours["crash"]["events"]
    assert ours["crash"]["events"][-1] == [
        "client_got",
        {"error": "TApplicationException", "type": 6},  # INTERNAL_ERROR
    ]
    assert ["finish", "example", "TApplicationException"] in ours["application_error"]["events"]
    assert ["finish", "fail", "RuntimeError"] in ours["void_method_fails"]["events"]


def test_thrift_server_declared_exception(server_answers: dict[str, Any]) -> None:
    theirs = server_answers["theirs"]["declared"]["events"]
    ours = server_answers["ours"]["declared"]["events"]
    # Both: an IDL-declared exception is an answer, the span ends without error.
    assert ["finish", "example", None] in theirs and ["finish", "example", None] in ours
    assert ours[-1] == theirs[-1] == ["client_got", {"error": "Declared"}]
    # Ours also names the exception in a tag (an OTel attribute), which reddit does not set.
    tag = ["set_tag", "example", "thrift.declared_exception", "Declared"]
    assert tag in ours and tag not in theirs
    assert [e for e in ours if e != tag] == theirs


def test_thrift_server_transport_error_raised_by_handler(server_answers: dict[str, Any]) -> None:
    theirs = server_answers["theirs"]["transport_error"]["events"]
    ours = server_answers["ours"]["transport_error"]["events"]
    assert ours[:-1] == theirs[:-1]
    assert ["finish", "example", "TTransportException"] in ours
    # A handler's own transport error (a failed downstream call): reddit's generated
    # processor drops the caller's connection as if the caller's transport had failed; ours
    # answers INTERNAL_ERROR and keeps the connection (documented in integration.thrift).
    assert theirs[-1] == ["client_got", {"error": "TTransportException"}]
    assert ours[-1] == ["client_got", {"error": "TApplicationException", "type": 6}]


@pytest.mark.parametrize(
    ("name", "payload"), [("no_edge_with_factory", None), ("edge_with_factory", "\x00\x01")]
)
def test_thrift_server_edge_factory(
    server_answers: dict[str, Any], name: str, payload: str | None
) -> None:
    theirs = server_answers["theirs"][name]["events"]
    ours = server_answers["ours"][name]["events"]
    raw = None if payload is None else {"bytes": payload}
    # both hand the raw header (None when absent) to the factory and attach the result
    assert theirs[:2] == [["edge.from_upstream", raw], ["edge.attach_context"]]
    # Ours does it once the span has started (see the Pyramid case), reddit before.
    assert ours[2:4] == [["edge.from_upstream", raw], ["edge.attach_context"]]
    assert without_edge(ours) == without_edge(theirs)
    (handler,) = [event[1] for event in ours if event[0] == "handler"]
    assert handler["has_request_context"] is True


# --- Thrift client -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_answers(generated: dict[str, str]) -> dict[str, Any]:
    module = drivers.generated_module(generated)
    cases = list(drivers.CLIENT_CASES)
    return both(
        "thrift-client",
        lambda names: drivers.run_thrift_client(OURS, module, names),
        cases,
        generated,
    )


CLIENT_SAME = [
    "ok",
    "application_error",
    "retrying_bad_policy",
    "pool_exhausted",
    "call_timeout",
    "unknown_method",
]


@pytest.mark.parametrize("name", CLIENT_SAME)
def test_thrift_client_matches_reddit_s(client_answers: dict[str, Any], name: str) -> None:
    assert client_answers["ours"][name] == client_answers["theirs"][name]


def client_spans(events: list[list[Any]]) -> list[Any]:
    return [event[1:] for event in events if event[0] in ("finish",) and event[1] != "request"]


def test_thrift_client_shared_answers_spelled_out(client_answers: dict[str, Any]) -> None:
    ours = client_answers["ours"]
    ok = ours["ok"]
    assert ok["result"] == {"first": {"ok": "echo:a"}, "second": {"ok": "echo:b"}}
    created = [e[2] for e in ok["events"] if e[0] == "child_created"]
    assert [(c["label"], c["type"], c["parent_id"]) for c in created] == [
        ("svc.example", "Span", "request.trace"),
        ("svc.example#2", "Span", "request.trace"),
    ]
    assert not [e for e in ok["events"] if e[0] == "set_tag"]  # neither side tags the call
    failed = ours["application_error"]
    assert failed["result"]["raised"] == {"error": "TApplicationException", "type": 6}
    assert client_spans(failed["events"]) == [
        ["svc.example", "TApplicationException"],
        ["svc.fail", "TApplicationException"],
    ]
    # the pool's timeouts: a TTransportException span, and the next call works
    for name in ("pool_exhausted", "call_timeout"):
        assert ours[name]["result"]["raised"] == {"error": "TTransportException", "type": 3}
        assert ours[name]["result"]["after"] == {"ok": "echo:after"}
        assert client_spans(ours[name]["events"])[0] == ["svc.example", "TTransportException"]
    assert ours["retrying_bad_policy"]["result"] == {"raised": {"error": "TypeError"}}
    assert ours["unknown_method"]["result"] == {"missing": {"error": "AttributeError"}}


def test_thrift_client_declared_exception(client_answers: dict[str, Any]) -> None:
    theirs, ours = client_answers["theirs"], client_answers["ours"]
    for name, key, label in (
        ("declared", "raised", "svc.example"),
        ("retrying_ok_and_declared", "declared", "svc.example#2"),
    ):
        tag = ["set_tag", label, "thrift.declared_exception", "Declared"]
        # Reddit 0.30's pool re-raises through contextlib, which assigns __traceback__ on the
        # immutable exception class the Apache Thrift compiler generates: its span fails and
        # the app gets a TypeError. Ours ends the span without error (tagged with the
        # exception's name) and raises the declared exception, as the IDL says.
        assert theirs[name]["result"][key] == {"error": "TypeError"}
        assert ["finish", label, "TypeError"] in theirs[name]["events"]
        assert ours[name]["result"][key] == {"error": "Declared"}
        assert tag in ours[name]["events"] and ["finish", label, None] in ours[name]["events"]
        mine = [e for e in ours[name]["events"] if e != tag]
        assert mine == [
            ["finish", label, None] if e == ["finish", label, "TypeError"] else e
            for e in theirs[name]["events"]
        ]
        # the call is not retried, and the connection stays usable
    assert ours["declared"]["result"]["after"] == theirs["declared"]["result"]["after"]
    assert ours["retrying_ok_and_declared"]["result"]["ok"] == {"ok": "echo:ok"}


@pytest.mark.parametrize("name", ["connection_refused", "retrying_refused"])
def test_thrift_client_connection_refused(client_answers: dict[str, Any], name: str) -> None:
    theirs, ours = client_answers["theirs"][name], client_answers["ours"][name]
    # the same spans: one per attempt of the retry policy, each a TTransportException
    assert ours["events"] == theirs["events"]
    attempts = 3 if name == "retrying_refused" else 1
    assert [span[1] for span in client_spans(ours["events"])] == ["TTransportException"] * attempts
    # Both raise TTransportException. Reddit wraps the last error as TIMED_OUT ("retry policy
    # exhausted"); ours raises the last error itself: NOT_OPEN, what a refused connection is.
    assert theirs["result"]["raised"] == {"error": "TTransportException", "type": 3}
    assert ours["result"]["raised"] == {"error": "TTransportException", "type": 1}


def test_thrift_pool_connection_errors(client_answers: dict[str, Any]) -> None:
    theirs = client_answers["theirs"]["pool_connection_errors"]["result"]
    ours = client_answers["ours"]["pool_connection_errors"]["result"]
    assert ours["refused"] == theirs["refused"] == {"error": "TTransportException", "type": 1}
    # an application error closes the connection; a declared exception keeps it
    assert (
        ours["application_error_drops_connection"] == theirs["application_error_drops_connection"]
    )
    assert ours["application_error_drops_connection"]["ok"]["reused"] is False
    assert ours["declared_keeps_connection"]["ok"]["reused"] is True
    assert theirs["declared_keeps_connection"]["ok"]["reused"] is True
    # (reddit's contextlib-based pool turns the generated exception into TypeError, as above)
    assert theirs["declared_keeps_connection"]["ok"]["raised"] == {"error": "TypeError"}
    assert ours["declared_keeps_connection"]["ok"]["raised"] == {"error": "Declared"}
    # An exhausted pool: both TTransportException; reddit says NOT_OPEN, ours TIMED_OUT (the
    # wait for a free connection timed out, as the docs describe the pool's timeout).
    assert theirs["exhausted"] == {"error": "TTransportException", "type": 1}
    assert ours["exhausted"] == {"error": "TTransportException", "type": 3}
