"""Reddit's own baseplate instrumentation core as a peer: spans, observers, trace info,
context factories, metrics and the edge request context's accessors.

Run as a script by ``test_reddit_core_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout). Each sub-command reads its request as JSON on stdin and prints its
answer as one JSON line on stdout.

The drivers below (``run_core``, ``run_trace_info``, ``run_metrics``, ``run_edge``) take the
baseplate modules to use as arguments and import nothing from baseplate themselves: the test
imports this file and runs the very same drivers with OUR modules, so both implementations
are asked exactly the same questions.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

# --- shared helpers ------------------------------------------------------------------------


def error_name(exc: BaseException) -> str:
    return type(exc).__name__


def jsonable(value: Any) -> Any:
    """A JSON form of a tag value, log payload or accessor result (sets sorted)."""
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(item) for item in value)
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return repr(value)


class Context:
    """A plain framework context object, as a Pyramid request or a Thrift context is."""


class Recorder:
    """Records every observer callback, in order, with the span ids as symbols.

    Ids are named by the first span (or upstream value) that had them, so relationships
    ("the child's parent is the server span") compare across runs and implementations.
    """

    def __init__(self, core: ModuleType) -> None:
        self.core = core
        self.events: list[list[Any]] = []
        self.symbols: dict[int, str] = {}
        self.labels: dict[int, str] = {}  # id(span) -> its label
        self.spans: list[Any] = []  # the labelled spans, kept alive so no id(span) is reused

    def symbol(self, value: Any, hint: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            return {"not-an-int": repr(value)}
        return self.symbols.setdefault(value, hint)

    def name_upstream(self, trace_info: Any) -> None:
        self.symbol(trace_info.trace_id, "up.trace")
        self.symbol(trace_info.parent_id, "up.parent")
        self.symbol(trace_info.span_id, "up.span")

    def label(self, span: Any) -> str:
        key = id(span)
        if key not in self.labels:
            label = span.name
            taken = set(self.labels.values())
            suffix = 2
            while label in taken:
                label = f"{span.name}#{suffix}"
                suffix += 1
            self.labels[key] = label
            self.spans.append(span)
        return self.labels[key]

    def describe(self, span: Any) -> dict[str, Any]:
        label = self.label(span)
        return {
            "label": label,
            "type": type(span).__name__,
            "trace_id": self.symbol(span.trace_id, f"{label}.trace"),
            "parent_id": self.symbol(span.parent_id, f"{label}.parent"),
            "id": self.symbol(span.id, f"{label}.id"),
            "flags": span.flags,
            "component_name": getattr(span, "component_name", None),
        }

    def baseplate_observer(self) -> Any:
        recorder = self

        class Watcher(recorder.core.BaseplateObserver):  # type: ignore[name-defined]
            def on_server_span_created(self, context: Any, server_span: Any) -> None:
                recorder.events.append(
                    ["server_span_created", recorder.describe(server_span), type(context).__name__]
                )
                server_span.register(recorder.span_observer(server_span, server=True))

        return Watcher()

    def span_observer(self, span: Any, server: bool = False) -> Any:
        recorder = self
        label = self.label(span)
        base = recorder.core.ServerSpanObserver if server else recorder.core.SpanObserver

        class Observer(base):  # type: ignore[misc, valid-type]
            def on_start(self) -> None:
                recorder.events.append(["start", label])

            def on_set_tag(self, key: str, value: Any) -> None:
                recorder.events.append(["set_tag", label, key, jsonable(value)])

            def on_log(self, name: str, payload: Any) -> None:
                recorder.events.append(["log", label, name, jsonable(payload)])

            def on_finish(self, exc_info: Any) -> None:
                recorder.events.append(
                    ["finish", label, None if exc_info is None else exc_info[0].__name__]
                )

            def on_child_span_created(self, child: Any) -> None:
                recorder.events.append(["child_created", label, recorder.describe(child)])
                child.register(recorder.span_observer(child))

        return Observer()


def attempt(action: Callable[[], Any]) -> Any:
    """``{"ok": result}`` or ``{"error": class name}``."""
    try:
        return {"ok": jsonable(action())}
    except Exception as exc:
        return {"error": error_name(exc)}


# --- span and observer scenarios -----------------------------------------------------------


def _server(core: ModuleType, rec: Recorder, trace_info: Any = None) -> tuple[Any, Any, Any]:
    baseplate = core.Baseplate()
    baseplate.register(rec.baseplate_observer())
    context = Context()
    if trace_info is not None:
        rec.name_upstream(trace_info)
    span = baseplate.make_server_span(context, "request", trace_info)
    return baseplate, context, span


def sc_context_manager_new_trace(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, _, span = _server(core, rec)
    with span as entered:
        span.set_tag("route", "/a")
        span.set_tag("count", 3)
        span.set_tag("ok", True)
        span.log("cache-miss", {"key": "k"})
        span.log("no-payload")
    return {
        "enter_returns_span": entered is span,
        "trace_is_span_id": span.trace_id == span.id,
        "parent_id": span.parent_id,
        "flags": span.flags,
        "id_is_int": isinstance(span.id, int) and 0 < span.id < 2**64,
    }


def sc_start_finish_upstream(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    info = core.TraceInfo.from_upstream(1001, 2002, 3003, True, 1)
    _, _, span = _server(core, rec, info)
    span.start()
    span.set_tag("float", 1.5)
    span.log("event", 42)
    span.finish()
    return {"ids": [span.trace_id, span.parent_id, span.id, span.sampled, span.flags]}


def sc_finish_with_exc_info(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, _, span = _server(core, rec, core.TraceInfo.from_upstream(1, 2, 3, False, None))
    span.start()
    try:
        raise ValueError("boom")
    except ValueError:
        span.finish(exc_info=sys.exc_info())
    return {"sampled": span.sampled}


def sc_exception_inside_with(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, _, span = _server(core, rec)
    raised = None
    try:
        with span:
            child = span.make_child("db.query")
            with child:
                raise KeyError("missing")
    except KeyError as exc:
        raised = error_name(exc)
    return {"raised": raised}


def sc_tag_and_log_outside_lifetime(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, _, span = _server(core, rec)
    span.set_tag("early", "yes")
    span.log("early-log", "p")
    span.start()
    span.finish()
    span.set_tag("late", "yes")
    span.log("late-log")
    return {}


def sc_double_finish(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, _, span = _server(core, rec)
    span.start()
    child = span.make_child("remote.call")
    child.start()
    child.finish()
    child.finish()
    span.finish()
    span.finish()
    return {}


def sc_client_child(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    info = core.TraceInfo.from_upstream(500, 400, 501, True, None)
    _, context, span = _server(core, rec, info)
    with span:
        child = span.make_child("redis.get")
        same_context = child.context is span.context
        with child:
            child.set_tag("key", "k")
            child.log("retry", None)
    return {
        "child": [child.trace_id, child.parent_id == span.id, child.id != span.id],
        "child_sampled_flags": [child.sampled, child.flags],
        "child_shares_context": same_context,
    }


def sc_local_child(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    info = core.TraceInfo.from_upstream(77, 66, 78, True, None)
    _, context, span = _server(core, rec, info)
    context.trace = span  # as every framework integration does
    context.custom = "request-attribute"
    with span:
        local = span.make_child("compute", local=True, component_name="scorer")
        with local:
            seen = {
                "local_context_is_context": local.context is context,
                "local_trace_is_local": local.context.trace is local,
                "original_trace_is_server": context.trace is span,
                "custom_visible": getattr(local.context, "custom", None),
            }
            local.context.added_in_local = 1
            seen["added_visible_on_original"] = hasattr(context, "added_in_local")
            local.set_tag("items", 10)
    seen["after_trace_is_server"] = context.trace is span
    seen["component_name"] = local.component_name
    seen["ids"] = [local.trace_id == span.trace_id, local.parent_id == span.id]
    return seen


def sc_nested_local(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, context, span = _server(core, rec, core.TraceInfo.from_upstream(9, 8, 10, True, 1))
    context.trace = span
    with span:
        outer = span.make_child("outer", local=True, component_name="a")
        with outer:
            inner = outer.make_child("inner", local=True, component_name="b")
            with inner:
                call = inner.make_child("inner.call")
                with call:
                    pass
                trace_in_inner = inner.context.trace is inner
                inner.context.set_in_inner = True
            trace_in_outer = outer.context.trace is outer
            set_in_inner_seen_by_outer = getattr(outer.context, "set_in_inner", False)
    return {
        "inner_parent_is_outer": inner.parent_id == outer.id,
        "call_parent_is_inner": call.parent_id == inner.id,
        "flags": [outer.flags, inner.flags, call.flags],
        "trace_in_inner": trace_in_inner,
        "trace_in_outer": trace_in_outer,
        "set_in_inner_seen_by_outer": set_in_inner_seen_by_outer,
        "set_in_inner_seen_by_request": getattr(context, "set_in_inner", False),
        "request_trace_is_server": context.trace is span,
    }


def sc_local_without_component(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, context, span = _server(core, rec)
    context.trace = span
    with span:
        made = attempt(lambda: span.make_child("compute", local=True))
        empty = attempt(lambda: span.make_child("c2", local=True, component_name="").name)
    return {"missing": made, "empty_name": empty}


def sc_observer_registers_more(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    """An observer registering another observer on the same span during on_start."""
    _, _, span = _server(core, rec)

    class Late(core.SpanObserver):  # type: ignore[name-defined, misc]
        def on_start(self) -> None:
            rec.events.append(["late_start"])

        def on_finish(self, exc_info: Any) -> None:
            rec.events.append(["late_finish"])

    class Registrar(core.SpanObserver):  # type: ignore[name-defined, misc]
        def on_start(self) -> None:
            rec.events.append(["registrar_start"])
            span.register(Late())

    span.register(Registrar())
    with span:
        pass
    return {}


def sc_add_to_context(
    core: ModuleType, rec: Recorder, context_module: ModuleType
) -> dict[str, Any]:
    calls: list[list[Any]] = []

    class Factory(context_module.ContextFactory):  # type: ignore[name-defined, misc]
        def make_object_for_context(self, name: str, span: Any) -> Any:
            made = {"name": name, "span": rec.label(span), "n": len(calls)}
            calls.append([name, rec.label(span), type(span).__name__])
            return made

    baseplate = core.Baseplate()
    baseplate.add_to_context("thing", Factory())
    baseplate.register(rec.baseplate_observer())
    results: dict[str, Any] = {}
    for request in ("first", "second"):
        context = Context()
        span = baseplate.make_server_span(context, request)
        context.trace = span
        results[f"{request}_attr"] = context.thing
        with span:
            client = span.make_child(f"{request}.client")
            with client:
                results[f"{request}_client_attr"] = client.context.thing
            local = span.make_child(f"{request}.local", local=True, component_name="c")
            with local:
                results[f"{request}_local_attr"] = local.context.thing
                nested = local.make_child(f"{request}.nested", local=True, component_name="d")
                with nested:
                    results[f"{request}_nested_attr"] = nested.context.thing
            results[f"{request}_attr_after_local"] = context.thing
    results["calls"] = calls
    return results


def sc_failing_observer(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    """A span observer that raises in on_start: does the request see it?"""
    _, _, span = _server(core, rec)

    class Broken(core.SpanObserver):  # type: ignore[name-defined, misc]
        def on_start(self) -> None:
            raise RuntimeError("observer bug")

    span.register(Broken())
    started = attempt(span.start)
    span.finish()
    return {"start": started}


def sc_server_span_on_context(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, context, span = _server(core, rec)
    return {"context_trace_is_span": getattr(context, "trace", None) is span}


def sc_new_trace_sampling(core: ModuleType, rec: Recorder) -> dict[str, Any]:
    _, _, span = _server(core, rec)
    child = span.make_child("c")
    return {"server": span.sampled, "child": child.sampled}


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    name[3:]: function for name, function in list(globals().items()) if name.startswith("sc_")
}


def run_core(core: ModuleType, context_module: ModuleType, names: list[str]) -> dict[str, Any]:
    """Run each named scenario; return its result, observer events and any error."""
    answers: dict[str, Any] = {}
    for name in names:
        rec = Recorder(core)
        scenario = SCENARIOS[name]
        try:
            if name == "add_to_context":
                result = scenario(core, rec, context_module)
            else:
                result = scenario(core, rec)
        except Exception as exc:
            result = {"scenario_error": error_name(exc), "message": str(exc)}
        answers[name] = {"result": result, "events": rec.events}
    return answers


# --- trace info ----------------------------------------------------------------------------


def decode_value(value: Any) -> Any:
    """Test values that JSON cannot carry: ``{"str": "5"}``, ``{"float": 1.0}``."""
    if isinstance(value, dict):
        if "str" in value:
            return value["str"]
        if "float" in value:
            return float(value["float"])
        if "bytes" in value:
            return value["bytes"].encode()
    return value


def run_trace_info(core: ModuleType, cases: list[list[Any]]) -> dict[str, Any]:
    """``from_upstream`` on each case; ``TraceInfo.new`` shape; children of upstream spans."""
    answers = []
    for case in cases:
        args = [decode_value(value) for value in case]
        answers.append(attempt(lambda args=args: list(core.TraceInfo.from_upstream(*args))))
    news = [core.TraceInfo.new() for _ in range(50)]
    new_shape = {
        "parent_none": all(info.parent_id is None for info in news),
        "span_is_trace": all(info.span_id == info.trace_id for info in news),
        "sampled_flags": sorted({(info.sampled, info.flags) for info in news}, key=repr),
        "64_bit": all(0 <= info.trace_id < 2**64 for info in news),
        "distinct": len({info.trace_id for info in news}) == len(news),
        "fields": list(core.TraceInfo._fields),
    }
    return {"from_upstream": answers, "new": jsonable(new_shape)}


# --- metrics -------------------------------------------------------------------------------


def run_metrics(metrics: ModuleType, endpoint: Any, cases: list[str]) -> dict[str, Any]:
    """Run each metrics case against ``endpoint`` (``host:port``); after each case a marker
    datagram ``#case <name>`` is sent on a plain socket, so the receiver can split lines."""
    host, port = endpoint
    marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answers: dict[str, Any] = {}
    for name in cases:
        client = metrics.make_client("ns", _endpoint_of(metrics, host, port))
        try:
            answers[name] = {"ok": jsonable(METRIC_CASES[name](client))}
        except Exception as exc:
            answers[name] = {
                "error": error_name(exc),
                "assertion_error": isinstance(exc, AssertionError),
            }
        transport = getattr(client, "transport", None)
        if hasattr(transport, "telemetry_counts"):  # ours sends from a background thread
            transport.flush(10)
        marker.sendto(f"#case {name}".encode(), (host, port))
    marker.close()
    return answers


