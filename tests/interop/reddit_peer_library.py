"""Reddit's own baseplate library modules as a peer: config, retry, random, service discovery,
file watcher, message queue and secrets store.

Run as a script by ``test_reddit_library_diff.py`` with the interpreter of
``.services/reddit-baseplate`` and ``-I`` (so ``import baseplate`` is reddit's package from
PyPI, never our checkout): ``reddit_peer_library.py AREA`` reads a JSON request on stdin
and prints the answer as one JSON line on stdout.

The drivers below take the baseplate modules to use (a namespace with ``config``,
``retry``, ``random``, ...) and import nothing from baseplate themselves: the test imports
this file and runs the very same drivers with OUR modules, so both implementations are
asked exactly the same questions. Every answer is plain JSON: values are described by
:func:`describe`, errors by :func:`error_of`.
"""

from __future__ import annotations

import base64
import collections
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType, SimpleNamespace
from typing import Any

# --- shared helpers ------------------------------------------------------------------------


def describe(value: Any) -> Any:
    """A JSON-friendly, implementation-neutral description of a parsed value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, datetime.timedelta):
        return {"timedelta": value.total_seconds()}
    if hasattr(value, "read") and hasattr(value, "close"):
        mode = getattr(value, "mode", "")
        try:
            return {"file": describe(value.read()) if "r" in mode else None, "mode": mode}
        finally:
            value.close()
    if type(value).__name__ == "EndpointConfiguration":
        return {"family": int(value.family), "address": describe(value.address)}
    if type(value).__name__ == "Backend":
        return {
            "id": value.id,
            "name": value.name,
            "endpoint": describe(value.endpoint),
            "weight": value.weight,
        }
    if isinstance(value, Mapping):
        return {"dict": {str(key): describe(item) for key, item in sorted(value.items())}}
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    return {"repr": repr(value)}


def error_of(exc: BaseException) -> dict[str, Any]:
    """What both sides must agree on about an exception: its class and, for configuration
    errors, the key it names."""
    described: dict[str, Any] = {
        "error": type(exc).__name__,
        "value_error": isinstance(exc, ValueError),
        "assertion": isinstance(exc, AssertionError),
    }
    if type(exc).__name__ == "ConfigurationError":
        described["key"] = exc.key  # type: ignore[attr-defined]
        described["message_key"] = str(exc).split(":", 1)[0]
    return described


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """``{"value": ...}`` for what ``call`` returned, else the description of its error."""
    try:
        return {"value": describe(call())}
    except Exception as exc:
        return error_of(exc)


# --- baseplate.config ----------------------------------------------------------------------


def build_spec(config: ModuleType, desc: Any) -> Any:
    """Build a spec (value type, parser or dict) from its JSON description.

    A description is a value type's name (``"Integer"``), ``{"Integer": {"base": 16}}``,
    ``{"File": {"mode": "rb"}}``, ``{"OneOf": {"name": value}}``, ``{"TupleOf": desc}``,
    ``{"Optional": [desc, default]}``, ``{"Fallback": [desc, desc]}``, ``{"DictOf": desc}``
    or ``{"spec": {key: desc}}`` (a nested dict spec).
    """
    if isinstance(desc, str):
        return getattr(config, desc)
    if not isinstance(desc, dict):
        return desc  # not a spec at all: how a malformed spec is refused is compared
    ((kind, arg),) = desc.items()
    if kind == "spec":
        return {key: build_spec(config, sub) for key, sub in arg.items()}
    if kind == "Integer":
        return config.Integer(**arg)
    if kind == "File":
        return config.File(**arg)
    if kind == "OneOf":
        return config.OneOf(**arg)
    if kind == "TupleOf":
        return config.TupleOf(build_spec(config, arg))
    if kind == "Optional":
        return config.Optional(build_spec(config, arg[0]), default=arg[1])
    if kind == "Fallback":
        return config.Fallback(build_spec(config, arg[0]), build_spec(config, arg[1]))
    if kind == "DictOf":
        return config.DictOf(build_spec(config, arg))
    raise AssertionError(f"unknown spec description {desc!r}")


def run_config(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Parse ``request["parse"]`` cases (``{"spec": {key: desc}, "raw": {...}}``) with
    ``parse_config``, call the value types of ``request["values"]`` cases
    (``{"type": desc, "text": ...}``) directly, and read the parsed configuration of
    ``request["attributes"]`` cases as attributes (``"path"``: ``["nested", "once"]``)."""
    config = bp.config

    def attributes(case: dict[str, Any]) -> Any:
        value = config.parse_config(case["raw"], build_spec(config, {"spec": case["spec"]}))
        for name in case["path"]:
            value = getattr(value, name)
        return value

    parsed = [
        outcome(
            lambda c=case: config.parse_config(c["raw"], build_spec(config, {"spec": c["spec"]}))
        )
        for case in request["parse"]
    ]
    values = [
        outcome(lambda c=case: build_spec(config, c["type"])(c["text"]))
        for case in request["values"]
    ]
    read = [outcome(lambda c=case: attributes(c)) for case in request.get("attributes", [])]
    return {"parse": parsed, "values": values, "attributes": read}


