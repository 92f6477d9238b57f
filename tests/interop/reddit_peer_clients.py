"""Reddit's own instrumented clients as a peer: memcache serializers, and the spans of its
redis, memcache, SQLAlchemy and kombu clients.

Run as a script by ``test_reddit_clients_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout). Each sub-command reads its request as JSON on stdin and prints its
answer as one JSON line on stdout.

The drivers below take a :class:`Side` (the baseplate modules to use) and import nothing from
baseplate themselves: the test imports this file and runs the very same drivers with OUR
modules, so both implementations run exactly the same scenarios. What each side's observers
saw (span names, span classes, parents, tags, errors) is returned for comparison.
"""

from __future__ import annotations

import argparse
import base64
import json
import pickle
import re
import sys
import zlib
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

# --- plain values --------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A JSON form of a tag value or client result that keeps its type visible."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {repr(key): jsonable(item) for key, item in sorted(value.items(), key=repr)}
    return {"repr": repr(value)}


def error_of(exc: BaseException) -> dict[str, str]:
    """What both sides must agree on about an exception: its class name."""
    return {"error": type(exc).__name__}


def describe(value: Any) -> dict[str, str]:
    """A decoded cache value: its type and repr (so ``1`` and ``True`` differ)."""
    return {"type": type(value).__name__, "repr": repr(value)}


# --- memcache serializers ------------------------------------------------------------------


def sample_values() -> list[tuple[str, Any]]:
    """Values stored in a cache shared between services, by label."""
    text = "héllo wörld ☃"
    return [
        ("str", "hello"),
        ("str_empty", ""),
        ("str_unicode", text),
        ("bytes", b"\x00\x01raw\xff"),
        ("bytes_empty", b""),
        ("int", 42),
        ("int_zero", 0),
        ("int_negative", -17),
        ("int_long", 2**70),
        ("int_long_negative", -(2**64) - 5),
        ("bool_true", True),
        ("bool_false", False),
        ("float", 1.5),
        ("float_negative", -0.25),
        ("none", None),
        ("list", [1, "two", 3.0, None, True]),
        ("tuple", (1, 2)),
        ("dict", {"b": 1, "a": [1, 2], "c": {"d": None}}),
        ("dict_int_keys", {1: "one", 2: "two"}),
        (
            "nested",
            {"users": [{"id": i, "name": f"user{i}", "tags": ["x", "y"]} for i in range(3)]},
        ),
        ("str_long", "abcdefghij" * 40),
        ("bytes_long", b"0123456789" * 40),
        ("int_long_text", int("9" * 60)),
        ("dict_long", {f"key{i}": "value" * 5 for i in range(40)}),
        ("str_at_threshold", "x" * 100),
        ("str_above_threshold", "x" * 101),
        ("set", {1, 2}),
        ("complex", complex(1, 2)),
    ]


#: (serializer maker, keyword arguments) combinations compared.
SERIALIZER_CONFIGS: list[tuple[str, dict[str, int]]] = [
    ("make_dump_and_compress_fn", {}),
    ("make_dump_and_compress_fn", {"min_compress_length": 100}),
    ("make_dump_and_compress_fn", {"min_compress_length": 100, "compress_level": 9}),
    ("make_dump_and_compress_fn", {"min_compress_length": 1, "compress_level": 0}),
    ("make_dump_and_compress_fn", {"min_compress_length": 10, "compress_level": 6}),
    ("make_pickle_and_compress_fn", {}),
    ("make_pickle_and_compress_fn", {"min_compress_length": 100}),
    ("make_pickle_and_compress_fn", {"min_compress_length": 50, "compress_level": 9}),
    ("make_pickle_and_compress_fn", {"min_compress_length": 1, "compress_level": 0}),
]

