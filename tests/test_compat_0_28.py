"""Every name in baseplate 0.28's public ``__all__`` lists imports from its documented path.

The lists are those of reddit's baseplate at tag v0.28.5, written here as data (the
package and each of its modules that has an ``__all__``: ``baseplate``, ``baseplate.events``,
``baseplate.integration``, ``baseplate.live_data``, ``baseplate.secrets``, and the private
``baseplate._compat``). Only names this project leaves out on purpose are skipped, each with
its reason. Beyond importing, 0.28's package-level extras behave as they did: the deprecated
``make_*_client`` spellings warn and delegate, and ``WrappedRequestContext`` shadows
attributes over the context object it wraps.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]

#: ``__all__`` of each module of baseplate v0.28.5 that has one, in 0.28's order.
ALL_0_28: dict[str, list[str]] = {
    "baseplate": [
        "error_reporter_from_config",
        "make_metrics_client",
        "make_tracing_client",
        "metrics_client_from_config",
        "tracing_client_from_config",
        "Baseplate",
    ],
    "baseplate._compat": [
        "builtins",
        "BytesIO",
        "configparser",
        "pickle",
        "queue",
        "quote",
        "range",
        "string_types",
        "unquote",
        "urljoin",
        "urlparse",
    ],
    "baseplate.events": [
        "DebugLogger",
        "Event",
        "EventError",
        "EventQueue",
        "EventQueueFullError",
        "EventTooLargeError",
        "EventLogger",
        "FieldKind",
        "serialize_v1_event",
        "serialize_v2_event",
    ],
    "baseplate.integration": ["WrappedRequestContext"],
    "baseplate.live_data": ["zookeeper_client_from_config"],
    "baseplate.secrets": [
        "CorruptSecretError",
        "SecretNotFoundError",
        "SecretsNotAvailableError",
        "SecretsStore",
        "secrets_store_from_config",
        "VersionedSecret",
    ],
}

#: Modules (or single ``module.name``) left out on purpose, with the reason.
DELIBERATELY_ABSENT: dict[str, str] = {
    "baseplate._compat": (
        "private Python 2/3 shims, not in the reference; this project is Python 3 only "
        "(docs/migration.rst lists the standard-library names to use instead)"
    ),
}


def _cases() -> list[Any]:
    cases = []
    for module, names in ALL_0_28.items():
        for name in names:
            reason = DELIBERATELY_ABSENT.get(module) or DELIBERATELY_ABSENT.get(f"{module}.{name}")
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(module, name, marks=marks, id=f"{module}.{name}"))
    return cases


@pytest.mark.parametrize(("module", "name"), _cases())
def test_name_imports_from_its_0_28_path(module: str, name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {module} import {name}", namespace)  # the statement applications write
    assert namespace[name] is getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    "module", [module for module in ALL_0_28 if module not in DELIBERATELY_ABSENT]
)
def test_star_import_gives_every_0_28_name(module: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {module} import *", namespace)
    assert set(ALL_0_28[module]) <= set(namespace)


def test_every_skip_names_a_listed_module_or_name() -> None:
    listed = set(ALL_0_28) | {f"{m}.{n}" for m, names in ALL_0_28.items() for n in names}
    assert set(DELIBERATELY_ABSENT) <= listed


def test_baseplate_is_the_core_class() -> None:
    import baseplate
    from baseplate.core import Baseplate

    assert baseplate.Baseplate is Baseplate
    assert "Baseplate" in dir(baseplate)


def test_0_28_submodule_attributes_of_the_package() -> None:
    # 0.28 imported config and metrics in its __init__, so `baseplate.metrics` worked after a
    # bare `import baseplate`; a fresh interpreter proves nothing imported them before.
    code = (
        "import baseplate, sys\n"
        "before = 'baseplate.metrics' in sys.modules\n"
        "print(before, baseplate.metrics.__name__, baseplate.config.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "baseplate.metrics", "baseplate.config"]
    with pytest.raises(AttributeError, match="no_such_name"):
        import baseplate

        baseplate.no_such_name  # noqa: B018


def test_importing_the_package_or_its_config_loads_no_framework() -> None:
    code = (
        "import json, sys\n"
        "import baseplate, baseplate.config\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    assert "baseplate.core" not in loaded
    assert [name for name in loaded if name.startswith("opentelemetry")] == []


def test_from_baseplate_import_baseplate_in_a_fresh_interpreter() -> None:
    code = "from baseplate import Baseplate\nprint(Baseplate.__module__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "baseplate.core"


@pytest.mark.parametrize(
    ("old", "new", "args"),
    [
        ("make_metrics_client", "metrics_client_from_config", ({"metrics.namespace": "x"},)),
        ("make_tracing_client", "tracing_client_from_config", ({"a": "b"}, False)),
    ],
)
def test_deprecated_make_client_aliases_warn_and_delegate(
    old: str, new: str, args: tuple[Any, ...]
) -> None:
    import baseplate

    sentinel = object()
    with mock.patch.object(baseplate, new, return_value=sentinel) as delegate:
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*{new}") as caught:
            result = getattr(baseplate, old)(*args)
    assert result is sentinel
    delegate.assert_called_once_with(*args)
    # the warning points at the caller, not at baseplate
    assert caught[0].filename == __file__


def test_make_metrics_client_returns_a_working_client() -> None:
    from baseplate import make_metrics_client
    from baseplate.metrics import Client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = make_metrics_client({"metrics.namespace": "svc", "metrics.endpoint": ""})
    assert isinstance(client, Client)
    assert client.namespace == b"svc"


def test_make_tracing_client_returns_a_tracing_client() -> None:
    from baseplate import make_tracing_client
    from baseplate.diagnostics.tracing import TracingClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = make_tracing_client(
            {"tracing.service_name": "svc", "tracing.exporter": "none"},
            log_if_unconfigured=False,
        )
    assert isinstance(client, TracingClient)
    assert client.service_name == "svc"


class _Context:
    pass


def test_wrapped_request_context_reads_and_writes_through() -> None:
    from baseplate.integration import WrappedRequestContext

    context = _Context()
    context.db = "db"  # type: ignore[attr-defined]
    wrapped = WrappedRequestContext(context)
    assert wrapped.db == "db"
    wrapped.cache = "cache"
    assert context.cache == "cache"  # type: ignore[attr-defined]


def test_wrapped_request_context_shadows_without_touching_the_context() -> None:
    from baseplate.integration import WrappedRequestContext

    context = _Context()
    context.db = "request db"  # type: ignore[attr-defined]
    wrapped = WrappedRequestContext(context, trace="ignored, as in 0.28")
    wrapped.shadow_context_attr("db", "local db")
    assert wrapped.db == "local db"
    assert context.db == "request db"  # type: ignore[attr-defined]
    assert not hasattr(context, "trace") and not hasattr(wrapped, "trace")

    clone = wrapped.clone()
    assert isinstance(clone, WrappedRequestContext)
    assert clone.db == "request db"  # a clone wraps the same context, nothing shadowed
    clone.shadow_context_attr("db", "other")
    assert wrapped.db == "local db"


def test_wrapped_request_context_in_a_local_span_gets_its_context_objects() -> None:
    # 0.28 tests build local spans around a WrappedRequestContext; add_to_context's
    # factories then shadow their object on it, for the local span only.
    from opentelemetry.sdk.trace import TracerProvider

    from baseplate.core import Baseplate, ContextFactory, LocalSpan
    from baseplate.integration import WrappedRequestContext

    class Factory(ContextFactory):
        def make_object_for_context(self, name: str, server_span: Any) -> Any:
            return f"{name} for {server_span.name}"

    baseplate = Baseplate(tracer_provider=TracerProvider())
    baseplate.add_to_context("thing", Factory())
    context = _Context()
    server_span = baseplate.make_server_span(context, "request")
    local = LocalSpan(
        server_span.trace_id,
        server_span.id,
        42,
        True,
        0,
        "local",
        WrappedRequestContext(context),
        "component",
    )
    for observer in server_span.observers:
        observer.on_child_span_created(local)

    assert local.context.thing == "thing for local"
    assert context.thing == "thing for request"  # type: ignore[attr-defined]