# --- baseplate.retry -----------------------------------------------------------------------


class FakeClock:
    """A deterministic stand-in for the ``time`` module: ``sleep`` records and advances."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def run_retry(bp: SimpleNamespace, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Iterate ``RetryPolicy.new(**case["new"])`` for each case on a fake clock.

    Each attempt "takes" ``case["step"]`` seconds; iteration stops after ``case["cap"]``
    attempts (policies without an attempt limit go on forever). The answer lists the
    yielded time remaining (rounded) and every sleep the policy asked for.
    """
    retry = bp.retry
    answers = []
    for case in request["cases"]:
        clock = FakeClock()
        saved = retry.time
        retry.time = clock
        try:
            yielded: list[Any] = []
            try:
                policy = retry.RetryPolicy.new(**case["new"])
                for time_remaining in policy:
                    yielded.append(None if time_remaining is None else round(time_remaining, 6))
                    if len(yielded) >= case["cap"]:
                        break
                    clock.now += case["step"]
            except Exception as exc:
                answers.append(error_of(exc))
                continue
            answers.append({"yielded": yielded, "sleeps": clock.sleeps})
        finally:
            retry.time = saved
    return answers


# --- baseplate.random ----------------------------------------------------------------------


def run_lottery(bp: SimpleNamespace, request: dict[str, Any]) -> dict[str, Any]:
    """Build ``WeightedLottery`` objects over ``{"weights": {item: weight}}`` cases.

    For each case: the constructor's error, or the picks of a ``random.seed(seed)`` run,
    and the outcome of ``sample`` for each requested size. ``request["stats"]`` asks for
    ``rounds`` samples of ``size`` items over ``weights``: the answer counts how often each
    item came first and how often it was included.
    """
    lottery_class = bp.random.WeightedLottery
    cases = []
    for case in request["cases"]:
        weights = case["weights"]
        try:
            lottery = lottery_class(list(weights), weight_key=weights.__getitem__)
        except Exception as exc:
            cases.append(error_of(exc))
            continue
        random.seed(case["seed"])
        picks = [lottery.pick() for _ in range(case["picks"])]
        samples = []
        for size in case["sample_sizes"]:
            random.seed(case["seed"])
            answer = outcome(lambda s=size, lot=lottery: lot.sample(s))
            if "value" in answer:
                # the order and choice are random; what matters is size and distinctness
                answer = {"size": len(answer["value"]), "distinct": len(set(answer["value"]))}
            samples.append(answer)
        cases.append({"picks": picks, "samples": samples})

    stats = request["stats"]
    weights = stats["weights"]
    lottery = lottery_class(list(weights), weight_key=weights.__getitem__)
    random.seed(stats["seed"])
    first: collections.Counter[str] = collections.Counter()
    included: collections.Counter[str] = collections.Counter()
    for _ in range(stats["rounds"]):
        sample = lottery.sample(stats["size"])
        first[sample[0]] += 1
        included.update(sample)
    return {"cases": cases, "first": dict(first), "included": dict(included)}


# --- files on disk (inventory, watched files, secrets) -------------------------------------