def _endpoint_of(metrics: ModuleType, host: str, port: int) -> Any:
    config = sys.modules[metrics.__name__.rpartition(".")[0] + ".config"]
    return config.Endpoint(f"{host}:{port}")


def mc_plain_metrics(client: Any) -> Any:
    client.counter("hits").increment()
    client.counter("hits").increment(5)
    client.counter("misses").decrement()
    client.counter("misses").decrement(2)
    client.counter("fractional").increment(0.5)
    client.counter("sent").send(7, 1.0)
    client.gauge("workers").replace(4)
    client.gauge("ratio").replace(0.25)
    client.histogram("sizes").add_sample(320)
    client.timer("elapsed").send(1.5)
    client.timer("tiny").send(0.0001)
    return None


def mc_sample_rates(client: Any) -> Any:
    for rate in (1.0, 1, 0.5, 0.25, 0.1, 0.0001, 1 / 3):
        client.counter("sampled").increment(1, sample_rate=rate)
    client.counter("down").decrement(3, sample_rate=0.5)
    return None


def mc_big_numbers(client: Any) -> Any:
    client.counter("big").increment(1234567)
    client.gauge("big_gauge").replace(12345678)
    client.timer("long").send(1234.5)
    client.histogram("big_histogram").add_sample(10**7)
    return None