#: Invalid serializer arguments: both sides must refuse them (the class is compared apart).
BAD_SERIALIZER_CONFIGS: list[dict[str, Any]] = [
    {"min_compress_length": -1},
    {"compress_level": 10},
    {"compress_level": -1},
    {"min_compress_length": "5"},
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dump_all(lib: ModuleType) -> list[dict[str, Any]]:
    """Serialize every sample value with every configuration: ``b64`` bytes and flags."""
    dumped: list[dict[str, Any]] = []
    for maker, kwargs in SERIALIZER_CONFIGS:
        serializer = getattr(lib, maker)(**kwargs)
        for label, value in sample_values():
            case: dict[str, Any] = {"maker": maker, "kwargs": kwargs, "label": label}
            try:
                serialized, flags = serializer("key", value)
                case.update({"b64": _b64(serialized), "flags": flags})
            except Exception as exc:
                case.update(error_of(exc))
            dumped.append(case)
    return dumped


def bad_configs(lib: ModuleType) -> list[Any]:
    """What each maker does with invalid arguments."""
    answers: list[Any] = []
    for maker in ("make_dump_and_compress_fn", "make_pickle_and_compress_fn"):
        for kwargs in BAD_SERIALIZER_CONFIGS:
            try:
                getattr(lib, maker)(**kwargs)
                answers.append("accepted")
            except Exception as exc:
                answers.append(error_of(exc))
    return answers


def legacy_values() -> list[dict[str, Any]]:
    """Cache items as other writers leave them (pylibmc's flags included), by label."""
    pickled = pickle.dumps({"r2": [1, 2, 3]}, protocol=2)
    return [
        {"label": "pylibmc_bool_true", "b64": _b64(b"1"), "flags": 16},
        {"label": "pylibmc_bool_false", "b64": _b64(b"0"), "flags": 16},
        {"label": "pylibmc_long", "b64": _b64(b"123456789012345678901234567890"), "flags": 4},
        {"label": "pylibmc_int", "b64": _b64(b"-5"), "flags": 2},
        {"label": "pylibmc_pickle", "b64": _b64(pickled), "flags": 1},
        {"label": "pylibmc_zlib_pickle", "b64": _b64(zlib.compress(pickled)), "flags": 9},
        {"label": "pylibmc_zlib_int", "b64": _b64(zlib.compress(b"77")), "flags": 10},
        {"label": "pylibmc_zlib_long", "b64": _b64(zlib.compress(b"88")), "flags": 12},
        {"label": "pylibmc_zlib_str", "b64": _b64(zlib.compress(b"text")), "flags": 8},
        {"label": "pickle_protocol_0", "b64": _b64(pickle.dumps([1, "a"], protocol=0)), "flags": 1},
        {"label": "pickle_protocol_4", "b64": _b64(pickle.dumps({"a": 1}, protocol=4)), "flags": 1},
        {"label": "json_object", "b64": _b64(b'{"a": [1, 2]}'), "flags": 1},
        {"label": "json_invalid", "b64": _b64(b"{not json"), "flags": 1},
        {"label": "pickle_invalid", "b64": _b64(b"not a pickle"), "flags": 1},
        {"label": "zlib_invalid", "b64": _b64(b"not zlib"), "flags": 8},
        {"label": "unknown_flag_32", "b64": _b64(b"raw"), "flags": 32},
        {"label": "json_and_int", "b64": _b64(b"12"), "flags": 3},
        {"label": "zlib_bool", "b64": _b64(zlib.compress(b"1")), "flags": 24},
        {"label": "int_invalid", "b64": _b64(b"12x"), "flags": 2},
    ]


def load_all(lib: ModuleType, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Read each ``{"b64", "flags"}`` item with both deserializers."""
    answers: list[dict[str, Any]] = []
    for item in items:
        answer: dict[str, Any] = {}
        for reader in ("decompress_and_load", "decompress_and_unpickle"):
            try:
                value = getattr(lib, reader)("key", base64.b64decode(item["b64"]), item["flags"])
                answer[reader] = describe(value)
            except Exception as exc:
                answer[reader] = error_of(exc)
        answers.append(answer)
    return answers


def run_serializers(lib: ModuleType, request: dict[str, Any]) -> dict[str, Any]:
    """Dump the samples (and read them back), check bad arguments, read the given items and
    the legacy ones."""
    dumped = dump_all(lib)
    return {
        "dumped": dumped,
        "reloaded": load_all(lib, [case for case in dumped if "b64" in case]),
        "bad_configs": bad_configs(lib),
        "loaded": load_all(lib, request["items"]),
        "legacy": load_all(lib, legacy_values()),
    }


# --- observers -----------------------------------------------------------------------------


class Side(SimpleNamespace):
    """The modules of one implementation: ``core`` (``baseplate.core``), ``make_context`` (a
    request context usable with local spans) and the ``baseplate.context`` modules."""


def make_recorder(core: ModuleType, spans: list[dict[str, Any]]) -> Any:
    """A ``BaseplateObserver`` appending what it sees of each child span to ``spans``."""

    class Recorder(core.SpanObserver):  # type: ignore[name-defined,misc]
        def __init__(self, record: dict[str, Any]):
            self.record = record

        def on_start(self) -> None:
            self.record["started"] = True

        def on_set_tag(self, key: str, value: Any) -> None:
            self.record["tags"][key] = value

        def on_finish(self, exc_info: Any) -> None:
            self.record["finished"] = True
            if exc_info is not None:
                self.record["error"] = exc_info[0].__name__

        def on_child_span_created(self, span: Any) -> None:
            record = {
                "name": span.name,
                "class": type(span).__name__,
                "parent": self.record["name"],
                "tags": {},
                "error": None,
                "started": False,
                "finished": False,
                "ids": [span.trace_id, span.id],
            }
            spans.append(record)
            span.register(Recorder(record))

    class Root(core.BaseplateObserver):  # type: ignore[name-defined,misc]
        def on_server_span_created(self, context: Any, server_span: Any) -> None:
            server_span.register(Recorder({"name": server_span.name, "tags": {}}))

    return Root()


def finish_records(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Span records in JSON form (tag values typed, ids dropped)."""
    return [
        {**{k: v for k, v in span.items() if k != "ids"}, "tags": jsonable(span["tags"])}
        for span in spans
    ]


def run_steps(
    steps: list[tuple[str, Callable[[], Any]]], spans: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run each named step; return its result (or error) and the spans it made."""
    answers: list[dict[str, Any]] = []
    for label, step in steps:
        before = len(spans)
        answer: dict[str, Any] = {"step": label}
        try:
            answer["result"] = jsonable(step())
        except Exception as exc:
            answer.update(error_of(exc))
        answer["spans"] = finish_records(spans[before:])
        answers.append(answer)
    return answers


def _request(side: Side, name: str, factory: Any) -> tuple[Any, Any, list[dict[str, Any]]]:
    baseplate = side.core.Baseplate()
    spans: list[dict[str, Any]] = []
    baseplate.register(make_recorder(side.core, spans))
    baseplate.add_to_context(name, factory)
    context = side.make_context()
    server_span = baseplate.make_server_span(context, "handler")
    return context, server_span, spans


# --- redis ---------------------------------------------------------------------------------


def run_redis(side: Side, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Commands, pipelines and errors through ``context.redis`` against the real Redis."""
    prefix = request["prefix"]

    def k(name: str) -> str:
        return prefix + name

    pool = side.redis.pool_from_config({"redis.url": request["url"]})
    context, server_span, spans = _request(side, "redis", side.redis.RedisContextFactory(pool))
    with server_span:
        r = context.redis

        def pipeline() -> Any:
            pipe = r.pipeline("batch")
            pipe.set(k("p1"), "one")
            pipe.incrby(k("p2"), 3)
            pipe.get(k("p1"))
            return pipe.execute()

        def pipeline_plain() -> Any:
            pipe = r.pipeline("plain", transaction=False)
            pipe.get(k("p1"))
            pipe.delete(k("p1"), k("p2"))
            return pipe.execute()

        def pipeline_error() -> Any:
            pipe = r.pipeline("broken")
            pipe.lpush(k("string"), "x")
            return pipe.execute()

        def in_local_span() -> Any:
            with server_span.make_child("work", local=True, component_name="comp") as local:
                return local.context.redis.get(k("a"))

        steps: list[tuple[str, Callable[[], Any]]] = [
            ("set", lambda: r.set(k("a"), "1")),
            ("set_ex", lambda: r.set(k("b"), "2", ex=60)),
            ("get", lambda: r.get(k("a"))),
            ("get_missing", lambda: r.get(k("missing"))),
            ("incr", lambda: r.incr(k("n"))),
            ("incrby", lambda: r.incrby(k("n"), 5)),
            ("decr", lambda: r.decr(k("n"))),
            ("mget", lambda: r.mget([k("a"), k("b")])),
            ("exists", lambda: r.exists(k("a"))),
            ("expire", lambda: r.expire(k("a"), 100)),
            ("ttl", lambda: r.ttl(k("a"))),
            ("hset", lambda: r.hset(k("h"), "f", "v")),
            ("hget", lambda: r.hget(k("h"), "f")),
            ("hgetall", lambda: r.hgetall(k("h"))),
            ("rpush", lambda: r.rpush(k("l"), "x", "y")),
            ("lrange", lambda: r.lrange(k("l"), 0, -1)),
            ("sadd", lambda: r.sadd(k("s"), "m")),
            ("smembers", lambda: r.smembers(k("s"))),
            ("setnx", lambda: r.setnx(k("a"), "other")),
            ("set_string", lambda: r.set(k("string"), "text")),
            ("wrong_type", lambda: r.lpush(k("string"), "x")),
            ("unknown_command", lambda: r.execute_command("NOSUCHCOMMAND", k("a"))),
            ("pipeline", pipeline),
            ("pipeline_plain", pipeline_plain),
            ("pipeline_error", pipeline_error),
            ("local_span", in_local_span),
            (
                "delete",
                lambda: r.delete(*(k(n) for n in ("a", "b", "n", "h", "l", "s", "string"))),
            ),
        ]
        answers = run_steps(steps, spans)
    return answers


# --- memcache ------------------------------------------------------------------------------


def _ignore(result: Any) -> None:
    """Drop a result that is the client library's own (it differs between its versions)."""


def run_memcache(side: Side, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every monitored ``PooledClient`` method (but ``flush_all``) against the real memcached."""
    prefix = request["prefix"]

    def k(name: str) -> str:
        return prefix + name

    lib = side.memcache_lib
    pool = side.memcache.pool_from_config(
        {"memcache.endpoint": request["endpoint"]},
        serializer=lib.make_dump_and_compress_fn(min_compress_length=100),
        deserializer=lib.decompress_and_load,
    )
    factory = side.memcache.MemcacheContextFactory(pool)
    context, server_span, spans = _request(side, "memcache", factory)
    with server_span:
        mc = context.memcache
        tokens: dict[str, Any] = {}

        def gets() -> Any:
            value, token = mc.gets(k("a"))
            tokens["a"] = token
            return [value, type(token).__name__]

        def gets_many() -> Any:
            found = mc.gets_many([k("a"), k("missing")])
            return {key: value for key, (value, _) in found.items()}

        def in_local_span() -> Any:
            with server_span.make_child("work", local=True, component_name="comp") as local:
                return local.context.memcache.get(k("a"))

        steps: list[tuple[str, Callable[[], Any]]] = [
            ("set", lambda: mc.set(k("a"), "value")),
            ("set_args", lambda: mc.set(k("b"), {"x": 1}, expire=60, noreply=False)),
            # (what set_many returns is pymemcache's: True in 1.4, failed keys in 4.x)
            ("set_many", lambda: _ignore(mc.set_many({k("c"): 1, k("d"): "two"}, noreply=False))),
            ("get", lambda: mc.get(k("a"))),
            ("get_json", lambda: mc.get(k("b"))),
            ("get_missing", lambda: mc.get(k("missing"))),
            ("get_many", lambda: mc.get_many([k("a"), k("c"), k("missing")])),
            ("gets", gets),
            ("gets_many", gets_many),
            ("cas", lambda: mc.cas(k("a"), "swapped", tokens["a"], noreply=False)),
            ("cas_stale", lambda: mc.cas(k("a"), "again", tokens["a"], noreply=False)),
            ("add_new", lambda: mc.add(k("e"), "new", noreply=False)),
            ("add_existing", lambda: mc.add(k("e"), "other", noreply=False)),
            ("replace", lambda: mc.replace(k("e"), "replaced", expire=30, noreply=False)),
            ("replace_missing", lambda: mc.replace(k("missing"), "x", noreply=False)),
            ("append", lambda: mc.append(k("e"), "-tail", noreply=False)),
            ("prepend", lambda: mc.prepend(k("e"), "head-", noreply=False)),
            ("get_edited", lambda: mc.get(k("e"))),
            ("incr", lambda: mc.incr(k("c"), 5)),
            ("decr", lambda: mc.decr(k("c"), 2)),
            ("incr_missing", lambda: mc.incr(k("missing"), 1)),
            ("touch", lambda: mc.touch(k("a"), expire=120, noreply=False)),
            ("touch_default", lambda: mc.touch(k("b"))),
            ("stats", lambda: sorted(mc.stats())[:0]),
            ("bad_key", lambda: mc.get("has space")),
            ("local_span", in_local_span),
            ("delete", lambda: mc.delete(k("a"), noreply=False)),
            ("delete_default", lambda: mc.delete(k("b"))),
            (
                "delete_many",
                lambda: mc.delete_many([k("c"), k("d"), k("e")], noreply=False),
            ),
            ("get_many_long", lambda: mc.get_many([k(f"long-key-{i:03d}") for i in range(12)])),
        ]
        answers = run_steps(steps, spans)
    for answer in answers:
        for span in answer["spans"]:
            if "'cas'" in span["tags"]:  # the token of this run
                span["tags"]["'cas'"] = "<the token from gets>"
    return answers


# --- sqlalchemy ----------------------------------------------------------------------------

_STATEMENT_IDS = re.compile(r"trace:(\d+),span:(\d+)")
#: The statement the server is running, read back by itself.
OWN_QUERY = "SELECT current_query()"


def _normalize_ids(text: str, spans: list[dict[str, Any]]) -> str:
    """Replace ``trace:<id>,span:<id>`` with the index of the recorded span having those ids."""

    def replace(match: re.Match[str]) -> str:
        ids = [int(match.group(1)), int(match.group(2))]
        for index, span in enumerate(spans):
            if span["ids"] == ids:
                return f"trace:<trace of span {index}>,span:<id of span {index}>"
        return "trace:<unknown>,span:<unknown>"

    return _STATEMENT_IDS.sub(replace, text)


def run_sqlalchemy(side: Side, request: dict[str, Any]) -> dict[str, Any]:
    """Engine and session factories against the real PostgreSQL: spans and the statement text
    the server sees."""
    sa = side.sqlalchemy_lib
    text = sa.text
    engine = sa.create_engine(request["url"])
    results: dict[str, Any] = {}

    # the engine factory
    factory = side.sqlalchemy.SQLAlchemyEngineContextFactory(engine)
    context, server_span, spans = _request(side, "db", factory)
    seen: list[str] = []

    def own_query(engine_or_conn: Any) -> Any:
        with engine_or_conn.connect() as conn:
            row = conn.execute(text(OWN_QUERY)).fetchone()
            seen.append(row[0])
            return "read"

    def with_parameters() -> Any:
        with context.db.connect() as conn:
            return conn.execute(text("SELECT :x + 1 AS y"), {"x": 41}).fetchone()[0]

    def failing() -> Any:
        with context.db.connect() as conn:
            return conn.execute(text("SELECT * FROM no_such_table_for_baseplate")).fetchall()

    def in_local_span() -> Any:
        with server_span.make_child("work", local=True, component_name="comp") as local:
            return own_query(local.context.db)

    with server_span:
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("own_query", lambda: own_query(context.db)),
            ("parameters", with_parameters),
            ("error", failing),
            ("local_span", in_local_span),
        ]
        results["engine"] = run_steps(steps, spans)
    results["engine_seen"] = [_normalize_ids(query, spans) for query in seen]

    # the session factory
    factory = side.sqlalchemy.SQLAlchemySessionContextFactory(engine)
    context, server_span, spans = _request(side, "db", factory)
    seen = []
    held: dict[str, Any] = {}

    def session_query() -> Any:
        held["connection"] = context.db.connection()
        seen.append(context.db.execute(text(OWN_QUERY)).fetchone()[0])
        return type(context.db).__name__

    def session_in_local_span() -> Any:
        with server_span.make_child("work", local=True, component_name="comp") as local:
            same = local.context.db is context.db
            seen.append(local.context.db.execute(text(OWN_QUERY)).fetchone()[0])
            return {"same_session": same}

    with server_span:
        steps = [("session_query", session_query), ("session_local", session_in_local_span)]
        results["session"] = run_steps(steps, spans)
        results["session_open_in_request"] = not held["connection"].closed
    results["session_closed_after_request"] = held["connection"].closed
    results["session_seen"] = [_normalize_ids(query, spans) for query in seen]
    engine.dispose()
    return results


# --- kombu ---------------------------------------------------------------------------------


def run_kombu(side: Side, request: dict[str, Any]) -> list[dict[str, Any]]:
    """``KombuProducer.publish`` against the real RabbitMQ (default exchange)."""
    kombu_ctx = side.kombu
    connection = kombu_ctx.connection_from_config({"amqp.hostname": request["url"]}, "amqp.")
    exchange = kombu_ctx.exchange_from_config({"amqp.exchange_type": "direct"}, "amqp.")
    factory = kombu_ctx.KombuProducerContextFactory(connection, exchange, max_connections=2)
    context, server_span, spans = _request(side, "amqp", factory)
    with server_span:
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("publish", lambda: context.amqp.publish({"a": 1}, routing_key=request["queue"]) and 0),
            ("publish_no_key", lambda: context.amqp.publish("text") and 0),
            ("not_serializable", lambda: context.amqp.publish(object(), routing_key="x") and 0),
        ]
        answers = run_steps(steps, spans)
    connection.release()
    return answers


# --- the peer ------------------------------------------------------------------------------


def reddit_side() -> Side:
    """Reddit's modules (only importable in the peer's interpreter)."""
    import sqlalchemy
    from baseplate.integration.wrapped_context import WrappedRequestContext

    from baseplate import core
    from baseplate.context import kombu, memcache, redis
    from baseplate.context import sqlalchemy as sqlalchemy_ctx
    from baseplate.context.memcache import lib
    from baseplate.integration.thrift import RequestContext

    return Side(
        core=core,
        make_context=lambda: WrappedRequestContext(RequestContext()),
        redis=redis,
        memcache=memcache,
        memcache_lib=lib,
        sqlalchemy=sqlalchemy_ctx,
        sqlalchemy_lib=sqlalchemy,
        kombu=kombu,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "command", choices=["serializers", "redis", "memcache", "sqlalchemy", "kombu"]
    )
    args = parser.parse_args()
    request = json.loads(sys.stdin.read() or "{}")
    side = reddit_side()
    if args.command == "serializers":
        answer: Any = run_serializers(side.memcache_lib, request)
    else:
        answer = globals()[f"run_{args.command}"](side, request)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