class Scratch:
    """A private directory whose files get strictly increasing modification times (so
    every rewrite is seen as a change, whatever the file system's time resolution)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bp-library-diff-")
        self.mtime = time.time() - 10_000

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def write(self, name: str, content: str | bytes) -> None:
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(self.path(name), mode) as f:
            f.write(content)
        self.mtime += 10
        os.utime(self.path(name), (self.mtime, self.mtime))

    def remove(self, name: str) -> None:
        os.unlink(self.path(name))

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def run_inventory(bp: SimpleNamespace, request: dict[str, Any]) -> list[list[Any]]:
    """Play each scenario (a list of steps) against one ``ServiceInventory``.

    Steps: ``{"write": text}``, ``{"remove": true}``, ``{"backends": true}`` (the answer is
    ``get_backends()``) and ``{"backend": seed}`` (``get_backend()`` ``n`` times after
    ``random.seed(seed)``; ``n`` is the step's ``"n"``, 1 by default).
    """
    answers = []
    with Scratch() as scratch:
        for number, steps in enumerate(request["scenarios"]):
            name = f"inventory-{number}.json"
            inventory = bp.service_discovery.ServiceInventory(scratch.path(name))
            answer: list[Any] = []
            for step in steps:
                if "write" in step:
                    scratch.write(name, step["write"])
                elif "remove" in step:
                    scratch.remove(name)
                elif "backends" in step:
                    answer.append(outcome(inventory.get_backends))
                else:
                    random.seed(step["backend"])
                    answer.append([outcome(inventory.get_backend) for _ in range(step.get("n", 1))])
            answers.append(answer)
    return answers


def make_parser(name: str) -> Callable[[Any], Any]:
    """The parser a file watcher scenario names: ``json``, ``text`` (the file's content) or
    ``calls`` (the content and how many times the parser has run so far)."""
    if name == "json":
        return json.load
    if name == "text":
        return lambda f: f.read()
    calls = []

    def count_calls(f: Any) -> list[Any]:
        calls.append(None)
        return [f.read(), len(calls)]

    return count_calls


def run_file_watcher(bp: SimpleNamespace, request: dict[str, Any]) -> list[list[Any]]:
    """Play each scenario against one ``FileWatcher``.

    A scenario is ``{"parser": name, "options": {...}, "steps": [...]}``; the watcher is
    created by the ``{"watch": {"timeout": ...}}`` step (its outcome is recorded), then
    steps ``{"write": text}``, ``{"write_bytes": b64}``, ``{"remove": true}``,
    ``{"get": true}`` and ``{"write_later": text, "after": seconds}`` (from a thread, for
    the instantiation timeout) play in order.
    """
    answers = []
    with Scratch() as scratch:
        for number, scenario in enumerate(request["scenarios"]):
            answers.append(_play_watcher(bp, scratch, f"watched-{number}", scenario))
    return answers


def _play_watcher(
    bp: SimpleNamespace, scratch: Scratch, name: str, scenario: dict[str, Any]
) -> list[Any]:
    watcher = None
    answer: list[Any] = []
    writer = None
    for step in scenario["steps"]:
        if "watch" in step:

            def watch(options: dict[str, Any] = step["watch"]) -> str:
                nonlocal watcher
                watcher = bp.file_watcher.FileWatcher(
                    scratch.path(name), make_parser(scenario["parser"]), **options
                )
                return "created"

            answer.append(outcome(watch))
        elif "write" in step:
            scratch.write(name, step["write"])
        elif "write_bytes" in step:
            scratch.write(name, base64.b64decode(step["write_bytes"]))
        elif "write_later" in step:

            def later(text: str = step["write_later"], after: float = step["after"]) -> None:
                time.sleep(after)
                scratch.write(name, text)

            writer = threading.Thread(target=later)
            writer.start()
        elif "remove" in step:
            scratch.remove(name)
        else:
            answer.append(outcome(watcher.get_data) if watcher else {"error": "no watcher"})
    if writer is not None:
        writer.join()
    return answer


def read_store(store: Any, queries: list[list[str]]) -> list[Any]:
    """Ask a ``SecretsStore`` each ``[method, path]`` query (path unused for vault ones)."""
    answers: list[Any] = []
    for method, path in queries:
        if method in ("get_vault_url", "get_vault_token"):
            answers.append(outcome(getattr(store, method)))
        elif method == "get_versioned":

            def versioned(p: str = path) -> dict[str, Any]:
                secret = store.get_versioned(p)
                return {
                    "current": secret.current,
                    "previous": secret.previous,
                    "next": secret.next,
                    "all_versions": list(secret.all_versions),
                }

            answers.append(outcome(versioned))
        else:
            answers.append(outcome(lambda m=method, p=path: getattr(store, m)(p)))
    return answers


def run_secrets(bp: SimpleNamespace, request: dict[str, Any]) -> list[Any]:
    """For each ``{"file": text | null, "queries": [...], "timeout": t?}`` case, build a
    ``SecretsStore`` over that file (missing if null) and ask it the queries."""
    answers: list[Any] = []
    with Scratch() as scratch:
        for number, case in enumerate(request["cases"]):
            name = f"secrets-{number}.json"
            if case["file"] is not None:
                scratch.write(name, case["file"])
            try:
                store = bp.secrets.SecretsStore(scratch.path(name), timeout=case.get("timeout"))
            except Exception as exc:
                answers.append(
                    {
                        "store": error_of(exc),
                        "secrets_error": isinstance(exc, bp.secrets.SecretsNotAvailableError),
                        "watcher_error": isinstance(
                            exc, bp.file_watcher.WatchedFileNotAvailableError
                        ),
                    }
                )
                continue
            answers.append(read_store(store, case["queries"]))
    return answers


# --- baseplate.message_queue ---------------------------------------------------------------


def run_message_queue(bp: SimpleNamespace, request: dict[str, Any]) -> list[Any]:
    """Play ``request["steps"]`` against message queues named ``request["prefix"] + name``.

    Steps: ``{"open": name, "max_messages": n, "max_message_size": n}`` (``raw_name``
    instead of ``open`` skips the prefix), ``{"put": text, "q": name, "timeout": t}``,
    ``{"get": name, "timeout": t}``, ``{"close": name}`` and ``{"unlink": name}``. Every
    step's outcome is answered; queues still open at the end are closed and unlinked.
    """
    mq = bp.message_queue
    queues: dict[str, Any] = {}
    opened: list[Any] = []
    answers: list[Any] = []

    def open_queue(step: dict[str, Any]) -> str:
        name = step.get("raw_name") or request["prefix"] + step["open"]
        queue = mq.MessageQueue(name, step["max_messages"], step["max_message_size"])
        queues[step.get("open", "raw")] = queue
        opened.append(queue)
        return "opened"

    try:
        for step in request["steps"]:
            if "open" in step or "raw_name" in step:
                answers.append(outcome(lambda s=step: open_queue(s)))
            elif "put" in step:
                answers.append(
                    outcome(lambda s=step: queues[s["q"]].put(s["put"], timeout=s.get("timeout")))
                )
            elif "get" in step:
                answers.append(
                    outcome(lambda s=step: queues[s["get"]].get(timeout=s.get("timeout")))
                )
            elif "close" in step:
                answers.append(outcome(queues[step["close"]].close))
            else:
                answers.append(outcome(queues[step["unlink"]].unlink))
    finally:
        for queue in opened:
            for cleanup in (queue.unlink, queue.close):
                try:
                    cleanup()
                except Exception:
                    pass
    return answers


DRIVERS: dict[str, Callable[[SimpleNamespace, Any], Any]] = {
    "config": run_config,
    "retry": run_retry,
    "lottery": run_lottery,
    "inventory": run_inventory,
    "file-watcher": run_file_watcher,
    "secrets": run_secrets,
    "message-queue": run_message_queue,
}


def library_modules() -> SimpleNamespace:
    """The baseplate modules the drivers use: reddit's in the peer's interpreter, ours when
    the tests import this file."""
    import baseplate.config
    import baseplate.file_watcher
    import baseplate.message_queue
    import baseplate.random
    import baseplate.retry
    import baseplate.secrets
    import baseplate.service_discovery

    return SimpleNamespace(
        config=baseplate.config,
        file_watcher=baseplate.file_watcher,
        message_queue=baseplate.message_queue,
        random=baseplate.random,
        retry=baseplate.retry,
        secrets=baseplate.secrets,
        service_discovery=baseplate.service_discovery,
    )


def main() -> None:
    (area,) = sys.argv[1:]
    request = json.load(sys.stdin)
    answer = DRIVERS[area](library_modules(), request)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