def mc_timer_context_manager(client: Any) -> Any:
    timer = client.timer("timed")
    with timer as entered:
        pass
    return {"stopped": timer.stopped, "enter_is_timer": entered is timer}


def mc_timer_stop_without_start(client: Any) -> Any:
    return client.timer("never").stop()


def mc_timer_start_twice(client: Any) -> Any:
    timer = client.timer("twice")
    timer.start()
    timer.start()


def mc_timer_stop_twice(client: Any) -> Any:
    timer = client.timer("twice_stopped")
    timer.start()
    timer.stop()
    timer.stop()


def mc_gauge_negative(client: Any) -> Any:
    client.gauge("below").replace(-1)


def mc_batch_context_manager(client: Any) -> Any:
    with client.batch() as batch:
        batch.counter("b.hits").increment()
        batch.counter("b.hits").increment(2)
        batch.counter("b.hits").increment(1, sample_rate=0.5)
        batch.counter("b.down").decrement(3)
        batch.timer("b.timer").send(0.25)
        batch.gauge("b.gauge").replace(7)
        batch.histogram("b.histogram").add_sample(9)
        same = batch.counter("b.hits") is batch.counter("b.hits")
    return {"same_counter_object": same}


def mc_batch_counter_send(client: Any) -> Any:
    batch = client.batch()
    counter = batch.counter("b.sent")
    counter.send(4, 1.0)
    batch.flush()


