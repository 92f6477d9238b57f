"""Reddit's own baseplate as a peer for events and the documented ``*_from_config`` helpers.

Run as a script by ``test_reddit_config_helpers_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout): ``reddit_peer_config_helpers.py AREA`` reads a JSON request on
stdin and prints the answer as one JSON line on stdout.

The drivers take the baseplate modules to use (see :func:`helper_modules`) and import
nothing from baseplate themselves: the test imports this file and runs the very same drivers
with OUR modules, so both implementations are asked exactly the same questions. Answers
describe what the documented configuration keys produced (parsed values and the settings of
the objects built), never library internals that legitimately differ between the client
library versions of the two environments.

The peer has neither cassandra-driver nor a usable hvac (see ``peer-requirements.txt``);
:func:`install_stand_ins` gives reddit's modules minimal stand-ins for the names they import,
so that their configuration parsing (all that is compared for those two) can run.
"""

from __future__ import annotations

import base64
import datetime
import importlib
import json
import math
import sys
import threading
import time
import types
import uuid
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import posix_ipc

# --- shared helpers ------------------------------------------------------------------------


def describe(value: Any) -> Any:
    """A JSON-friendly, implementation-neutral description of a value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, datetime.timedelta):
        return {"timedelta": value.total_seconds()}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, (set, frozenset)):
        return {"set": sorted(describe(item) for item in value)}
    if type(value).__name__ == "EndpointConfiguration":
        return {"family": int(value.family), "address": describe(value.address)}
    if isinstance(value, dict):
        return {"dict": {str(key): describe(item) for key, item in sorted(value.items())}}
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    return {"type": type(value).__name__}


def error_of(exc: BaseException) -> dict[str, Any]:
    """What both sides must agree on about an exception: its class and, for configuration
    errors, the key it names."""
    described: dict[str, Any] = {
        "error": type(exc).__name__,
        "value_error": isinstance(exc, ValueError),
        "type_error": isinstance(exc, TypeError),
        "assertion": isinstance(exc, AssertionError),
    }
    if any(cls.__name__ == "WatchedFileNotAvailableError" for cls in type(exc).__mro__):
        described["watched_file_unavailable"] = True
    if type(exc).__name__ == "ConfigurationError":
        described["key"] = exc.key  # type: ignore[attr-defined]
    return described


def outcome(call: Callable[[], Any], how: Callable[[Any], Any] = describe) -> dict[str, Any]:
    """``{"value": how(result)}`` for what ``call`` returned, else its error's description."""
    try:
        result = call()
    except Exception as exc:
        return error_of(exc)
    return {"value": how(result)}


# --- baseplate.events ----------------------------------------------------------------------


def build_value(desc: Any) -> Any:
    """A field value from its JSON description (``{"json": v}``, ``{"datetime": [...]}``,
    ``{"set": [...]}``, ``{"tuple": [...]}``, ``{"bytes": "..."}``, ``{"nan": true}``,
    ``{"repeat": [text, n]}``, ``{"object": true}``)."""
    ((kind, arg),) = desc.items()
    if kind == "json":
        return arg
    if kind == "datetime":
        return datetime.datetime(*arg)
    if kind == "set":
        return set(arg)
    if kind == "tuple":
        return tuple(arg)
    if kind == "bytes":
        return arg.encode()
    if kind == "nan":
        return math.nan
    if kind == "repeat":
        return arg[0] * arg[1]
    if kind == "object":
        return object()
    raise AssertionError(f"unknown value description {desc!r}")


def build_timestamp(desc: Any) -> Any:
    if desc is None:
        return None
    if "datetime" in desc:
        tz = desc.get("tz_minutes")
        tzinfo = None if tz is None else datetime.timezone(datetime.timedelta(minutes=tz))
        return datetime.datetime(*desc["datetime"], tzinfo=tzinfo)
    return build_value(desc)


