"""Reddit's own baseplate "batteries" as a peer: secrets, crypto, experiments and events.

Run as a script by ``test_reddit_batteries.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout). Each sub-command reads its request as JSON on stdin (where it
needs one) and prints its answer as one JSON line on stdout.

The drivers below (``read_secrets``, ``run_crypto``, ``run_experiments``, ``build_v1_event``,
``event_struct_types``) take the baseplate modules to use as arguments and import nothing
from baseplate themselves: the test imports this file and runs the very same drivers with
OUR modules, so both implementations are asked exactly the same questions.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys
from types import ModuleType
from typing import Any

# --- shared helpers ------------------------------------------------------------------------


def b64(value: Any) -> Any:
    """JSON-friendly form of a secret value: bytes as base64, anything else as it is."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    return value


def error_of(exc: BaseException) -> dict[str, Any]:
    """What both sides must agree on about an exception: its class (and expiry, if any)."""
    described: dict[str, Any] = {"error": type(exc).__name__}
    if hasattr(exc, "expiration"):
        described["expiration"] = exc.expiration
    return described


def read_secrets(store: Any, queries: list[list[str]]) -> list[Any]:
    """Ask a ``SecretsStore`` each ``[method, path]`` query (path unused for the vault ones)."""
    answers: list[Any] = []
    for method, path in queries:
        try:
            if method in ("get_vault_url", "get_vault_token"):
                answers.append(getattr(store, method)())
            elif method == "get_versioned":
                secret = store.get_versioned(path)
                answers.append(
                    {
                        "current": b64(secret.current),
                        "previous": b64(secret.previous),
                        "next": b64(secret.next),
                        "all_versions": [b64(value) for value in secret.all_versions],
                    }
                )
            else:
                answers.append(b64(getattr(store, method)(path)))
        except Exception as exc:
            answers.append(error_of(exc))
    return answers


def _versioned(secrets_module: ModuleType, spec: dict[str, Any]) -> Any:
    def value(key: str) -> Any:
        text = spec.get(key)
        return None if text is None else base64.b64decode(text)

    return secrets_module.VersionedSecret(
        previous=value("previous"), current=value("current"), next=value("next")
    )


def run_crypto(
    crypto_module: ModuleType, secrets_module: ModuleType, request: dict[str, Any]
) -> dict[str, Any]:
    """Sign ``request["sign"]`` cases and validate ``request["validate"]`` ones.

    A case's secret is ``{"current": b64, "previous": b64?, "next": b64?}``; a sign case has
    ``message`` and ``max_age`` (seconds), a validate case ``message`` and ``signature``.
    """
    signatures = []
    for case in request["sign"]:
        signature = crypto_module.make_signature(
            _versioned(secrets_module, case["secret"]),
            case["message"],
            datetime.timedelta(seconds=case["max_age"]),
        )
        signatures.append(signature.decode() if isinstance(signature, bytes) else signature)
    validations: list[dict[str, Any]] = []
    for case in request["validate"]:
        try:
            info = crypto_module.validate_signature(
                _versioned(secrets_module, case["secret"]), case["message"], case["signature"]
            )
        except Exception as exc:
            validations.append(error_of(exc))
        else:
            validations.append({"version": info.version, "expiration": info.expiration})
    return {"signatures": signatures, "validations": validations}