def mc_batch_flush_twice(client: Any) -> Any:
    batch = client.batch()
    batch.gauge("once").replace(1)
    batch.counter("counted").increment()
    batch.flush()
    batch.flush()


def mc_batch_empty(client: Any) -> Any:
    with client.batch():
        pass


def mc_batch_timer_context(client: Any) -> Any:
    with client.batch() as batch:
        with batch.timer("b.block"):
            pass


def mc_batch_exception(client: Any) -> Any:
    try:
        with client.batch() as batch:
            batch.counter("before_error").increment()
            raise ValueError("in batch")
    except ValueError as exc:
        return {"raised": error_name(exc)}


def mc_unicode_name(client: Any) -> Any:
    client.counter("caf\u00e9").increment()


def mc_dotted_names(client: Any) -> Any:
    client.counter(".leading.and.trailing.").increment()
    client.counter("a..b").increment()
    return None


def mc_name_with_colon(client: Any) -> Any:
    client.counter("a:b").increment()


def mc_name_with_pipe(client: Any) -> Any:
    client.counter("a|b").increment()


def mc_name_with_newline(client: Any) -> Any:
    client.counter("a\nb").increment()


def mc_name_with_space(client: Any) -> Any:
    client.gauge("a b").replace(1)


def mc_bytes_name(client: Any) -> Any:
    client.counter(b"raw").increment()