def build_id(desc: Any) -> Any:
    if desc is None:
        return None
    if "uuid" in desc:
        return uuid.UUID(desc["uuid"])
    return build_value(desc)


def build_event(bp: SimpleNamespace, case: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Build a v1 Event as ``case`` says; return it and what each set_field did."""
    events = bp.events
    event = events.Event(
        case.get("topic", "topic"),
        case.get("type", "type"),
        timestamp=build_timestamp(case.get("timestamp")),
        id=build_id(case.get("id")),
    )
    sets = []
    for key, value, kind, obfuscate in case.get("fields", []):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = outcome(
                lambda k=key, v=value, n=kind, o=obfuscate: event.set_field(
                    k, build_value(v), obfuscate=o, kind=events.FieldKind[n]
                )
            )
        result["warnings"] = sorted({w.category.__name__ for w in caught})
        sets.append(result)
    return event, sets


def serialized_json(data: Any) -> Any:
    """A v1 event as sent: the JSON document (bytes or text, as each side returns it)."""
    return json.loads(data.decode() if isinstance(data, bytes) else data)


def normalized(case: dict[str, Any], document: Any, before: float) -> Any:
    """A serialized event with a default (current) timestamp or (random) id replaced by
    whether it is what it should be."""
    if not build_timestamp(case.get("timestamp")):
        ts = document["event_ts"]
        document["event_ts"] = {
            "now": isinstance(ts, int) and before - 1 <= ts <= time.time() * 1000
        }
    if case.get("id") is None or not build_id(case["id"]):
        document["uuid"] = {"uuid4": uuid.UUID(document["uuid"]).version == 4}
    return document


def run_events(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Build each event of ``request["events"]``; report its fields, id, timestamp and
    v1 serialization."""
    answers = []
    for case in request["events"]:
        before = time.time() * 1000
        try:
            event, sets = build_event(bp, case)
        except Exception as exc:
            answers.append({"construct": error_of(exc)})
            continue
        after = time.time() * 1000
        if not build_timestamp(case.get("timestamp")):
            timestamp: Any = {"now": before <= event.timestamp <= after}
        else:
            timestamp = event.timestamp
        if case.get("id") is None or not build_id(case["id"]):
            ident: Any = {"uuid4": isinstance(event.id, uuid.UUID) and event.id.version == 4}
        else:
            ident = describe(event.id)
        answers.append(
            {
                "topic": event.topic,
                "type": event.event_type,
                "timestamp": timestamp,
                "id": ident,
                "sets": sets,
                "gets": [describe(event.get_field(key)) for key in case.get("get", [])],
                "v1": outcome(
                    lambda e=event: bp.events.serialize_v1_event(e),
                    lambda data, c=case, b=before: normalized(c, serialized_json(data), b),
                ),
            }
        )
    return {"events": answers}


def _broken_serializer(event: Any) -> bytes:
    raise ValueError("this serializer cannot serialize anything")


def run_event_queue(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Put events on the (existing, small) queue ``request["queue"]`` with each serializer,
    then fill it; report each put's outcome and every message the queue then held."""
    events = bp.events
    serializers = {
        "v1": events.serialize_v1_event,
        "v2": events.serialize_v2_event,
        "broken": _broken_serializer,
    }
    queues = {
        name: events.EventQueue(request["queue"], serializer)
        for name, serializer in serializers.items()
    }

    def put(case: dict[str, Any]) -> Any:
        if "loid" in case:
            event = bp.ttypes.Loid(**case["loid"])
        elif "event" in case:
            event = build_event(bp, case["event"])[0]
        else:
            event = build_value(case["value"])
        return queues[case["serializer"]].put(event)

    puts = [outcome(lambda c=case: put(c)) for case in request["puts"]]
    filler = {"serializer": "v1", "event": {"id": {"json": "filler"}, "timestamp": None}}
    fill = [outcome(lambda: put(filler)) for _ in range(request["fill"])]

    raw = posix_ipc.MessageQueue("/events-" + request["queue"])
    messages = []
    try:
        while True:
            data, _ = raw.receive(0)
            try:
                document = json.loads(data.decode())
                if isinstance(document, dict) and document.get("uuid") == "filler":
                    document["event_ts"] = "now"  # differs between the runs
                messages.append(document)
            except ValueError:
                messages.append({"raw": data.decode()})
    except posix_ipc.BusyError:
        pass
    finally:
        raw.close()
    return {"puts": puts, "fill": fill, "messages": messages}


# --- metrics -------------------------------------------------------------------------------


def run_metrics(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Build a client from each configuration; with ``send``, send one of each metric (to
    whatever the configuration points at: the test's UDP socket)."""
    answers = []
    for case in request["cases"]:
        try:
            client = bp.root.metrics_client_from_config(case["raw"])
        except Exception as exc:
            answers.append(error_of(exc))
            continue
        namespace = client.namespace
        if isinstance(namespace, bytes):
            namespace = namespace.decode()
        answer: dict[str, Any] = {
            # what names are prefixed with (reddit keeps the dots and strips them when sending)
            "namespace": namespace.strip("."),
            "discards": type(client.transport).__name__ == "NullTransport",
        }
        if case.get("send"):
            client.counter("requests").increment()
            client.counter("errors").increment(2, sample_rate=0.5)
            client.timer("latency").send(1.5)
            client.gauge("workers").replace(4)
            client.histogram("sizes").add_sample(320)
            batch = client.batch()
            batch.counter("in_batch").increment()
            batch.counter("in_batch").increment()
            batch.gauge("batch_gauge").replace(7)
            batch.flush()
        answers.append({"value": answer})
    return {"cases": answers}


# --- tracing -------------------------------------------------------------------------------

_RECORDER_KINDS = {
    "SidecarRecorder": "sidecar",
    "RemoteRecorder": "zipkin",
    "LoggingRecorder": "console",
    "NullRecorder": "none",
}


def describe_tracing_client(client: Any, workers: int) -> dict[str, Any]:
    """What a tracing client was configured with: reddit's keeps a span recorder, ours a
    description of the exporter it will build."""
    described: dict[str, Any] = {
        "service_name": client.service_name,
        "sample_rate": client.sample_rate,
    }
    recorder = getattr(client, "recorder", None)
    if recorder is not None:  # reddit's
        kind = _RECORDER_KINDS[type(recorder).__name__]
        described["kind"] = kind
        if kind == "sidecar":
            described["queue"] = recorder.queue.queue.name
            return described
        described["max_span_queue_size"] = recorder.span_queue.maxsize
        described["span_batch_interval"] = recorder.batch_wait_interval
        described["num_span_workers"] = workers
        if kind == "zipkin":
            url = recorder.endpoint
            described["endpoint"] = url[len("http://") : -len("/api/v1/spans")]
            described["num_conns"] = recorder.session.adapters["http://"]._pool_maxsize
        return described
    kind = client.exporter
    described["kind"] = kind
    if kind == "sidecar":
        described["queue"] = "/traces-" + client.queue_name
        return described
    described["max_span_queue_size"] = client.max_span_queue_size
    described["span_batch_interval"] = client.span_batch_interval
    described["num_span_workers"] = client.num_span_workers
    if kind == "zipkin":
        described["endpoint"] = client.endpoint
        described["num_conns"] = client.num_conns
    return described


def _recorder_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "span recorder")


def run_tracing(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """``tracing_client_from_config`` for each configuration; describe what it built."""
    answers = []
    for case in request["cases"]:
        before = _recorder_threads()
        answers.append(
            outcome(
                lambda c=case: bp.root.tracing_client_from_config(c["raw"], **c.get("kwargs", {})),
                lambda client, b=before: describe_tracing_client(client, _recorder_threads() - b),
            )
        )
    return {"cases": answers}


# --- sentry --------------------------------------------------------------------------------


def describe_raven_client(client: Any) -> dict[str, Any]:
    remote = client.remote
    return {
        "dsn": {
            "active": remote.is_active(),
            "base_url": remote.base_url,
            "project": remote.project,
            "public_key": remote.public_key,
            "secret_key": remote.secret_key,
        },
        "enabled": client.is_enabled(),
        "site": client.site,
        "environment": client.environment,
        "include_paths": sorted(client.include_paths),
        "exclude_paths": sorted(client.exclude_paths),
        "ignore_exceptions": sorted(client.ignore_exceptions),
        "sample_rate": client.sample_rate,
        "processors": list(client.processors),
        "release": client.release,
    }


def run_sentry(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """``error_reporter_from_config`` for each configuration and application module (the
    modules ``request["import"]``, importable from the directories ``request["paths"]``)."""
    saved_path = list(sys.path)
    sys.path[:0] = request["paths"]
    try:
        for name in request["import"]:
            importlib.import_module(name)
    finally:
        sys.path[:] = saved_path
    original_hook = sys.excepthook
    answers = [
        outcome(
            lambda c=case: bp.root.error_reporter_from_config(c["raw"], c["module"]),
            describe_raven_client,
        )
        for case in request["cases"]
    ]
    installs_sys_hook = sys.excepthook is not original_hook
    sys.excepthook = original_hook
    return {"cases": answers, "installs_sys_hook": installs_sys_hook}


# --- the instrumented clients' and library helpers ----------------------------------------


def describe_redis_pool(pool: Any) -> dict[str, Any]:
    # where a connection of the pool goes (made, not connected: redis-py versions differ
    # in which defaults they leave out of the pool's connection_kwargs) and the timeouts
    # configured (when not, each redis-py version has its own default)
    connection = pool.connection_class(**pool.connection_kwargs)
    settings = {
        key: describe(getattr(connection, key, None))
        for key in ("host", "port", "db", "password", "path")
    }
    for key in ("socket_timeout", "socket_connect_timeout"):
        settings[key] = pool.connection_kwargs.get(key)
    return {
        "class": type(pool).__name__,
        "connection_class": pool.connection_class.__name__,
        "max_connections": pool.max_connections,
        "settings": settings,
    }


def describe_memcache_pool(pool: Any) -> dict[str, Any]:
    return {
        "class": type(pool).__name__,
        "server": describe(pool.server),
        "connect_timeout": pool.connect_timeout,
        "timeout": pool.timeout,
        "no_delay": pool.no_delay,
        "max_pool_size": pool.client_pool.max_size,
    }


def describe_engine(engine: Any) -> dict[str, Any]:
    url = engine.url
    pool = engine.pool
    described = {
        "dialect": engine.dialect.name,
        "driver": engine.dialect.driver,
        "username": url.username,
        "password": url.password,
        "host": url.host,
        "port": url.port,
        "database": url.database,
        "query": describe(dict(url.query)),
        "pool": type(pool).__name__,
        "echo": bool(engine.echo),
    }
    if hasattr(pool, "size") and type(pool).__name__ == "QueuePool":
        described["pool_size"] = pool.size()
        described["max_overflow"] = pool._max_overflow
    described["pool_recycle"] = pool._recycle
    return described


def describe_kombu_connection(connection: Any) -> dict[str, Any]:
    return {
        "hostname": connection.hostname,
        "virtual_host": connection.virtual_host,
        "userid": connection.userid,
        "password": connection.password,
        "port": connection.port,
        "transport": connection.transport_cls,
        "heartbeat": connection.heartbeat,
    }


def describe_exchange(exchange: Any) -> dict[str, Any]:
    return {
        "name": exchange.name,
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
    }


def describe_thrift_pool(pool: Any) -> dict[str, Any]:
    max_retries = getattr(pool, "max_retries", None)
    if max_retries is None:  # reddit's keeps a retry policy: count the attempts it allows
        max_retries = sum(1 for _ in pool.retry_policy)
    return {
        "endpoint": describe(pool.endpoint),
        "size": pool.pool.qsize(),
        "max_age": pool.max_age,
        "timeout": pool.timeout,
        "max_retries": max_retries,
        "protocol_factory": type(pool.protocol_factory).__name__,
    }


def describe_watcher_factory(factory: Any) -> dict[str, Any]:
    """An experiments factory or a secrets store: the watched file and what it holds."""
    watcher = factory._filewatcher
    return {"path": watcher._path, "data": outcome(watcher.get_data)}


def describe_zookeeper_client(client: Any) -> dict[str, Any]:
    retry = client._conn_retry
    return {
        "hosts": describe(client.hosts),
        "chroot": client.chroot,
        "session_timeout": client._session_timeout,
        "auth_data": sorted(list(auth) for auth in client.auth_data),
        "read_only": client.read_only,
        "retry": {
            "max_tries": retry.max_tries,
            "delay": retry.delay,
            "backoff": retry.backoff,
            "max_jitter": retry.max_jitter,
            "max_delay": retry.max_delay,
        },
    }


def describe_cluster(cluster: Any) -> dict[str, Any]:
    return {"contact_points": describe(cluster.contact_points), "port": cluster.port}


def _protocol_factory(bp: SimpleNamespace, name: str) -> Any:
    from thrift.protocol import TBinaryProtocol, TCompactProtocol

    return {
        "binary": TBinaryProtocol.TBinaryProtocolFactory(),
        "compact": TCompactProtocol.TCompactProtocolFactory(),
    }[name]


def make_helper(bp: SimpleNamespace, case: dict[str, Any]) -> tuple[Any, Callable[[Any], Any]]:
    """Call the helper ``case["helper"]`` on ``case["raw"]`` (with ``case["args"]`` as
    keyword arguments); return what it built and how to describe that."""
    helper = case["helper"]
    raw = case["raw"]
    args = dict(case.get("args", {}))
    if "secrets" in case:
        args["secrets" if helper in ("sqlalchemy", "zookeeper") else "secrets_store"] = (
            bp.secrets.SecretsStore(case["secrets"])
        )
    if "protocol_factory" in args:
        args["protocol_factory"] = _protocol_factory(bp, args["protocol_factory"])

    if helper == "redis":
        return bp.ctx_redis.pool_from_config(raw, **args), describe_redis_pool
    if helper == "memcache":
        return bp.ctx_memcache.pool_from_config(raw, **args), describe_memcache_pool
    if helper == "sqlalchemy":
        return bp.ctx_sqlalchemy.engine_from_config(raw, **args), describe_engine
    if helper == "kombu-connection":
        return bp.ctx_kombu.connection_from_config(raw, **args), describe_kombu_connection
    if helper == "kombu-exchange":
        return bp.ctx_kombu.exchange_from_config(raw, **args), describe_exchange
    if helper == "hvac":
        store = args.pop("secrets_store", None)
        factory = bp.ctx_hvac.hvac_factory_from_config(raw, store, **args)
        return factory, lambda f: {
            "timeout": describe(f.timeout),
            "has_secrets": f.secrets is store and store is not None,
        }
    if helper == "cassandra":
        return bp.ctx_cassandra.cluster_from_config(raw, **args), describe_cluster
    if helper == "thrift-pool":
        return bp.root_thrift_pool_from_config(raw, **args), describe_thrift_pool
    if helper == "experiments":
        return (
            bp.experiments.experiments_client_from_config(raw, bp.events.DebugLogger(), **args),
            describe_watcher_factory,
        )
    if helper == "secrets":
        return bp.secrets.secrets_store_from_config(raw, **args), describe_watcher_factory
    if helper == "zookeeper":
        store = args.pop("secrets", None)
        return bp.zookeeper.zookeeper_client_from_config(
            store, raw, **args
        ), describe_zookeeper_client
    raise AssertionError(f"unknown helper {helper!r}")


def run_helpers(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Each case: build with its helper, describe what was built, or describe the error."""
    answers = []
    for case in request["cases"]:
        try:
            built, how = make_helper(bp, case)
        except Exception as exc:
            answers.append(error_of(exc))
            continue
        answers.append({"value": how(built)})
    return {"cases": answers}


DRIVERS: dict[str, Callable[[SimpleNamespace, Any], Any]] = {
    "events": run_events,
    "event-queue": run_event_queue,
    "metrics": run_metrics,
    "tracing": run_tracing,
    "sentry": run_sentry,
    "helpers": run_helpers,
}


# --- modules -------------------------------------------------------------------------------


class _StandInCluster:
    """Stands in for ``cassandra.cluster.Cluster``: keeps what it was built with."""

    def __init__(self, contact_points: Any = ("127.0.0.1",), port: int = 9042, **kwargs: Any):
        self.contact_points = contact_points
        self.port = port
        self.kwargs = kwargs


def install_stand_ins() -> None:
    """Give the names reddit's cassandra and hvac integrations import to an interpreter
    that lacks those libraries (only ever the peer's: ours has both)."""
    try:
        import cassandra.cluster  # noqa: F401
    except ImportError:
        package = types.ModuleType("cassandra")
        cluster = types.ModuleType("cassandra.cluster")
        query = types.ModuleType("cassandra.query")
        cluster.Cluster = _StandInCluster  # type: ignore[attr-defined]
        cluster._NOT_SET = object()  # type: ignore[attr-defined]
        cluster.ResponseFuture = type("ResponseFuture", (), {})  # type: ignore[attr-defined]
        for name in ("SimpleStatement", "PreparedStatement", "BoundStatement"):
            setattr(query, name, type(name, (), {}))
        package.cluster, package.query = cluster, query  # type: ignore[attr-defined]
        sys.modules.update({"cassandra": package, "cassandra.cluster": cluster})
        sys.modules["cassandra.query"] = query
    try:
        import hvac  # noqa: F401
    except ImportError:
        module = types.ModuleType("hvac")
        module.Client = type("Client", (), {})  # type: ignore[attr-defined]
        sys.modules["hvac"] = module


def helper_modules() -> SimpleNamespace:
    """The baseplate modules the drivers use: reddit's in the peer's interpreter, ours when
    the tests import this file."""
    import baseplate
    import baseplate.context.cassandra
    import baseplate.context.hvac
    import baseplate.context.kombu
    import baseplate.context.memcache
    import baseplate.context.redis
    import baseplate.context.sqlalchemy
    import baseplate.events
    import baseplate.experiments
    import baseplate.live_data.zookeeper
    import baseplate.secrets

    try:
        ttypes = importlib.import_module("baseplate.thrift.gen.baseplate.ttypes")
    except ImportError:
        ttypes = importlib.import_module("baseplate.thrift.ttypes")
    # the reference documents baseplate.thrift_pool_from_config; reddit's package has it
    # only in baseplate.thrift_pool
    thrift_pool = importlib.import_module("baseplate.thrift_pool")
    return SimpleNamespace(
        root=baseplate,
        root_thrift_pool_from_config=getattr(
            baseplate, "thrift_pool_from_config", thrift_pool.thrift_pool_from_config
        ),
        events=baseplate.events,
        experiments=baseplate.experiments,
        secrets=baseplate.secrets,
        ttypes=ttypes,
        zookeeper=baseplate.live_data.zookeeper,
        ctx_cassandra=baseplate.context.cassandra,
        ctx_hvac=baseplate.context.hvac,
        ctx_kombu=baseplate.context.kombu,
        ctx_memcache=baseplate.context.memcache,
        ctx_redis=baseplate.context.redis,
        ctx_sqlalchemy=baseplate.context.sqlalchemy,
    )


def main() -> None:
    (area,) = sys.argv[1:]
    request = json.load(sys.stdin)
    install_stand_ins()
    answer = DRIVERS[area](helper_modules(), request)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