def describe_bucketing_event(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A logged experiment event as JSON: every keyword the event logger got."""
    described = dict(kwargs)
    experiment = described.pop("experiment")
    described["experiment"] = [
        getattr(experiment, attribute, None) for attribute in ("id", "name", "owner", "version")
    ]
    described["event_type"] = described["event_type"].value
    described["span"] = None if described["span"] is None else type(described["span"]).__name__
    return described


def run_experiments(
    experiments_module: ModuleType,
    file_watcher_module: ModuleType,
    events_module: ModuleType,
    path: str,
    requests: list[list[dict[str, Any]]],
) -> dict[str, Any]:
    """Serve ``requests`` (each a list of variant calls) from the experiments file at ``path``.

    A call is ``{"name": ..., "kwargs": {...}}`` plus an optional ``"override"`` (the
    ``bucketing_event_override`` argument). Returns the variants and the logged events of
    every request, and which experiment names are valid.
    """
    watcher = file_watcher_module.FileWatcher(path, json.load)
    logged: list[dict[str, Any]] = []

    class Recorder(events_module.EventLogger):
        def log(self, **kwargs: Any) -> None:
            logged.append(describe_bucketing_event(kwargs))

    answers = []
    client = None
    for request in requests:
        client = experiments_module.Experiments(
            config_watcher=watcher,
            server_span=None,
            context_name="experiments",
            event_logger=Recorder(),
        )
        variants = [
            client.variant(
                call["name"], bucketing_event_override=call.get("override"), **call["kwargs"]
            )
            for call in request
        ]
        answers.append({"variants": variants, "events": list(logged)})
        logged.clear()
    assert client is not None
    with open(path) as config_file:
        names = sorted(json.load(config_file))
    return {
        "valid": {name: client.is_valid_experiment(name) for name in names + ["missing"]},
        "requests": answers,
    }


def build_v1_event(events_module: ModuleType, spec: dict[str, Any]) -> Any:
    """Make a v1 ``Event`` from ``{"topic", "type", "timestamp": [y, m, d, H, M, S, us, utc?],
    "id", "fields": [[key, value, kind name], ...]}``."""
    year, month, day, hour, minute, second, micro, aware = spec["timestamp"]
    timestamp = datetime.datetime(
        year,
        month,
        day,
        hour,
        minute,
        second,
        micro,
        tzinfo=datetime.timezone.utc if aware else None,
    )
    event = events_module.Event(spec["topic"], spec["type"], timestamp=timestamp, id=spec["id"])
    for key, value, kind in spec["fields"]:
        event.set_field(key, value, kind=getattr(events_module.FieldKind, kind))
    return event


def event_struct_types() -> tuple[type, type]:
    """Thrift structs shaped like a v2 event schema (``Event`` with a nested ``User``), built
    on thrift's generic ``TBase`` so both sides use the same definition."""
    from thrift.protocol.TBase import TBase
    from thrift.Thrift import TType

    class User(TBase):
        thrift_spec = (
            None,
            (1, TType.STRING, "id", "UTF8", None),
            (2, TType.BOOL, "logged_in", None, None),
            (3, TType.I64, "created_timestamp", None, None),
        )

        def __init__(self, id: Any = None, logged_in: Any = None, created_timestamp: Any = None):
            self.id = id
            self.logged_in = logged_in
            self.created_timestamp = created_timestamp

    class Event(TBase):
        thrift_spec = (
            None,
            (1, TType.STRING, "source", "UTF8", None),
            (2, TType.STRING, "action", "UTF8", None),
            (3, TType.STRING, "noun", "UTF8", None),
            (4, TType.I64, "client_timestamp", None, None),
            (5, TType.STRING, "uuid", "UTF8", None),
            (6, TType.STRUCT, "user", (User, User.thrift_spec), None),
            (7, TType.DOUBLE, "score", None, None),
            (8, TType.I32, "count", None, None),
            (9, TType.LIST, "tags", (TType.STRING, "UTF8", False), None),
            (10, TType.MAP, "extra", (TType.STRING, "UTF8", TType.I64, None, False), None),
            (11, TType.BYTE, "flags", None, None),
            (12, TType.I16, "kind", None, None),
            (13, TType.STRING, "blob", "BINARY", None),
        )

        def __init__(self, **fields: Any) -> None:
            for spec in self.thrift_spec[1:]:
                setattr(self, spec[2], fields.get(spec[2]))

    return Event, User


def build_v2_event(spec: dict[str, Any]) -> Any:
    """Make an ``Event`` struct from its JSON spec (``user`` nested, ``blob`` as base64)."""
    event_type, user_type = event_struct_types()
    fields = dict(spec)
    if fields.get("user") is not None:
        fields["user"] = user_type(**fields["user"])
    if fields.get("blob") is not None:
        fields["blob"] = base64.b64decode(fields["blob"])
    return event_type(**fields)


def build_edge_request(ttypes: ModuleType, spec: dict[str, Any]) -> Any:
    """Make baseplate's own ``Request`` struct (the Edge-Request) from its JSON spec."""
    return ttypes.Request(
        loid=ttypes.Loid(id=spec["loid"], created_ms=spec["created_ms"]),
        session=ttypes.Session(id=spec["session"]),
        authentication_token=spec["token"],
    )


def serialize_events(
    events_module: ModuleType, ttypes: ModuleType, request: dict[str, Any]
) -> dict[str, Any]:
    """Serialize ``request``'s v1 specs, v2 event specs and Edge-Request specs (base64)."""

    def as_b64(data: Any) -> str:
        return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()

    return {
        "v1": [
            as_b64(events_module.serialize_v1_event(build_v1_event(events_module, spec)))
            for spec in request["v1"]
        ],
        "v2": [as_b64(events_module.serialize_v2_event(build_v2_event(s))) for s in request["v2"]],
        "v2_edge": [
            as_b64(events_module.serialize_v2_event(build_edge_request(ttypes, spec)))
            for spec in request["v2_edge"]
        ],
    }


# --- sub-commands (reddit's baseplate) -----------------------------------------------------


def emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def secrets_fetch(args: argparse.Namespace) -> None:
    """Run reddit's secret fetcher once with ``kubernetes`` auth, its service account token
    read from ``args.token_file`` instead of the pod's well-known path."""
    from baseplate.secrets import fetcher

    fetcher.K8S_SERVICE_ACCOUNT_TOKEN_FILE = args.token_file
    sys.argv = ["baseplate.secrets.fetcher", args.config, "--once"]
    fetcher.main()
    emit({"ok": True})


def secrets_read(args: argparse.Namespace) -> None:
    from baseplate.secrets import SecretsStore

    emit(read_secrets(SecretsStore(args.path), json.load(sys.stdin)))


def crypto(args: argparse.Namespace) -> None:
    from baseplate import crypto as crypto_module
    from baseplate import secrets

    emit(run_crypto(crypto_module, secrets, json.load(sys.stdin)))


def experiments(args: argparse.Namespace) -> None:
    from baseplate import events, file_watcher
    from baseplate import experiments as experiments_module

    emit(run_experiments(experiments_module, file_watcher, events, args.path, json.load(sys.stdin)))


def events(args: argparse.Namespace) -> None:
    from baseplate import events as events_module
    from baseplate.thrift import ttypes

    emit(serialize_events(events_module, ttypes, json.load(sys.stdin)))


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("secrets-fetch")
    fetch.add_argument("config")
    fetch.add_argument("token_file")
    fetch.set_defaults(run=secrets_fetch)
    read = commands.add_parser("secrets-read")
    read.add_argument("path")
    read.set_defaults(run=secrets_read)
    commands.add_parser("crypto").set_defaults(run=crypto)
    experiments_parser = commands.add_parser("experiments")
    experiments_parser.add_argument("path")
    experiments_parser.set_defaults(run=experiments)
    commands.add_parser("events").set_defaults(run=events)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