def mc_sample_rate_zero(client: Any) -> Any:
    client.counter("zero_rate").increment(1, sample_rate=0)


def mc_sample_rate_above_one(client: Any) -> Any:
    client.counter("big_rate").increment(1, sample_rate=2)


def mc_batch_sample_rate_formatting(client: Any) -> Any:
    with client.batch() as batch:
        batch.counter("rates").increment(1, sample_rate=0.5)
        batch.counter("rates").increment(2, sample_rate=0.5)
        batch.counter("rates").increment(1, sample_rate=0.1)
        batch.counter("rates").increment(1, sample_rate=1)


METRIC_CASES: dict[str, Callable[[Any], Any]] = {
    name[3:]: function for name, function in list(globals().items()) if name.startswith("mc_")
}

TIMER_VALUE = re.compile(rb"^(.*):([0-9.e+-]+)\|ms$")


# --- edge request context ------------------------------------------------------------------


def describe_accessors(edge: Any, roles: list[str], types: list[list[str]]) -> dict[str, Any]:
    """Every accessor of an edge context, each as ``{"ok": value}`` or ``{"error": name}``."""
    user, client, session, service = edge.user, edge.oauth_client, edge.session, edge.service
    answer: dict[str, Any] = {
        "user.id": attempt(lambda: user.id),
        "user.is_logged_in": attempt(lambda: user.is_logged_in),
        "user.roles": attempt(lambda: user.roles),
        "user.loid": attempt(lambda: user.loid),
        "user.cookie_created_ms": attempt(lambda: user.cookie_created_ms),
        "user.event_fields": attempt(user.event_fields),
        "oauth_client.id": attempt(lambda: client.id),
        "oauth_client.event_fields": attempt(client.event_fields),
        "session.id": attempt(lambda: session.id),
        "session.tuple": attempt(lambda: list(session)),
        "service.name": attempt(lambda: service.name),
        "event_fields": attempt(edge.event_fields),
        "token.subject": attempt(lambda: edge.authentication_token.subject),
        "token.user_roles": attempt(lambda: edge.authentication_token.user_roles),
        "token.oauth_client_id": attempt(lambda: edge.authentication_token.oauth_client_id),
        "token.oauth_client_type": attempt(lambda: edge.authentication_token.oauth_client_type),
    }
    for role in roles:
        answer[f"has_role({role})"] = attempt(lambda role=role: user.has_role(role))
    for wanted in types:
        answer[f"is_type({','.join(wanted)})"] = attempt(
            lambda wanted=wanted: client.is_type(*wanted)
        )
    return answer


def run_edge(core: ModuleType, secrets_store: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Build an edge context for each case with ``new`` (and read back with
    ``from_upstream``); describe every accessor of both."""
    factory = core.EdgeRequestContextFactory(secrets_store)
    answers: dict[str, Any] = {}
    for name, case in request["cases"].items():
        try:
            made = factory.new(**case)
        except Exception as exc:
            answers[name] = {"new_error": error_name(exc)}
            continue
        header = made._header if hasattr(made, "_header") else made.header
        read = factory.from_upstream(header)
        answers[name] = {
            "new": describe_accessors(made, request["roles"], request["types"]),
            "read": describe_accessors(read, request["roles"], request["types"]),
        }
    return answers


# --- the peer's entry point ----------------------------------------------------------------


def main() -> None:
    command = sys.argv[1]
    request = json.loads(sys.stdin.read() or "null")
    if command == "core":
        import baseplate.context as context_module
        import baseplate.core as core

        answer: Any = run_core(core, context_module, request)
    elif command == "trace-info":
        import baseplate.core as core

        answer = run_trace_info(core, request)
    elif command == "metrics":
        import baseplate.config  # noqa: F401 - looked up by _endpoint_of
        import baseplate.metrics as metrics

        answer = run_metrics(metrics, tuple(request["endpoint"]), request["cases"])
    elif command == "edge":
        import baseplate.core as core
        from baseplate.secrets import SecretsStore

        answer = run_edge(core, SecretsStore(request["secrets"]), request)
    else:
        raise SystemExit(f"unknown command {command!r}")
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
